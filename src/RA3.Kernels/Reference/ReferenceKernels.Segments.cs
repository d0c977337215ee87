namespace RA3.Kernels.Reference;

/// <summary>
/// Latent segment scoring (spec §5): hidden states h [N·L, d], unembedding w [V, d], targets and
/// lineIds [N·L] (−1 = padding, else a line below M), scores [N, M], lse [N·L].
/// </summary>
internal static partial class ReferenceKernels
{
    /// <summary>
    /// lse[r] = log Σ_v exp(h[r]·w[v]) for every row; scores[n, line] = Σ over the rows of
    /// (sequence n, line) of h[r]·w[targets[r]] − lse[r] (scores overwritten).
    /// </summary>
    public static void SegmentScores(ReadOnlySpan<float> h, ReadOnlySpan<float> w, ReadOnlySpan<int> targets, ReadOnlySpan<int> lineIds, int tokensPerSequence, Span<float> scores, Span<float> lse)
    {
        int d = h.Length / targets.Length, vocab = w.Length / d, lines = scores.Length / (targets.Length / tokensPerSequence);
        Span<double> logits = new double[vocab];
        var sums = new double[scores.Length];
        for (int r = 0; r < targets.Length; r++)
        {
            double z = Logits(h.Slice(r * d, d), w, logits);
            lse[r] = (float)z;
            if (lineIds[r] >= 0)
            {
                sums[(r / tokensPerSequence * lines) + lineIds[r]] += logits[targets[r]] - z;
            }
        }

        for (int i = 0; i < scores.Length; i++)
        {
            scores[i] = (float)sums[i];
        }
    }

    /// <summary>
    /// Backward for dScores [N, M]: with g = dScores[n, line] of each row and p = softmax(h[r]·wᵀ),
    /// dlogits = g·(onehot(target) − p); dH[r] += dlogits·w, dW += dlogitsᵀ·h[r].
    /// </summary>
    public static void SegmentScoresBackward(ReadOnlySpan<float> h, ReadOnlySpan<float> w, ReadOnlySpan<int> targets, ReadOnlySpan<int> lineIds, int tokensPerSequence, ReadOnlySpan<float> dScores, Span<float> dH, Span<float> dW)
    {
        int d = h.Length / targets.Length, vocab = w.Length / d, lines = dScores.Length / (targets.Length / tokensPerSequence);
        Span<double> logits = new double[vocab];
        for (int r = 0; r < targets.Length; r++)
        {
            if (lineIds[r] < 0)
            {
                continue;
            }

            double g = dScores[(r / tokensPerSequence * lines) + lineIds[r]];
            var hr = h.Slice(r * d, d);
            double z = Logits(hr, w, logits);
            for (int v = 0; v < vocab; v++)
            {
                double dl = g * ((v == targets[r] ? 1 : 0) - Math.Exp(logits[v] - z));
                for (int c = 0; c < d; c++)
                {
                    dH[(r * d) + c] += (float)(dl * w[(v * d) + c]);
                    dW[(v * d) + c] += (float)(dl * hr[c]);
                }
            }
        }
    }

    /// <summary>logits[v] = hr·w[v]; returns their log-sum-exp.</summary>
    private static double Logits(ReadOnlySpan<float> hr, ReadOnlySpan<float> w, Span<double> logits)
    {
        int d = hr.Length;
        double max = double.NegativeInfinity, sum = 0;
        for (int v = 0; v < logits.Length; v++)
        {
            logits[v] = Dot(hr, w.Slice(v * d, d));
            max = Math.Max(max, logits[v]);
        }

        foreach (double x in logits)
        {
            sum += Math.Exp(x - max);
        }

        return max + Math.Log(sum);
    }
}
