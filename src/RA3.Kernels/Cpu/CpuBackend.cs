using System.Runtime.InteropServices;
using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;

namespace RA3.Kernels.Cpu;

/// <summary>
/// The managed CPU backend: tensors in aligned host memory, SIMD kernels on all cores through
/// <see cref="WorkerPool"/>, no allocation inside an op. One backend instance serves one thread
/// of calls at a time (its GEMM packing buffer is shared by its calls).
/// </summary>
public unsafe class CpuBackend : Backend, IFlashTiles, ISegmentChunks
{
    private readonly GemmKernel gemm = new();
    private double* partials;
    private int partialsLength;
    private float* scratch;
    private long scratchLength;
    private float* normParameters;
    private int normParametersLength;

    /// <inheritdoc/>
    public override string Name => "cpu";

    /// <summary>Address of a host tensor's first element.</summary>
    protected static float* F(Tensor t) => (float*)((HostStorage)t.Storage).Pointer + t.Offset;

    /// <summary>Address of a host int32 tensor's first element.</summary>
    protected static int* I(Tensor t) => (int*)((HostStorage)t.Storage).Pointer + t.Offset;

    /// <summary>Address of a host tensor's first element, whatever its element type.</summary>
    protected static void* Address(Tensor t) => (byte*)((HostStorage)t.Storage).Pointer + (t.Offset * t.DType.SizeInBytes());

    /// <summary>Whether any of the tensors is stored as bfloat16.</summary>
    private protected static bool AnyBFloat16(params ReadOnlySpan<Tensor?> tensors)
    {
        foreach (var t in tensors)
        {
            if (t?.DType == DType.BFloat16)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>A GEMM operand (null for a missing bias), float32 or bfloat16.</summary>
    private static GemmKernel.Operand Operand(Tensor? t) => t is null ? default : new(Address(t), t.DType == DType.BFloat16);

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            gemm.Dispose();
        }

        if (partials != null)
        {
            NativeMemory.Free(partials);
            partials = null;
        }

        if (scratch != null)
        {
            NativeMemory.AlignedFree(scratch);
            scratch = null;
        }

        if (normParameters != null)
        {
            NativeMemory.AlignedFree(normParameters);
            normParameters = null;
        }
    }

    [TakesBFloat16]
    private protected override void GemmCore(in GemmArgs args, Tensor a, Tensor b, Tensor c, Tensor? bias)
    {
        if (!GemmKernel.Packs(args) && AnyBFloat16(a, b, c, bias))
        {
            base.GemmCore(args, a, b, c, bias);
            return;
        }

        gemm.Run(args, Operand(a), Operand(b), Operand(c), Operand(bias));
    }

    [TakesBFloat16]
    private protected override void ConvertCore(Tensor src, Tensor dst)
    {
        if (src.DType == dst.DType)
        {
            long bytes = src.Count * src.DType.SizeInBytes();
            System.Buffer.MemoryCopy(Address(src), Address(dst), bytes, bytes);
            return;
        }

        var body = new ConvertKernel.Body { Src = Address(src), Dst = Address(dst), Count = src.Count, ToBFloat16 = dst.DType == DType.BFloat16 };
        WorkerPool.For(body.Tasks, body);
    }

    private protected override void BiasBackwardCore(Tensor dOut, Tensor dBias)
    {
        int n = dBias.Shape[0];
        long rows = dOut.Shape.Rows;
        var db = new Span<float>(F(dBias), n);
        for (long r = 0; r < rows; r++)
        {
            Simd.Axpy(1f, new ReadOnlySpan<float>(F(dOut) + (r * n), n), db);
        }
    }

    private protected override void AddCore(Tensor a, Tensor b, Tensor y) => Binary(ElementwiseKernel.Kind.Add, a, b, y);

    [TakesBFloat16]
    private protected override void ZeroCore(Tensor t) => NativeMemory.Clear(Address(t), (nuint)(t.Count * t.DType.SizeInBytes()));

