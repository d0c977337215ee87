using System.Numerics;

namespace RA3.Kernels.Cpu;

/// <summary>
/// The temporal-ELBO semi-Markov recursion (spec §4) with K candidates per boundary, one trace per
/// task. The trace's seg [1 + T·K, T] is first transposed into rows over abstractions (segᵀ[t, s],
/// width W = 1 + T·K rounded up to the vector width), so that each step of the scan is a few vector
/// operations over s: F[t, s] (log-weight of lines before t with abstraction s active at line t) and
/// B[t, s] (of lines t.. given that state) are rows too. Abstraction s ≥ 1 is candidate (s − 1) mod K
/// of boundary j = 1 + (s − 1)/K; state (line t, s) exists for j ≤ t + 1, i.e. s ≤ (t + 1)·K, and,
/// with a span limit, t + 1 − j &lt; maxSpan, i.e. j ≥ t + 2 − maxSpan. With K = 1, s = j.
/// </summary>
internal static unsafe class ElboKernel
{
    /// <summary>Row width for T lines and K candidates: 1 + T·K abstractions rounded up to the vector width.</summary>
    public static int Width(int t, int k) => ((t * k) + 1 + Vector<float>.Count - 1) / Vector<float>.Count * Vector<float>.Count;

    /// <summary>Floats covering abstractions 0..count−1, rounded up to whole vectors (rows are W wide, so this never overruns).</summary>
    private static int Lanes(int count) => (count + Vector<float>.Count - 1) / Vector<float>.Count * Vector<float>.Count;

    /// <summary>Scratch floats per trace: segᵀ, F and B, each [T, W].</summary>
    public static long ScratchPerTrace(int t, int k) => 3L * t * Width(t, k);

    /// <summary>Operands of a batch; <see cref="Viterbi"/> selects the max-product decode.</summary>
    public struct Body : IParallelBody
    {
        public float* Seg;
        public float* PriorThink;
        public int* Lengths;
        public float PriorAct;
        public int MaxSpan;
        public int T;

        /// <summary>Candidates per boundary (K ≥ 1).</summary>
        public int K;
        public float* Scratch;
        public float* LogZ;
        public float* ThinkPosterior;
        public float* Marginals;
        public bool Viterbi;
        public int* Abstraction;

        public readonly void Run(int b)
        {
            int w = Width(T, K), n = Lengths[b], states = (T * K) + 1;
            long table = (long)states * T;
            float* seg = Seg + (b * table), pt = PriorThink + ((long)b * T * K);
            float* segT = Scratch + (b * ScratchPerTrace(T, K)), f = segT + ((long)T * w), back = f + ((long)T * w);
            for (int t = 0; t < n; t++)
            {
                var row = new Span<float>(segT + ((long)t * w), w);
                row.Fill(float.NegativeInfinity);
                for (int s = 0; s <= Math.Min((t + 1) * K, T * K); s++)
                {
                    row[s] = seg[((long)s * T) + t];
                }
            }

            if (Viterbi)
            {
                LogZ[b] = Decode(segT, pt, n, w, f, Abstraction + ((long)b * T));
                return;
            }

            Span<double> offsets = T <= 2048 ? stackalloc double[2 * T] : new double[2 * T];
            var fOffset = offsets[..T];
            var bOffset = offsets[T..];
            double z = Forward(segT, pt, n, w, f, max: false, null, fOffset);
            Backward(segT, pt, n, w, back, bOffset);
            LogZ[b] = (float)z;
            float* marg = Marginals + (b * table), post = ThinkPosterior + ((long)b * T * K);
            new Span<float>(marg, (int)table).Clear();
            new Span<float>(post, T * K).Clear();
            for (int t = 0; t < n && z > double.NegativeInfinity; t++)  // an impossible trace has no mass anywhere
            {
                // F and B rows are stored relative to their line's offsets (kept in double), so the
                // exponent is a small number computed without cancelling two large ones.
                var shift = new Vector<float>((float)(fOffset[t] + bOffset[t] - z));
                float* fr = f + ((long)t * w), br = back + ((long)t * w);
                int alive = 1 + ((t + 1) * K);
                for (int s = 0; s < Lanes(alive); s += Vector<float>.Count)
                {
                    var p = Vector.Exp(new Vector<float>(new ReadOnlySpan<float>(fr + s, Vector<float>.Count)) + new Vector<float>(new ReadOnlySpan<float>(br + s, Vector<float>.Count)) + shift);
                    p.CopyTo(new Span<float>(fr + s, Vector<float>.Count));
                }

                for (int s = 0; s < alive; s++)
                {
                    marg[((long)s * T) + t] = fr[s];
                }

                new ReadOnlySpan<float>(fr + 1 + (t * K), K).CopyTo(new Span<float>(post + (t * K), K));
            }
        }

