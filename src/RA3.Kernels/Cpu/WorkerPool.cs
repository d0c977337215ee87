using RA3.Kernels.Distributed;

namespace RA3.Kernels.Cpu;

/// <summary>The body of a parallel loop: <see cref="Run"/> is called once per index.</summary>
public interface IParallelBody
{
    /// <summary>Does the work of one index.</summary>
    void Run(int index);
}

/// <summary>
/// A small persistent thread pool for the CPU kernels: <see cref="For{T}"/> spreads indices over
/// all cores without allocating (the body is a struct held in a per-type static slot, workers
/// are woken by a semaphore), so a training step does no garbage. One loop runs at a time; a
/// loop started from inside a body runs inline on the calling thread.
/// </summary>
public static class WorkerPool
{
    private static readonly SemaphoreSlim Start = new(0);
    private static readonly ManualResetEventSlim Done = new(false);
    private static readonly Lock Gate = new();
    private static Action<int>? current;
    private static int total;
    private static int next;
    private static int pending;
    private static Exception? failure;

    [ThreadStatic]
    private static bool insideLoop;

    static WorkerPool()
    {
        string? env = Environment.GetEnvironmentVariable("RA3_CPU_THREADS");
        Threads = int.TryParse(env, out int n) && n > 0 ? n : Launch.CoresPerRank;
        for (int i = 1; i < Threads; i++)
        {
            new Thread(WorkerLoop) { IsBackground = true, Name = $"ra3-cpu-{i}" }.Start();
        }
    }

    /// <summary>
    /// Threads that run loop bodies, the caller included: the host's cores, or their share when
    /// mpirun started several ranks on this host (two ranks on two cores: one thread each);
    /// <c>RA3_CPU_THREADS</c> overrides either.
    /// </summary>
    public static int Threads { get; }

    /// <summary>Runs <c>body.Run(i)</c> for i in [0, count) on all threads and waits for all of them.</summary>
    public static void For<T>(int count, in T body)
        where T : struct, IParallelBody
    {
        if (count <= 0)
        {
            return;
        }

        if (count == 1 || Threads == 1 || insideLoop)
        {
            var local = body;
            for (int i = 0; i < count; i++)
            {
                local.Run(i);
            }

            return;
        }

        lock (Gate)
        {
            Slot<T>.Body = body;
            current = Slot<T>.Invoke;
            total = count;
            next = 0;
            failure = null;
            int helpers = Math.Min(Threads - 1, count - 1);
            pending = helpers + 1;
            Done.Reset();
            Start.Release(helpers);
            Work();
            Done.Wait();
            current = null;
            Slot<T>.Body = default;
            if (failure is not null)
            {
                throw new AggregateException("a parallel CPU kernel failed", failure);
            }
        }
    }

    private static void WorkerLoop()
    {
        while (true)
        {
            Start.Wait();
            Work();
        }
    }

    private static void Work()
    {
        insideLoop = true;
        try
        {
            var body = current!;
            int i;
            while ((i = Interlocked.Increment(ref next) - 1) < total)
            {
                body(i);
            }
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref failure, e, null);
            Volatile.Write(ref next, int.MaxValue / 2);
        }
        finally
        {
            insideLoop = false;
            if (Interlocked.Decrement(ref pending) == 0)
            {
                Done.Set();
            }
        }
    }

    private static class Slot<T>
        where T : struct, IParallelBody
    {
        public static readonly Action<int> Invoke = i => Body.Run(i);
        public static T Body;
    }
}