    private protected override void ScaleCore(Tensor x, float factor) =>
        ElementwiseKernel.Run(new ElementwiseKernel.Body { Kind = ElementwiseKernel.Kind.Scale, Count = x.Count, Out0 = F(x), Scalar = factor });

    private protected override void GeluCore(Tensor x, Tensor y) => Unary(ElementwiseKernel.Kind.Gelu, x, y);

    private protected override void GeluBackwardCore(Tensor x, Tensor dy, Tensor dx) => Binary(ElementwiseKernel.Kind.GeluBackward, x, dy, dx);

    private protected override void SwiGluCore(Tensor gate, Tensor up, Tensor y) => Binary(ElementwiseKernel.Kind.SwiGlu, gate, up, y);

    private protected override void SwiGluBackwardCore(Tensor gate, Tensor up, Tensor dy, Tensor dGate, Tensor dUp) =>
        ElementwiseKernel.Run(new ElementwiseKernel.Body
        {
            Kind = ElementwiseKernel.Kind.SwiGluBackward,
            Count = gate.Count,
            In0 = F(gate),
            In1 = F(up),
            In2 = F(dy),
            Out0 = F(dGate),
            Out1 = F(dUp),
        });

    [TakesBFloat16]
    private protected override void LayerNormCore(Tensor x, Tensor weight, Tensor? bias, Tensor y, Tensor mean, Tensor rstd, float eps)
    {
        if (AnyBFloat16(x, y))
        {
            base.LayerNormCore(x, weight, bias, y, mean, rstd, eps);
            return;
        }

        NormalizationKernel.Forward(LayerNormRows(x, weight, bias, y, mean, rstd, eps));
    }

    [TakesBFloat16]
    private protected override void LayerNormBackwardCore(Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dy, Tensor dx, Tensor dWeight, Tensor? dBias)
    {
        if (AnyBFloat16(x, dy, dx, dWeight, dBias))
        {
            base.LayerNormBackwardCore(x, weight, mean, rstd, dy, dx, dWeight, dBias);
            return;
        }

        NormalizationKernel.Backward(new NormalizationKernel.Rows
        {
            X = F(x),
            Weight = NormParameter(weight, 0),
            Mean = F(mean),
            Rstd = F(rstd),
            Dy = F(dy),
            Dx = F(dx),
            DWeight = F(dWeight),
            DBias = dBias is null ? null : F(dBias),
            RowCount = x.Shape.Rows,
            C = x.Shape[-1],
        });
    }

    [TakesBFloat16]
    private protected override void AddLayerNormCore(Tensor a, Tensor b, Tensor weight, Tensor? bias, Tensor sum, Tensor y, Tensor mean, Tensor rstd, float eps)
    {
        if (AnyBFloat16(a, b, sum, y))
        {
            base.AddLayerNormCore(a, b, weight, bias, sum, y, mean, rstd, eps);
            return;
        }

        NormalizationKernel.Forward(LayerNormRows(sum, weight, bias, y, mean, rstd, eps) with { AddA = F(a), AddB = F(b) });
    }

    [TakesBFloat16]
    private protected override void AddRmsNormCore(Tensor a, Tensor b, Tensor weight, Tensor sum, Tensor y, Tensor rstd, float eps)
    {
        if (AnyBFloat16(a, b, sum, y))
        {
            base.AddRmsNormCore(a, b, weight, sum, y, rstd, eps);
            return;
        }

        NormalizationKernel.Forward(RmsNormRows(sum, weight, y, rstd, eps) with { AddA = F(a), AddB = F(b) });
    }

    [TakesBFloat16]
    private protected override void RmsNormCore(Tensor x, Tensor weight, Tensor y, Tensor rstd, float eps)
    {
        if (AnyBFloat16(x, y))
        {
            base.RmsNormCore(x, weight, y, rstd, eps);
            return;
        }

        NormalizationKernel.Forward(RmsNormRows(x, weight, y, rstd, eps));
    }

