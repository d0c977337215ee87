using RA3.Kernels.Distributed;
using RA3.Train.Midtraining;

namespace RA3.Train.Cli;

/// <summary><c>ra3 midtrain</c>: RA3's EM loop, or the NTP baseline with the same M-step budget.</summary>
public static class MidtrainCommand
{
    /// <summary>Usage text: every option of <see cref="MidtrainSettings"/> with its default.</summary>
    public static string Usage { get; } = SettingsCommandLine.Usage<MidtrainSettings>(
        """
        usage: ra3 midtrain [options]

        RA3 mid-training (E-step RL over think/act rollouts, temporal-ELBO inference, M-step on the
        bootstrapped corpus) or, with --method ntp, the same M-step budget on the raw traces.
        Resumes by itself: a finished phase is never redone.
        """);

    /// <summary>Runs the command among the ranks of <paramref name="world"/> (one process without mpirun).</summary>
    public static int Run(IEnumerable<string> args, TextWriter stdout, Communicator world)
    {
        var (s, _) = SettingsCommandLine.Parse<MidtrainSettings>(args);
        new Midtrainer(s, stdout, interactive: CommandLine.Interactive, world).Run();
        return 0;
    }
}
