using RA3.Kernels.Reference;
using RA3.Kernels.Tensors;

namespace RA3.Kernels.Ops;

/// <summary>
/// The RA3-specific ops (<c>shared/docs/ra3-method.md</c> §4–5): latent segment scoring (the
/// fused linear + log-softmax + gather that never materialises the logits), the temporal-ELBO
/// forward-backward pass and its Viterbi decode.
/// </summary>
public abstract partial class Backend
{
    /// <summary>Rows of hidden states per block of the chunked segment scoring.</summary>
    private protected const int SegmentRowBlock = 256;

    /// <summary>Vocabulary entries per chunk: a block's logits chunk is SegmentRowBlock × SegmentVocabChunk floats (2 MiB).</summary>
    private protected const int SegmentVocabChunk = 2048;

    /// <summary>
    /// Latent segment scoring (spec §5): for hidden states h [N, L, d], unembedding w [V, d],
    /// targets [N, L] and lineIds [N, L] (int32; −1 = padding, else a line index below M),
    /// scores [N, M] receives Σ over the tokens of each (sequence, line) of
    /// log softmax(h wᵀ)[target], and lse [N, L] the per-token log-sum-exp the backward needs. The
    /// [N·L, V] logits are never stored: the vocabulary is processed in chunks with a running
    /// maximum and sum. With lineIds = position it gives per-token log-probabilities; with one
    /// line per sequence, the model's summed loss.
    /// </summary>
    public void SegmentScores(Tensor h, Tensor w, Tensor targets, Tensor lineIds, Tensor scores, Tensor lse)
    {
        SegmentArgs(h, w, targets, lineIds, scores, nameof(scores));
        Own(lse, nameof(lse));
        ShapeCheck.Same(targets, nameof(targets), lse, nameof(lse));
        if (OnReference(nameof(SegmentScores), h, w, targets, lineIds, scores, lse))
        {
            SegmentScoresReference(h, w, targets, lineIds, scores, lse);
            return;
        }

        SegmentScoresCore(h, w, targets, lineIds, scores, lse);
    }

    /// <summary>
    /// Backward of <see cref="SegmentScores"/> for an upstream gradient dScores [N, M]:
    /// dH [N, L, d] and dW [V, d] are accumulated (+=), again without the full logits.
    /// </summary>
    public void SegmentScoresBackward(Tensor h, Tensor w, Tensor targets, Tensor lineIds, Tensor lse, Tensor dScores, Tensor dH, Tensor dW)
    {
        SegmentArgs(h, w, targets, lineIds, dScores, nameof(dScores));
        Own(lse, nameof(lse));
        ShapeCheck.Same(targets, nameof(targets), lse, nameof(lse));
        Elementwise(h, nameof(h), dH, nameof(dH));
        Elementwise(w, nameof(w), dW, nameof(dW));
        if (OnReference(nameof(SegmentScoresBackward), h, w, targets, lineIds, lse, dScores, dH, dW))
        {
            SegmentScoresBackwardReference(h, w, targets, lineIds, lse, dScores, dH, dW);
            return;
        }

        SegmentScoresBackwardCore(h, w, targets, lineIds, lse, dScores, dH, dW);
    }

