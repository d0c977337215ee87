using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;

namespace RA3.Kernels.Ilgpu;

/// <summary>
/// The ILGPU backend: every op the model runs as an ILGPU kernel (the rest fall back to the
/// reference tier through host copies, counted in <see cref="Backend.HostFallbacks"/>). On ILGPU's CPU accelerator (the tests) it
/// runs everywhere; unchanged, it runs on a CUDA accelerator. Kernels are compiled once, when the
/// backend is created. Ops are queued on the accelerator's default stream; reads synchronise.
/// <see cref="Cuda.CudaBackend"/> derives from it to put ra3_native's CUDA kernels in front.
/// </summary>
public class IlgpuBackend : Backend, IFlashTiles, ISegmentChunks
{
    private readonly Context context;
    private readonly Accelerator acc;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> dummy;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>> add, swiglu;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>> geluF;
    private readonly Action<Index1D, ArrayView<float>, float> scale;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<ushort>> toBFloat16;
    private readonly Action<Index1D, ArrayView<ushort>, ArrayView<float>> fromBFloat16;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>> geluB;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> swigluB;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamWSettings, float, float> adamw;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<double>, int> sumSquares;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>> biasBackward;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float, int, int> normF;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float, int, int> addNormF;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> normRows;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int> normCols;
    private readonly Action<Index2D, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int, int, int> rope;
    private readonly Action<Index2D, ArrayView<int>, ArrayView<float>, ArrayView<float>, int> embedF, embedB;
    private readonly Action<Index2D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, DecodeDims> decodeAppend;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, DecodeDims> decodeAttend;
    private readonly Action<Index2D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, DecodeDims> cachedAppend;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SamplingParams> sample;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<float>, DecodeDims> cachedAttend;
    private readonly Action<Index2D, ArrayView<float>, int, int, ArrayView<float>, int, int> copyColumns;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<double>, ElboParams> elbo;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ElboParams> viterbi;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, SegmentDims> segForward;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, SegmentDims> segFinish;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, SegmentDims> segBackward;
    private readonly Action<Index2D, ArrayView<float>, ArrayView<float>, int, int, int, int> headsToBatch;
    private readonly Action<Index2D, ArrayView<float>, ArrayView<float>, int, int, int, int, int> batchToHeads;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, FlashTileDims> tileForward, tileBackward;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, FlashTileDims> tileFinish;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, Index3D> rowDot;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmParams> gemm;
    private readonly Action<Index3D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmParams> gemmDirect;
    private readonly bool tiledGemm;
    private MemoryBuffer1D<float, Stride1D.Dense>? scratch;
    private Tensor? fullLengths;
    private int fullLengthsT;
    private MemoryBuffer1D<double, Stride1D.Dense>? partials;

