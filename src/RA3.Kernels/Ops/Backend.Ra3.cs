using RA3.Kernels.Tensors;

namespace RA3.Kernels.Ops;

/// <summary>
/// The RA3-specific ops (<c>shared/docs/ra3-method.md</c> §4–5): the temporal-ELBO
/// forward-backward pass and its Viterbi decode.
/// </summary>
public abstract partial class Backend
{
    /// <summary>
    /// Temporal-ELBO forward-backward over B traces of up to T lines (spec §4), in log space.
    /// seg [B, T+1, T]: seg[b, j, t] = log π(line t+1 | abstraction j active), j = 0 for "no
    /// rationale", j ≥ 1 for the rationale written at boundary j (1-based); entries with j &gt; t+1
    /// are never read. priorThink [B, T]: the log-prior of a <c>&lt;think&gt;</c> at boundary t+1;
    /// <paramref name="priorAct"/> = log α; lengths [B] (int32, 1..T): lines of each trace;
    /// <paramref name="maxSpan"/> &gt; 0 limits an abstraction j ≥ 1 to lines j..j+maxSpan−1 (0 = no limit).
    /// Outputs: logZ [B]; thinkPosterior [B, T] = P(think at boundary t+1) = ∂logZ/∂priorThink;
    /// lineMarginals [B, T+1, T] = P(line t+1 under abstraction j) = ∂logZ/∂seg. Entries past a
    /// trace's length and impossible states are 0.
    /// </summary>
    public void ElboForwardBackward(Tensor seg, Tensor priorThink, float priorAct, Tensor lengths, int maxSpan, Tensor logZ, Tensor thinkPosterior, Tensor lineMarginals)
    {
        ElboArgs(seg, priorThink, lengths, maxSpan, out int b, out int t);
        Own(logZ, nameof(logZ));
        Own(thinkPosterior, nameof(thinkPosterior));
        Own(lineMarginals, nameof(lineMarginals));
        ShapeCheck.Is(logZ, nameof(logZ), b);
        ShapeCheck.Is(thinkPosterior, nameof(thinkPosterior), b, t);
        ShapeCheck.Is(lineMarginals, nameof(lineMarginals), b, t + 1, t);
        ElboForwardBackwardCore(seg, priorThink, priorAct, lengths, maxSpan, logZ, thinkPosterior, lineMarginals);
    }

    /// <summary>
    /// The MAP segmentation of the same model (max instead of log-sum-exp): bestScore [B] is the
    /// log-weight of the best think/act assignment; abstraction [B, T] (int32) the abstraction
    /// active at each line (0 = none, j = the rationale of boundary j, so line t+1 thinks when
    /// abstraction[b, t] = t + 1); −1 past the trace's length.
    /// </summary>
    public void ElboViterbi(Tensor seg, Tensor priorThink, float priorAct, Tensor lengths, int maxSpan, Tensor bestScore, Tensor abstraction)
    {
        ElboArgs(seg, priorThink, lengths, maxSpan, out int b, out int t);
        Own(bestScore, nameof(bestScore));
        Own(abstraction, nameof(abstraction), DType.Int32);
        ShapeCheck.Is(bestScore, nameof(bestScore), b);
        ShapeCheck.Is(abstraction, nameof(abstraction), b, t);
        ElboViterbiCore(seg, priorThink, priorAct, lengths, maxSpan, bestScore, abstraction);
    }

    private protected abstract void ElboForwardBackwardCore(Tensor seg, Tensor priorThink, float priorAct, Tensor lengths, int maxSpan, Tensor logZ, Tensor thinkPosterior, Tensor lineMarginals);

    private protected abstract void ElboViterbiCore(Tensor seg, Tensor priorThink, float priorAct, Tensor lengths, int maxSpan, Tensor bestScore, Tensor abstraction);

    private void ElboArgs(Tensor seg, Tensor priorThink, Tensor lengths, int maxSpan, out int b, out int t)
    {
        Own(seg, nameof(seg));
        Own(priorThink, nameof(priorThink));
        Own(lengths, nameof(lengths), DType.Int32);
        ShapeCheck.Rank(seg, 3, nameof(seg), "[B, T+1, T]");
        b = seg.Shape[0];
        t = seg.Shape[2];
        ShapeCheck.Require(t >= 1 && seg.Shape[1] == t + 1, $"elbo: seg {seg.Shape} must be [B, T+1, T] with T >= 1");
        ShapeCheck.Is(priorThink, nameof(priorThink), b, t);
        ShapeCheck.Is(lengths, nameof(lengths), b);
        ShapeCheck.Require(maxSpan >= 0, $"elbo: maxSpan must be >= 0 (0 = no limit), got {maxSpan}");
        ShapeCheck.Ids(lengths.ToInt32Array(), 1, t + 1, nameof(lengths), lengths.Shape);
    }
}
