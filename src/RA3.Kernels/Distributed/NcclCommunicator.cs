using System.Diagnostics;
using System.Runtime.InteropServices;
using RA3.Kernels.Cuda;
using RA3.Kernels.Tensors;

namespace RA3.Kernels.Distributed;

/// <summary>
/// The ranks' collectives on a CUDA backend's device buffers through NCCL (<c>libnccl.so.2</c>,
/// bound at run time, loaded only when a data-parallel run uses the <c>cuda</c> backend; if it is
/// absent, one line says so), as llm.c does: MPI starts the ranks and carries NCCL's unique id
/// from rank 0 to the others, NCCL sums the gradients and gathers the weight shards on the
/// backend's stream, GPU to GPU over NVLink or InfiniBand. Host values (step figures, gathered
/// results, the optimizer state a checkpoint collects) still go through <see cref="MpiCommunicator"/>.
/// A collective is enqueued on the stream, then the stream is polled (cuStreamQuery) together
/// with NCCL's asynchronous error, until <see cref="Communicator.Timeout"/>: then the NCCL
/// communicator is aborted (ncclCommAbort) and the collective fails, instead of leaving the GPU
/// waiting on a rank that is gone. Untested on a GPU so far: written against NCCL 2's C API.
/// </summary>
public sealed unsafe class NcclCommunicator : Communicator
{
    private const int UniqueIdBytes = 128;   // NCCL_UNIQUE_ID_BYTES
    private const int Float32 = 7;           // ncclFloat32
    private const int Uint8 = 1;             // ncclUint8
    private const int SumOp = 0;             // ncclSum
    private const int InProgress = 7;        // ncclInProgress
    private const int CudaNotReady = 600;    // CUDA_ERROR_NOT_READY

    private readonly MpiCommunicator host;
    private readonly CudaBackend backend;
    private readonly Library nccl;
    private IntPtr comm;

    /// <summary>Joins the ranks of <paramref name="host"/> in an NCCL communicator on <paramref name="backend"/>'s device.</summary>
    public NcclCommunicator(MpiCommunicator host, CudaBackend backend)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(backend);
        this.host = host;
        this.backend = backend;
        nccl = Library.Load();
        var id = new UniqueId();
        var bytes = new Span<byte>(id.Bytes, UniqueIdBytes);
        if (host.IsRoot)
        {
            Check(nccl.GetUniqueId(&id), "ncclGetUniqueId");
        }

