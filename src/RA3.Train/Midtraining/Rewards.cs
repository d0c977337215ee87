using RA3.Model.Inference;

namespace RA3.Train.Midtraining;

/// <summary>
/// The E-step's reward and the advantages of its policy gradient (spec §3), in the method's terms:
/// a line's likelihood log π(a_t | s_t, z_t), the cost c of a think, the horizon k, the baseline and
/// the scale of the advantages.
/// </summary>
public static class Rewards
{
    /// <summary>
    /// Per line (0-based), log π(line | the rollout's context) under the scorer: the sum of
    /// <paramref name="logProbs"/> over the line's tokens. With <paramref name="decisionFree"/>, a
    /// line the rollout acted on at a decision is taken given "no comment here": its first token's
    /// probability carries the choice not to open a comment, which a think pays nowhere (its opening
    /// token is the rationale's, outside the reward), so the line gets − log(1 − π(comment opener))
    /// from <paramref name="thinkLogProbs"/> (log π of <see cref="Rollout.ThinkIds"/> at that position).
    /// </summary>
    public static double[] LineLogProbs(Rollout rollout, ReadOnlySpan<float> logProbs, ReadOnlySpan<float> thinkLogProbs, bool decisionFree)
    {
        ArgumentNullException.ThrowIfNull(rollout);
        var lines = new double[rollout.Trace.Count];
        for (int p = 1; p < rollout.Ids.Length; p++)
        {
            int line = rollout.Owner[p];
            if (line < 0)
            {
                continue;
            }

            lines[line] += logProbs[p];
            if (decisionFree && rollout.ThinkIds[p] >= 0)
            {
                lines[line] -= Log1MinusExp(thinkLogProbs[p]);
            }
        }

        return lines;
    }

    /// <summary>Per boundary (0-based), the log-probability of the comment line written before it (0 where none): the rationale tokens that precede each code line.</summary>
    public static double[] RationaleLogProbs(Rollout rollout, ReadOnlySpan<float> logProbs)
    {
        ArgumentNullException.ThrowIfNull(rollout);
        var sums = new double[rollout.Trace.Count];
        double pending = 0;
        for (int p = 1; p < rollout.Ids.Length; p++)
        {
            if (rollout.Owner[p] == LineTokens.RationaleOwner)
            {
                pending += logProbs[p];
            }
            else if (rollout.Owner[p] >= 0)
            {
                sums[rollout.Owner[p]] += pending;
                pending = 0;
            }
        }

        return sums;
    }

    /// <summary>
    /// r_t per boundary (0-based index t − 1): the return of the lines from t on — k lines
    /// (<paramref name="k"/> ≥ 1, fewer at the end of the trace), or with k = 0 the lines of the
    /// abstraction that is active at line t, up to the next think — minus c·[d_t = think], plus the
    /// rationale's own log-probability when <paramref name="rationaleLogProbs"/> is given (the
    /// rationale-log-probability prior switched on).
    /// </summary>
    public static double[] Step(ReadOnlySpan<double> lines, ReadOnlySpan<bool> thinks, int k, double c, ReadOnlySpan<double> rationaleLogProbs = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        if (thinks.Length != lines.Length || (!rationaleLogProbs.IsEmpty && rationaleLogProbs.Length != lines.Length))
        {
            throw new ArgumentException($"{lines.Length} lines need as many think flags and rationale log-probabilities, got {thinks.Length} and {rationaleLogProbs.Length}");
        }

        int n = lines.Length;
        var rewards = new double[n];
        for (int t = 0; t < n; t++)
        {
            int end = k > 0 ? Math.Min(n, t + k) : t + 1;
            while (k == 0 && end < n && !thinks[end])
            {
                end++;  // the span: until the next think
            }

            double sum = 0;
            for (int l = t; l < end; l++)
            {
                sum += lines[l];
            }

            rewards[t] = sum - (thinks[t] ? c - (rationaleLogProbs.IsEmpty ? 0 : rationaleLogProbs[t]) : 0);
        }

        return rewards;
    }

