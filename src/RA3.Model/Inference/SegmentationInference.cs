using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;

namespace RA3.Model.Inference;

/// <summary>The options of the temporal ELBO (spec §2, §4).</summary>
/// <param name="Alpha">Probability that the current abstraction persists at a boundary (prior_act = log α, prior_think = log(1 − α) − c). The default 0.5 makes the switching prior neutral, so the cost c alone prices a rationale — the paper's practice, where the KL term becomes a fixed cost c; α = 0.9 would charge every rationale another log 9 ≈ 2.2 nats, more than most code lines cost a trained model.</param>
/// <param name="ThinkCost">c, nats charged per rationale (paper default 0.05).</param>
/// <param name="MaxSpan">Most lines one rationale may cover (0: no limit).</param>
/// <param name="UseRationaleLogProb">Whether a rationale's own log-probability enters its prior.</param>
public sealed record ElboOptions(double Alpha = 0.5, double ThinkCost = 0.05, int MaxSpan = 0, bool UseRationaleLogProb = false);

/// <summary>
/// One trace's scored candidates, K per boundary: seg[s, t] = log π(line t+1 | abstraction s), s = 0
/// none, s = 1 + (j − 1)·K + k the k-th rationale sampled at boundary j (a boundary with fewer
/// candidates has rows of −∞).
/// </summary>
/// <param name="Seg">[1 + T·K, T] row-major.</param>
/// <param name="RationaleLogProbs">[T, K]: log π of each candidate rationale (used when the options ask).</param>
/// <param name="Lines">T, the trace's lines.</param>
/// <param name="Candidates">K, candidates per boundary.</param>
public sealed record ScoredTrace(float[] Seg, float[] RationaleLogProbs, int Lines, int Candidates = 1);

/// <summary>What the temporal-ELBO inference says of one trace.</summary>
/// <param name="LogZ">log Z: the exact log-sum over think/act decisions (and candidates) of prior × likelihood; with α and c in the prior it is a score of the segmentations, not a bound on log p(x).</param>
/// <param name="ThinkPosterior">[T, K]: P(think at boundary t+1 writing candidate k).</param>
/// <param name="Kept">The MAP segmentation's rationales: (1-based boundary, candidate index); they enter the bootstrapped trace.</param>
/// <param name="LineMarginals">[1 + T·K, T]: P(line t+1 under abstraction s) = ∂log Z/∂seg.</param>
public sealed record Segmentation(double LogZ, float[] ThinkPosterior, IReadOnlyList<(int Boundary, int Candidate)> Kept, float[] LineMarginals)
{
    /// <summary>The 1-based boundaries of the kept rationales.</summary>
    public IReadOnlyList<int> KeptBoundaries => [.. Kept.Select(k => k.Boundary)];

    /// <summary>The kept rationales by boundary, taken from the candidates that were scored (per boundary, the K candidates in order; what the bootstrapped trace inserts).</summary>
    public IReadOnlyDictionary<int, string> KeptRationales(IReadOnlyList<IReadOnlyList<string>> candidates) =>
        Kept.ToDictionary(k => k.Boundary, k => k.Candidate < candidates[k.Boundary - 1].Count ? candidates[k.Boundary - 1][k.Candidate] : throw new InvalidOperationException($"boundary {k.Boundary} was kept with candidate {k.Candidate} but has {candidates[k.Boundary - 1].Count}"));
}

/// <summary>
/// Temporal-ELBO inference over sampled candidates (spec §3): for a batch of scored traces, the
/// forward-backward pass (log Z, posterior think probabilities and line marginals) and the Viterbi
/// MAP segmentation (which rationales are kept), on any backend.
/// </summary>
public static class SegmentationInference
{
    /// <summary>Runs both passes for <paramref name="traces"/> (padded to the longest and the most candidates) on <paramref name="backend"/>.</summary>
    public static Segmentation[] Infer(Backend backend, IReadOnlyList<ScoredTrace> traces, ElboOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Alpha is <= 0 or >= 1)
        {
            throw new ArgumentException($"alpha = {options.Alpha} must lie strictly between 0 and 1");
        }

