namespace RA3.Train.Midtraining;

/// <summary>The E-step's reward and the group-relative advantages of its policy gradient (spec §3).</summary>
public static class Rewards
{
    /// <summary>
    /// r_t = log π(a_t .. a_{t+k−1} | s_t, z_t) − c·[d_t = think]: <paramref name="lineLogProbs"/>
    /// holds log π of each line under the rollout's context (0-based, line t at index t−1), so the
    /// reward of boundary t (1-based) sums the k lines from t on (fewer at the end of the trace).
    /// </summary>
    public static double Step(ReadOnlySpan<double> lineLogProbs, int t, int k, bool thinks, double c)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(t, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(t, lineLogProbs.Length);
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        double sum = 0;
        for (int i = t - 1; i < Math.Min(lineLogProbs.Length, t - 1 + k); i++)
        {
            sum += lineLogProbs[i];
        }

        return sum - (thinks ? c : 0.0);
    }

    /// <summary>
    /// GRPO advantages of one group of G rollouts: reward minus the group mean, divided by the
    /// group's standard deviation when <paramref name="normalise"/> (and it is not zero: equal
    /// rewards give zero advantages).
    /// </summary>
    public static double[] GroupAdvantages(ReadOnlySpan<double> rewards, bool normalise)
    {
        if (rewards.IsEmpty)
        {
            return [];
        }

        double mean = 0;
        foreach (double r in rewards)
        {
            mean += r;
        }

        mean /= rewards.Length;
        double variance = 0;
        foreach (double r in rewards)
        {
            variance += (r - mean) * (r - mean);
        }

        double std = Math.Sqrt(variance / rewards.Length);
        var advantages = new double[rewards.Length];
        for (int i = 0; i < rewards.Length; i++)
        {
            advantages[i] = normalise ? (std > 1e-12 ? (rewards[i] - mean) / std : 0.0) : rewards[i] - mean;
        }

        return advantages;
    }
}