    [TakesBFloat16]
    private protected override void RmsNormBackwardCore(Tensor x, Tensor weight, Tensor rstd, Tensor dy, Tensor dx, Tensor dWeight)
    {
        if (AnyBFloat16(x, dy, dx, dWeight))
        {
            base.RmsNormBackwardCore(x, weight, rstd, dy, dx, dWeight);
            return;
        }

        NormalizationKernel.Backward(new NormalizationKernel.Rows
        {
            X = F(x),
            Weight = NormParameter(weight, 0),
            Rstd = F(rstd),
            Dy = F(dy),
            Dx = F(dx),
            DWeight = F(dWeight),
            RowCount = x.Shape.Rows,
            C = x.Shape[-1],
            Rms = true,
        });
    }

    private protected override void RopeCore(Tensor x, Tensor positions, Tensor invFreq, Tensor y) => Rope(x, positions, invFreq, y, inverse: false);

    private protected override void RopeBackwardCore(Tensor dy, Tensor positions, Tensor invFreq, Tensor dx) => Rope(dy, positions, invFreq, dx, inverse: true);

    private protected override void FlashAttentionCore(Tensor q, Tensor k, Tensor v, Tensor? lengths, Tensor output, Tensor lse, int window) =>
        TiledFlashAttention(this, q, k, v, lengths, output, lse, window);

    private protected override void FlashAttentionBackwardCore(Tensor q, Tensor k, Tensor v, Tensor? lengths, Tensor output, Tensor lse, Tensor dOutput, Tensor dq, Tensor dk, Tensor dv, int window) =>
        TiledFlashAttentionBackward(this, q, k, v, lengths, output, lse, dOutput, dq, dk, dv, window);

    void IFlashTiles.HeadsToBatch(Tensor x, Tensor dst, int hq) =>
        WorkerPool.For(x.Shape[0] * Chunks.Count(x.Shape[1], FlashTileKernel.Heads.RowsPerTask), new FlashTileKernel.Heads { X = F(x), Dst = F(dst), T = x.Shape[1], Hx = x.Shape[2], Hq = hq, D = x.Shape[3] });

    void IFlashTiles.BatchToHeads(Tensor src, Tensor dst, int hq, bool accumulate) =>
        WorkerPool.For(dst.Shape[0] * Chunks.Count(dst.Shape[1], FlashTileKernel.Heads.RowsPerTask), new FlashTileKernel.Heads { X = F(dst), Dst = F(src), T = dst.Shape[1], Hx = dst.Shape[2], Hq = hq, D = dst.Shape[3], Back = true, Accumulate = accumulate });

    void IFlashTiles.TileForward(Tensor scores, Tensor o, Tensor m, Tensor l, Tensor? lengths, FlashTile tile) =>
        WorkerPool.For(m.Shape[0], new FlashTileKernel.Forward { S = F(scores), O = F(o), M = F(m), L = F(l), Lengths = lengths is null ? null : I(lengths), Tile = tile });

    void IFlashTiles.FinishForward(Tensor o, Tensor m, Tensor l, Tensor? lengths, FlashTile tile) =>
        WorkerPool.For(m.Shape[0], new FlashTileKernel.Finish { O = F(o), M = F(m), L = F(l), Lengths = lengths is null ? null : I(lengths), Tile = tile });

    void IFlashTiles.TileBackward(Tensor p, Tensor ds, Tensor lse, Tensor rowDot, Tensor? lengths, FlashTile tile) =>
        WorkerPool.For(lse.Shape[0], new FlashTileKernel.Backward { P = F(p), DS = F(ds), Lse = F(lse), RowDot = F(rowDot), Lengths = lengths is null ? null : I(lengths), Tile = tile });

    void IFlashTiles.RowDot(Tensor dOut, Tensor output, Tensor rowDot) =>
        WorkerPool.For(dOut.Shape[0], new FlashTileKernel.RowDot { A = F(dOut), B = F(output), Out = F(rowDot), T = dOut.Shape[1], H = dOut.Shape[2], D = dOut.Shape[3] });