    /// <summary>
    /// Temporal-ELBO forward-backward over B traces of up to T lines (spec §4), in log space, with
    /// K candidate rationales per boundary. priorThink [B, T] (K = 1) or [B, T, K]: the log-prior of
    /// a <c>&lt;think&gt;</c> at boundary t+1 writing candidate k; seg [B, 1 + T·K, T]: seg[b, s, t] =
    /// log π(line t+1 | abstraction s active), s = 0 for "no rationale", s = 1 + (j − 1)·K + k for
    /// candidate k of the rationale written at boundary j (1-based) — with K = 1, s = j; entries
    /// whose boundary lies after line t+1 are never read. <paramref name="priorAct"/> = log α;
    /// lengths [B] (int32, 1..T): lines of each trace; <paramref name="maxSpan"/> &gt; 0 limits an
    /// abstraction of boundary j to lines j..j+maxSpan−1 (0 = no limit).
    /// Outputs: logZ [B]; thinkPosterior (priorThink's shape) = P(think at boundary t+1 with
    /// candidate k) = ∂logZ/∂priorThink; lineMarginals (seg's shape) = P(line t+1 under abstraction
    /// s) = ∂logZ/∂seg. Entries past a trace's length and impossible states are 0.
    /// </summary>
    public void ElboForwardBackward(Tensor seg, Tensor priorThink, float priorAct, Tensor lengths, int maxSpan, Tensor logZ, Tensor thinkPosterior, Tensor lineMarginals)
    {
        ElboArgs(seg, priorThink, lengths, maxSpan, out int b, out int t, out int k);
        Own(logZ, nameof(logZ));
        Own(thinkPosterior, nameof(thinkPosterior));
        Own(lineMarginals, nameof(lineMarginals));
        ShapeCheck.Is(logZ, nameof(logZ), b);
        ShapeCheck.Same(priorThink, nameof(priorThink), thinkPosterior, nameof(thinkPosterior));
        ShapeCheck.Same(seg, nameof(seg), lineMarginals, nameof(lineMarginals));
        if (OnReference(nameof(ElboForwardBackward), seg, priorThink, lengths, logZ, thinkPosterior, lineMarginals))
        {
            ElboForwardBackwardReference(seg, priorThink, priorAct, lengths, maxSpan, k, logZ, thinkPosterior, lineMarginals);
            return;
        }

        ElboForwardBackwardCore(seg, priorThink, priorAct, lengths, maxSpan, k, logZ, thinkPosterior, lineMarginals);
    }

    /// <summary>
    /// The MAP segmentation of the same model (max instead of log-sum-exp), with the same K:
    /// bestScore [B] is the log-weight of the best think/act assignment; abstraction [B, T] (int32)
    /// the abstraction s active at each line (0 = none, s = 1 + (j − 1)·K + k = candidate k of
    /// boundary j, so line t+1 thinks when abstraction[b, t] &gt; t·K); −1 past the trace's length.
    /// </summary>
    public void ElboViterbi(Tensor seg, Tensor priorThink, float priorAct, Tensor lengths, int maxSpan, Tensor bestScore, Tensor abstraction)
    {
        ElboArgs(seg, priorThink, lengths, maxSpan, out int b, out int t, out int k);
        Own(bestScore, nameof(bestScore));
        Own(abstraction, nameof(abstraction), DType.Int32);
        ShapeCheck.Is(bestScore, nameof(bestScore), b);
        ShapeCheck.Is(abstraction, nameof(abstraction), b, t);
        if (OnReference(nameof(ElboViterbi), seg, priorThink, lengths, bestScore, abstraction))
        {
            ElboViterbiReference(seg, priorThink, priorAct, lengths, maxSpan, k, bestScore, abstraction);
            return;
        }

        ElboViterbiCore(seg, priorThink, priorAct, lengths, maxSpan, k, bestScore, abstraction);
    }

    private protected virtual void SegmentScoresCore(Tensor h, Tensor w, Tensor targets, Tensor lineIds, Tensor scores, Tensor lse) => SegmentScoresReference(h, w, targets, lineIds, scores, lse);

    private void SegmentScoresReference(Tensor h, Tensor w, Tensor targets, Tensor lineIds, Tensor scores, Tensor lse)
    {
        using var host = Host(nameof(SegmentScores));
        ReferenceKernels.SegmentScores(host.In(h), host.In(w), host.Ints(targets), host.Ints(lineIds), targets.Shape[1], host.Out(scores), host.Out(lse));
    }

    private protected virtual void SegmentScoresBackwardCore(Tensor h, Tensor w, Tensor targets, Tensor lineIds, Tensor lse, Tensor dScores, Tensor dH, Tensor dW) => SegmentScoresBackwardReference(h, w, targets, lineIds, lse, dScores, dH, dW);

    private void SegmentScoresBackwardReference(Tensor h, Tensor w, Tensor targets, Tensor lineIds, Tensor lse, Tensor dScores, Tensor dH, Tensor dW)
    {
        using var host = Host(nameof(SegmentScoresBackward));
        ReferenceKernels.SegmentScoresBackward(host.In(h), host.In(w), host.Ints(targets), host.Ints(lineIds), targets.Shape[1], host.In(dScores), host.Out(dH), host.Out(dW));
    }

