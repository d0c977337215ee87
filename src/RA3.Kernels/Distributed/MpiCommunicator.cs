using System.Buffers;
using System.Diagnostics;
using System.Runtime.InteropServices;
using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;

namespace RA3.Kernels.Distributed;

/// <summary>
/// The ranks mpirun started, over Open MPI (<see cref="MpiLibrary"/>): collectives on host
/// buffers. Each is MPI's non-blocking form (MPI_Iallreduce, MPI_Ibcast, …) polled with MPI_Test,
/// which is what lets it end with an error after <see cref="Communicator.Timeout"/> or when
/// <see cref="Communicator.Abandon"/> is cancelled, where a blocking call would wait forever for a
/// rank that hangs. MPI's counts are 32-bit, so large tensors go in chunks of at most 1 GiB. A
/// tensor in device memory (the ILGPU backends) is staged through host memory; a CUDA backend
/// gets <see cref="NcclCommunicator"/> from <see cref="For"/> instead. Errors come back as codes
/// (MPI_ERRORS_RETURN) and are thrown with MPI's text.
/// </summary>
public sealed unsafe class MpiCommunicator : Communicator
{
    // Largest chunk one MPI call moves: within MPI's int counts for bytes and floats alike.
    private const int ChunkBytes = 1 << 30;

    // Staging chunk for tensors that are not in host memory.
    private const int StagingBytes = 1 << 26;

    private readonly MpiLibrary mpi;
    private bool finalized;

    private MpiCommunicator(MpiLibrary mpi)
    {
        this.mpi = mpi;
        int provided = 0;
        Check(mpi.InitThread(null, null, MpiLibrary.ThreadSerialized, &provided), "MPI_Init_thread");
        Check(mpi.SetErrorHandler(mpi.CommWorld, mpi.ErrorsReturn), "MPI_Comm_set_errhandler");
        int rank = 0, size = 0;
        Check(mpi.CommRank(mpi.CommWorld, &rank), "MPI_Comm_rank");
        Check(mpi.CommSize(mpi.CommWorld, &size), "MPI_Comm_size");
        Rank = rank;
        Size = size;
        Version = mpi.Version();
    }

    /// <inheritdoc/>
    public override int Rank { get; }

    /// <inheritdoc/>
    public override int Size { get; }

    /// <inheritdoc/>
    public override int LocalRank => Launch.LocalRank;

    /// <inheritdoc/>
    public override int LocalSize => Launch.LocalSize;

    /// <summary>The MPI library's version line.</summary>
    public string Version { get; }

    /// <inheritdoc/>
    public override string Description => $"{Size} rank{(Size == 1 ? string.Empty : "s")} over {Version} ({mpi.Path}), {LocalSize} on this host";

    /// <summary>Initialises MPI in this process (which mpirun started: <see cref="Launch.ByMpirun"/>) and joins its world.</summary>
    public static MpiCommunicator Initialize() => new(MpiLibrary.Load());

    /// <inheritdoc/>
    public override void AllReduceSum(Tensor values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.DType != DType.Float32)
        {
            throw new ArgumentException($"all-reduce sums float32 tensors, not {values.DType}", nameof(values));
        }

        if (Size == 1)
        {
            return;
        }

