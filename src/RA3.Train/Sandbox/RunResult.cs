namespace RA3.Train.Sandbox;

/// <summary>How a sandboxed program ended.</summary>
public enum RunOutcome
{
    /// <summary>Ran to the end: every assertion held.</summary>
    Passed,

    /// <summary>An assertion failed.</summary>
    Failed,

    /// <summary>Another exception, an early exit, or a broken harness report (type and message say which).</summary>
    Error,

    /// <summary>The wall-clock or CPU-time limit.</summary>
    Timeout,

    /// <summary>The address-space limit (MemoryError).</summary>
    Memory,

    /// <summary>Killed by a signal (segmentation fault, abort, SIGKILL ...): <see cref="RunResult.Signal"/>.</summary>
    Killed,
}

/// <summary>One run: outcome, the exception's type and message, wall time, exit details and the (capped) output.</summary>
public sealed record RunResult(RunOutcome Outcome, string ExceptionType, string Message, TimeSpan WallTime, int ExitCode, int Signal, string Stdout, string Stderr)
{
    /// <summary>Lower-case outcome name as written to outcome files ("passed", "failed", ...).</summary>
    public string OutcomeName => Outcome.ToString().ToLowerInvariant();
}