    /// <summary>
    /// The chunked algorithm on a backend's GEMM and its <paramref name="chunks"/> row kernels (a
    /// backend with a whole fused kernel, such as the native library, has no need of it). Per block of rows: for each
    /// vocabulary chunk, logits chunk = h_block · w_chunkᵀ, then the running (max, sum, target
    /// logit) of each row are updated; finally lse and the scores.
    /// </summary>
    private protected void ChunkedSegmentScores(ISegmentChunks chunks, Tensor h, Tensor w, Tensor targets, Tensor lineIds, Tensor scores, Tensor lse)
    {
        int rows = checked((int)targets.Count), d = h.Shape[-1], v = w.Shape[0], chunkFloats = Math.Min(SegmentRowBlock, rows) * Math.Min(SegmentVocabChunk, v);
        var work = Workspace(chunkFloats + (3L * rows));
        var chunk = work.View(0, chunkFloats);
        var state = work.View(chunkFloats, rows, 3);
        var flatH = h.Reshape(rows, d);
        for (int r0 = 0; r0 < rows; r0 += SegmentRowBlock)
        {
            int rb = Math.Min(SegmentRowBlock, rows - r0);
            var hb = flatH.View((long)r0 * d, rb, d);
            var tb = targets.Reshape(rows).View(r0, rb);
            var sb = state.View((long)r0 * 3, rb, 3);
            for (int c0 = 0; c0 < v; c0 += SegmentVocabChunk)
            {
                int vc = Math.Min(SegmentVocabChunk, v - c0);
                var logits = chunk.View(0, rb, vc);
                Gemm(hb, false, w.View((long)c0 * d, vc, d), true, logits);
                chunks.ChunkForward(logits, c0, tb, sb, first: c0 == 0);
            }
        }

        chunks.Finish(state, lineIds, lse, scores);
    }

    /// <summary>The backward of the chunked algorithm: recompute each logits chunk, turn it into dlogits in place, and take two GEMMs.</summary>
    private protected void ChunkedSegmentScoresBackward(ISegmentChunks chunks, Tensor h, Tensor w, Tensor targets, Tensor lineIds, Tensor lse, Tensor dScores, Tensor dH, Tensor dW)
    {
        int rows = checked((int)targets.Count), d = h.Shape[-1], v = w.Shape[0], lines = dScores.Shape[1];
        var chunk = Workspace((long)Math.Min(SegmentRowBlock, rows) * Math.Min(SegmentVocabChunk, v));
        var flatH = h.Reshape(rows, d);
        var flatDH = dH.Reshape(rows, d);
        for (int r0 = 0; r0 < rows; r0 += SegmentRowBlock)
        {
            int rb = Math.Min(SegmentRowBlock, rows - r0);
            var hb = flatH.View((long)r0 * d, rb, d);
            var dhb = flatDH.View((long)r0 * d, rb, d);
            var tb = targets.Reshape(rows).View(r0, rb);
            var lb = lineIds.Reshape(rows).View(r0, rb);
            var eb = lse.Reshape(rows).View(r0, rb);
            for (int c0 = 0; c0 < v; c0 += SegmentVocabChunk)
            {
                int vc = Math.Min(SegmentVocabChunk, v - c0);
                var logits = chunk.View(0, rb, vc);
                var wc = w.View((long)c0 * d, vc, d);
                Gemm(hb, false, wc, true, logits);
                chunks.ChunkBackward(logits, c0, tb, lb, eb, dScores, r0, targets.Shape[1], lines);
                Gemm(logits, false, wc, false, dhb, beta: 1f);
                Gemm(logits, true, hb, false, dW.View((long)c0 * d, vc, d), beta: 1f);
            }
        }
    }

    /// <summary>The op's body for <paramref name="candidates"/> (K) candidates per boundary; the reference by default.</summary>
    private protected virtual void ElboForwardBackwardCore(Tensor seg, Tensor priorThink, float priorAct, Tensor lengths, int maxSpan, int candidates, Tensor logZ, Tensor thinkPosterior, Tensor lineMarginals) => ElboForwardBackwardReference(seg, priorThink, priorAct, lengths, maxSpan, candidates, logZ, thinkPosterior, lineMarginals);

    private protected void ElboForwardBackwardReference(Tensor seg, Tensor priorThink, float priorAct, Tensor lengths, int maxSpan, int candidates, Tensor logZ, Tensor thinkPosterior, Tensor lineMarginals)
    {
        using var h = Host(nameof(ElboForwardBackward));
        ReferenceKernels.ElboForwardBackward(h.In(seg), h.In(priorThink), priorAct, h.Ints(lengths), maxSpan, candidates, h.Out(logZ), h.Out(thinkPosterior), h.Out(lineMarginals));
    }

