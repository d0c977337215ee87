namespace RA3.Kernels.Reference;

/// <summary>
/// The temporal ELBO over one trace (spec §4), in log space and double, with K candidate
/// rationales per boundary. Lines i = 0..n−1; the state at line i is the active abstraction s:
/// 0 = no rationale, s = 1 + (j − 1)·K + k = candidate k of the rationale written at boundary j
/// (so a think at line i starts one of the states 1 + i·K .. (i + 1)·K). State (i, s) exists for
/// boundary(s) ≤ i + 1 and, with a span limit, i + 1 − boundary(s) &lt; maxSpan (s ≥ 1). With
/// K = 1 the state is the boundary j itself. seg [1 + T·K, T] (seg[s, i] = log π(line i | s)),
/// priorThink [T, K] (priorThink[i, k] = log prior of a think at boundary i + 1 with candidate k),
/// priorAct = log α. F[i, s] = log weight of lines before i with state s at line i:
///   F[0, 0] = priorAct, F[0, 1 + k] = priorThink[0, k];
///   F[i, s] = F[i−1, s] + seg[s, i−1] + priorAct (stay, boundary(s) ≤ i);
///   F[i, 1 + i·K + k] = logsumexp_s (F[i−1, s] + seg[s, i−1]) + priorThink[i, k] (think);
///   log Z = logsumexp_s (F[n−1, s] + seg[s, n−1]).
/// B[i, s] = log weight of lines i.. given state s at line i, and the marginal
/// P(line i under s) = exp(F + B − log Z) = ∂ log Z / ∂ seg[s, i].
/// </summary>
internal static partial class ReferenceKernels
{
    /// <summary>
    /// For B traces of up to T lines with K candidates per boundary (seg [B, 1 + T·K, T],
    /// priorThink [B, T·K], lengths [B]): logZ [B], thinkPosterior [B, T·K] (P(think at boundary
    /// i + 1 with candidate k) = marginal[1 + i·K + k, i]) and lineMarginals [B, 1 + T·K, T]; zero past
    /// a trace's length and for impossible states.
    /// </summary>
    public static void ElboForwardBackward(ReadOnlySpan<float> seg, ReadOnlySpan<float> priorThink, float priorAct, ReadOnlySpan<int> lengths, int maxSpan, int candidates, Span<float> logZ, Span<float> thinkPosterior, Span<float> lineMarginals)
    {
        int k = candidates, t = priorThink.Length / lengths.Length / k, table = ((t * k) + 1) * t;
        for (int b = 0; b < lengths.Length; b++)
        {
            var trace = new ElboTrace(seg.Slice(b * table, table), priorThink.Slice(b * t * k, t * k), priorAct, lengths[b], maxSpan, k);
            double z = trace.Forward(viterbi: false, out _);
            var back = trace.Backward();
            var marginals = lineMarginals.Slice(b * table, table);
            var posterior = thinkPosterior.Slice(b * t * k, t * k);
            marginals.Clear();
            posterior.Clear();
            logZ[b] = (float)z;
            if (double.IsNegativeInfinity(z))
            {
                continue;  // no assignment is possible: no mass anywhere (exp(−∞ − −∞) would be NaN)
            }

            for (int i = 0; i < trace.N; i++)
            {
                for (int s = 0; s <= (i + 1) * k; s++)
                {
                    marginals[(s * t) + i] = (float)Math.Exp(trace.F[i, s] + back[i, s] - z);
                }

                for (int c = 0; c < k; c++)
                {
                    posterior[(i * k) + c] = marginals[((1 + (i * k) + c) * t) + i];
                }
            }
        }
    }

    /// <summary>
    /// The MAP assignment (max for log-sum-exp): bestScore [B], abstraction [B, T] = the state of
    /// each line, −1 past the trace's length. Ties go to the lowest state.
    /// </summary>
    public static void ElboViterbi(ReadOnlySpan<float> seg, ReadOnlySpan<float> priorThink, float priorAct, ReadOnlySpan<int> lengths, int maxSpan, int candidates, Span<float> bestScore, Span<int> abstraction)
    {
        int k = candidates, t = priorThink.Length / lengths.Length / k, table = ((t * k) + 1) * t;
        for (int b = 0; b < lengths.Length; b++)
        {
            var trace = new ElboTrace(seg.Slice(b * table, table), priorThink.Slice(b * t * k, t * k), priorAct, lengths[b], maxSpan, k);
            bestScore[b] = (float)trace.Forward(viterbi: true, out int[] from);
            var line = abstraction.Slice(b * t, t);
            line.Fill(-1);
            int state = from[trace.N];
            for (int i = trace.N - 1; i >= 0; i--)
            {
                line[i] = state;
                if (state > i * k)
                {
                    state = from[i];  // the state started at line i: before it, the best state the think came from
                }
            }
        }
    }