        float logThink = (float)Math.Log(1 - options.Alpha);
        return Run(backend, traces, (float)Math.Log(options.Alpha), (x, l, k) => logThink - (float)options.ThinkCost + (options.UseRationaleLogProb ? x.RationaleLogProbs[(l * x.Candidates) + k] : 0f), options.MaxSpan);
    }

    /// <summary>
    /// log Σ_z p(x, z) over the candidate segmentations z of each trace, with no prior of its own:
    /// every act adds nothing, every think the rationale's own log-probability — so with seg holding
    /// the model's own line log-likelihoods (the comment-or-not choice included), it is the log of the
    /// model's joint probability of the code with some of the candidate comments, summed: a lower bound
    /// on log p(code) with comments marginalised out, comparable with a model's log-likelihood of the bare code (the z = none term).
    /// </summary>
    public static double[] LogMarginalBound(Backend backend, IReadOnlyList<ScoredTrace> traces) =>
        [.. Run(backend, traces, 0f, (x, l, k) => x.RationaleLogProbs[(l * x.Candidates) + k], 0).Select(s => s.LogZ)];

    private static Segmentation[] Run(Backend backend, IReadOnlyList<ScoredTrace> traces, float act, Func<ScoredTrace, int, int, float> priorThink, int maxSpan)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(traces);
        if (traces.Count == 0)
        {
            return [];
        }

        int b = traces.Count, t = traces.Max(x => x.Lines), k = traces.Max(x => x.Candidates), states = (t * k) + 1;
        var seg = new float[b * states * t];
        var prior = new float[b * t * k];
        var lengths = new int[b];
        Array.Fill(seg, float.NegativeInfinity);
        Array.Fill(prior, float.NegativeInfinity);
        for (int i = 0; i < b; i++)
        {
            var x = traces[i];
            int n = x.Lines, kx = x.Candidates;
            if (n < 1 || kx < 1 || x.Seg.Length != ((n * kx) + 1) * n || x.RationaleLogProbs.Length != n * kx)
            {
                throw new ArgumentException($"trace {i}: {n} lines with {kx} candidates per boundary need seg [{(n * kx) + 1}, {n}] and {n * kx} rationale log-probabilities; got {x.Seg.Length} and {x.RationaleLogProbs.Length}");
            }

            lengths[i] = n;
            Array.Copy(x.Seg, 0, seg, i * states * t, n);  // abstraction 0: no rationale
            for (int l = 0; l < n; l++)
            {
                for (int c = 0; c < kx; c++)
                {
                    Array.Copy(x.Seg, (1 + (l * kx) + c) * n, seg, (i * states * t) + ((1 + (l * k) + c) * t), n);
                    prior[(i * t * k) + (l * k) + c] = priorThink(x, l, c);
                }
            }
        }

        using var segT = backend.FromArray(seg, b, states, t);
        using var priorT = backend.FromArray(prior, b, t, k);
        using var lengthsT = backend.FromArray(lengths, b);
        using var logZ = backend.Empty(DType.Float32, b);
        using var post = backend.Empty(DType.Float32, b, t, k);
        using var marginals = backend.Empty(DType.Float32, b, states, t);
        using var best = backend.Empty(DType.Float32, b);
        using var path = backend.Empty(DType.Int32, b, t);
        backend.ElboForwardBackward(segT, priorT, act, lengthsT, maxSpan, logZ, post, marginals);
        backend.ElboViterbi(segT, priorT, act, lengthsT, maxSpan, best, path);
        float[] z = logZ.ToFloatArray(), p = post.ToFloatArray(), m = marginals.ToFloatArray();
        int[] stateOf = path.ToInt32Array();
        var results = new Segmentation[b];
        for (int i = 0; i < b; i++)
        {
            int n = lengths[i], kx = traces[i].Candidates;
            var kept = new List<(int, int)>();
            var posterior = new float[n * kx];
            var lineMarginals = new float[((n * kx) + 1) * n];
            for (int l = 0; l < n; l++)
            {
                int s = stateOf[(i * t) + l];
                if (s > l * k)
                {
                    kept.Add((l + 1, s - 1 - (l * k)));  // the state started at line l: a think at boundary l + 1
                }

                for (int c = 0; c < kx; c++)
                {
                    posterior[(l * kx) + c] = p[(i * t * k) + (l * k) + c];
                    Array.Copy(m, (i * states * t) + ((1 + (l * k) + c) * t), lineMarginals, (1 + (l * kx) + c) * n, n);
                }
            }

            Array.Copy(m, i * states * t, lineMarginals, 0, n);
            results[i] = new Segmentation(z[i], posterior, kept, lineMarginals);
        }

        return results;
    }
}
