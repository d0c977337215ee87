using System.Runtime.InteropServices;
using RA3.Kernels.Cpu;
using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;

namespace RA3.Kernels.Native;

/// <summary>
/// The native backend: GEMM, softmax, cross-entropy, plain, fused and decode attention, segment scoring and the temporal-ELBO pass run in <c>ra3_native</c>'s C++
/// (the same code a native host embeds through <c>ra3.h</c>), on the same aligned host memory
/// as <see cref="CpuBackend"/>, whose managed kernels serve the remaining ops.
/// </summary>
public sealed unsafe class NativeBackend : CpuBackend
{
    /// <summary>Version string of the loaded library.</summary>
    public static string LibraryVersion => Marshal.PtrToStringUTF8((IntPtr)NativeMethods.Version()) ?? "?";

    /// <summary>ABI version of the loaded library; must equal <see cref="ExpectedAbi"/>.</summary>
    public static int LibraryAbi => NativeMethods.AbiVersion();

    /// <summary>The ABI this assembly was written against: <c>RA3_ABI_VERSION</c> of <c>native/include/ra3.h</c>, read at build time.</summary>
    public static int ExpectedAbi => AbiVersion.Header;

    /// <summary>Worker threads of the native CPU kernels.</summary>
    public static int LibraryThreads => NativeMethods.CpuThreads();

    /// <summary>CUDA devices the library sees (0 for a CPU-only build).</summary>
    public static int CudaDevices => NativeMethods.CudaDeviceCount();

    /// <inheritdoc/>
    public override string Name => "native";

    /// <summary>Loads the library and checks its ABI version.</summary>
    public static NativeBackend Create()
    {
        if (LibraryAbi != ExpectedAbi)
        {
            throw new InvalidOperationException($"ra3_native at {NativeLibraryLoader.LoadedFrom} has ABI {LibraryAbi}, expected {ExpectedAbi}");
        }

        return new NativeBackend();
    }

    /// <summary>Whether the library multiplies bf16 by bf16 with AVX512-BF16 dot products on this processor (else it widens them to f32 FMAs).</summary>
    public static bool BFloat16DotProducts => NativeMethods.GemmBf16DotProducts() != 0;

    /// <summary>The tuning whose blocking ra3_native was last given (null before the first product).</summary>
    private static GemmTuning? blocking;

    /// <remarks>Any operand may be bf16 (a bf16 model's weights): <c>ra3_gemm</c> widens it while packing, or multiplies bf16 pairs on AVX512-BF16.</remarks>
    [TakesBFloat16]
    private protected override void GemmCore(in GemmArgs g, Tensor a, Tensor b, Tensor c, Tensor? bias)
    {
        FollowTuning();
        if (AnyBFloat16(a, b, c, bias))
        {
            static int Type(Tensor? t) => t?.DType == DType.BFloat16 ? 1 : 0;
            NativeMethods.Check(NativeMethods.GemmMixed(g.Batch, g.M, g.N, g.K, g.TransA ? 1 : 0, g.TransB ? 1 : 0, g.Alpha, Address(a), Type(a), g.StrideA, Address(b), Type(b), g.StrideB, g.Beta, Address(c), Type(c), g.StrideC, bias is null ? null : Address(bias), Type(bias)));
            return;
        }

        NativeMethods.Check(NativeMethods.Gemm(g.Batch, g.M, g.N, g.K, g.TransA ? 1 : 0, g.TransB ? 1 : 0, g.Alpha, F(a), g.StrideA, F(b), g.StrideB, g.Beta, F(c), g.StrideC, bias is null ? null : F(bias)));
    }

    /// <summary>
    /// Gives ra3_native the blocking (KC, MC, NC) of the process's GEMM tuning (<see cref="GemmKernel.Tuning"/>:
    /// this processor's measurement, or a resumed run's record), so both CPU backends follow the
    /// measurement and a run's KC, which orders each element's sum; the register tile stays the build's.
    /// </summary>
    private static void FollowTuning()
    {
        var tuning = GemmKernel.Tuning;
        if (!ReferenceEquals(tuning, blocking))
        {
            NativeMethods.Check(NativeMethods.GemmSetBlocking(tuning.KC, tuning.MC, tuning.NC));
            blocking = tuning;
        }
    }

    private protected override void SoftmaxCore(Tensor x, Tensor y) =>
        NativeMethods.Check(NativeMethods.SoftmaxForward(Rows(x), x.Shape[-1], F(x), F(y)));

    private protected override void SoftmaxBackwardCore(Tensor y, Tensor dy, Tensor dx) =>
        NativeMethods.Check(NativeMethods.SoftmaxBackward(Rows(y), y.Shape[-1], F(y), F(dy), F(dx)));

    private protected override void CrossEntropyCore(Tensor logits, Tensor targets, Tensor losses) =>
        NativeMethods.Check(NativeMethods.CrossEntropyForward(Rows(logits), logits.Shape[-1], F(logits), I(targets), F(losses)));

    private protected override void CrossEntropyBackwardCore(Tensor logits, Tensor targets, Tensor dLosses, Tensor dLogits) =>
        NativeMethods.Check(NativeMethods.CrossEntropyBackward(Rows(logits), logits.Shape[-1], F(logits), I(targets), F(dLosses), F(dLogits)));