    /// <summary>One trace's tables.</summary>
    private sealed class ElboTrace
    {
        private readonly float[] seg, priorThink;
        private readonly int t, k, maxSpan;
        private readonly double act;

        public ElboTrace(ReadOnlySpan<float> seg, ReadOnlySpan<float> priorThink, float priorAct, int n, int maxSpan, int k)
        {
            this.seg = seg.ToArray();
            this.priorThink = priorThink.ToArray();
            this.k = k;
            t = priorThink.Length / k;
            act = priorAct;
            N = n;
            this.maxSpan = maxSpan;
            F = new double[n, (n * k) + 1];
        }

        public int N { get; }

        public double[,] F { get; }

        /// <summary>
        /// Fills F; returns log Z, or with <paramref name="viterbi"/> the best score, with from[i] =
        /// the best state before a think at line i (i &lt; N) and from[N] = the best final state.
        /// </summary>
        public double Forward(bool viterbi, out int[] from)
        {
            from = new int[N + 1];
            for (int i = 0; i < N; i++)
            {
                for (int s = 0; s <= N * k; s++)
                {
                    F[i, s] = double.NegativeInfinity;
                }
            }

            F[0, 0] = act;
            for (int c = 0; c < k; c++)
            {
                F[0, 1 + c] = priorThink[c];
            }

            for (int i = 1; i < N; i++)
            {
                (double into, from[i]) = Combine(i - 1, viterbi);
                for (int s = 0; s <= i * k; s++)
                {
                    F[i, s] = Live(s, i) ? F[i - 1, s] + Seg(s, i - 1) + act : double.NegativeInfinity;
                }

                for (int c = 0; c < k; c++)
                {
                    F[i, 1 + (i * k) + c] = into + priorThink[(i * k) + c];
                }
            }

            (double result, from[N]) = Combine(N - 1, viterbi);
            return result;
        }

        /// <summary>B[i, s] for the live states.</summary>
        public double[,] Backward()
        {
            var b = new double[N, (N * k) + 1];
            for (int i = N - 1; i >= 0; i--)
            {
                double think = double.NegativeInfinity;
                for (int c = 0; i < N - 1 && c < k; c++)
                {
                    think = LogAddExp(think, priorThink[((i + 1) * k) + c] + b[i + 1, 1 + ((i + 1) * k) + c]);
                }

                for (int s = 0; s <= N * k; s++)
                {
                    if (s > (i + 1) * k || !Live(s, i))
                    {
                        b[i, s] = double.NegativeInfinity;
                        continue;
                    }

                    if (i == N - 1)
                    {
                        b[i, s] = Seg(s, i);
                        continue;
                    }

                    double stay = Live(s, i + 1) ? act + b[i + 1, s] : double.NegativeInfinity;
                    b[i, s] = Seg(s, i) + LogAddExp(stay, think);
                }
            }

            return b;
        }

        private double Seg(int s, int i) => seg[(s * t) + i];

        /// <summary>Whether state s exists at line i: its boundary (1 + (s − 1)/K) is at most i + 1 and, with a span limit, i + 1 − boundary &lt; maxSpan.</summary>
        private bool Live(int s, int i)
        {
            int j = s == 0 ? 0 : 1 + ((s - 1) / k);
            return j <= i + 1 && (j == 0 || maxSpan == 0 || i + 1 - j < maxSpan);
        }

        /// <summary>logsumexp (or max, with its first arg) over the states s ≤ (i + 1)·K of F[i, s] + seg[s, i].</summary>
        private (double Value, int Arg) Combine(int i, bool max)
        {
            double best = double.NegativeInfinity;
            int arg = 0;
            for (int s = 0; s <= (i + 1) * k; s++)
            {
                double x = F[i, s] + Seg(s, i);
                if (x > best)
                {
                    (best, arg) = (x, s);
                }
            }

            if (max || double.IsNegativeInfinity(best))
            {
                return (best, arg);
            }

            double sum = 0;
            for (int s = 0; s <= (i + 1) * k; s++)
            {
                sum += Math.Exp(F[i, s] + Seg(s, i) - best);
            }

            return (best + Math.Log(sum), arg);
        }

        private static double LogAddExp(double a, double b)
        {
            double m = Math.Max(a, b);
            return double.IsNegativeInfinity(m) ? m : m + Math.Log(Math.Exp(a - m) + Math.Exp(b - m));
        }
    }
}