    /// <summary>Compiles every kernel for <paramref name="accelerator"/>; the backend owns the context and the accelerator.</summary>
    private protected IlgpuBackend(Context context, Accelerator accelerator, bool tiledGemm)
    {
        this.tiledGemm = tiledGemm;
        this.context = context;
        acc = accelerator;
        dummy = acc.Allocate1D<float>(1);
        add = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ElementwiseKernels.Add);
        scale = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, float>(ElementwiseKernels.Scale);
        toBFloat16 = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<ushort>>(ElementwiseKernels.ToBFloat16);
        fromBFloat16 = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<float>>(ElementwiseKernels.FromBFloat16);
        geluF = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(ElementwiseKernels.Gelu);
        geluB = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ElementwiseKernels.GeluBackward);
        swiglu = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ElementwiseKernels.SwiGlu);
        swigluB = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ElementwiseKernels.SwiGluBackward);
        adamw = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamWSettings, float, float>(ElementwiseKernels.AdamW);
        sumSquares = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<double>, int>(ElementwiseKernels.SumOfSquares);
        biasBackward = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(ElementwiseKernels.BiasBackward);
        normF = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float, int, int>(RowKernels.NormForward);
        addNormF = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float, int, int>(RowKernels.AddNormForward);
        normRows = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(RowKernels.NormBackwardRows);
        normCols = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(RowKernels.NormBackwardColumns);
        rope = acc.LoadAutoGroupedStreamKernel<Index2D, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int, int, int>(RowKernels.Rope);
        embedF = acc.LoadAutoGroupedStreamKernel<Index2D, ArrayView<int>, ArrayView<float>, ArrayView<float>, int>(RowKernels.Embedding);
        embedB = acc.LoadAutoGroupedStreamKernel<Index2D, ArrayView<int>, ArrayView<float>, ArrayView<float>, int>(RowKernels.EmbeddingBackward);
        decodeAppend = acc.LoadAutoGroupedStreamKernel<Index2D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, DecodeDims>(DecodeAttentionKernels.Append);
        decodeAttend = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, DecodeDims>(DecodeAttentionKernels.Attend);
        sample = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SamplingParams>(SamplingKernels.Sample);
        cachedAppend = acc.LoadAutoGroupedStreamKernel<Index2D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, DecodeDims>(DecodeAttentionKernels.AppendRows);
        cachedAttend = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<float>, DecodeDims>(DecodeAttentionKernels.AttendRows);
        copyColumns = acc.LoadAutoGroupedStreamKernel<Index2D, ArrayView<float>, int, int, ArrayView<float>, int, int>(ElementwiseKernels.CopyColumns);
        elbo = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<double>, ElboParams>(ElboKernels.ForwardBackward);
        viterbi = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ElboParams>(ElboKernels.Viterbi);
        segForward = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, SegmentDims>(SegmentKernels.ChunkForward);
        segFinish = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, SegmentDims>(SegmentKernels.Finish);
        segBackward = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, SegmentDims>(SegmentKernels.ChunkBackward);
        headsToBatch = acc.LoadAutoGroupedStreamKernel<Index2D, ArrayView<float>, ArrayView<float>, int, int, int, int>(FlashAttentionKernels.HeadsToBatch);
        batchToHeads = acc.LoadAutoGroupedStreamKernel<Index2D, ArrayView<float>, ArrayView<float>, int, int, int, int, int>(FlashAttentionKernels.BatchToHeads);
        tileForward = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, FlashTileDims>(FlashAttentionKernels.TileForward);
        tileBackward = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, FlashTileDims>(FlashAttentionKernels.TileBackward);
        tileFinish = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, FlashTileDims>(FlashAttentionKernels.Finish);
        rowDot = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, Index3D>(FlashAttentionKernels.RowDot);
        gemmDirect = acc.LoadAutoGroupedStreamKernel<Index3D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmParams>(GemmKernels.Direct);
        gemm = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmParams>(GemmKernels.Tiled);
    }

    /// <inheritdoc/>
    public override string Name => acc.AcceleratorType == AcceleratorType.CPU ? "ilgpu-cpu" : $"ilgpu-{acc.AcceleratorType.ToString().ToLowerInvariant()}";

    /// <summary>The accelerator's name, e.g. "NVIDIA H200" or "CPUAccelerator".</summary>
    public string AcceleratorName => acc.Name;

    /// <summary>The accelerator the kernels run on.</summary>
    private protected Accelerator Accelerator => acc;

    /// <summary>
    /// A backend on ILGPU's CPU accelerator (runs anywhere; what the tests use). Every simulated
    /// thread is an OS thread, so by default groups are small (4 threads per warp, 4 warps) and the
    /// GEMM is the barrier-free one-thread-per-output kernel; with <paramref name="tiledGemm"/> the
    /// device has 256-thread groups and runs the shared-memory 16×16 tiled GEMM a GPU uses, so
    /// tests can check that kernel too (slowly).
    /// </summary>
    public static IlgpuBackend CreateCpu(bool tiledGemm = false)
    {
        var device = tiledGemm ? new CPUDevice(numThreadsPerWarp: 4, numWarpsPerMultiprocessor: 64, numMultiprocessors: 1) : new CPUDevice(numThreadsPerWarp: 4, numWarpsPerMultiprocessor: 4, numMultiprocessors: 1);
        var context = Context.Create(b => b.CPU(device).EnableAlgorithms());
        return new IlgpuBackend(context, context.CreateCPUAccelerator(0), tiledGemm);
    }

    /// <summary>A backend on the preferred accelerator: a CUDA GPU when one is present, else the CPU accelerator.</summary>
    public static IlgpuBackend CreatePreferred()
    {
        var context = Context.Create(b => b.Default().EnableAlgorithms());
        var accelerator = context.GetPreferredDevice(preferCPU: false).CreateAccelerator(context);
        return new IlgpuBackend(context, accelerator, tiledGemm: accelerator.AcceleratorType != AcceleratorType.CPU);
    }

    /// <summary>Names of the ILGPU devices this machine offers (CPU accelerator included).</summary>
    public static IReadOnlyList<string> ListDevices()
    {
        using var context = Context.Create(b => b.Default());
        return context.Devices.Select(d => $"{d.AcceleratorType}: {d.Name}").ToList();
    }

    /// <summary>Waits for queued kernels to finish (for timing).</summary>
    public void Synchronize() => acc.Synchronize();

    /// <inheritdoc/>
    protected override TensorStorage Allocate(long byteLength) => new IlgpuStorage(acc, byteLength);

    /// <inheritdoc/>
    protected internal override void Write(Tensor tensor, ReadOnlySpan<byte> source) => Bytes(tensor).CopyFromCPU(source);

    /// <inheritdoc/>
    protected internal override void Read(Tensor tensor, Span<byte> destination)
    {
        acc.Synchronize();
        Bytes(tensor).CopyToCPU(destination);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            scratch?.Dispose();
            partials?.Dispose();
            fullLengths?.Dispose();
            dummy.Dispose();
            acc.Dispose();
            context.Dispose();
        }
    }

    private protected override void GemmCore(in GemmArgs g, Tensor a, Tensor b, Tensor c, Tensor? bias)
    {
        if (g.M == 0 || g.N == 0 || g.Batch == 0)
        {
            return;
        }

        var p = new GemmParams(g.M, g.N, g.K, g.TransA ? 1 : 0, g.TransB ? 1 : 0, g.Alpha, g.Beta, g.StrideA, g.StrideB, g.StrideC, bias is null ? 0 : 1);
        if (tiledGemm)
        {
            gemm(GemmKernels.Config(g.Batch, g.M, g.N), F(a), F(b), F(c), bias is null ? dummy.View : F(bias), p);
        }
        else
        {
            gemmDirect(new Index3D(g.N, g.M, g.Batch), F(a), F(b), F(c), bias is null ? dummy.View : F(bias), p);
        }
    }

    private protected override void BiasBackwardCore(Tensor dOut, Tensor dBias) => biasBackward(dBias.Shape[0], F(dOut), F(dBias));

    private protected override void AddCore(Tensor a, Tensor b, Tensor y) => add(N(a), F(a), F(b), F(y));

    [TakesBFloat16]
    private protected override void ZeroCore(Tensor t) => Bytes(t).MemSetToZero();

    [TakesBFloat16]
    private protected override void ConvertCore(Tensor src, Tensor dst)
    {
        if (src.DType == dst.DType)
        {
            Bytes(dst).CopyFrom(Bytes(src));
        }
        else if (dst.DType == DType.BFloat16)
        {
            toBFloat16(N(src), F(src), Bytes(dst).Cast<ushort>());
        }
        else
        {
            fromBFloat16(N(src), Bytes(src).Cast<ushort>(), F(dst));
        }
    }

    private protected override void ScaleCore(Tensor x, float factor) => scale(N(x), F(x), factor);

    private protected override void GeluCore(Tensor x, Tensor y) => geluF(N(x), F(x), F(y));

    private protected override void GeluBackwardCore(Tensor x, Tensor dy, Tensor dx) => geluB(N(x), F(x), F(dy), F(dx));

    private protected override void SwiGluCore(Tensor gate, Tensor up, Tensor y) => swiglu(N(gate), F(gate), F(up), F(y));

    private protected override void SwiGluBackwardCore(Tensor gate, Tensor up, Tensor dy, Tensor dGate, Tensor dUp) =>
        swigluB(N(gate), F(gate), F(up), F(dy), F(dGate), F(dUp));

    private protected override void LayerNormCore(Tensor x, Tensor weight, Tensor? bias, Tensor y, Tensor mean, Tensor rstd, float eps) =>
        normF(Rows(x), F(x), F(weight), bias is null ? dummy.View : F(bias), F(y), F(mean), F(rstd), x.Shape[-1], eps, 0, bias is null ? 0 : 1);

    private protected override void AddLayerNormCore(Tensor a, Tensor b, Tensor weight, Tensor? bias, Tensor sum, Tensor y, Tensor mean, Tensor rstd, float eps) =>
        addNormF(Rows(sum), F(a), F(b), F(sum), F(weight), bias is null ? dummy.View : F(bias), F(y), F(mean), F(rstd), sum.Shape[-1], eps, 0, bias is null ? 0 : 1);

    private protected override void LayerNormBackwardCore(Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dy, Tensor dx, Tensor dWeight, Tensor? dBias)
    {
        normRows(Rows(x), F(x), F(weight), F(mean), F(rstd), F(dy), F(dx), x.Shape[-1], 0);
        normCols(x.Shape[-1], F(x), F(mean), F(rstd), F(dy), F(dWeight), dBias is null ? dummy.View : F(dBias), x.Shape[-1], 0, dBias is null ? 0 : 1);
    }

    private protected override void RmsNormCore(Tensor x, Tensor weight, Tensor y, Tensor rstd, float eps) =>
        normF(Rows(x), F(x), F(weight), dummy.View, F(y), dummy.View, F(rstd), x.Shape[-1], eps, 1, 0);

    private protected override void AddRmsNormCore(Tensor a, Tensor b, Tensor weight, Tensor sum, Tensor y, Tensor rstd, float eps) =>
        addNormF(Rows(sum), F(a), F(b), F(sum), F(weight), dummy.View, F(y), dummy.View, F(rstd), sum.Shape[-1], eps, 1, 0);

    private protected override void RmsNormBackwardCore(Tensor x, Tensor weight, Tensor rstd, Tensor dy, Tensor dx, Tensor dWeight)
    {
        normRows(Rows(x), F(x), F(weight), dummy.View, F(rstd), F(dy), F(dx), x.Shape[-1], 1);
        normCols(x.Shape[-1], F(x), dummy.View, F(rstd), F(dy), F(dWeight), dummy.View, x.Shape[-1], 1, 0);
    }

    private protected override void RopeCore(Tensor x, Tensor positions, Tensor invFreq, Tensor y) => Rope(x, positions, invFreq, y, inverse: false);

    private protected override void RopeBackwardCore(Tensor dy, Tensor positions, Tensor invFreq, Tensor dx) => Rope(dy, positions, invFreq, dx, inverse: true);

    private protected override void FlashAttentionCore(Tensor q, Tensor k, Tensor v, Tensor? lengths, Tensor output, Tensor lse, int window) =>
        TiledFlashAttention(this, q, k, v, lengths, output, lse, window);

    private protected override void FlashAttentionBackwardCore(Tensor q, Tensor k, Tensor v, Tensor? lengths, Tensor output, Tensor lse, Tensor dOutput, Tensor dq, Tensor dk, Tensor dv, int window) =>
        TiledFlashAttentionBackward(this, q, k, v, lengths, output, lse, dOutput, dq, dk, dv, window);

    void IFlashTiles.HeadsToBatch(Tensor x, Tensor dst, int hq) =>
        headsToBatch(new Index2D(x.Shape[0] * x.Shape[1] * hq, x.Shape[3]), F(x), F(dst), x.Shape[1], x.Shape[2], hq, x.Shape[3]);

    void IFlashTiles.BatchToHeads(Tensor src, Tensor dst, int hq, bool accumulate) =>
        batchToHeads(new Index2D(dst.Shape[0] * dst.Shape[1] * dst.Shape[2], dst.Shape[3]), F(src), F(dst), dst.Shape[1], dst.Shape[2], hq, dst.Shape[3], accumulate ? 1 : 0);

    void IFlashTiles.TileForward(Tensor scores, Tensor o, Tensor m, Tensor l, Tensor? lengths, FlashTile tile) =>
        tileForward(m.Shape[0] * tile.Br, F(scores), F(o), F(m), F(l), Lengths(lengths, m.Shape[0] / tile.Hq, tile.T), FlashTileDims.From(tile));

    void IFlashTiles.FinishForward(Tensor o, Tensor m, Tensor l, Tensor? lengths, FlashTile tile) =>
        tileFinish(m.Shape[0] * tile.Br, F(o), F(m), F(l), Lengths(lengths, m.Shape[0] / tile.Hq, tile.T), FlashTileDims.From(tile));

    void IFlashTiles.TileBackward(Tensor p, Tensor ds, Tensor lse, Tensor rowDot, Tensor? lengths, FlashTile tile) =>
        tileBackward(lse.Shape[0] * tile.Br, F(p), F(ds), F(lse), F(rowDot), Lengths(lengths, lse.Shape[0] / tile.Hq, tile.T), FlashTileDims.From(tile));

    void IFlashTiles.RowDot(Tensor dOut, Tensor output, Tensor rowDot) =>
        this.rowDot(dOut.Shape[0] * dOut.Shape[1] * dOut.Shape[2], F(dOut), F(output), F(rowDot), new Index3D(dOut.Shape[1], dOut.Shape[2], dOut.Shape[3]));

    private protected override void SampleTokensCore(Tensor logits, Tensor uniforms, float temperature, float topP, int topK, Tensor? banned, Tensor? probes, Tensor tokens, Tensor logProbs, Tensor sampleLogProbs, Tensor? probeLogProbs, Tensor? entropies)
    {
        // Absent banned ids, probes and entropies are read as flags and P = 0; the kernel still needs views, so the outputs stand in.
        sample(
            logits.Shape[0],
            F(logits),
            F(uniforms),
            banned is null ? I(tokens) : I(banned),
            probes is null ? I(tokens) : I(probes),
            I(tokens),
            F(logProbs),
            F(sampleLogProbs),
            probeLogProbs is null ? F(logProbs) : F(probeLogProbs),
            entropies is null ? F(logProbs) : F(entropies),
            new SamplingParams(logits.Shape[1], probes is null ? 0 : probes.Shape[1], temperature, topP, topK, banned is null ? 0 : 1, entropies is null ? 0 : 1));
    }

    private protected override void AttentionCachedCore(Tensor q, Tensor kNew, Tensor vNew, Tensor kCache, Tensor vCache, Tensor slots, Tensor positions, Tensor output, int window)
    {
        var s = new DecodeDims(q.Shape[0], kCache.Shape[1], q.Shape[1], kCache.Shape[2], q.Shape[2], window);
        cachedAppend(new Index2D(s.B, s.Hkv * s.D), F(kNew), F(vNew), F(kCache), F(vCache), I(slots), I(positions), s);
        cachedAttend(s.B * s.Hq, F(q), F(kCache), F(vCache), I(slots), I(positions), F(output), s);
    }

    private protected override void AttentionDecodeCore(Tensor q, Tensor kNew, Tensor vNew, Tensor kCache, Tensor vCache, Tensor lengths, Tensor output, int window)
    {
        var s = new DecodeDims(q.Shape[0], kCache.Shape[1], q.Shape[1], kCache.Shape[2], q.Shape[2], window);
        decodeAppend(new Index2D(s.B, s.Hkv * s.D), F(kNew), F(vNew), F(kCache), F(vCache), I(lengths), s);
        decodeAttend(s.B * s.Hq, F(q), F(kCache), F(vCache), I(lengths), F(output), s);
    }

    private protected override void CopyColumnsCore(Tensor src, int srcColumn, Tensor dst, int dstColumn, int width)
    {
        if (width > 0 && src.Shape.Rows > 0)
        {
            copyColumns(new Index2D(Rows(src), width), F(src), src.Shape[-1], srcColumn, F(dst), dst.Shape[-1], dstColumn);
        }
    }

    private protected override void SegmentScoresCore(Tensor h, Tensor w, Tensor targets, Tensor lineIds, Tensor scores, Tensor lse) =>
        ChunkedSegmentScores(this, h, w, targets, lineIds, scores, lse);

    private protected override void SegmentScoresBackwardCore(Tensor h, Tensor w, Tensor targets, Tensor lineIds, Tensor lse, Tensor dScores, Tensor dH, Tensor dW) =>
        ChunkedSegmentScoresBackward(this, h, w, targets, lineIds, lse, dScores, dH, dW);

    void ISegmentChunks.ChunkForward(Tensor logits, int c0, Tensor targets, Tensor state, bool first) =>
        segForward(logits.Shape[0], F(logits), I(targets), F(state), new SegmentDims(logits.Shape[1], c0, 0, 1, 1, first ? 1 : 0));

    void ISegmentChunks.Finish(Tensor state, Tensor lineIds, Tensor lse, Tensor scores) =>
        segFinish(scores.Shape[0], F(state), I(lineIds), F(lse), F(scores), new SegmentDims(0, 0, 0, lineIds.Shape[1], scores.Shape[1], 0));

    void ISegmentChunks.ChunkBackward(Tensor logits, int c0, Tensor targets, Tensor lineIds, Tensor lse, Tensor dScores, int r0, int tokensPerSequence, int lines) =>
        segBackward(logits.Shape[0], F(logits), I(targets), I(lineIds), F(lse), F(dScores), new SegmentDims(logits.Shape[1], c0, r0, tokensPerSequence, lines, 0));

    private protected override void ElboForwardBackwardCore(Tensor seg, Tensor priorThink, float priorAct, Tensor lengths, int maxSpan, int candidates, Tensor logZ, Tensor thinkPosterior, Tensor lineMarginals) =>
        elbo(seg.Shape[0], F(seg), F(priorThink), I(lengths), Scratch(N(seg)), F(logZ), F(thinkPosterior), F(lineMarginals), Partials(2 * seg.Shape[0] * seg.Shape[2]), new ElboParams(seg.Shape[2], candidates, priorAct, maxSpan));

    private protected override void ElboViterbiCore(Tensor seg, Tensor priorThink, float priorAct, Tensor lengths, int maxSpan, int candidates, Tensor bestScore, Tensor abstraction) =>
        viterbi(seg.Shape[0], F(seg), F(priorThink), I(lengths), Scratch(N(seg)), F(bestScore), I(abstraction), new ElboParams(seg.Shape[2], candidates, priorAct, maxSpan));

    private protected override void EmbeddingCore(Tensor ids, Tensor table, Tensor output)
    {
        embedF(new Index2D((int)ids.Count, table.Shape[1]), I(ids), F(table), F(output), table.Shape[1]);
    }

    private protected override void EmbeddingBackwardCore(Tensor ids, Tensor dOutput, Tensor dTable)
    {
        embedB(new Index2D((int)ids.Count, dTable.Shape[1]), I(ids), F(dOutput), F(dTable), dTable.Shape[1]);
    }

    private protected override void AdamWCore(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWSettings settings, int step) =>
        adamw(N(param), F(param), F(grad), F(m), F(v), settings, 1f - MathF.Pow(settings.Beta1, step), MathF.Sqrt(1f - MathF.Pow(settings.Beta2, step)));

    private protected override double SumOfSquaresCore(Tensor x)
    {
        const int chunk = 4096;
        int chunks = (int)((x.Count + chunk - 1) / chunk);
        if (chunks == 0)
        {
            return 0;
        }

        var view = Partials(chunks);
        sumSquares(chunks, F(x), view, chunk);
        acc.Synchronize();
        double sum = 0;
        foreach (double p in view.GetAsArray1D())
        {
            sum += p;
        }

        return sum;
    }

    /// <summary>
    /// The lengths tensor, or lengths of T for every sequence when there is no padding — kept
    /// on the device until B or T changes (kernels are queued asynchronously).
    /// </summary>
    private ArrayView<int> Lengths(Tensor? lengths, int batch, int t)
    {
        if (lengths is not null)
        {
            return I(lengths);
        }

        if (fullLengths is null || fullLengths.Count != batch || fullLengthsT != t)
        {
            fullLengths?.Dispose();
            fullLengths = FromArray(Enumerable.Repeat(t, batch).ToArray(), batch);
            fullLengthsT = t;
        }

        return I(fullLengths);
    }

    private void Rope(Tensor x, Tensor positions, Tensor invFreq, Tensor y, bool inverse) =>
        rope(new Index2D(x.Shape[0] * x.Shape[1], x.Shape[3] / 2), F(x), I(positions), F(invFreq), F(y), x.Shape[2], x.Shape[3], inverse ? 1 : 0);

    private static int N(Tensor t) => checked((int)t.Count);

    private static int Rows(Tensor t) => checked((int)t.Shape.Rows);

    private static ArrayView<byte> Bytes(Tensor t)
    {
        int size = t.DType.SizeInBytes();
        ArrayView<byte> all = ((IlgpuStorage)t.Storage).Buffer.View;
        return all.SubView(t.Offset * size, t.Count * size);
    }

    private static ArrayView<float> F(Tensor t) => Bytes(t).Cast<float>();

    private static ArrayView<int> I(Tensor t) => Bytes(t).Cast<int>();

    /// <summary>Reusable double scratch of at least <paramref name="count"/> elements (sum-of-squares partials, ELBO offsets).</summary>
    private ArrayView1D<double, Stride1D.Dense> Partials(int count)
    {
        if (partials is null || partials.Length < count)
        {
            partials?.Dispose();
            partials = acc.Allocate1D<double>(count);
        }

        return partials.View.SubView(0, count);
    }

    private ArrayView<float> Scratch(int floats)
    {
        if (scratch is null || scratch.Length < floats)
        {
            scratch?.Dispose();
            scratch = acc.Allocate1D<float>(floats);
        }

        return scratch.View.SubView(0, floats);
    }
}