    private protected override void AttentionCore(Tensor q, Tensor k, Tensor v, Tensor output, Tensor probs) =>
        NativeMethods.Check(NativeMethods.AttentionForward(q.Shape[0], q.Shape[1], q.Shape[2], k.Shape[2], q.Shape[3], F(q), F(k), F(v), F(output), F(probs)));

    private protected override void AttentionBackwardCore(Tensor q, Tensor k, Tensor v, Tensor probs, Tensor dOutput, Tensor dq, Tensor dk, Tensor dv) =>
        NativeMethods.Check(NativeMethods.AttentionBackward(q.Shape[0], q.Shape[1], q.Shape[2], k.Shape[2], q.Shape[3], F(q), F(k), F(v), F(probs), F(dOutput), F(dq), F(dk), F(dv)));

    private protected override void FlashAttentionCore(Tensor q, Tensor k, Tensor v, Tensor? lengths, Tensor output, Tensor lse, int window) =>
        NativeMethods.Check(NativeMethods.FlashAttentionForward(q.Shape[0], q.Shape[1], q.Shape[2], k.Shape[2], q.Shape[3], window, F(q), F(k), F(v), lengths is null ? null : I(lengths), F(output), F(lse)));

    private protected override void FlashAttentionBackwardCore(Tensor q, Tensor k, Tensor v, Tensor? lengths, Tensor output, Tensor lse, Tensor dOutput, Tensor dq, Tensor dk, Tensor dv, int window) =>
        NativeMethods.Check(NativeMethods.FlashAttentionBackward(q.Shape[0], q.Shape[1], q.Shape[2], k.Shape[2], q.Shape[3], window, F(q), F(k), F(v), lengths is null ? null : I(lengths), F(output), F(lse), F(dOutput), F(dq), F(dk), F(dv)));

    private protected override void AttentionDecodeCore(Tensor q, Tensor kNew, Tensor vNew, Tensor kCache, Tensor vCache, Tensor lengths, Tensor output, int window) =>
        NativeMethods.Check(NativeMethods.AttentionDecode(q.Shape[0], kCache.Shape[1], q.Shape[1], kCache.Shape[2], q.Shape[2], window, F(q), F(kNew), F(vNew), F(kCache), F(vCache), I(lengths), F(output)));

    /// <remarks>A bf16 unembedding runs the managed chunked kernel, whose vocabulary chunks go through the GEMM above.</remarks>
    [TakesBFloat16]
    private protected override void SegmentScoresCore(Tensor h, Tensor w, Tensor targets, Tensor lineIds, Tensor scores, Tensor lse)
    {
        if (AnyBFloat16(h, w, scores, lse))
        {
            base.SegmentScoresCore(h, w, targets, lineIds, scores, lse);
            return;
        }

        NativeMethods.Check(NativeMethods.SegmentScoresForward(h.Shape[0], h.Shape[1], h.Shape[2], w.Shape[0], scores.Shape[1], F(h), F(w), I(targets), I(lineIds), F(scores), F(lse)));
    }

    [TakesBFloat16]
    private protected override void SegmentScoresBackwardCore(Tensor h, Tensor w, Tensor targets, Tensor lineIds, Tensor lse, Tensor dScores, Tensor dH, Tensor dW)
    {
        if (AnyBFloat16(h, w, lse, dScores, dH, dW))
        {
            base.SegmentScoresBackwardCore(h, w, targets, lineIds, lse, dScores, dH, dW);
            return;
        }

        NativeMethods.Check(NativeMethods.SegmentScoresBackward(h.Shape[0], h.Shape[1], h.Shape[2], w.Shape[0], dScores.Shape[1], F(h), F(w), I(targets), I(lineIds), F(lse), F(dScores), F(dH), F(dW)));
    }

    // One candidate per boundary goes through the C ABI's one-candidate entry points (what most C
    // hosts call, so the suite runs them), K ≥ 2 through the K-candidate ones.
    private protected override void ElboForwardBackwardCore(Tensor seg, Tensor priorThink, float priorAct, Tensor lengths, int maxSpan, int candidates, Tensor logZ, Tensor thinkPosterior, Tensor lineMarginals) =>
        NativeMethods.Check(candidates == 1
            ? NativeMethods.ElboForwardBackward(seg.Shape[0], seg.Shape[2], F(seg), F(priorThink), priorAct, I(lengths), maxSpan, F(logZ), F(thinkPosterior), F(lineMarginals))
            : NativeMethods.ElboForwardBackward(seg.Shape[0], seg.Shape[2], candidates, F(seg), F(priorThink), priorAct, I(lengths), maxSpan, F(logZ), F(thinkPosterior), F(lineMarginals)));

    private protected override void ElboViterbiCore(Tensor seg, Tensor priorThink, float priorAct, Tensor lengths, int maxSpan, int candidates, Tensor bestScore, Tensor abstraction) =>
        NativeMethods.Check(candidates == 1
            ? NativeMethods.ElboViterbi(seg.Shape[0], seg.Shape[2], F(seg), F(priorThink), priorAct, I(lengths), maxSpan, F(bestScore), I(abstraction))
            : NativeMethods.ElboViterbi(seg.Shape[0], seg.Shape[2], candidates, F(seg), F(priorThink), priorAct, I(lengths), maxSpan, F(bestScore), I(abstraction)));

    private static int Rows(Tensor t) => checked((int)t.Shape.Rows);
}
