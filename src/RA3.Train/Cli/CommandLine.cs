namespace RA3.Train.Cli;

/// <summary>The <c>ra3</c> program's commands.</summary>
public static class CommandLine
{
    private const string Usage = """
        usage: ra3 <command>

        commands:
          info      version, compute backends found, SIMD width, native library, CUDA devices
          help      this text
        """;

    /// <summary>Runs the command named by <paramref name="args"/>; returns the exit code (2 for bad usage).</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        switch (args.FirstOrDefault())
        {
            case "info":
                InfoCommand.Print(stdout);
                return 0;
            case null or "help" or "--help" or "-h":
                stdout.WriteLine(Usage);
                return 0;
            default:
                stderr.WriteLine($"ra3: unknown command '{args[0]}'");
                stderr.WriteLine(Usage);
                return 2;
        }
    }
}
