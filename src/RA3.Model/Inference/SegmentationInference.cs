using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;

namespace RA3.Model.Inference;

/// <summary>The options of the temporal ELBO (spec §2, §4).</summary>
/// <param name="Alpha">Probability that the current abstraction persists at a boundary (prior_act = log α, prior_think = log(1 − α) − c). The default 0.5 makes the switching prior neutral, so the cost c alone prices a rationale — the paper's practice, where the KL term becomes a fixed cost c; α = 0.9 would charge every rationale another log 9 ≈ 2.2 nats, more than most code lines cost a trained model.</param>
/// <param name="ThinkCost">c, nats charged per rationale (paper default 0.05).</param>
/// <param name="MaxSpan">Most lines one rationale may cover (0: no limit).</param>
/// <param name="UseRationaleLogProb">Whether a rationale's own log-probability enters its prior.</param>
public sealed record ElboOptions(double Alpha = 0.5, double ThinkCost = 0.05, int MaxSpan = 0, bool UseRationaleLogProb = false);

/// <summary>One trace's scored candidates: seg[j, t] = log π(line t+1 | abstraction j), j = 0 none, j ≥ 1 the rationale sampled at boundary j.</summary>
/// <param name="Seg">[T+1, T] row-major.</param>
/// <param name="RationaleLogProbs">[T]: log π of the rationale sampled at each boundary (used when the options ask).</param>
/// <param name="Lines">T, the trace's lines.</param>
public sealed record ScoredTrace(float[] Seg, float[] RationaleLogProbs, int Lines);

/// <summary>What the temporal-ELBO inference says of one trace.</summary>
/// <param name="LogZ">The exact log-marginal over think/act decisions (the round's ELBO term).</param>
/// <param name="ThinkPosterior">[T]: P(think at boundary t+1).</param>
/// <param name="KeptBoundaries">1-based boundaries whose rationale the MAP segmentation uses: they enter the bootstrapped trace.</param>
public sealed record Segmentation(double LogZ, float[] ThinkPosterior, IReadOnlyList<int> KeptBoundaries)
{
    /// <summary>The kept rationales by boundary, taken from the candidates that were scored (what the bootstrapped trace inserts).</summary>
    public IReadOnlyDictionary<int, string> KeptRationales(IReadOnlyList<string?> candidates) =>
        KeptBoundaries.ToDictionary(b => b, b => candidates[b - 1] ?? throw new InvalidOperationException($"boundary {b} was kept but has no candidate rationale"));
}

/// <summary>
/// Temporal-ELBO inference over sampled candidates (spec §3): for a batch of scored traces, the
/// forward-backward pass (log Z and posterior think probabilities) and the Viterbi MAP
/// segmentation (which rationales are kept), on any backend.
/// </summary>
public static class SegmentationInference
{
    /// <summary>Runs both passes for <paramref name="traces"/> (padded to the longest) on <paramref name="backend"/>.</summary>
    public static Segmentation[] Infer(Backend backend, IReadOnlyList<ScoredTrace> traces, ElboOptions options)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(options);
        if (traces.Count == 0)
        {
            return [];
        }

        if (options.Alpha is <= 0 or >= 1)
        {
            throw new ArgumentException($"alpha = {options.Alpha} must lie strictly between 0 and 1");
        }

        int b = traces.Count, t = traces.Max(x => x.Lines);
        var seg = new float[b * (t + 1) * t];
        var prior = new float[b * t];
        var lengths = new int[b];
        float logThink = (float)Math.Log(1 - options.Alpha);
        for (int i = 0; i < b; i++)
        {
            var x = traces[i];
            if (x.Lines < 1 || x.Seg.Length != (x.Lines + 1) * x.Lines || x.RationaleLogProbs.Length != x.Lines)
            {
                throw new ArgumentException($"trace {i}: {x.Lines} lines need seg [{x.Lines + 1}, {x.Lines}] and {x.Lines} rationale log-probabilities; got {x.Seg.Length} and {x.RationaleLogProbs.Length}");
            }

            lengths[i] = x.Lines;
            for (int j = 0; j <= x.Lines; j++)
            {
                Array.Copy(x.Seg, j * x.Lines, seg, (i * (t + 1) * t) + (j * t), x.Lines);
            }

            for (int l = 0; l < x.Lines; l++)
            {
                prior[(i * t) + l] = logThink - (float)options.ThinkCost + (options.UseRationaleLogProb ? x.RationaleLogProbs[l] : 0f);
            }
        }

        using var segT = backend.FromArray(seg, b, t + 1, t);
        using var priorT = backend.FromArray(prior, b, t);
        using var lengthsT = backend.FromArray(lengths, b);
        using var logZ = backend.Empty(DType.Float32, b);
        using var post = backend.Empty(DType.Float32, b, t);
        using var marginals = backend.Empty(DType.Float32, b, t + 1, t);
        using var best = backend.Empty(DType.Float32, b);
        using var path = backend.Empty(DType.Int32, b, t);
        float act = (float)Math.Log(options.Alpha);
        backend.ElboForwardBackward(segT, priorT, act, lengthsT, options.MaxSpan, logZ, post, marginals);
        backend.ElboViterbi(segT, priorT, act, lengthsT, options.MaxSpan, best, path);
        float[] z = logZ.ToFloatArray(), p = post.ToFloatArray();
        int[] states = new int[b * t];
        path.CopyTo<int>(states);
        var results = new Segmentation[b];
        for (int i = 0; i < b; i++)
        {
            int n = lengths[i];
            var kept = Enumerable.Range(0, n).Where(l => states[(i * t) + l] == l + 1).Select(l => l + 1).ToList();
            results[i] = new Segmentation(z[i], p.AsSpan(i * t, n).ToArray(), kept);
        }

        return results;
    }
}