    /// <summary>The Viterbi body for <paramref name="candidates"/> (K) candidates per boundary; the reference by default.</summary>
    private protected virtual void ElboViterbiCore(Tensor seg, Tensor priorThink, float priorAct, Tensor lengths, int maxSpan, int candidates, Tensor bestScore, Tensor abstraction) => ElboViterbiReference(seg, priorThink, priorAct, lengths, maxSpan, candidates, bestScore, abstraction);

    private protected void ElboViterbiReference(Tensor seg, Tensor priorThink, float priorAct, Tensor lengths, int maxSpan, int candidates, Tensor bestScore, Tensor abstraction)
    {
        using var h = Host(nameof(ElboViterbi));
        ReferenceKernels.ElboViterbi(h.In(seg), h.In(priorThink), priorAct, h.Ints(lengths), maxSpan, candidates, h.Out(bestScore), h.OutInts(abstraction));
    }

    private void SegmentArgs(Tensor h, Tensor w, Tensor targets, Tensor lineIds, Tensor scores, string nameScores)
    {
        Own(h, nameof(h));
        Own(w, nameof(w));
        Own(targets, nameof(targets), DType.Int32);
        Own(lineIds, nameof(lineIds), DType.Int32);
        Own(scores, nameScores);
        ShapeCheck.Rank(h, 3, nameof(h), "[N, L, d]");
        ShapeCheck.Rank(w, 2, nameof(w), "[V, d]");
        int n = h.Shape[0], l = h.Shape[1], d = h.Shape[2];
        ShapeCheck.Require(w.Shape[1] == d, $"segment scores: h {h.Shape} and w {w.Shape} must agree on d");
        ShapeCheck.Is(targets, nameof(targets), n, l);
        ShapeCheck.Is(lineIds, nameof(lineIds), n, l);
        ShapeCheck.Require(scores.Shape.Rank == 2 && scores.Shape[0] == n && scores.Shape[1] >= 1, $"segment scores: {nameScores} {scores.Shape} must be [{n}, M] with M >= 1");
        if (IndicesToCheck(lineIds, out var ids) && IndicesToCheck(targets, out var ys))
        {
            ShapeCheck.Ids(ids, -1, scores.Shape[1], nameof(lineIds), lineIds.Shape);
            for (int i = 0; i < ids.Length; i++)
            {
                ShapeCheck.Require(ids[i] < 0 || (ys[i] >= 0 && ys[i] < w.Shape[0]), $"targets[{i}] = {ys[i]} is outside [0, {w.Shape[0]}) ({nameof(targets)} {targets.Shape})");
            }
        }
    }

    private void ElboArgs(Tensor seg, Tensor priorThink, Tensor lengths, int maxSpan, out int b, out int t, out int k)
    {
        Own(seg, nameof(seg));
        Own(priorThink, nameof(priorThink));
        Own(lengths, nameof(lengths), DType.Int32);
        ShapeCheck.Rank(seg, 3, nameof(seg), "[B, 1 + T·K, T]");
        b = seg.Shape[0];
        t = seg.Shape[2];
        ShapeCheck.Require(priorThink.Shape.Rank is 2 or 3, $"elbo: priorThink {priorThink.Shape} must be [B, T] (one candidate per boundary) or [B, T, K]");
        k = priorThink.Shape.Rank == 3 ? priorThink.Shape[2] : 1;
        ShapeCheck.Require(t >= 1 && k >= 1 && seg.Shape[1] == 1 + ((long)t * k), $"elbo: seg {seg.Shape} must be [B, 1 + T·K, T] = [{b}, {1 + ((long)t * k)}, {t}] for priorThink {priorThink.Shape}, with T >= 1 and K >= 1");
        ShapeCheck.Require(priorThink.Shape[0] == b && priorThink.Shape[1] == t, $"elbo: priorThink {priorThink.Shape} must be [{b}, {t}{(k > 1 ? $", {k}" : string.Empty)}] for seg {seg.Shape}");
        ShapeCheck.Is(lengths, nameof(lengths), b);
        ShapeCheck.Require(maxSpan >= 0, $"elbo: maxSpan must be >= 0 (0 = no limit), got {maxSpan}");
        CheckIndices(lengths, 1, t + 1, nameof(lengths));
    }
}
