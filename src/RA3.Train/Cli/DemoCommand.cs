using RA3.Kernels.Distributed;
using RA3.Train.Demo;
using RA3.Train.Reporting;
using RA3.Train.Runs;

namespace RA3.Train.Cli;

/// <summary><c>ra3 demo</c> (the whole pipeline on the embedded default) and <c>ra3 report</c>.</summary>
public static class DemoCommand
{
    /// <summary>Usage text: every option of <see cref="DemoSettings"/> with its default, and <c>ra3 report</c>.</summary>
    public static string Usage { get; } = SettingsCommandLine.Usage<DemoSettings>(
        """
        usage: ra3 demo [options]
               ra3 report --run DIR

        The whole pipeline on the procedural task family, about 15 minutes on 2 cores: tasks, a small
        pre-trained model (reused when present), per seed NTP and RA3 mid-training with the same
        M-step budget, held-out pass@1/pass@5 and code cross-entropy of the three models on the same
        problems and samples, RLVR from each model of the first seed with held-out curves, and
        report.md with paired RA3 − NTP statistics (bootstrap CIs) and its plots. Resumes where it
        stopped. ra3 report rewrites the report of a run.

        --preset study starts from the study's sizes instead (about an hour on 2 cores): 5 seeds,
        400 held-out problems, RLVR of 40 steps from every model of every seed, curves on 100
        problems every 10 steps, in runs/study. Options given beside it override its values.
        """);

    /// <summary>Runs <c>ra3 demo</c>; stopped by a signal in any stage, it says so and that the same command resumes it.</summary>
    public static int Run(IEnumerable<string> args, TextWriter stdout, Communicator world)
    {
        string[] given = [.. args];
        int at = Array.IndexOf(given, "--preset");
        string preset = at >= 0 && at + 1 < given.Length ? given[at + 1] : "default";
        var (s, _) = SettingsCommandLine.Parse(given, () => DemoSettings.ForPreset(preset));
        try
        {
            new DemoRunner(s, stdout, interactive: CommandLine.Interactive, world).Run();
        }
        catch (StoppedBySignalException e)
        {
            // A stage's own resume command would run that stage only; the demo resumes as a whole.
            throw new StoppedBySignalException(e.Stopped, CommandLine.Again("demo", given) + " (the finished stages are kept)");
        }

        return 0;
    }

    /// <summary>Runs <c>ra3 report</c>.</summary>
    public static int Report(IEnumerable<string> args, TextWriter stdout)
    {
        var o = new Options(args, new HashSet<string>());
        string run = o.String("run") ?? throw new UsageException("--run DIR is required");
        o.Finish();
        stdout.WriteLine($"report: {Path.GetFullPath(DemoReport.Write(run))}");
        return 0;
    }
}
