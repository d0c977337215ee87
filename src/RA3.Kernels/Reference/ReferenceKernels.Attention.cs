using RA3.Kernels.Ops;

namespace RA3.Kernels.Reference;

/// <summary>
/// Causal self-attention with grouped-query heads, scale 1/√D: q [B, T, Hq, D], k and v
/// [B, T, Hkv, D], query head h reads kv head h / (Hq / Hkv).
/// </summary>
internal static partial class ReferenceKernels
{
    /// <summary>Shapes of one attention call.</summary>
    /// <param name="B">Batch.</param>
    /// <param name="T">Sequence length.</param>
    /// <param name="Hq">Query heads.</param>
    /// <param name="Hkv">Key/value heads (divides Hq).</param>
    /// <param name="D">Head dimension.</param>
    public readonly record struct AttentionShape(int B, int T, int Hq, int Hkv, int D)
    {
        /// <summary>Offset of q[b, t, h, 0].</summary>
        public int Q(int b, int t, int h) => (((b * T) + t) * Hq + h) * D;

        /// <summary>Offset of k[b, t, kv head of query head h, 0].</summary>
        public int K(int b, int t, int h) => (((b * T) + t) * Hkv + (h / (Hq / Hkv))) * D;

        /// <summary>Offset of probs[b, h, i, 0] ([B, Hq, T, T]) or of the lse row [B, Hq, T] times T.</summary>
        public int Row(int b, int h, int i) => (((b * Hq) + h) * T) + i;
    }

    /// <summary>
    /// Plain attention: probs [B, Hq, T, T] = softmax over keys j ≤ i of q·k/√D (zero above the
    /// diagonal), output [B, T, Hq, D] = probs · v.
    /// </summary>
    public static void Attention(AttentionShape s, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> output, Span<float> probs)
    {
        Span<double> p = new double[s.T];
        for (int b = 0; b < s.B; b++)
        {
            for (int h = 0; h < s.Hq; h++)
            {
                for (int i = 0; i < s.T; i++)
                {
                    double lse = CausalRow(s, b, h, i, 0, q, k, p);
                    var prow = probs.Slice(s.Row(b, h, i) * s.T, s.T);
                    prow.Clear();
                    for (int j = 0; j <= i; j++)
                    {
                        prow[j] = (float)Math.Exp(p[j] - lse);
                    }

                    WeightedValues(s, b, h, i, prow, v, output);
                }
            }
        }
    }

    /// <summary>Plain attention backward from the saved probs: accumulates dq, dk, dv for dOutput [B, T, Hq, D].</summary>
    public static void AttentionBackward(AttentionShape s, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, ReadOnlySpan<float> probs, ReadOnlySpan<float> dOutput, Span<float> dq, Span<float> dk, Span<float> dv)
    {
        Span<double> p = new double[s.T];
        for (int b = 0; b < s.B; b++)
        {
            for (int h = 0; h < s.Hq; h++)
            {
                for (int i = 0; i < s.T; i++)
                {
                    var prow = probs.Slice(s.Row(b, h, i) * s.T, i + 1);
                    for (int j = 0; j <= i; j++)
                    {
                        p[j] = prow[j];
                    }

                    RowBackward(s, b, h, i, p[..(i + 1)], q, k, v, dOutput, dq, dk, dv);
                }
            }
        }
    }

    /// <summary>
    /// Fused attention's definition: the same output, and lse [B, Hq, T] = log Σ_{j ≤ i} exp(q·k/√D)
    /// instead of the probabilities. Query rows at or past lengths[b] (lengths [B], or empty = all T)
    /// get output 0 and lse 0. With <paramref name="window"/> &gt; 0 query i sees keys
    /// i − window + 1 .. i only (the others weigh 0).
    /// </summary>
    public static void FlashAttention(AttentionShape s, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, ReadOnlySpan<int> lengths, Span<float> output, Span<float> lse, int window = 0)
    {
        Span<double> p = new double[s.T];
        Span<float> weights = new float[s.T];
        for (int b = 0; b < s.B; b++)
        {
            int n = lengths.IsEmpty ? s.T : lengths[b];
            for (int h = 0; h < s.Hq; h++)
            {
                for (int i = 0; i < s.T; i++)
                {
                    if (i >= n)
                    {
                        output.Slice(s.Q(b, i, h), s.D).Clear();
                        lse[s.Row(b, h, i)] = 0f;
                        continue;
                    }

                    double z = CausalRow(s, b, h, i, SlidingWindow.FirstKey(i, window), q, k, p);
                    for (int j = 0; j <= i; j++)
                    {
                        weights[j] = (float)Math.Exp(p[j] - z);
                    }

                    WeightedValues(s, b, h, i, weights[..(i + 1)], v, output);
                    lse[s.Row(b, h, i)] = (float)z;
                }
            }
        }
    }