        /// <summary>First abstraction s ≥ 1 alive at line t (the span limit): candidate 0 of the lowest live boundary.</summary>
        private readonly int Lowest(int t) => MaxSpan == 0 ? 1 : 1 + ((Math.Max(1, t + 2 - MaxSpan) - 1) * K);

        /// <summary>Row F[0]: act (s = 0) or think at boundary 1 with candidate k (s = 1 + k).</summary>
        private readonly void Start(float* pt, int w, float* f)
        {
            new Span<float>(f, w).Fill(float.NegativeInfinity);
            f[0] = PriorAct;
            new ReadOnlySpan<float>(pt, K).CopyTo(new Span<float>(f + 1, K));
        }

        /// <summary>
        /// Fills F and returns log Z (or, with <paramref name="max"/>, the best score, writing the
        /// arg max of each think transition to <paramref name="pointers"/>). For log Z each row is
        /// stored minus its maximum, the running sum of those maxima going to <paramref name="offsets"/>
        /// (in double), so values stay small however long the trace.
        /// </summary>
        private readonly double Forward(float* segT, float* pt, int n, int w, float* f, bool max, int* pointers, Span<double> offsets)
        {
            Start(pt, w, f);
            double offset = max ? 0 : Normalise(f, 1 + K, w);
            if (!max)
            {
                offsets[0] = offset;
            }

            var act = new Vector<float>(PriorAct);
            for (int t = 1; t < n; t++)
            {
                float* prev = f + ((long)(t - 1) * w), s = segT + ((long)(t - 1) * w), cur = f + ((long)t * w);
                int arg = 0, before = 1 + (t * K), lanes = Lanes(before + K);
                for (int j = 0; j < lanes; j += Vector<float>.Count)
                {
                    // emitted[s] = F[t−1, s] + seg[s, t−1] (−∞ beyond s = t·K, as both rows are there)
                    var e = new Vector<float>(new ReadOnlySpan<float>(prev + j, Vector<float>.Count)) + new Vector<float>(new ReadOnlySpan<float>(s + j, Vector<float>.Count));
                    e.CopyTo(new Span<float>(cur + j, Vector<float>.Count));
                }

                float m = Simd.Max(new ReadOnlySpan<float>(cur, before));

                float into;
                if (max)
                {
                    for (int j = 0; j < before; j++)
                    {
                        if (cur[j] == m)
                        {
                            arg = j;
                            break;
                        }
                    }

                    pointers[t] = arg;
                    into = m;
                }
                else
                {
                    into = m == float.NegativeInfinity ? m : m + MathF.Log(Simd.ExpShifted(new ReadOnlySpan<float>(cur, before), m, default));
                }

                for (int j = 0; j < lanes; j += Vector<float>.Count)
                {
                    var v = new Vector<float>(new ReadOnlySpan<float>(cur + j, Vector<float>.Count)) + act;
                    v.CopyTo(new Span<float>(cur + j, Vector<float>.Count));
                }

                new Span<float>(cur + 1, Math.Max(0, Math.Min(Lowest(t), before) - 1)).Fill(float.NegativeInfinity);
                new Span<float>(cur + before, w - before).Fill(float.NegativeInfinity);
                for (int c = 0; c < K; c++)
                {
                    cur[before + c] = into + pt[(t * K) + c];
                }

                if (!max)
                {
                    offset += Normalise(cur, before + K, w);
                    offsets[t] = offset;
                }
            }

            float* last = f + ((long)(n - 1) * w), sl = segT + ((long)(n - 1) * w);
            float sumMax = float.NegativeInfinity;
            int final = 1 + (n * K);
            for (int j = 0; j < final; j++)
            {
                sumMax = MathF.Max(sumMax, last[j] + sl[j]);
            }

            if (max || sumMax == float.NegativeInfinity)
            {
                return sumMax;
            }

            double sum = 0;
            for (int j = 0; j < final; j++)
            {
                sum += MathF.Exp(last[j] + sl[j] - sumMax);
            }

            return offset + sumMax + Math.Log(sum);
        }