    private protected override void SampleTokensCore(Tensor logits, Tensor uniforms, float temperature, float topP, int topK, Tensor? banned, Tensor? probes, Tensor tokens, Tensor logProbs, Tensor sampleLogProbs, Tensor? probeLogProbs, Tensor? entropies) =>
        WorkerPool.For(logits.Shape[0], new SamplingKernel.Body
        {
            Logits = F(logits),
            Uniforms = F(uniforms),
            Banned = banned is null ? null : I(banned),
            Probes = probes is null ? null : I(probes),
            P = probes is null ? 0 : probes.Shape[1],
            V = logits.Shape[1],
            Temperature = temperature,
            TopP = topP,
            TopK = topK,
            Scratch = Scratch(logits.Shape[0] * SamplingKernel.ScratchPerRow(logits.Shape[1])),
            Tokens = I(tokens),
            LogProbs = F(logProbs),
            SampleLogProbs = F(sampleLogProbs),
            ProbeLogProbs = probeLogProbs is null ? null : F(probeLogProbs),
            Entropies = entropies is null ? null : F(entropies),
        });

    private protected override void AttentionCachedCore(Tensor q, Tensor kNew, Tensor vNew, Tensor kCache, Tensor vCache, Tensor slots, Tensor positions, Tensor output, int window) =>
        DecodeAttentionKernel.Run(
            new DecodeAttentionKernel.CachedRows
            {
                Q = F(q),
                KCache = F(kCache),
                VCache = F(vCache),
                Slots = I(slots),
                Positions = I(positions),
                Out = F(output),
                S = kCache.Shape[1],
                Hq = q.Shape[1],
                Hkv = kCache.Shape[2],
                D = q.Shape[2],
                Window = window,
            },
            F(kNew),
            F(vNew),
            q.Shape[0]);

    private protected override void AttentionDecodeCore(Tensor q, Tensor kNew, Tensor vNew, Tensor kCache, Tensor vCache, Tensor lengths, Tensor output, int window) =>
        DecodeAttentionKernel.Run(
            new DecodeAttentionKernel.Body
            {
                Q = F(q),
                KCache = F(kCache),
                VCache = F(vCache),
                Lengths = I(lengths),
                Out = F(output),
                B = q.Shape[0],
                S = kCache.Shape[1],
                Hq = q.Shape[1],
                Hkv = kCache.Shape[2],
                D = q.Shape[2],
                Window = window,
            },
            F(kNew),
            F(vNew));

    private protected override void CopyColumnsCore(Tensor src, int srcColumn, Tensor dst, int dstColumn, int width)
    {
        long rows = src.Shape.Rows;
        int cs = src.Shape[-1], cd = dst.Shape[-1];
        float* s = F(src) + srcColumn, d = F(dst) + dstColumn;
        for (long r = 0; r < rows; r++)
        {
            new ReadOnlySpan<float>(s + (r * cs), width).CopyTo(new Span<float>(d + (r * cd), width));
        }
    }

    [TakesBFloat16]
    private protected override void EmbeddingCore(Tensor ids, Tensor table, Tensor output)
    {
        if (output.DType == DType.BFloat16)
        {
            base.EmbeddingCore(ids, table, output);
            return;
        }

        EmbeddingKernel.Run(new EmbeddingKernel.Body { Ids = I(ids), Table = Address(table), Rows = F(output), N = ids.Count, C = table.Shape[1], TableBFloat16 = table.DType == DType.BFloat16 });
    }

    private protected override void EmbeddingBackwardCore(Tensor ids, Tensor dOutput, Tensor dTable)
    {
        EmbeddingKernel.Run(new EmbeddingKernel.Body { Ids = I(ids), Table = F(dTable), Rows = F(dOutput), N = ids.Count, C = dTable.Shape[1], Backward = true });
    }