    /// <summary>Fused attention backward: probabilities recomputed from lse; accumulates dq, dk, dv; padded query rows contribute nothing.</summary>
    public static void FlashAttentionBackward(AttentionShape s, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, ReadOnlySpan<int> lengths, ReadOnlySpan<float> lse, ReadOnlySpan<float> dOutput, Span<float> dq, Span<float> dk, Span<float> dv, int window = 0)
    {
        Span<double> p = new double[s.T];
        for (int b = 0; b < s.B; b++)
        {
            int n = lengths.IsEmpty ? s.T : lengths[b];
            for (int h = 0; h < s.Hq; h++)
            {
                for (int i = 0; i < n; i++)
                {
                    CausalRow(s, b, h, i, SlidingWindow.FirstKey(i, window), q, k, p);
                    for (int j = 0; j <= i; j++)
                    {
                        p[j] = Math.Exp(p[j] - lse[s.Row(b, h, i)]);
                    }

                    RowBackward(s, b, h, i, p[..(i + 1)], q, k, v, dOutput, dq, dk, dv);
                }
            }
        }
    }

    /// <summary>
    /// One decode step: kNew, vNew [B, Hkv, D] are written into kCache, vCache [B, S, Hkv, D] at
    /// position lengths[b], then q [B, Hq, D] attends over positions 0..lengths[b] (the last
    /// <paramref name="window"/> of them when it is &gt; 0) into output [B, Hq, D].
    /// </summary>
    public static void AttentionDecode(int hq, int hkv, int d, ReadOnlySpan<float> q, ReadOnlySpan<float> kNew, ReadOnlySpan<float> vNew, Span<float> kCache, Span<float> vCache, ReadOnlySpan<int> lengths, Span<float> output, int window = 0)
    {
        int batch = lengths.Length, row = hkv * d, cap = kCache.Length / (batch * row);
        for (int b = 0; b < batch; b++)
        {
            kNew.Slice(b * row, row).CopyTo(kCache.Slice(((b * cap) + lengths[b]) * row, row));
            vNew.Slice(b * row, row).CopyTo(vCache.Slice(((b * cap) + lengths[b]) * row, row));
        }

        var cache = new AttentionShape(batch, cap, hq, hkv, d);
        var query = new AttentionShape(batch, 1, hq, hkv, d);
        Span<double> p = new double[cap];
        for (int b = 0; b < batch; b++)
        {
            int n = lengths[b] + 1, start = SlidingWindow.FirstKey(lengths[b], window);
            for (int h = 0; h < hq; h++)
            {
                double max = double.NegativeInfinity, sum = 0;
                for (int j = start; j < n; j++)
                {
                    p[j] = Dot(q.Slice(query.Q(b, 0, h), d), kCache.Slice(cache.K(b, j, h), d)) / Math.Sqrt(d);
                    max = Math.Max(max, p[j]);
                }

                for (int j = start; j < n; j++)
                {
                    sum += Math.Exp(p[j] - max);
                }

                var o = output.Slice(query.Q(b, 0, h), d);
                for (int c = 0; c < d; c++)
                {
                    double acc = 0;
                    for (int j = start; j < n; j++)
                    {
                        acc += Math.Exp(p[j] - max) / sum * vCache[cache.K(b, j, h) + c];
                    }

                    o[c] = (float)acc;
                }
            }
        }
    }

