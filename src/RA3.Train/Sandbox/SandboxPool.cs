using System.Threading.Channels;
using RA3.Kernels.Distributed;

namespace RA3.Train.Sandbox;

/// <summary>
/// A fixed set of workers (default: one per core, or per core of this rank's share when mpirun
/// started several ranks on the host), each with its own slot of the <see cref="Sandbox"/> (its
/// own unprivileged user id as root), fed through a bounded queue: a producer that outpaces the
/// workers waits instead of piling programs up in memory. Under mpirun the slots of the ranks of
/// one host do not overlap (rank r's start at r × workers), so no two processes of the host share
/// a user id, and with it a process limit.
/// </summary>
public sealed class SandboxPool : IDisposable
{
    private readonly Sandbox sandbox;
    private readonly Channel<(string Program, SandboxLimits? Limits, TaskCompletionSource<RunResult> Done)> queue;
    private readonly Task[] workers;

    /// <summary>Starts <paramref name="workers"/> workers (0 = one per core of this rank) over a queue of <paramref name="queueCapacity"/> programs (0 = 4 per worker).</summary>
    public SandboxPool(Sandbox sandbox, int workers = 0, int queueCapacity = 0)
    {
        this.sandbox = sandbox;
        int count = workers > 0 ? workers : Launch.CoresPerRank, first = Launch.LocalRank * count;
        queue = Channel.CreateBounded<(string, SandboxLimits?, TaskCompletionSource<RunResult>)>(new BoundedChannelOptions(queueCapacity > 0 ? queueCapacity : 4 * count)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleWriter = false,
            SingleReader = false,
        });
        this.workers = [.. Enumerable.Range(first, count).Select(slot => Task.Run(() => Work(slot)))];
    }

    /// <summary>Number of workers.</summary>
    public int Workers => workers.Length;

    /// <summary>The sandbox the workers run in.</summary>
    public Sandbox Sandbox => sandbox;

    /// <summary>Queues a program (waiting while the queue is full) and returns its result when it has run; <paramref name="limits"/> overrides the sandbox's.</summary>
    public async Task<RunResult> RunAsync(string program, SandboxLimits? limits = null, CancellationToken cancel = default)
    {
        var done = new TaskCompletionSource<RunResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        await queue.Writer.WriteAsync((program, limits, done), cancel).ConfigureAwait(false);
        return await done.Task.ConfigureAwait(false);
    }

    /// <summary>
    /// Runs every program; results in the programs' order whatever the number of workers.
    /// <paramref name="progress"/> gets the count finished; <paramref name="limits"/> gives a
    /// program's limits by its index (null: the sandbox's).
    /// </summary>
    public async Task<RunResult[]> RunAllAsync(IReadOnlyList<string> programs, Action<int>? progress = null, Func<int, SandboxLimits?>? limits = null, CancellationToken cancel = default)
    {
        int finished = 0;
        var tasks = new Task<RunResult>[programs.Count];
        for (int i = 0; i < programs.Count; i++)
        {
            tasks[i] = RunAsync(programs[i], limits?.Invoke(i), cancel).ContinueWith(
                t =>
                {
                    progress?.Invoke(Interlocked.Increment(ref finished));
                    return t.Result;
                },
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }

        return await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    /// <summary>Stops taking programs and waits for the workers to finish the queued ones.</summary>
    public void Dispose()
    {
        queue.Writer.TryComplete();
        Task.WaitAll(workers);
    }

    private async Task Work(int slot)
    {
        await foreach (var (program, limits, done) in queue.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            done.SetResult(await sandbox.RunAsync(program, slot, limits).ConfigureAwait(false));
        }
    }
}
