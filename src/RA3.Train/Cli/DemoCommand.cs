using RA3.Train.Demo;
using RA3.Train.Reporting;

namespace RA3.Train.Cli;

/// <summary><c>ra3 demo</c> (the whole pipeline on the embedded default) and <c>ra3 report</c>.</summary>
public static class DemoCommand
{
    /// <summary>Usage text.</summary>
    public const string Usage = """
        usage: ra3 demo [options]
               ra3 report --run DIR

        The whole pipeline on the procedural task family, about 15 minutes on 2 cores: tasks, a small
        pre-trained model (reused when present), per seed NTP and RA3 mid-training with the same
        M-step budget, held-out pass@1/pass@5 of the three models, a short RLVR from each, and
        report.md with its plots. Resumes where it stopped. ra3 report rewrites the report of a run.

          --out DIR             [runs/demo]
          --seeds N             [2]
          --pretrain-steps N    [900]      --traces N          [48]
          --rounds N            [2]        --mstep-steps N     [12]
          --heldout N           [40]       --samples N         [5]
          --rlvr-steps N        [6]        --rlvr-seeds N      [1]
          --c X                 [0.05]     --k N               [1]        --G N     [4]
          --seed N              [1234]     --backend NAME      [cpu]
        """;

    /// <summary>Runs <c>ra3 demo</c>.</summary>
    public static int Run(IEnumerable<string> args, TextWriter stdout)
    {
        var o = new Options(args, new HashSet<string>());
        var d = new DemoSettings();
        var s = new DemoSettings
        {
            Out = o.String("out", d.Out)!,
            Seeds = o.Int("seeds", d.Seeds),
            PretrainSteps = o.Int("pretrain-steps", d.PretrainSteps),
            Traces = o.Int("traces", d.Traces),
            Rounds = o.Int("rounds", d.Rounds),
            MStepSteps = o.Int("mstep-steps", d.MStepSteps),
            HeldOutProblems = o.Int("heldout", d.HeldOutProblems),
            Samples = o.Int("samples", d.Samples),
            RlvrSteps = o.Int("rlvr-steps", d.RlvrSteps),
            RlvrSeeds = o.Int("rlvr-seeds", d.RlvrSeeds),
            ThinkCost = o.Float("c", (float)d.ThinkCost),
            Horizon = o.Int("k", d.Horizon),
            Group = o.Int("G", d.Group),
            Seed = (ulong)o.Int("seed", (int)d.Seed),
            Backend = o.String("backend", d.Backend)!,
        };
        o.Finish();
        new DemoRunner(s, stdout, interactive: !Console.IsOutputRedirected).Run();
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