    private protected override void AdamWCore(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWSettings settings, int step) =>
        WorkerPool.For(Chunks.Count(param.Count, Chunks.Elements), new OptimizerKernel.AdamW
        {
            Param = F(param),
            Grad = F(grad),
            M = F(m),
            V = F(v),
            Count = param.Count,
            S = settings,
            Step = step,
        });

    private protected override double SumOfSquaresCore(Tensor x)
    {
        int chunks = Chunks.Count(x.Count, Chunks.Elements);
        if (chunks > partialsLength)
        {
            NativeMemory.Free(partials);
            partials = (double*)NativeMemory.Alloc((nuint)chunks, sizeof(double));
            partialsLength = chunks;
        }

        WorkerPool.For(chunks, new OptimizerKernel.SumOfSquares { X = F(x), Count = x.Count, Partials = partials });
        double sum = 0;
        for (int i = 0; i < chunks; i++)
        {
            sum += partials[i];
        }

        return sum;
    }

    /// <remarks>A bf16 unembedding w (a bf16 model's head) runs here too: its chunks go through the GEMM, which widens them as it packs.</remarks>
    [TakesBFloat16]
    private protected override void SegmentScoresCore(Tensor h, Tensor w, Tensor targets, Tensor lineIds, Tensor scores, Tensor lse)
    {
        if (AnyBFloat16(h, scores, lse))
        {
            base.SegmentScoresCore(h, w, targets, lineIds, scores, lse);
            return;
        }

        ChunkedSegmentScores(this, h, w, targets, lineIds, scores, lse);
    }

    [TakesBFloat16]
    private protected override void SegmentScoresBackwardCore(Tensor h, Tensor w, Tensor targets, Tensor lineIds, Tensor lse, Tensor dScores, Tensor dH, Tensor dW)
    {
        if (AnyBFloat16(h, lse, dScores, dH, dW))
        {
            base.SegmentScoresBackwardCore(h, w, targets, lineIds, lse, dScores, dH, dW);
            return;
        }

        ChunkedSegmentScoresBackward(this, h, w, targets, lineIds, lse, dScores, dH, dW);
    }

    void ISegmentChunks.ChunkForward(Tensor logits, int c0, Tensor targets, Tensor state, bool first)
    {
        var body = new SegmentKernel.ChunkForward { Logits = F(logits), Targets = I(targets), State = F(state), Rows = logits.Shape[0], Vc = logits.Shape[1], C0 = c0, First = first };
        WorkerPool.For(body.Tasks, body);
    }

    void ISegmentChunks.Finish(Tensor state, Tensor lineIds, Tensor lse, Tensor scores) =>
        WorkerPool.For(scores.Shape[0], new SegmentKernel.Finish { State = F(state), LineIds = I(lineIds), Lse = F(lse), Scores = F(scores), L = lineIds.Shape[1], Lines = scores.Shape[1] });

    void ISegmentChunks.ChunkBackward(Tensor logits, int c0, Tensor targets, Tensor lineIds, Tensor lse, Tensor dScores, int r0, int tokensPerSequence, int lines)
    {
        var body = new SegmentKernel.ChunkBackward
        {
            Logits = F(logits),
            Targets = I(targets),
            LineIds = I(lineIds),
            Lse = F(lse),
            DScores = F(dScores),
            Rows = logits.Shape[0],
            Vc = logits.Shape[1],
            C0 = c0,
            R0 = r0,
            L = tokensPerSequence,
            Lines = lines,
        };
        WorkerPool.For(body.Tasks, body);
    }

    private protected override void ElboForwardBackwardCore(Tensor seg, Tensor priorThink, float priorAct, Tensor lengths, int maxSpan, int candidates, Tensor logZ, Tensor thinkPosterior, Tensor lineMarginals) =>
        WorkerPool.For(seg.Shape[0], Elbo(seg, priorThink, priorAct, lengths, maxSpan, candidates) with { LogZ = F(logZ), ThinkPosterior = F(thinkPosterior), Marginals = F(lineMarginals) });

