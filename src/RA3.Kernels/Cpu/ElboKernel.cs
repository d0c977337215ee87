namespace RA3.Kernels.Cpu;

/// <summary>
/// The temporal-ELBO semi-Markov recursion of one trace per task (spec §4), with the state
/// tables in trace-local scratch laid out like seg, X[j, t] at j·T + t (t the 0-based line).
/// F[j, t] is the log-weight of lines before t with abstraction j active at line t; B[j, t] the
/// log-weight of lines t.. given that state. State (line t, abstraction j ≥ 1) exists for
/// j ≤ t + 1 and, with a span limit, t + 1 − j &lt; maxSpan.
/// </summary>
internal static unsafe class ElboKernel
{
    /// <summary>Operands of a batch; <see cref="Viterbi"/> selects the max-product decode.</summary>
    public struct Body : IParallelBody
    {
        public float* Seg;
        public float* PriorThink;
        public int* Lengths;
        public float PriorAct;
        public int MaxSpan;
        public int T;
        public float* Scratch;          // [B, T+1, T] floats: F (the marginals reuse the output)
        public float* LogZ;
        public float* ThinkPosterior;
        public float* Marginals;        // [B, T+1, T]; holds F during the forward
        public bool Viterbi;
        public int* Abstraction;        // Viterbi: [B, T]; holds back-pointers during the pass

        public readonly void Run(int b)
        {
            long table = (long)(T + 1) * T;
            float* seg = Seg + (b * table), pt = PriorThink + ((long)b * T);
            int n = Lengths[b];
            if (Viterbi)
            {
                LogZ[b] = Decode(seg, pt, n, Scratch + (b * table), Abstraction + ((long)b * T));
                return;
            }

            float* f = Marginals + (b * table), back = Scratch + (b * table);
            float logZ = Forward(seg, pt, n, f);
            Backward(seg, pt, n, back);
            LogZ[b] = logZ;
            float* post = ThinkPosterior + ((long)b * T);
            new Span<float>(post, T).Clear();
            for (int t = 0; t < T; t++)
            {
                for (int j = 0; j <= T; j++)
                {
                    long i = ((long)j * T) + t;
                    f[i] = t < n && Live(j, t) ? MathF.Exp(f[i] + back[i] - logZ) : 0f;
                }

                if (t < n)
                {
                    post[t] = f[((long)(t + 1) * T) + t];
                }
            }
        }

        private readonly bool Live(int j, int t) => j <= t + 1 && (j == 0 || MaxSpan == 0 || t + 1 - j < MaxSpan);

        /// <summary>Fills F and returns log Z.</summary>
        private readonly float Forward(float* seg, float* pt, int n, float* f)
        {
            for (int j = 0; j <= T; j++)
            {
                f[(long)j * T] = j == 0 ? PriorAct : j == 1 ? pt[0] : float.NegativeInfinity;
            }

            for (int t = 1; t < n; t++)
            {
                // Leaving line t−1 in state j: emit it, then stay (act) or start abstraction t+1 (think).
                float m = float.NegativeInfinity;
                for (int j = 0; j <= t; j++)
                {
                    m = MathF.Max(m, f[((long)j * T) + t - 1] + seg[((long)j * T) + t - 1]);
                }

                double sum = 0;
                for (int j = 0; j <= T; j++)
                {
                    long i = (long)j * T;
                    float emitted = j <= t ? f[i + t - 1] + seg[i + t - 1] : float.NegativeInfinity;
                    if (j <= t && m > float.NegativeInfinity)
                    {
                        sum += Math.Exp(emitted - m);
                    }

                    f[i + t] = j <= t && Live(j, t) ? emitted + PriorAct : float.NegativeInfinity;
                }

                f[((long)(t + 1) * T) + t] = (sum > 0 ? m + (float)Math.Log(sum) : float.NegativeInfinity) + pt[t];
            }

            return End(seg, f, n);
        }

        /// <summary>log Σ_j exp(F[j, n−1] + seg[j, n−1]).</summary>
        private readonly float End(float* seg, float* f, int n)
        {
            float m = float.NegativeInfinity;
            for (int j = 0; j <= n; j++)
            {
                m = MathF.Max(m, f[((long)j * T) + n - 1] + seg[((long)j * T) + n - 1]);
            }

            if (m == float.NegativeInfinity)
            {
                return m;
            }

            double sum = 0;
            for (int j = 0; j <= n; j++)
            {
                sum += Math.Exp(f[((long)j * T) + n - 1] + seg[((long)j * T) + n - 1] - m);
            }

            return m + (float)Math.Log(sum);
        }

        /// <summary>B[j, t] = seg[j, t] + log(exp(act + B[j, t+1]) + exp(think_{t+1} + B[t+2, t+1])).</summary>
        private readonly void Backward(float* seg, float* pt, int n, float* back)
        {
            for (int j = 0; j <= T; j++)
            {
                long i = (long)j * T;
                back[i + n - 1] = Live(j, n - 1) ? seg[i + n - 1] : float.NegativeInfinity;
            }

            for (int t = n - 2; t >= 0; t--)
            {
                float think = pt[t + 1] + back[((long)(t + 2) * T) + t + 1];
                for (int j = 0; j <= T; j++)
                {
                    long i = (long)j * T;
                    if (!Live(j, t))
                    {
                        back[i + t] = float.NegativeInfinity;
                        continue;
                    }

                    float stay = Live(j, t + 1) ? PriorAct + back[i + t + 1] : float.NegativeInfinity;
                    float m = MathF.Max(stay, think);
                    back[i + t] = m == float.NegativeInfinity ? m : seg[i + t] + m + MathF.Log(MathF.Exp(stay - m) + MathF.Exp(think - m));
                }
            }
        }

        /// <summary>Max-product pass with back-pointers for new abstractions; writes the abstraction per line; returns the best score.</summary>
        private readonly float Decode(float* seg, float* pt, int n, float* f, int* abstraction)
        {
            for (int j = 0; j <= T; j++)
            {
                f[(long)j * T] = j == 0 ? PriorAct : j == 1 ? pt[0] : float.NegativeInfinity;
            }

            for (int t = 1; t < n; t++)
            {
                float best = float.NegativeInfinity;
                int arg = 0;
                for (int j = 0; j <= T; j++)
                {
                    long i = (long)j * T;
                    float emitted = j <= t ? f[i + t - 1] + seg[i + t - 1] : float.NegativeInfinity;
                    if (emitted > best)
                    {
                        (best, arg) = (emitted, j);
                    }

                    f[i + t] = j <= t && Live(j, t) ? emitted + PriorAct : float.NegativeInfinity;
                }

                f[((long)(t + 1) * T) + t] = best + pt[t];
                abstraction[t] = arg;   // back-pointer: the abstraction of line t−1 when line t thinks
            }

            float score = float.NegativeInfinity;
            int state = 0;
            for (int j = 0; j <= n; j++)
            {
                float v = f[((long)j * T) + n - 1] + seg[((long)j * T) + n - 1];
                if (v > score)
                {
                    (score, state) = (v, j);
                }
            }

            for (int t = n; t < T; t++)
            {
                abstraction[t] = -1;
            }

            for (int t = n - 1; t >= 0; t--)
            {
                int pointer = abstraction[t];
                abstraction[t] = state;
                if (state == t + 1)
                {
                    state = pointer;
                }
            }

            return score;
        }
    }
}
