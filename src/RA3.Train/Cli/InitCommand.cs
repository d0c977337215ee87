using RA3.Train.Initialization;

namespace RA3.Train.Cli;

/// <summary><c>ra3 init</c>: a randomly initialised Hugging Face folder of the shape a config.json gives.</summary>
public static class InitCommand
{
    /// <summary>Usage text: every option of <see cref="InitSettings"/> with its default.</summary>
    public static string Usage { get; } = SettingsCommandLine.Usage<InitSettings>(
        """
        usage: ra3 init --model-config CONFIG --out DIR [options]

        Writes DIR: the config.json (re-written by ra3), random weights (GPT-2's initialisation:
        N(0, 0.02²) matrices, residual projections scaled by 1/√(2L), norms 1, biases 0) in safetensors,
        sharded above 5 GB, and the tokenizer when given. Any supported model_type (gpt2, llama,
        mistral, qwen2, qwen3) of any size: real shapes to measure memory and speed with.
        """);

    /// <summary>Runs the command.</summary>
    public static int Run(IEnumerable<string> args, TextWriter stdout)
    {
        var (s, _) = SettingsCommandLine.Parse<InitSettings>(args);
        var (_, parameters, stored) = RandomModel.Write(s, stdout);
        stdout.WriteLine($"wrote {s.Out}: {parameters:N0} parameters as {stored}");
        return 0;
    }
}
