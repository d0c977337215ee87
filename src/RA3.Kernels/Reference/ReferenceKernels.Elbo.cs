namespace RA3.Kernels.Reference;

/// <summary>
/// The temporal ELBO over one trace (spec §4), in log space and double. Lines i = 0..n−1; the
/// state at line i is the active abstraction j: 0 = no rationale, j ≥ 1 = the rationale written
/// at boundary j (so a think at line i starts state i + 1). State (i, j) exists for j ≤ i + 1 and,
/// with a span limit, i + 1 − j &lt; maxSpan (j ≥ 1). seg [T+1, T] (seg[j, i] = log π(line i | j)),
/// priorThink [T] (priorThink[i] = log prior of a think at boundary i + 1), priorAct = log α.
/// F[i, j] = log weight of lines before i with state j at line i:
///   F[0, 0] = priorAct, F[0, 1] = priorThink[0];
///   F[i, j] = F[i−1, j] + seg[j, i−1] + priorAct (stay, j ≤ i);
///   F[i, i+1] = logsumexp_j (F[i−1, j] + seg[j, i−1]) + priorThink[i] (think);
///   log Z = logsumexp_j (F[n−1, j] + seg[j, n−1]).
/// B[i, j] = log weight of lines i.. given state j at line i, and the marginal
/// P(line i under j) = exp(F + B − log Z) = ∂ log Z / ∂ seg[j, i].
/// </summary>
internal static partial class ReferenceKernels
{
    /// <summary>
    /// For B traces of up to T lines (seg [B, T+1, T], priorThink [B, T], lengths [B]): logZ [B],
    /// thinkPosterior [B, T] (P(think at boundary i + 1) = marginal[i + 1, i]) and lineMarginals
    /// [B, T+1, T]; zero past a trace's length and for impossible states.
    /// </summary>
    public static void ElboForwardBackward(ReadOnlySpan<float> seg, ReadOnlySpan<float> priorThink, float priorAct, ReadOnlySpan<int> lengths, int maxSpan, Span<float> logZ, Span<float> thinkPosterior, Span<float> lineMarginals)
    {
        int t = priorThink.Length / lengths.Length, table = (t + 1) * t;
        for (int b = 0; b < lengths.Length; b++)
        {
            var trace = new ElboTrace(seg.Slice(b * table, table), priorThink.Slice(b * t, t), priorAct, lengths[b], maxSpan);
            double z = trace.Forward(viterbi: false, out _);
            var back = trace.Backward();
            var marginals = lineMarginals.Slice(b * table, table);
            var posterior = thinkPosterior.Slice(b * t, t);
            marginals.Clear();
            posterior.Clear();
            logZ[b] = (float)z;
            if (double.IsNegativeInfinity(z))
            {
                continue;  // no assignment is possible: no mass anywhere (exp(−∞ − −∞) would be NaN)
            }

            for (int i = 0; i < trace.N; i++)
            {
                for (int j = 0; j <= i + 1; j++)
                {
                    marginals[(j * t) + i] = (float)Math.Exp(trace.F[i, j] + back[i, j] - z);
                }

                posterior[i] = marginals[((i + 1) * t) + i];
            }
        }
    }

    /// <summary>
    /// The MAP assignment (max for log-sum-exp): bestScore [B], abstraction [B, T] = the state of
    /// each line, −1 past the trace's length. Ties go to the lowest state.
    /// </summary>
    public static void ElboViterbi(ReadOnlySpan<float> seg, ReadOnlySpan<float> priorThink, float priorAct, ReadOnlySpan<int> lengths, int maxSpan, Span<float> bestScore, Span<int> abstraction)
    {
        int t = priorThink.Length / lengths.Length, table = (t + 1) * t;
        for (int b = 0; b < lengths.Length; b++)
        {
            var trace = new ElboTrace(seg.Slice(b * table, table), priorThink.Slice(b * t, t), priorAct, lengths[b], maxSpan);
            bestScore[b] = (float)trace.Forward(viterbi: true, out int[] from);
            var line = abstraction.Slice(b * t, t);
            line.Fill(-1);
            int state = from[trace.N];
            for (int i = trace.N - 1; i >= 0; i--)
            {
                line[i] = state;
                if (state == i + 1)
                {
                    state = from[i];
                }
            }
        }
    }

    /// <summary>One trace's tables.</summary>
    private sealed class ElboTrace
    {
        private readonly float[] seg, priorThink;
        private readonly int t, maxSpan;
        private readonly double act;

        public ElboTrace(ReadOnlySpan<float> seg, ReadOnlySpan<float> priorThink, float priorAct, int n, int maxSpan)
        {
            this.seg = seg.ToArray();
            this.priorThink = priorThink.ToArray();
            t = priorThink.Length;
            act = priorAct;
            N = n;
            this.maxSpan = maxSpan;
            F = new double[n, n + 1];
        }

        public int N { get; }

        public double[,] F { get; }

        /// <summary>
        /// Fills F; returns log Z, or with <paramref name="viterbi"/> the best score, with
        /// from[i] = the best state before a think at line i (i &lt; N) and from[N] = the best final state.
        /// </summary>
        public double Forward(bool viterbi, out int[] from)
        {
            from = new int[N + 1];
            for (int i = 0; i < N; i++)
            {
                for (int j = 0; j <= N; j++)
                {
                    F[i, j] = double.NegativeInfinity;
                }
            }

            F[0, 0] = act;
            F[0, 1] = priorThink[0];
            for (int i = 1; i < N; i++)
            {
                (double into, from[i]) = Combine(i - 1, viterbi);
                for (int j = 0; j <= i; j++)
                {
                    F[i, j] = Live(j, i) ? F[i - 1, j] + Seg(j, i - 1) + act : double.NegativeInfinity;
                }

                F[i, i + 1] = into + priorThink[i];
            }

            (double result, from[N]) = Combine(N - 1, viterbi);
            return result;
        }

        /// <summary>B[i, j] for the live states.</summary>
        public double[,] Backward()
        {
            var b = new double[N, N + 1];
            for (int i = N - 1; i >= 0; i--)
            {
                for (int j = 0; j <= N; j++)
                {
                    if (j > i + 1 || !Live(j, i))
                    {
                        b[i, j] = double.NegativeInfinity;
                        continue;
                    }

                    if (i == N - 1)
                    {
                        b[i, j] = Seg(j, i);
                        continue;
                    }

                    double stay = Live(j, i + 1) ? act + b[i + 1, j] : double.NegativeInfinity;
                    double think = priorThink[i + 1] + b[i + 1, i + 2];
                    b[i, j] = Seg(j, i) + LogAddExp(stay, think);
                }
            }

            return b;
        }

        private double Seg(int j, int i) => seg[(j * t) + i];

        private bool Live(int j, int i) => j <= i + 1 && (j == 0 || maxSpan == 0 || i + 1 - j < maxSpan);

        /// <summary>logsumexp (or max, with its first arg) over the states j ≤ i + 1 of F[i, j] + seg[j, i].</summary>
        private (double Value, int Arg) Combine(int i, bool max)
        {
            double best = double.NegativeInfinity;
            int arg = 0;
            for (int j = 0; j <= i + 1; j++)
            {
                double x = F[i, j] + Seg(j, i);
                if (x > best)
                {
                    (best, arg) = (x, j);
                }
            }

            if (max || double.IsNegativeInfinity(best))
            {
                return (best, arg);
            }

            double sum = 0;
            for (int j = 0; j <= i + 1; j++)
            {
                sum += Math.Exp(F[i, j] + Seg(j, i) - best);
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