        host.Broadcast(bytes, 0);
        backend.Enter();
        IntPtr c;
        Check(nccl.CommInitRank(&c, host.Size, id, host.Rank), "ncclCommInitRank");
        comm = c;
        int version = 0;
        Version = nccl.GetVersion(&version) == 0 ? $"NCCL {version / 10000}.{version / 100 % 100}.{version % 100}" : "NCCL";
    }

    /// <inheritdoc/>
    public override int Rank => host.Rank;

    /// <inheritdoc/>
    public override int Size => host.Size;

    /// <inheritdoc/>
    public override int LocalRank => host.LocalRank;

    /// <inheritdoc/>
    public override int LocalSize => host.LocalSize;

    /// <summary>NCCL's version.</summary>
    public string Version { get; }

    /// <inheritdoc/>
    public override string Description => $"{Size} rank{(Size == 1 ? string.Empty : "s")}: {Version} for device buffers, {host.Version} for the rest";

    /// <inheritdoc/>
    public override void AllReduceSum(Tensor values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.DType != DType.Float32 || values.Backend != backend)
        {
            throw new ArgumentException($"NCCL sums float32 tensors of its cuda backend, not {values}", nameof(values));
        }

        backend.Enter();
        IntPtr p = CudaBackend.P(values);
        Check(nccl.AllReduce(p, p, (nuint)values.Count, Float32, SumOp, comm, backend.Stream), "ncclAllReduce");
        Wait("all-reduce of gradients");
    }

    /// <inheritdoc/>
    public override void AllGather(Tensor buffer, IReadOnlyList<ElementRange> segments)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        ArgumentNullException.ThrowIfNull(segments);
        if (buffer.Backend != backend || segments.Count != Size)
        {
            throw new ArgumentException($"NCCL gathers a tensor of its cuda backend in {Size} segments, not {buffer} in {segments.Count}", nameof(buffer));
        }

        // Uneven segments: one broadcast per rank, grouped into one NCCL launch (NCCL's all-gather
        // takes equal counts only), in place.
        backend.Enter();
        IntPtr start = CudaBackend.P(buffer);
        int size = buffer.DType.SizeInBytes();
        Check(nccl.GroupStart(), "ncclGroupStart");
        for (int root = 0; root < Size; root++)
        {
            IntPtr at = start + checked((nint)(segments[root].Begin * size));
            Check(nccl.Broadcast(at, at, (nuint)(segments[root].Count * size), Uint8, root, comm, backend.Stream), "ncclBroadcast");
        }

        Check(nccl.GroupEnd(), "ncclGroupEnd");
        Wait("all-gather of weight shards");
    }

    /// <inheritdoc/>
    public override void AllReduceSum(Span<double> values) => host.AllReduceSum(values);

    /// <inheritdoc/>
    public override byte[][] AllGather(ReadOnlySpan<byte> mine) => host.AllGather(mine);

    /// <inheritdoc/>
    public override void GatherToRoot(ReadOnlySpan<float> mine, Span<float> gathered, ReadOnlySpan<int> counts) => host.GatherToRoot(mine, gathered, counts);

    /// <inheritdoc/>
    public override void Broadcast(Span<byte> data, int root) => host.Broadcast(data, root);

    /// <inheritdoc/>
    public override void Barrier() => host.Barrier();

    /// <inheritdoc/>
    public override void Abort(int exitCode)
    {
        if (comm != IntPtr.Zero)
        {
            nccl.CommAbort(comm);
            comm = IntPtr.Zero;
        }

        host.Abort(exitCode);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (comm != IntPtr.Zero)
        {
            nccl.CommDestroy(comm);
            comm = IntPtr.Zero;
        }
    }

    // Polls the stream until the enqueued collective has run; NCCL's asynchronous error or the
    // timeout aborts the communicator (which also ends the kernels waiting for the other ranks).
    private void Wait(string what)
    {
        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            int status = nccl.StreamQuery(backend.Stream);
            if (status == 0)
            {
                return;
            }

            if (status != CudaNotReady)
            {
                throw new InvalidOperationException($"the CUDA stream failed during an NCCL {what} on rank {Rank} of {Size} (CUDA error {status})");
            }

            int error = 0;
            Check(nccl.CommGetAsyncError(comm, &error), "ncclCommGetAsyncError");
            var waited = Stopwatch.GetElapsedTime(start);
            string? failure = error is not 0 and not InProgress ? $"NCCL reported {nccl.Describe(error)}"
                : Abandon.IsCancellationRequested ? "a stop signal came (under mpirun: another rank ended, or the job was cancelled)"
                : waited > Timeout ? $"no answer within {Timeout.TotalSeconds:0.#} s, the collective timeout: a rank died, hangs or took another path"
                : null;
            if (failure is not null)
            {
                nccl.CommAbort(comm);
                comm = IntPtr.Zero;
                string message = $"rank {Rank} of {Size} gave up an NCCL {what} after {waited.TotalSeconds:0.#} s: {failure}";
                throw waited > Timeout ? new CollectiveTimeoutException(message) : new InvalidOperationException(message);
            }

            Thread.Yield();
        }
    }

    private void Check(int result, string call)
    {
        if (result is not 0 and not InProgress)
        {
            throw new InvalidOperationException($"{call} failed on rank {Rank} of {Size}: {nccl.Describe(result)}");
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct UniqueId
    {
        public fixed byte Bytes[UniqueIdBytes];
    }

    /// <summary>libnccl.so.2's functions and libcuda's cuStreamQuery, found at run time.</summary>
    private sealed class Library
    {
        private Library(IntPtr library, IntPtr driver)
        {
            IntPtr F(IntPtr lib, string name) => NativeLibrary.TryGetExport(lib, name, out IntPtr f) ? f : throw new InvalidOperationException($"NCCL or the CUDA driver has no function {name}: NCCL 2 and a CUDA driver are needed");
            GetUniqueId = (delegate* unmanaged<UniqueId*, int>)F(library, "ncclGetUniqueId");
            CommInitRank = (delegate* unmanaged<IntPtr*, int, UniqueId, int, int>)F(library, "ncclCommInitRank");
            AllReduce = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)F(library, "ncclAllReduce");
            Broadcast = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)F(library, "ncclBroadcast");
            GroupStart = (delegate* unmanaged<int>)F(library, "ncclGroupStart");
            GroupEnd = (delegate* unmanaged<int>)F(library, "ncclGroupEnd");
            CommGetAsyncError = (delegate* unmanaged<IntPtr, int*, int>)F(library, "ncclCommGetAsyncError");
            CommAbort = (delegate* unmanaged<IntPtr, int>)F(library, "ncclCommAbort");
            CommDestroy = (delegate* unmanaged<IntPtr, int>)F(library, "ncclCommDestroy");
            ErrorString = (delegate* unmanaged<int, IntPtr>)F(library, "ncclGetErrorString");
            GetVersion = (delegate* unmanaged<int*, int>)F(library, "ncclGetVersion");
            StreamQuery = (delegate* unmanaged<IntPtr, int>)F(driver, "cuStreamQuery");
        }

        public delegate* unmanaged<UniqueId*, int> GetUniqueId { get; }

        public delegate* unmanaged<IntPtr*, int, UniqueId, int, int> CommInitRank { get; }

        public delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> AllReduce { get; }

        public delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> Broadcast { get; }

        public delegate* unmanaged<int> GroupStart { get; }

        public delegate* unmanaged<int> GroupEnd { get; }

        public delegate* unmanaged<IntPtr, int*, int> CommGetAsyncError { get; }

        public delegate* unmanaged<IntPtr, int> CommAbort { get; }

        public delegate* unmanaged<IntPtr, int> CommDestroy { get; }

        public delegate* unmanaged<int, IntPtr> ErrorString { get; }

        public delegate* unmanaged<int*, int> GetVersion { get; }

        public delegate* unmanaged<IntPtr, int> StreamQuery { get; }

        public static Library Load()
        {
            if (!NativeLibrary.TryLoad("libnccl.so.2", out IntPtr library))
            {
                throw new InvalidOperationException("a data-parallel run on the cuda backend needs NCCL, and libnccl.so.2 was not found: install NCCL 2 (e.g. the libnccl2 package of NVIDIA's CUDA repository) or set LD_LIBRARY_PATH to its folder");
            }

            return NativeLibrary.TryLoad("libcuda.so.1", out IntPtr driver)
                ? new Library(library, driver)
                : throw new InvalidOperationException("libcuda.so.1 (the CUDA driver) was not found");
        }

        public string Describe(int result) => Marshal.PtrToStringUTF8(ErrorString(result)) ?? $"NCCL error {result}";
    }
}