        Chunks(values, 0, values.Count, Operation.Sum, root: -1);
    }

    /// <inheritdoc/>
    public override void AllGather(Tensor buffer, IReadOnlyList<ElementRange> segments)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        ArgumentNullException.ThrowIfNull(segments);
        CheckSegments(buffer, segments);
        if (Size == 1)
        {
            return;
        }

        // Each rank's segment broadcast from it: an all-gather of uneven, 64-bit-sized segments
        // that MPI_Allgatherv's int counts and displacements could not describe past 2 GiB.
        for (int root = 0; root < Size; root++)
        {
            Chunks(buffer, segments[root].Begin, segments[root].Count, Operation.Broadcast, root);
        }
    }

    /// <inheritdoc/>
    public override void AllReduceSum(Span<double> values)
    {
        if (Size == 1 || values.IsEmpty)
        {
            return;
        }

        fixed (double* p = values)
        {
            IntPtr request;
            Check(mpi.Iallreduce((void*)MpiLibrary.InPlace, p, values.Length, mpi.Double, mpi.Sum, mpi.CommWorld, &request), "MPI_Iallreduce");
            Wait(ref request, "all-reduce of a few values", values.Length * sizeof(double));
        }
    }

    /// <inheritdoc/>
    public override byte[][] AllGather(ReadOnlySpan<byte> mine)
    {
        var lengths = new int[Size];
        int length = mine.Length;
        fixed (int* all = lengths)
        {
            IntPtr request;
            Check(mpi.Iallgather(&length, 1, mpi.Int, all, 1, mpi.Int, mpi.CommWorld, &request), "MPI_Iallgather");
            Wait(ref request, "all-gather of lengths");
        }

        long total = lengths.Sum(n => (long)n);
        if (total > int.MaxValue)
        {
            throw new ArgumentException($"an all-gather of {total:N0} bytes is more than one MPI call moves (2 GiB)", nameof(mine));
        }

        var displacements = new int[Size];
        for (int r = 1; r < Size; r++)
        {
            displacements[r] = displacements[r - 1] + lengths[r - 1];
        }

        var gathered = new byte[total];
        fixed (byte* send = mine)
        fixed (byte* receive = gathered)
        fixed (int* counts = lengths)
        fixed (int* displs = displacements)
        {
            IntPtr request;
            Check(mpi.Iallgatherv(send, length, mpi.Byte, receive, counts, displs, mpi.Byte, mpi.CommWorld, &request), "MPI_Iallgatherv");
            Wait(ref request, "all-gather of results", total);
        }

        return [.. Enumerable.Range(0, Size).Select(r => gathered.AsSpan(displacements[r], lengths[r]).ToArray())];
    }

    /// <inheritdoc/>
    public override void GatherToRoot(ReadOnlySpan<float> mine, Span<float> gathered, ReadOnlySpan<int> counts)
    {
        if (counts.Length != Size || counts[Rank] != mine.Length)
        {
            throw new ArgumentException($"rank {Rank} sends {mine.Length} floats but the counts give {(counts.Length == Size ? counts[Rank] : $"{counts.Length} ranks")}", nameof(counts));
        }

        long total = 0;
        var displacements = new int[Size];
        for (int r = 0; r < Size; r++)
        {
            displacements[r] = checked((int)total);
            total += counts[r];
        }

        if (IsRoot && gathered.Length != total)
        {
            throw new ArgumentException($"rank 0 gathers {total} floats into a span of {gathered.Length}", nameof(gathered));
        }

        fixed (float* send = mine)
        fixed (float* receive = gathered)
        fixed (int* c = counts)
        fixed (int* d = displacements)
        {
            IntPtr request;
            Check(mpi.Igatherv(send, mine.Length, mpi.Float, receive, c, d, mpi.Float, 0, mpi.CommWorld, &request), "MPI_Igatherv");
            Wait(ref request, "gather of optimizer state to rank 0", total * sizeof(float));
        }
    }

    /// <inheritdoc/>
    public override void Broadcast(Span<byte> data, int root)
    {
        fixed (byte* p = data)
        {
            IntPtr request;
            Check(mpi.Ibcast(p, data.Length, mpi.Byte, root, mpi.CommWorld, &request), "MPI_Ibcast");
            Wait(ref request, $"broadcast from rank {root}", data.Length);
        }
    }

    /// <inheritdoc/>
    public override void Barrier()
    {
        IntPtr request;
        Check(mpi.Ibarrier(mpi.CommWorld, &request), "MPI_Ibarrier");
        Wait(ref request, "barrier");
    }

    /// <inheritdoc/>
    public override void Abort(int exitCode) => mpi.AbortJob(mpi.CommWorld, exitCode);

    /// <inheritdoc/>
    public override Communicator For(Backend backend) =>
        backend is Cuda.CudaBackend cuda ? new NcclCommunicator(this, cuda) : this;

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (!finalized)
        {
            finalized = true;
            mpi.Finalize();
        }
    }

    /// <summary>
    /// Polls a request until it completes. Polling is what progresses it (Open MPI runs its
    /// progress engine inside MPI_Test, as inside MPI_Wait), so the loop only yields the core to
    /// other threads for the first second; after that (a rank is busy elsewhere, e.g. writing a
    /// checkpoint) it sleeps a millisecond between polls.
    /// </summary>
    private void Wait(ref IntPtr request, string what, long bytes = -1)
    {
        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            int done = 0;
            fixed (IntPtr* r = &request)
            {
                Check(mpi.Test(r, &done, null), "MPI_Test");
            }

            if (done != 0)
            {
                return;
            }

            var waited = Stopwatch.GetElapsedTime(start);
            if (Abandon.IsCancellationRequested)
            {
                throw new CollectiveAbandonedException($"a stop signal came while rank {Rank} of {Size} waited {waited.TotalSeconds:0.#} s for the other ranks ({Describe(what, bytes)}): under mpirun, another rank ended or the job was cancelled");
            }

            if (waited > Timeout)
            {
                throw new CollectiveTimeoutException($"rank {Rank} of {Size} waited {Timeout.TotalSeconds:0.#} s, the collective timeout, for the other ranks ({Describe(what, bytes)}): a rank died, hangs or took another path");
            }

            if (waited < TimeSpan.FromSeconds(1))
            {
                Thread.Yield();
            }
            else
            {
                Thread.Sleep(1);
            }
        }
    }

    // Runs the collective on elements [first, first + count) of t in host memory, a chunk of at
    // most ChunkBytes at a time: in place for host storage, else through a staging buffer (filled
    // from the tensor where this rank sends, copied back where it receives).
    private void Chunks(Tensor t, long first, long count, Operation operation, int root)
    {
        int size = t.DType.SizeInBytes();
        if (t.Storage is HostStorage host)
        {
            byte* start = (byte*)host.Pointer + ((t.Offset + first) * size);
            long perChunk = ChunkBytes / size;
            for (long at = 0; at < count; at += perChunk)
            {
                Run(operation, start + (at * size), Math.Min(perChunk, count - at) * size, root);
            }

            return;
        }

        bool sends = operation == Operation.Sum || root == Rank, receives = operation == Operation.Sum || root != Rank;
        int staged = StagingBytes / size;
        byte[] staging = ArrayPool<byte>.Shared.Rent(StagingBytes);
        try
        {
            for (long at = 0; at < count; at += staged)
            {
                int n = (int)Math.Min(staged, count - at);
                var bytes = staging.AsSpan(0, n * size);
                var view = t.View(first + at, n);
                if (sends)
                {
                    view.CopyTo<byte>(bytes);
                }

                fixed (byte* p = bytes)
                {
                    Run(operation, p, bytes.Length, root);
                }

                if (receives)
                {
                    view.CopyFrom<byte>(bytes);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(staging);
        }
    }

    // One chunk's collective: the floats' sum in place, or the bytes broadcast from `root`.
    private void Run(Operation operation, byte* data, long bytes, int root)
    {
        IntPtr request;
        if (operation == Operation.Sum)
        {
            Check(mpi.Iallreduce((void*)MpiLibrary.InPlace, data, checked((int)(bytes / sizeof(float))), mpi.Float, mpi.Sum, mpi.CommWorld, &request), "MPI_Iallreduce");
            Wait(ref request, "all-reduce of gradients", bytes);
        }
        else
        {
            Check(mpi.Ibcast(data, checked((int)bytes), mpi.Byte, root, mpi.CommWorld, &request), "MPI_Ibcast");
            Wait(ref request, "all-gather of a weight shard", bytes);
        }
    }

    private enum Operation
    {
        Sum,
        Broadcast,
    }

    private static void CheckSegments(Tensor buffer, IReadOnlyList<ElementRange> segments)
    {
        if (segments.Any(s => s.Begin < 0 || s.End < s.Begin || s.End > buffer.Count))
        {
            throw new ArgumentException($"segments [{string.Join(", ", segments)}] do not lie within a buffer of {buffer.Count} elements", nameof(segments));
        }
    }

    private static string Describe(string what, long bytes) => bytes < 0 ? what : $"{what}, {bytes:N0} bytes";

    private void Check(int code, string call)
    {
        if (code != 0)
        {
            throw new InvalidOperationException($"{call} failed on rank {Rank} of {Size}: {mpi.Describe(code)}");
        }
    }
}
