using System.Runtime.InteropServices;

namespace RA3.Train.Runs;

/// <summary>
/// SIGTERM and SIGINT — what a scheduler sends before pre-empting a job, and Ctrl-C — turned into
/// a request the long commands honour at their next step boundary: write a checkpoint, say how to
/// resume, exit with 128 + the signal's number. Installed by the ra3 process only
/// (<see cref="Install"/>); while it is installed the default termination is cancelled.
/// </summary>
public static class StopSignal
{
    private static readonly CancellationTokenSource Source = new();
    private static volatile int received;

    /// <summary>Whether a stop was asked for.</summary>
    public static bool Requested => received != 0;

    /// <summary>Cancelled when a stop is asked for: for the work that waits rather than steps (the sandboxed programs of an evaluation).</summary>
    public static CancellationToken Token => Source.Token;

    /// <summary>The exit status of a run stopped by the signal: 128 + its number (143 for SIGTERM, 130 for SIGINT).</summary>
    public static int ExitCode => 128 + received;

    /// <summary>The signal's name, for the log.</summary>
    public static string Name => received == 15 ? "SIGTERM" : "SIGINT";

    /// <summary>Installs the handlers for this process; dispose to restore the default behaviour.</summary>
    public static IDisposable Install() => new Registrations(
        PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => Request(c, 15)),
        PosixSignalRegistration.Create(PosixSignal.SIGINT, c => Request(c, 2)));

    private static void Request(PosixSignalContext context, int number)
    {
        context.Cancel = true;
        received = number;
        Source.Cancel();
    }

    private sealed class Registrations(params PosixSignalRegistration[] all) : IDisposable
    {
        public void Dispose()
        {
            foreach (var r in all)
            {
                r.Dispose();
            }
        }
    }
}

/// <summary>A run that stopped at a step boundary because <see cref="StopSignal"/> asked it to, after writing its checkpoint.</summary>
/// <param name="stopped">What stopped where: the signal, the step, the checkpoint written.</param>
/// <param name="resume">The command that continues the run.</param>
public sealed class StoppedBySignalException(string stopped, string resume) : Exception($"{stopped}; resume with: {resume}")
{
    /// <summary>What stopped where.</summary>
    public string Stopped { get; } = stopped;

    /// <summary>The command that continues the run.</summary>
    public string Resume { get; } = resume;
}