    /// <summary>
    /// Advantages of one trace's G rollouts, [G][T]: reward minus the baseline of its boundary — the
    /// group mean of r_t, or <paramref name="baseline"/> (the ELBO posterior's expected reward) — and,
    /// when <paramref name="normalise"/>, divided by the standard deviation of all the trace's
    /// advantages pooled over its boundaries and rollouts. Not per boundary: there a group whose
    /// rewards differ only by what an earlier rationale did to the context (1e-4 nats) would be
    /// blown up to ±1 and credited to a later act. A pooled scale below 1e-8 leaves them unscaled.
    /// </summary>
    public static double[][] Advantages(double[][] rewards, ReadOnlySpan<double> baseline, bool normalise)
    {
        ArgumentNullException.ThrowIfNull(rewards);
        int g = rewards.Length, n = g == 0 ? 0 : rewards[0].Length;
        var advantages = new double[g][];
        for (int i = 0; i < g; i++)
        {
            advantages[i] = new double[n];
        }

        double squares = 0;
        for (int t = 0; t < n; t++)
        {
            double mean = 0;
            for (int i = 0; i < g; i++)
            {
                mean += rewards[i][t] / g;
            }

            double b = baseline.IsEmpty ? mean : baseline[t];
            for (int i = 0; i < g; i++)
            {
                advantages[i][t] = rewards[i][t] - b;
                squares += advantages[i][t] * advantages[i][t];
            }
        }

        double scale = Math.Sqrt(squares / Math.Max(g * n, 1));
        if (normalise && scale > 1e-8)
        {
            foreach (var a in advantages)
            {
                for (int t = 0; t < n; t++)
                {
                    a[t] /= scale;
                }
            }
        }

        return advantages;
    }

    /// <summary>
    /// The ELBO posterior's expected r_t for each boundary (spec §3 (c), the E-step's lower-variance
    /// baseline): the exact expectation over every segmentation of <paramref name="scored"/>'s
    /// candidates, from the DP's line marginals and think posteriors of <paramref name="segmentation"/> —
    /// E[Σ_{l=t}^{t+k−1} seg[z_l, l]] − c·P(think at t) (+ E[the rationale's log-probability] when it
    /// is in the prior).
    /// </summary>
    public static double[] PosteriorBaseline(ScoredTrace scored, Segmentation segmentation, int k, double c, bool withRationale)
    {
        ArgumentNullException.ThrowIfNull(scored);
        ArgumentNullException.ThrowIfNull(segmentation);
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        int n = scored.Lines, kc = scored.Candidates, states = (n * kc) + 1;
        var expected = new double[n];
        for (int l = 0; l < n; l++)
        {
            for (int s = 0; s < states; s++)
            {
                float m = segmentation.LineMarginals[(s * n) + l];
                expected[l] += m > 0 ? m * scored.Seg[(s * n) + l] : 0;  // an impossible state has marginal 0 and seg −∞
            }
        }

        var baseline = new double[n];
        for (int t = 0; t < n; t++)
        {
            for (int l = t; l < Math.Min(n, t + k); l++)
            {
                baseline[t] += expected[l];
            }

            for (int j = 0; j < kc; j++)
            {
                float think = segmentation.ThinkPosterior[(t * kc) + j];
                baseline[t] -= think * c;
                baseline[t] += withRationale && think > 0 ? think * scored.RationaleLogProbs[(t * kc) + j] : 0;
            }
        }

        return baseline;
    }

    /// <summary>
    /// GRPO's group advantages over a flat group of rewards (RLVR): reward minus the group mean,
    /// divided by <paramref name="scale"/> when it is above zero (the group's, the batch's standard
    /// deviation, or 1 for none); equal rewards give zero advantages.
    /// </summary>
    public static double[] GroupAdvantages(ReadOnlySpan<double> rewards, double scale)
    {
        double mean = 0;
        foreach (double r in rewards)
        {
            mean += r / rewards.Length;
        }

        var advantages = new double[rewards.Length];
        for (int i = 0; i < rewards.Length; i++)
        {
            advantages[i] = scale > 1e-12 ? (rewards[i] - mean) / scale : 0.0;
        }

        return advantages;
    }

    /// <summary>The population standard deviation of <paramref name="values"/>.</summary>
    public static double Std(ReadOnlySpan<double> values)
    {
        double mean = 0, squares = 0;
        foreach (double v in values)
        {
            mean += v / values.Length;
        }

        foreach (double v in values)
        {
            squares += (v - mean) * (v - mean);
        }

        return values.IsEmpty ? 0 : Math.Sqrt(squares / values.Length);
    }

    /// <summary>log(1 − eˣ) for x ≤ 0, accurate at both ends (Mächler's split at −log 2).</summary>
    public static double Log1MinusExp(double x) => x > -0.6931471805599453 ? Math.Log(-ExpM1(x)) : LogOnePlus(-Math.Exp(x));

    // log(1 + y) and eˣ − 1 without the cancellation of the naive forms (Goldberg's and Kahan's tricks):
    // the rounding of 1 + y (or eˣ) is divided back out. Log1MinusExp calls them with y in [−½, 0)
    // and x in (−log 2, 0], so u stays in [½, 1] and u == 1 is the only case the quotients cannot take.
    private static double LogOnePlus(double y)
    {
        double u = 1 + y;
        return u == 1 ? y : Math.Log(u) * y / (u - 1);
    }

    private static double ExpM1(double x)
    {
        double u = Math.Exp(x);
        return u == 1 ? x : (u - 1) * x / Math.Log(u);
    }
}
