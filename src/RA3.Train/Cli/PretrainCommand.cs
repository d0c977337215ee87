using RA3.Kernels.Distributed;
using RA3.Train.Pretraining;

namespace RA3.Train.Cli;

/// <summary><c>ra3 pretrain</c>: next-token pre-training; with no options, the embedded default run.</summary>
public static class PretrainCommand
{
    /// <summary>Usage text: every option of <see cref="PretrainSettings"/> with its default.</summary>
    public static string Usage { get; } = SettingsCommandLine.Usage<PretrainSettings>(
        """
        usage: ra3 pretrain [options]

        With no options: a 9.6M-parameter Llama-family model (byte tokenizer) trained for 300 steps of
        8 × 256 tokens on the functions of this machine's Python standard library, in runs/pretrain.
        """,
        ("--resume", "continue from the run folder's latest checkpoint"));

    /// <summary>Runs the command among the ranks of <paramref name="world"/> (one process without mpirun).</summary>
    public static int Run(IEnumerable<string> args, TextWriter stdout, Communicator world)
    {
        var (s, flags) = SettingsCommandLine.Parse<PretrainSettings>(args, "resume");
        var result = new Pretrainer(s, stdout, interactive: CommandLine.Interactive, world).Run(flags.Contains("resume"));
        string figures = $"train loss {result.TrainLoss:F4}, validation loss {result.ValidationLoss:F4}";
        stdout.WriteLine(result.AlreadyComplete
            ? $"already complete: step {result.Steps}, {figures} (the run's last figures); nothing was trained"
            : $"done: step {result.Steps}, {figures}, {result.TokensPerSecond:N0} tok/s");
        return 0;
    }
}
