using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using RA3.Kernels.Ilgpu;
using RA3.Kernels.Native;
using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;

namespace RA3.Kernels.Cuda;

/// <summary>
/// The GPU backend: ra3_native's CUDA kernels, called through P/Invoke on the device pointers of
/// ILGPU's CUDA buffers and on ILGPU's stream, for the hot paths — GEMM (TF32 tensor cores, fused
/// bias, column-sum bias gradient), LayerNorm and RMSNorm (a warp per row), fused attention (bf16 tensor cores, head dims 64
/// and 128), latent segment scoring (bf16) and the temporal-ELBO pass; ILGPU's CUDA accelerator
/// serves every other op. Tensors stay f32:
/// the bf16 kernels get bf16 copies made on the device and their gradients are added back into the
/// f32 tensors, so results carry bf16 rounding (about 1e-3 relative). Scratch memory comes from the
/// device's stream-ordered pool.
/// </summary>
public sealed class CudaBackend : IlgpuBackend
{
    private readonly IntPtr stream;

    private CudaBackend(Context context, Accelerator accelerator)
        : base(context, accelerator, tiledGemm: true) => stream = ((CudaStream)accelerator.DefaultStream).StreamPtr;

    /// <inheritdoc/>
    public override string Name => "cuda";

    /// <summary>
    /// Creates the backend on CUDA device 0 — under mpirun, on the device of this rank's index
    /// among its host's ranks (modulo the devices: one GPU per rank) — or throws
    /// <see cref="InvalidOperationException"/> saying why it cannot: the library's ABI differs, it
    /// was built without CUDA, or no device is visible.
    /// </summary>
    public static CudaBackend Create()
    {
        if (NativeBackend.LibraryAbi != NativeBackend.ExpectedAbi)
        {
            throw new InvalidOperationException($"ra3_native at {NativeLibraryLoader.LoadedFrom} has ABI {NativeBackend.LibraryAbi}, expected {NativeBackend.ExpectedAbi}");
        }

        int devices = NativeBackend.CudaDevices;
        if (devices < 1)
        {
            var status = (NativeStatus)NativeMethods.CudaSynchronize();
            string why = status == NativeStatus.Unsupported ? "it was built without CUDA (no toolkit where CMake ran)" : "it sees no CUDA device";
            throw new InvalidOperationException($"no CUDA backend: ra3_native at {NativeLibraryLoader.LoadedFrom} reports {devices} CUDA devices; {why}");
        }

        // The runtime's device first (it makes the primary context current), then ILGPU's own
        // context on top: the native calls run in whatever context is current, ILGPU's, whose
        // buffers and stream they use. The other order leaves ILGPU launching into the wrong context.
        int device = Distributed.Launch.LocalRank % devices;
        NativeMethods.Check(NativeMethods.CudaSetDevice(device));
        var context = Context.Create(b => b.Cuda().EnableAlgorithms());
        var accelerator = context.CreateCudaAccelerator(device);
        accelerator.Bind();
        return new CudaBackend(context, accelerator);
    }

    private protected override void GemmCore(in GemmArgs g, Tensor a, Tensor b, Tensor c, Tensor? bias)
    {
        Enter();
        int transA = g.TransA ? 1 : 0, transB = g.TransB ? 1 : 0;
        NativeMethods.Check(NativeMethods.CudaGemmF32(g.Batch, g.M, g.N, g.K, transA, transB, g.Alpha, P(a), g.StrideA, P(b), g.StrideB, g.Beta, P(c), g.StrideC, bias is null ? IntPtr.Zero : P(bias)));
    }

    private protected override void BiasBackwardCore(Tensor dOut, Tensor dBias)
    {
        Enter();
        NativeMethods.Check(NativeMethods.CudaBiasBackward(dOut.Count / dBias.Count, checked((int)dBias.Count), P(dOut), P(dBias)));
    }

    private protected override void LayerNormCore(Tensor x, Tensor weight, Tensor? bias, Tensor y, Tensor mean, Tensor rstd, float eps)
    {
        Enter();
        NativeMethods.Check(NativeMethods.CudaLayerNormForward(x.Shape.Rows, x.Shape[-1], P(x), P(weight), bias is null ? IntPtr.Zero : P(bias), P(y), P(mean), P(rstd), eps));
    }

