namespace RA3.Kernels.Reference;

/// <summary>
/// Drawing one token per row of logits (<see cref="Ops.Backend.SampleTokens"/>), without sorting
/// the vocabulary: the top-k and top-p (nucleus) sets are found by bisection on the value of the
/// tempered logit. Every choice is defined here, and the kernels follow it:
/// <list type="bullet">
/// <item>z_v = logit_v / temperature in float32 for the allowed tokens (not banned, logit finite); w_v = exp(z_v − max z), in double.</item>
/// <item>Top-k keeps the k largest z; top-p then keeps, among those, the smallest set of largest z whose mass Σ w reaches p of theirs. Tokens tied at a set's boundary join in index order until the set is full.</item>
/// <item>The draw walks the kept tokens in index order and takes the first whose cumulative w exceeds u · (their total).</item>
/// <item>logProb = log softmax(logits)[token] over all V (the policy's, untempered); sampleLogProb = log of the probability the draw gave the token (0 for greedy); probes get log softmax(logits)[probe].</item>
/// <item>Temperature 0 is greedy: the first largest allowed logit. A row with a NaN logit or no allowed token gets token −1 and NaN log-probabilities.</item>
/// </list>
/// </summary>
internal static partial class ReferenceKernels
{
    /// <summary>
    /// logits [B, V], uniforms [B], banned [V] (nonzero: never drawn; empty: none), probes [B, P]
    /// (−1: none); writes tokens, logProbs and sampleLogProbs [B], probeLogProbs [B, P] and, when not
    /// empty, entropies [B] (−Σ p log p of softmax(logits)).
    /// </summary>
    public static void SampleTokens(ReadOnlySpan<float> logits, ReadOnlySpan<float> uniforms, float temperature, float topP, int topK, ReadOnlySpan<int> banned, ReadOnlySpan<int> probes, Span<int> tokens, Span<float> logProbs, Span<float> sampleLogProbs, Span<float> probeLogProbs, Span<float> entropies)
    {
        int b = uniforms.Length, v = logits.Length / b, p = b == 0 ? 0 : probes.Length / b;
        var z = new float[v];
        var allowed = new bool[v];
        for (int r = 0; r < b; r++)
        {
            var row = logits.Slice(r * v, v);
            var rowProbes = probes.Slice(r * p, p);
            var rowProbeLogProbs = probeLogProbs.Slice(r * p, p);
            double lse = LogSumExp(row);
            bool nan = row.ContainsAnyInRange(float.NaN, float.NaN) || double.IsNaN(lse);
            for (int i = 0; i < p; i++)
            {
                rowProbeLogProbs[i] = nan ? float.NaN : rowProbes[i] < 0 ? 0f : (float)(row[rowProbes[i]] - lse);
            }

            if (!entropies.IsEmpty)
            {
                double entropy = 0;
                for (int i = 0; i < v && !nan; i++)
                {
                    double logP = row[i] - lse;
                    entropy -= row[i] > float.NegativeInfinity ? Math.Exp(logP) * logP : 0;
                }

                entropies[r] = nan ? float.NaN : (float)entropy;
            }

            int count = 0;
            for (int i = 0; i < v; i++)
            {
                allowed[i] = !nan && (banned.IsEmpty || banned[i] == 0) && row[i] > float.NegativeInfinity;
                count += allowed[i] ? 1 : 0;
            }

            if (count == 0)
            {
                (tokens[r], logProbs[r], sampleLogProbs[r]) = (-1, float.NaN, float.NaN);
                continue;
            }

            if (temperature == 0f)
            {
                int best = -1;
                for (int i = 0; i < v; i++)
                {
                    best = allowed[i] && (best < 0 || row[i] > row[best]) ? i : best;
                }

                (tokens[r], logProbs[r], sampleLogProbs[r]) = (best, (float)(row[best] - lse), 0f);
                continue;
            }

            float max = float.NegativeInfinity;
            for (int i = 0; i < v; i++)
            {
                z[i] = allowed[i] ? row[i] / temperature : float.NegativeInfinity;
                max = Math.Max(max, z[i]);
            }

            double W(int i) => Math.Exp(z[i] - max);

            // Top-k: the k largest z, ties at the k-th value in index order.
            var keptK = topK > 0 && topK < count ? Kept(z, allowed, Threshold(z, allowed, _ => 1, topK)) : allowed;

            // Top-p among those: the smallest set of largest z whose mass reaches p of theirs.
            double totalK = 0;
            for (int i = 0; i < v; i++)
            {
                totalK += keptK[i] ? W(i) : 0;
            }

            var kept = topP < 1f ? Kept(z, keptK, Threshold(z, keptK, W, topP * totalK)) : keptK;
            double mass = 0;
            for (int i = 0; i < v; i++)
            {
                mass += kept[i] ? W(i) : 0;
            }

            double target = uniforms[r] * mass, acc = 0;
            int token = -1;
            for (int i = 0; i < v && (token < 0 || acc <= target); i++)
            {
                if (kept[i])
                {
                    acc += W(i);
                    token = i;  // the last kept token so far: the draw if u · mass is not passed before the end
                    if (acc > target)
                    {
                        break;
                    }
                }
            }

            (tokens[r], logProbs[r], sampleLogProbs[r]) = (token, (float)(row[token] - lse), (float)(z[token] - max - Math.Log(mass)));
        }
    }