        /// <summary>Subtracts the maximum of row[0..count) from the row (when finite) and returns it (0 otherwise).</summary>
        private static double Normalise(float* row, int count, int w)
        {
            float m = Simd.Max(new ReadOnlySpan<float>(row, count));
            if (m == float.NegativeInfinity)
            {
                return 0;
            }

            var mv = new Vector<float>(m);
            for (int j = 0; j < w; j += Vector<float>.Count)
            {
                (new Vector<float>(new ReadOnlySpan<float>(row + j, Vector<float>.Count)) - mv).CopyTo(new Span<float>(row + j, Vector<float>.Count));
            }

            return m;
        }

        /// <summary>
        /// B[t, s] = seg[s, t] + logaddexp(log α + B[t+1, s], logsumexp_k(prior_think[t+1, k] + B[t+1, 1 + (t+1)·K + k])),
        /// vectorised over s; rows stored minus their maximum, the running sums of the maxima in <paramref name="offsets"/>.
        /// </summary>
        private readonly void Backward(float* segT, float* pt, int n, int w, float* back, Span<double> offsets)
        {
            float* last = back + ((long)(n - 1) * w);
            new Span<float>(segT + ((long)(n - 1) * w), w).CopyTo(new Span<float>(last, w));
            MaskDead(last, n - 1, w);
            double offset = Normalise(last, 1 + (n * K), w);
            offsets[n - 1] = offset;
            var act = new Vector<float>(PriorAct);
            var negInf = new Vector<float>(float.NegativeInfinity);
            for (int t = n - 2; t >= 0; t--)
            {
                float* next = back + ((long)(t + 1) * w), cur = back + ((long)t * w), s = segT + ((long)t * w);
                var think = new Vector<float>(ThinkInto(pt + ((t + 1) * K), next + 1 + ((t + 1) * K)));
                int alive = 1 + ((t + 1) * K);
                for (int j = 0; j < Lanes(alive); j += Vector<float>.Count)
                {
                    // logaddexp(stay, think) = max + log(1 + exp(−|stay − think|))
                    var stay = new Vector<float>(new ReadOnlySpan<float>(next + j, Vector<float>.Count)) + act;
                    var m = Vector.Max(stay, think);
                    var add = m + Vector.Log(Vector<float>.One + Vector.Exp(Vector.Min(stay, think) - m));
                    var v = Vector.ConditionalSelect(Vector.Equals(m, negInf), negInf, new Vector<float>(new ReadOnlySpan<float>(s + j, Vector<float>.Count)) + add);
                    v.CopyTo(new Span<float>(cur + j, Vector<float>.Count));
                }

                MaskDead(cur, t, w);
                offset += Normalise(cur, alive, w);
                offsets[t] = offset;
            }
        }

        /// <summary>logsumexp over the K candidates of prior_think + B of the state each starts (the think term of the backward).</summary>
        private readonly float ThinkInto(float* pt, float* started)
        {
            float m = float.NegativeInfinity;
            for (int c = 0; c < K; c++)
            {
                m = MathF.Max(m, pt[c] + started[c]);
            }

            if (K == 1 || m == float.NegativeInfinity)
            {
                return m;
            }

            float sum = 0;
            for (int c = 0; c < K; c++)
            {
                sum += MathF.Exp(pt[c] + started[c] - m);
            }

            return m + MathF.Log(sum);
        }

        /// <summary>Sets row entries of states that do not exist at line t to −∞.</summary>
        private readonly void MaskDead(float* row, int t, int w)
        {
            int alive = 1 + ((t + 1) * K);
            new Span<float>(row + 1, Math.Max(0, Math.Min(Lowest(t), alive) - 1)).Fill(float.NegativeInfinity);
            new Span<float>(row + alive, Math.Max(0, w - alive)).Fill(float.NegativeInfinity);
        }

        /// <summary>Max-product pass with back-pointers for new abstractions; writes the abstraction per line; returns the best score.</summary>
        private readonly float Decode(float* segT, float* pt, int n, int w, float* f, int* abstraction)
        {
            float score = (float)Forward(segT, pt, n, w, f, max: true, abstraction, default);
            float* last = f + ((long)(n - 1) * w), sl = segT + ((long)(n - 1) * w);
            int state = 0;
            for (int j = 0; j <= n * K; j++)
            {
                if (last[j] + sl[j] == score)
                {
                    state = j;
                    break;
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
                if (state > t * K)
                {
                    state = pointer;  // the state started at line t: the think came from the pointer's state
                }
            }

            return score;
        }
    }
}