    // The fused add + norm as ILGPU's add, then the CUDA norm: the CUDA norms run a warp per row,
    // ILGPU's fused kernel a thread per row (not yet timed against each other on a GPU).
    private protected override void AddLayerNormCore(Tensor a, Tensor b, Tensor weight, Tensor? bias, Tensor sum, Tensor y, Tensor mean, Tensor rstd, float eps)
    {
        AddCore(a, b, sum);
        LayerNormCore(sum, weight, bias, y, mean, rstd, eps);
    }

    private protected override void AddRmsNormCore(Tensor a, Tensor b, Tensor weight, Tensor sum, Tensor y, Tensor rstd, float eps)
    {
        AddCore(a, b, sum);
        RmsNormCore(sum, weight, y, rstd, eps);
    }

    private protected override void LayerNormBackwardCore(Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dy, Tensor dx, Tensor dWeight, Tensor? dBias)
    {
        Enter();
        NativeMethods.Check(NativeMethods.CudaLayerNormBackward(x.Shape.Rows, x.Shape[-1], P(x), P(weight), P(mean), P(rstd), P(dy), P(dx), P(dWeight), dBias is null ? IntPtr.Zero : P(dBias)));
    }

    private protected override void RmsNormCore(Tensor x, Tensor weight, Tensor y, Tensor rstd, float eps)
    {
        Enter();
        NativeMethods.Check(NativeMethods.CudaRmsNormForward(x.Shape.Rows, x.Shape[-1], P(x), P(weight), P(y), P(rstd), eps));
    }

    private protected override void RmsNormBackwardCore(Tensor x, Tensor weight, Tensor rstd, Tensor dy, Tensor dx, Tensor dWeight)
    {
        Enter();
        NativeMethods.Check(NativeMethods.CudaRmsNormBackward(x.Shape.Rows, x.Shape[-1], P(x), P(weight), P(rstd), P(dy), P(dx), P(dWeight)));
    }

    /// <remarks>Head dims other than 64 and 128, and sliding windows (whose CUDA kernel belongs to the GPU issue), run ILGPU's tiled kernel.</remarks>
    private protected override void FlashAttentionCore(Tensor q, Tensor k, Tensor v, Tensor? lengths, Tensor output, Tensor lse, int window)
    {
        Enter();
        int d = q.Shape[3];
        if ((d != 64 && d != 128) || window != 0)
        {
            base.FlashAttentionCore(q, k, v, lengths, output, lse, window);
            return;
        }

        using var qb = ToBf16(q);
        using var kb = ToBf16(k);
        using var vb = ToBf16(v);
        using var ob = new DeviceBuffer(output.Count * 2);
        NativeMethods.Check(NativeMethods.CudaFlashAttentionForward(q.Shape[0], q.Shape[1], q.Shape[2], k.Shape[2], d, qb.Pointer, kb.Pointer, vb.Pointer, lengths is null ? IntPtr.Zero : P(lengths), ob.Pointer, P(lse)));
        NativeMethods.Check(NativeMethods.CudaBf16ToF32(output.Count, ob.Pointer, P(output)));
    }

    private protected override void FlashAttentionBackwardCore(Tensor q, Tensor k, Tensor v, Tensor? lengths, Tensor output, Tensor lse, Tensor dOutput, Tensor dq, Tensor dk, Tensor dv, int window)
    {
        Enter();
        int d = q.Shape[3];
        if ((d != 64 && d != 128) || window != 0)
        {
            base.FlashAttentionBackwardCore(q, k, v, lengths, output, lse, dOutput, dq, dk, dv, window);
            return;
        }

        using var qb = ToBf16(q);
        using var kb = ToBf16(k);
        using var vb = ToBf16(v);
        using var ob = ToBf16(output);
        using var gb = ToBf16(dOutput);
        using var dqb = Zeroed(dq.Count * 2);
        using var dkb = Zeroed(dk.Count * 2);
        using var dvb = Zeroed(dv.Count * 2);
        NativeMethods.Check(NativeMethods.CudaFlashAttentionBackward(q.Shape[0], q.Shape[1], q.Shape[2], k.Shape[2], d, qb.Pointer, kb.Pointer, vb.Pointer, lengths is null ? IntPtr.Zero : P(lengths), ob.Pointer, P(lse), gb.Pointer, dqb.Pointer, dkb.Pointer, dvb.Pointer));
        NativeMethods.Check(NativeMethods.CudaAccumulateBf16(dq.Count, dqb.Pointer, P(dq)));
        NativeMethods.Check(NativeMethods.CudaAccumulateBf16(dk.Count, dkb.Pointer, P(dk)));
        NativeMethods.Check(NativeMethods.CudaAccumulateBf16(dv.Count, dvb.Pointer, P(dv)));
    }