    private protected override void ElboViterbiCore(Tensor seg, Tensor priorThink, float priorAct, Tensor lengths, int maxSpan, int candidates, Tensor bestScore, Tensor abstraction) =>
        WorkerPool.For(seg.Shape[0], Elbo(seg, priorThink, priorAct, lengths, maxSpan, candidates) with { LogZ = F(bestScore), Abstraction = I(abstraction), Viterbi = true });

    /// <summary>
    /// A norm's weight (<paramref name="slot"/> 0) or bias (1) [C] as floats: in place when float32,
    /// else widened into a buffer of this backend's (C floats, so a bf16 model's norms cost one
    /// short copy per call and the row kernels stay f32).
    /// </summary>
    private float* NormParameter(Tensor p, int slot)
    {
        if (p.DType == DType.Float32)
        {
            return F(p);
        }

        int c = p.Shape[0];
        if (2 * c > normParametersLength)
        {
            NativeMemory.AlignedFree(normParameters);
            normParameters = (float*)NativeMemory.AlignedAlloc((nuint)(2 * c * sizeof(float)), 64);
            normParametersLength = 2 * c;
        }

        float* wide = normParameters + (slot * c);
        BFloat16.Widen(new ReadOnlySpan<ushort>(Address(p), c), new Span<float>(wide, c));
        return wide;
    }

    /// <summary>Reusable 64-byte-aligned float scratch of at least <paramref name="floats"/> elements (kernels of one call share it).</summary>
    private protected float* Scratch(long floats)
    {
        if (floats > scratchLength)
        {
            NativeMemory.AlignedFree(scratch);
            scratch = (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
            scratchLength = floats;
        }

        return scratch;
    }

    private ElboKernel.Body Elbo(Tensor seg, Tensor priorThink, float priorAct, Tensor lengths, int maxSpan, int candidates) => new()
    {
        Seg = F(seg),
        PriorThink = F(priorThink),
        Lengths = I(lengths),
        PriorAct = priorAct,
        MaxSpan = maxSpan,
        T = seg.Shape[2],
        K = candidates,
        Scratch = Scratch(seg.Shape[0] * ElboKernel.ScratchPerTrace(seg.Shape[2], candidates)),
    };

    // The forward operands of a norm; the fused add + norm sets AddA and AddB on top.
    private NormalizationKernel.Rows LayerNormRows(Tensor x, Tensor weight, Tensor? bias, Tensor y, Tensor mean, Tensor rstd, float eps) => new()
    {
        X = F(x),
        Weight = NormParameter(weight, 0),
        Bias = bias is null ? null : NormParameter(bias, 1),
        Y = F(y),
        Mean = F(mean),
        Rstd = F(rstd),
        RowCount = x.Shape.Rows,
        C = x.Shape[-1],
        Eps = eps,
    };

    private NormalizationKernel.Rows RmsNormRows(Tensor x, Tensor weight, Tensor y, Tensor rstd, float eps) => new()
    {
        X = F(x),
        Weight = NormParameter(weight, 0),
        Y = F(y),
        Rstd = F(rstd),
        RowCount = x.Shape.Rows,
        C = x.Shape[-1],
        Eps = eps,
        Rms = true,
    };

    private static void Rope(Tensor x, Tensor positions, Tensor invFreq, Tensor y, bool inverse) =>
        RopeKernel.Run(F(x), I(positions), F(invFreq), F(y), x.Shape[0] * x.Shape[1], x.Shape[2], x.Shape[3], inverse);

    private static void Unary(ElementwiseKernel.Kind kind, Tensor input, Tensor output) =>
        ElementwiseKernel.Run(new ElementwiseKernel.Body { Kind = kind, Count = input.Count, In0 = F(input), Out0 = F(output) });

    private static void Binary(ElementwiseKernel.Kind kind, Tensor in0, Tensor in1, Tensor output) =>
        ElementwiseKernel.Run(new ElementwiseKernel.Body { Kind = kind, Count = in0.Count, In0 = F(in0), In1 = F(in1), Out0 = F(output) });
}
