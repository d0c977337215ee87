namespace RA3.Train.Cli;

/// <summary>The <c>ra3</c> program's commands.</summary>
public static class CommandLine
{
    private const string Usage = """
        usage: ra3 <command>

        commands:
          pretrain  next-token pre-training (no options: the embedded default run)
          score     mean loss and per-token log-probabilities of text or ids under a model
          info      version, compute backends found, SIMD width, native library, CUDA devices
          help      this text (ra3 <command> --help for a command's options)
        """;

    /// <summary>Runs the command named by <paramref name="args"/>; returns the exit code (2 for bad usage).</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(args);
        string? command = args.FirstOrDefault();
        var rest = args.Skip(1).ToArray();
        if (rest.Contains("--help") || rest.Contains("-h"))
        {
            stdout.WriteLine(command switch { "pretrain" => PretrainCommand.Usage, "score" => ScoreCommand.Usage, _ => Usage });
            return 0;
        }

        try
        {
            return Dispatch(command, rest, stdout, stderr);
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"ra3 {command}: {e.Message}");
            stderr.WriteLine(command switch { "pretrain" => PretrainCommand.Usage, "score" => ScoreCommand.Usage, _ => Usage });
            return 2;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or InvalidOperationException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"ra3 {command}: {e.Message}");
            return 1;
        }
    }

    private static int Dispatch(string? command, string[] rest, TextWriter stdout, TextWriter stderr)
    {
        switch (command)
        {
            case "pretrain":
                return PretrainCommand.Run(rest, stdout);
            case "score":
                return ScoreCommand.Run(rest, stdout);
            case "info":
                InfoCommand.Print(stdout);
                return 0;
            case null or "help" or "--help" or "-h":
                stdout.WriteLine(Usage);
                return 0;
            default:
                stderr.WriteLine($"ra3: unknown command '{command}'");
                stderr.WriteLine(Usage);
                return 2;
        }
    }
}