    private protected override void SegmentScoresCore(Tensor h, Tensor w, Tensor targets, Tensor lineIds, Tensor scores, Tensor lse)
    {
        Enter();
        using var hb = ToBf16(h);
        using var wb = ToBf16(w);
        NativeMethods.Check(NativeMethods.CudaSegmentScoresForward(h.Shape[0], h.Shape[1], h.Shape[2], w.Shape[0], scores.Shape[1], hb.Pointer, wb.Pointer, P(targets), P(lineIds), P(scores), P(lse)));
    }

    private protected override void SegmentScoresBackwardCore(Tensor h, Tensor w, Tensor targets, Tensor lineIds, Tensor lse, Tensor dScores, Tensor dH, Tensor dW)
    {
        Enter();
        using var hb = ToBf16(h);
        using var wb = ToBf16(w);
        NativeMethods.Check(NativeMethods.CudaSegmentScoresBackward(h.Shape[0], h.Shape[1], h.Shape[2], w.Shape[0], dScores.Shape[1], hb.Pointer, wb.Pointer, P(targets), P(lineIds), P(lse), P(dScores), P(dH), P(dW)));
    }

    /// <summary>
    /// The CUDA kernel of <c>elbo.cu</c> holds one candidate per boundary; with K &gt; 1 candidates the
    /// ILGPU kernel this backend inherits runs on the same device (written and tested for K on
    /// <c>ilgpu-cpu</c>; not yet run on a GPU).
    /// </summary>
    private protected override void ElboForwardBackwardCore(Tensor seg, Tensor priorThink, float priorAct, Tensor lengths, int maxSpan, int candidates, Tensor logZ, Tensor thinkPosterior, Tensor lineMarginals)
    {
        if (candidates > 1)
        {
            base.ElboForwardBackwardCore(seg, priorThink, priorAct, lengths, maxSpan, candidates, logZ, thinkPosterior, lineMarginals);
            return;
        }

        Enter();
        NativeMethods.Check(NativeMethods.CudaElboForwardBackward(seg.Shape[0], seg.Shape[2], P(seg), P(priorThink), priorAct, P(lengths), maxSpan, P(logZ), P(thinkPosterior), P(lineMarginals)));
    }

    /// <summary>The CUDA stream every op of this backend runs on (NCCL's collectives join it).</summary>
    internal IntPtr Stream => stream;

    /// <summary>Device address of a tensor's first element.</summary>
    internal static IntPtr P(Tensor t) => ((IlgpuStorage)t.Storage).Buffer.NativePtr + checked((nint)(t.Offset * t.DType.SizeInBytes()));

    /// <summary>Makes the accelerator's context current and points ra3_native at its stream: every op starts here.</summary>
    internal void Enter()
    {
        Accelerator.Bind();
        NativeMethods.Check(NativeMethods.CudaSetStream(stream));
    }

    private DeviceBuffer ToBf16(Tensor t)
    {
        var buffer = new DeviceBuffer(t.Count * 2);
        NativeMethods.Check(NativeMethods.CudaF32ToBf16(t.Count, P(t), buffer.Pointer));
        return buffer;
    }

    private DeviceBuffer Zeroed(long bytes)
    {
        var buffer = new DeviceBuffer(bytes);
        NativeMethods.Check(NativeMethods.CudaMemset(buffer.Pointer, 0, bytes));
        return buffer;
    }

    /// <summary>Scratch device memory from the stream-ordered pool, returned to it (in stream order) on dispose.</summary>
    private readonly struct DeviceBuffer : IDisposable
    {
        public DeviceBuffer(long bytes)
        {
            IntPtr ptr;
            unsafe
            {
                NativeMethods.Check(NativeMethods.CudaMalloc(bytes, &ptr));
            }

            Pointer = ptr;
        }

        public IntPtr Pointer { get; }

        public void Dispose() => NativeMethods.Check(NativeMethods.CudaFree(Pointer));
    }
}