    /// <summary>
    /// Rows over a KV cache (q [N, Hq, D], kNew and vNew [N, Hkv, D], caches [Bc, S, Hkv, D], slots
    /// and positions [N]): every row's key and value written at (slot, position), then row r attends
    /// over its slot's positions first..positions[r]; rows of slot −1 write nothing and output 0.
    /// </summary>
    public static void AttentionCached(int hq, int hkv, int d, int capacity, ReadOnlySpan<float> q, ReadOnlySpan<float> kNew, ReadOnlySpan<float> vNew, Span<float> kCache, Span<float> vCache, ReadOnlySpan<int> slots, ReadOnlySpan<int> positions, Span<float> output, int window)
    {
        int n = slots.Length, row = hkv * d;
        for (int r = 0; r < n; r++)
        {
            if (slots[r] >= 0)
            {
                int at = ((slots[r] * capacity) + positions[r]) * row;
                kNew.Slice(r * row, row).CopyTo(kCache.Slice(at, row));
                vNew.Slice(r * row, row).CopyTo(vCache.Slice(at, row));
            }
        }

        var cache = new AttentionShape(kCache.Length / (capacity * row), capacity, hq, hkv, d);
        var query = new AttentionShape(n, 1, hq, hkv, d);
        Span<double> p = new double[capacity];
        for (int r = 0; r < n; r++)
        {
            for (int h = 0; h < hq; h++)
            {
                var o = output.Slice(query.Q(r, 0, h), d);
                o.Clear();
                if (slots[r] < 0)
                {
                    continue;
                }

                int b = slots[r], last = positions[r], start = SlidingWindow.FirstKey(last, window);
                double max = double.NegativeInfinity, sum = 0;
                for (int j = start; j <= last; j++)
                {
                    p[j] = Dot(q.Slice(query.Q(r, 0, h), d), kCache.Slice(cache.K(b, j, h), d)) / Math.Sqrt(d);
                    max = Math.Max(max, p[j]);
                }

                for (int j = start; j <= last; j++)
                {
                    sum += Math.Exp(p[j] - max);
                }

                for (int c = 0; c < d; c++)
                {
                    double acc = 0;
                    for (int j = start; j <= last; j++)
                    {
                        acc += Math.Exp(p[j] - max) / sum * vCache[cache.K(b, j, h) + c];
                    }

                    o[c] = (float)acc;
                }
            }
        }
    }

    /// <summary>Scaled scores p[j] = q[b, i, h]·k[b, j]/√D for first ≤ j ≤ i (−∞ below first, so they weigh 0); returns their log-sum-exp.</summary>
    private static double CausalRow(AttentionShape s, int b, int h, int i, int first, ReadOnlySpan<float> q, ReadOnlySpan<float> k, Span<double> p)
    {
        double max = double.NegativeInfinity, scale = 1 / Math.Sqrt(s.D);
        for (int j = 0; j <= i; j++)
        {
            p[j] = j < first ? double.NegativeInfinity : Dot(q.Slice(s.Q(b, i, h), s.D), k.Slice(s.K(b, j, h), s.D)) * scale;
            max = Math.Max(max, p[j]);
        }

        double sum = 0;
        for (int j = first; j <= i; j++)
        {
            sum += Math.Exp(p[j] - max);
        }

        return max + Math.Log(sum);
    }

    /// <summary>output[b, i, h, :] = Σ_j weights[j] · v[b, j, kv head of h, :].</summary>
    private static void WeightedValues(AttentionShape s, int b, int h, int i, ReadOnlySpan<float> weights, ReadOnlySpan<float> v, Span<float> output)
    {
        var o = output.Slice(s.Q(b, i, h), s.D);
        for (int c = 0; c < s.D; c++)
        {
            double acc = 0;
            for (int j = 0; j < weights.Length; j++)
            {
                acc += (double)weights[j] * v[s.K(b, j, h) + c];
            }

            o[c] = (float)acc;
        }
    }

    /// <summary>
    /// The backward of one query row from its probabilities p[j ≤ i]: dP_j = dO·v_j,
    /// dS_j = p_j(dP_j − Σ p·dP), dq += dS·k/√D, dk_j += dS_j·q/√D, dv_j += p_j·dO.
    /// </summary>
    private static void RowBackward(AttentionShape s, int b, int h, int i, ReadOnlySpan<double> p, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, ReadOnlySpan<float> dOutput, Span<float> dq, Span<float> dk, Span<float> dv)
    {
        double scale = 1 / Math.Sqrt(s.D);
        var dO = dOutput.Slice(s.Q(b, i, h), s.D);
        var qi = q.Slice(s.Q(b, i, h), s.D);
        Span<double> dp = new double[p.Length];
        double rowDot = 0;
        for (int j = 0; j < p.Length; j++)
        {
            dp[j] = Dot(dO, v.Slice(s.K(b, j, h), s.D));
            rowDot += p[j] * dp[j];
        }

        for (int j = 0; j < p.Length; j++)
        {
            double ds = p[j] * (dp[j] - rowDot) * scale;
            int kj = s.K(b, j, h);
            for (int c = 0; c < s.D; c++)
            {
                dq[s.Q(b, i, h) + c] += (float)(ds * k[kj + c]);
                dk[kj + c] += (float)(ds * qi[c]);
                dv[kj + c] += (float)(p[j] * dO[c]);
            }
        }
    }

    private static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++)
        {
            sum += (double)a[i] * b[i];
        }

        return sum;
    }
}
