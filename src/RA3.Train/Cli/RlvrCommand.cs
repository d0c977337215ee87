using RA3.Kernels.Distributed;
using RA3.Train.PostTraining;

namespace RA3.Train.Cli;

/// <summary><c>ra3 rlvr</c>: GRPO post-training with unit-test rewards in the sandbox.</summary>
public static class RlvrCommand
{
    /// <summary>Usage text: every option of <see cref="RlvrSettings"/> with its default.</summary>
    public static string Usage { get; } = SettingsCommandLine.Usage<RlvrSettings>(
        """
        usage: ra3 rlvr [options]

        GRPO on problems with unit tests: G samples per prompt, reward 1 when every test passes in the
        sandbox (or the fraction of asserts with --partial), group-normalised advantages, clipped
        ratio, KL to the initial model; held-out pass@1 at step 0, every --eval-every steps and at the end.
        """);

    /// <summary>Runs the command among the ranks of <paramref name="world"/> (one process without mpirun).</summary>
    public static int Run(IEnumerable<string> args, TextWriter stdout, Communicator world)
    {
        var (s, _) = SettingsCommandLine.Parse<RlvrSettings>(args);
        double pass = new RlvrTrainer(s, stdout, interactive: CommandLine.Interactive, world).Run();
        stdout.WriteLine(double.IsNaN(pass) ? "done" : $"done: held-out pass@1 {pass:P1}");
        return 0;
    }
}
