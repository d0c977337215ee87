namespace RA3.Train.Sandbox;

/// <summary>
/// Limits of one sandboxed run. The defaults suit a unit-test program of a code benchmark; each is
/// an option of <c>ra3 eval</c>.
/// </summary>
public sealed record SandboxLimits
{
    /// <summary>Wall-clock limit; the whole process tree dies when it passes.</summary>
    public TimeSpan WallTime { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>CPU seconds (RLIMIT_CPU): SIGXCPU at this many, SIGKILL one second later.</summary>
    public int CpuSeconds { get; init; } = 15;

    /// <summary>Address space in bytes (RLIMIT_AS): allocations past it raise MemoryError.</summary>
    public long MemoryBytes { get; init; } = 1L << 30;

    /// <summary>Processes (RLIMIT_NPROC) of the run's own user id: a fork bomb stops here.</summary>
    public int MaxProcesses { get; init; } = 32;

    /// <summary>Largest file the program may write (RLIMIT_FSIZE).</summary>
    public long MaxFileBytes { get; init; } = 16L << 20;

    /// <summary>Size of the private /tmp (the working directory) in bytes.</summary>
    public long WorkingDirectoryBytes { get; init; } = 64L << 20;

    /// <summary>Open files (RLIMIT_NOFILE).</summary>
    public int MaxOpenFiles { get; init; } = 64;

    /// <summary>Bytes of stdout and of stderr kept (the first ones; the last 4 KiB are kept too).</summary>
    public int MaxOutputBytes { get; init; } = 64 << 10;

    /// <summary>The Python interpreter (inside the sandbox's read-only view of /usr).</summary>
    public string Python { get; init; } = "/usr/bin/python3";
}
