using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;

namespace RA3.Kernels.Distributed;

/// <summary>
/// The processes that train one model together (data parallelism), each with a rank 0 .. Size − 1,
/// and the collectives they use: sums of gradients, gathers of weight shards and of results, a
/// broadcast and a barrier. Every rank calls the same collectives in the same order. A collective
/// waits for the other ranks at most <see cref="Timeout"/>, then throws
/// <see cref="CollectiveTimeoutException"/>; it also gives up when <see cref="Abandon"/> is
/// cancelled (a stop signal: under mpirun, what the surviving ranks get when another one died).
/// So a dead or hung rank ends the job with an error on the others, never a hang.
/// <see cref="Single"/> is the one-process world, whose collectives change nothing; a world of
/// several processes is an <see cref="MpiCommunicator"/> (host buffers), with an
/// <see cref="NcclCommunicator"/> in front for a CUDA backend's device buffers (<see cref="For"/>).
/// </summary>
public abstract class Communicator : IDisposable
{
    /// <summary>How long a collective waits for the other ranks unless told otherwise.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(10);

    /// <summary>The world of one process: every collective leaves its arguments as they are.</summary>
    public static Communicator Single { get; } = new SingleProcess();

    /// <summary>This process's rank.</summary>
    public abstract int Rank { get; }

    /// <summary>Number of ranks.</summary>
    public abstract int Size { get; }

    /// <summary>This process's rank among the ranks of its host (which GPU, which sandbox user ids).</summary>
    public abstract int LocalRank { get; }

    /// <summary>Ranks on this host.</summary>
    public abstract int LocalSize { get; }

    /// <summary>Whether this is rank 0, the one that writes files and logs.</summary>
    public bool IsRoot => Rank == 0;

    /// <summary>How long a collective waits for the other ranks before it fails.</summary>
    public TimeSpan Timeout { get; set; } = DefaultTimeout;

    /// <summary>Cancelled when this process is asked to stop: a collective waiting for the others then gives up.</summary>
    public CancellationToken Abandon { get; set; }

    /// <summary>One line for logs: the transport and the world.</summary>
    public abstract string Description { get; }

    /// <summary>Sums a float32 tensor over the ranks, in place: afterwards every rank holds the same sum.</summary>
    public abstract void AllReduceSum(Tensor values);

    /// <summary>
    /// Gathers each rank's segment of <paramref name="buffer"/> (any storage type) into every rank's
    /// copy, in place: rank r's elements [segments[r].Begin, segments[r].End) are sent to all.
    /// </summary>
    public abstract void AllGather(Tensor buffer, IReadOnlyList<ElementRange> segments);

    /// <summary>Sums a few host values over the ranks, in place.</summary>
    public abstract void AllReduceSum(Span<double> values);

    /// <summary>Every rank's bytes, in rank order, on every rank.</summary>
    public abstract byte[][] AllGather(ReadOnlySpan<byte> mine);

    /// <summary>
    /// Gathers each rank's floats into <paramref name="gathered"/> on rank 0, rank after rank
    /// (<paramref name="counts"/>[r] from rank r; other ranks pass an empty span).
    /// </summary>
    public abstract void GatherToRoot(ReadOnlySpan<float> mine, Span<float> gathered, ReadOnlySpan<int> counts);

    /// <summary>Rank <paramref name="root"/>'s bytes into every rank's <paramref name="data"/> (the same length everywhere).</summary>
    public abstract void Broadcast(Span<byte> data, int root);

    /// <summary>Returns when every rank has reached it.</summary>
    public abstract void Barrier();

    /// <summary>
    /// Ends every rank of the job at once with <paramref name="exitCode"/>: what a rank does after
    /// a failure the others cannot know of, instead of leaving them waiting. One process: nothing.
    /// </summary>
    public abstract void Abort(int exitCode);

    /// <summary>
    /// The communicator for tensors of <paramref name="backend"/>: this one for host memory, one
    /// that moves device buffers for a GPU backend (NCCL for <c>cuda</c>). The caller disposes it
    /// when it is not this one.
    /// </summary>
    public virtual Communicator For(Backend backend) => this;

    /// <summary>Releases the transport (MPI_Finalize); the one-process world has nothing to release.</summary>
    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases what the transport holds.</summary>
    protected virtual void Dispose(bool disposing)
    {
    }

    private sealed class SingleProcess : Communicator
    {
        public override int Rank => 0;

        public override int Size => 1;

        public override int LocalRank => 0;

        public override int LocalSize => 1;

        public override string Description => "one process";

        public override void AllReduceSum(Tensor values)
        {
        }

        public override void AllGather(Tensor buffer, IReadOnlyList<ElementRange> segments)
        {
        }

        public override void AllReduceSum(Span<double> values)
        {
        }

        public override byte[][] AllGather(ReadOnlySpan<byte> mine) => [mine.ToArray()];

        public override void GatherToRoot(ReadOnlySpan<float> mine, Span<float> gathered, ReadOnlySpan<int> counts) => mine.CopyTo(gathered);

        public override void Broadcast(Span<byte> data, int root)
        {
        }

        public override void Barrier()
        {
        }

        public override void Abort(int exitCode)
        {
        }
    }
}

/// <summary>Elements [<paramref name="Begin"/>, <paramref name="End"/>) of a flat buffer.</summary>
/// <param name="Begin">First element.</param>
/// <param name="End">One past the last element.</param>
public readonly record struct ElementRange(long Begin, long End)
{
    /// <summary>Number of elements.</summary>
    public long Count => End - Begin;

    /// <summary>
    /// <paramref name="length"/> elements cut into <paramref name="parts"/> contiguous ranges of
    /// nearly equal size whose boundaries are multiples of <paramref name="alignment"/> (the last
    /// ends at <paramref name="length"/>); ranges may be empty when there are more parts than blocks.
    /// </summary>
    public static ElementRange[] Split(long length, int parts, int alignment)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfLessThan(parts, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(alignment, 1);
        long blocks = (length + alignment - 1) / alignment;
        var ranges = new ElementRange[parts];
        for (int p = 0; p < parts; p++)
        {
            long begin = Math.Min(length, blocks * p / parts * alignment), end = Math.Min(length, blocks * (p + 1) / parts * alignment);
            ranges[p] = new ElementRange(begin, end);
        }

        return ranges;
    }

    /// <summary>The part of this range inside <paramref name="other"/> (empty, at <see cref="Begin"/>, when they do not meet).</summary>
    public ElementRange Intersect(ElementRange other)
    {
        long begin = Math.Max(Begin, other.Begin), end = Math.Min(End, other.End);
        return end > begin ? new ElementRange(begin, end) : new ElementRange(begin, begin);
    }
}

/// <summary>A collective that waited longer than <see cref="Communicator.Timeout"/> for the other ranks.</summary>
/// <param name="message">What waited, and for how long.</param>
public sealed class CollectiveTimeoutException(string message) : TimeoutException(message);

/// <summary>A collective that stopped waiting for the other ranks because this process was asked to stop (<see cref="Communicator.Abandon"/>).</summary>
/// <param name="message">What was waiting.</param>
public sealed class CollectiveAbandonedException(string message) : OperationCanceledException(message);