    /// <summary>
    /// The set boundary of a count or mass <paramref name="target"/>: the largest value τ such that
    /// the measure (<paramref name="measure"/> summed) of the candidates with z ≥ τ reaches it, and
    /// how many candidates tied at τ join in index order (those above τ fall short of it).
    /// </summary>
    private static (float Tau, int Quota) Threshold(float[] z, bool[] candidate, Func<int, double> measure, double target)
    {
        double Above(float tau, bool strict)
        {
            double sum = 0;
            for (int i = 0; i < z.Length; i++)
            {
                sum += candidate[i] && (strict ? z[i] > tau : z[i] >= tau) ? measure(i) : 0;
            }

            return sum;
        }

        float top = float.NegativeInfinity, bottom = float.PositiveInfinity;
        for (int i = 0; i < z.Length; i++)
        {
            if (candidate[i])
            {
                (top, bottom) = (Math.Max(top, z[i]), Math.Min(bottom, z[i]));
            }
        }

        // Bisection on the float's order-preserving integer key: Above(key) is non-increasing.
        int lo = OrderKey(bottom), hi = OrderKey(top);
        while (lo < hi)
        {
            int mid = lo + (int)(((long)hi - lo + 1) / 2);
            if (Above(FromOrderKey(mid), strict: false) >= target)
            {
                lo = mid;
            }
            else
            {
                hi = mid - 1;
            }
        }

        float tau = SmallestAtLeast(z, candidate, FromOrderKey(lo));
        double above = Above(tau, strict: true);
        int quota = 0;
        for (int i = 0; i < z.Length && above < target; i++)
        {
            if (candidate[i] && z[i] == tau)
            {
                above += measure(i);
                quota++;
            }
        }

        return (tau, quota);
    }

    /// <summary>The smallest candidate value at or above <paramref name="tau"/>.</summary>
    private static float SmallestAtLeast(float[] z, bool[] candidate, float tau)
    {
        float best = float.PositiveInfinity;
        for (int i = 0; i < z.Length; i++)
        {
            best = candidate[i] && z[i] >= tau ? Math.Min(best, z[i]) : best;
        }

        return best;
    }

    /// <summary>The candidates above the boundary τ and the first Quota of those tied at τ, in index order.</summary>
    private static bool[] Kept(float[] z, bool[] candidate, (float Tau, int Quota) boundary)
    {
        var (tau, quota) = boundary;
        var kept = new bool[z.Length];
        for (int i = 0, tied = 0; i < z.Length; i++)
        {
            kept[i] = candidate[i] && (z[i] > tau || (z[i] == tau && tied++ < quota));
        }

        return kept;
    }

    /// <summary>A float's order-preserving 32-bit key (negative floats reversed), so integer bisection walks float values in order.</summary>
    internal static int OrderKey(float x)
    {
        int bits = BitConverter.SingleToInt32Bits(x);
        return bits >= 0 ? bits : bits ^ int.MaxValue;
    }

    /// <summary>The float of an order key.</summary>
    internal static float FromOrderKey(int key) => BitConverter.Int32BitsToSingle(key >= 0 ? key : key ^ int.MaxValue);
}
