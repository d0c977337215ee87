using System.Numerics;

namespace RA3.Kernels.Cpu;

/// <summary>
/// The temporal-ELBO semi-Markov recursion (spec §4), one trace per task. The trace's seg
/// [T+1, T] is first transposed into rows over abstractions (segᵀ[t, j], width W = T+1 rounded up
/// to the vector width), so that each step of the scan is a few vector operations over j: F[t, j]
/// (log-weight of lines before t with abstraction j active at line t) and B[t, j] (of lines t..
/// given that state) are rows too. State (line t, abstraction j ≥ 1) exists for j ≤ t + 1 and, with
/// a span limit, t + 1 − j &lt; maxSpan, i.e. j ≥ t + 2 − maxSpan.
/// </summary>
internal static unsafe class ElboKernel
{
    /// <summary>Row width for T lines: T + 1 abstractions rounded up to the vector width.</summary>
    public static int Width(int t) => (t + 1 + Vector<float>.Count - 1) / Vector<float>.Count * Vector<float>.Count;

    /// <summary>Floats covering abstractions 0..count−1, rounded up to whole vectors (rows are W wide, so this never overruns).</summary>
    private static int Lanes(int count) => (count + Vector<float>.Count - 1) / Vector<float>.Count * Vector<float>.Count;

    /// <summary>Scratch floats per trace: segᵀ, F and B, each [T, W].</summary>
    public static long ScratchPerTrace(int t) => 3L * t * Width(t);

    /// <summary>Operands of a batch; <see cref="Viterbi"/> selects the max-product decode.</summary>
    public struct Body : IParallelBody
    {
        public float* Seg;
        public float* PriorThink;
        public int* Lengths;
        public float PriorAct;
        public int MaxSpan;
        public int T;
        public float* Scratch;
        public float* LogZ;
        public float* ThinkPosterior;
        public float* Marginals;
        public bool Viterbi;
        public int* Abstraction;

        public readonly void Run(int b)
        {
            int w = Width(T), n = Lengths[b];
            long table = (long)(T + 1) * T;
            float* seg = Seg + (b * table), pt = PriorThink + ((long)b * T);
            float* segT = Scratch + (b * ScratchPerTrace(T)), f = segT + ((long)T * w), back = f + ((long)T * w);
            for (int t = 0; t < n; t++)
            {
                var row = new Span<float>(segT + ((long)t * w), w);
                row.Fill(float.NegativeInfinity);
                for (int j = 0; j <= Math.Min(t + 1, T); j++)
                {
                    row[j] = seg[((long)j * T) + t];
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
            float* marg = Marginals + (b * table), post = ThinkPosterior + ((long)b * T);
            new Span<float>(marg, (int)table).Clear();
            new Span<float>(post, T).Clear();
            for (int t = 0; t < n && z > double.NegativeInfinity; t++)  // an impossible trace has no mass anywhere
            {
                // F and B rows are stored relative to their line's offsets (kept in double), so the
                // exponent is a small number computed without cancelling two large ones.
                var shift = new Vector<float>((float)(fOffset[t] + bOffset[t] - z));
                float* fr = f + ((long)t * w), br = back + ((long)t * w);
                for (int j = 0; j < Lanes(t + 2); j += Vector<float>.Count)
                {
                    var p = Vector.Exp(new Vector<float>(new ReadOnlySpan<float>(fr + j, Vector<float>.Count)) + new Vector<float>(new ReadOnlySpan<float>(br + j, Vector<float>.Count)) + shift);
                    p.CopyTo(new Span<float>(fr + j, Vector<float>.Count));
                }

                for (int j = 0; j <= t + 1; j++)
                {
                    marg[((long)j * T) + t] = fr[j];
                }

                post[t] = fr[t + 1];
            }
        }

        /// <summary>First abstraction j ≥ 1 alive at line t (the span limit).</summary>
        private readonly int Lowest(int t) => MaxSpan == 0 ? 1 : Math.Max(1, t + 2 - MaxSpan);

        /// <summary>Row F[0]: act (j = 0) or think at boundary 1 (j = 1).</summary>
        private readonly void Start(float* pt, int w, float* f)
        {
            new Span<float>(f, w).Fill(float.NegativeInfinity);
            f[0] = PriorAct;
            f[1] = pt[0];
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
            double offset = max ? 0 : Normalise(f, 2, w);
            if (!max)
            {
                offsets[0] = offset;
            }

            var act = new Vector<float>(PriorAct);
            for (int t = 1; t < n; t++)
            {
                float* prev = f + ((long)(t - 1) * w), s = segT + ((long)(t - 1) * w), cur = f + ((long)t * w);
                int arg = 0, lanes = Lanes(t + 2);
                for (int j = 0; j < lanes; j += Vector<float>.Count)
                {
                    // emitted[j] = F[t−1, j] + seg[j, t−1] (−∞ beyond j = t, as both rows are there)
                    var e = new Vector<float>(new ReadOnlySpan<float>(prev + j, Vector<float>.Count)) + new Vector<float>(new ReadOnlySpan<float>(s + j, Vector<float>.Count));
                    e.CopyTo(new Span<float>(cur + j, Vector<float>.Count));
                }

                float m = Simd.Max(new ReadOnlySpan<float>(cur, t + 1));

                float into;
                if (max)
                {
                    for (int j = 0; j <= t; j++)
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
                    into = m == float.NegativeInfinity ? m : m + MathF.Log(Simd.ExpShifted(new ReadOnlySpan<float>(cur, t + 1), m, default));
                }

                for (int j = 0; j < lanes; j += Vector<float>.Count)
                {
                    var v = new Vector<float>(new ReadOnlySpan<float>(cur + j, Vector<float>.Count)) + act;
                    v.CopyTo(new Span<float>(cur + j, Vector<float>.Count));
                }

                new Span<float>(cur + 1, Math.Max(0, Math.Min(Lowest(t), t + 1) - 1)).Fill(float.NegativeInfinity);
                new Span<float>(cur + t + 1, w - t - 1).Fill(float.NegativeInfinity);
                cur[t + 1] = into + pt[t];
                if (!max)
                {
                    offset += Normalise(cur, t + 2, w);
                    offsets[t] = offset;
                }
            }

            float* last = f + ((long)(n - 1) * w), sl = segT + ((long)(n - 1) * w);
            float sumMax = float.NegativeInfinity;
            for (int j = 0; j <= n; j++)
            {
                sumMax = MathF.Max(sumMax, last[j] + sl[j]);
            }

            if (max || sumMax == float.NegativeInfinity)
            {
                return sumMax;
            }

            double sum = 0;
            for (int j = 0; j <= n; j++)
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
        /// B[t, j] = seg[j, t] + logaddexp(log α + B[t+1, j], prior_think[t+1] + B[t+1, t+2]), vectorised
        /// over j; rows stored minus their maximum, the running sums of the maxima in <paramref name="offsets"/>.
        /// </summary>
        private readonly void Backward(float* segT, float* pt, int n, int w, float* back, Span<double> offsets)
        {
            float* last = back + ((long)(n - 1) * w);
            new Span<float>(segT + ((long)(n - 1) * w), w).CopyTo(new Span<float>(last, w));
            MaskDead(last, n - 1, w);
            double offset = Normalise(last, n + 1, w);
            offsets[n - 1] = offset;
            var act = new Vector<float>(PriorAct);
            var negInf = new Vector<float>(float.NegativeInfinity);
            for (int t = n - 2; t >= 0; t--)
            {
                float* next = back + ((long)(t + 1) * w), cur = back + ((long)t * w), s = segT + ((long)t * w);
                var think = new Vector<float>(pt[t + 1] + next[t + 2]);
                for (int j = 0; j < Lanes(t + 2); j += Vector<float>.Count)
                {
                    // logaddexp(stay, think) = max + log(1 + exp(−|stay − think|))
                    var stay = new Vector<float>(new ReadOnlySpan<float>(next + j, Vector<float>.Count)) + act;
                    var m = Vector.Max(stay, think);
                    var add = m + Vector.Log(Vector<float>.One + Vector.Exp(Vector.Min(stay, think) - m));
                    var v = Vector.ConditionalSelect(Vector.Equals(m, negInf), negInf, new Vector<float>(new ReadOnlySpan<float>(s + j, Vector<float>.Count)) + add);
                    v.CopyTo(new Span<float>(cur + j, Vector<float>.Count));
                }

                MaskDead(cur, t, w);
                offset += Normalise(cur, t + 2, w);
                offsets[t] = offset;
            }
        }

        /// <summary>Sets row entries of states that do not exist at line t to −∞.</summary>
        private readonly void MaskDead(float* row, int t, int w)
        {
            new Span<float>(row + 1, Math.Max(0, Math.Min(Lowest(t), t + 2) - 1)).Fill(float.NegativeInfinity);
            new Span<float>(row + t + 2, Math.Max(0, w - t - 2)).Fill(float.NegativeInfinity);
        }

        /// <summary>Max-product pass with back-pointers for new abstractions; writes the abstraction per line; returns the best score.</summary>
        private readonly float Decode(float* segT, float* pt, int n, int w, float* f, int* abstraction)
        {
            float score = (float)Forward(segT, pt, n, w, f, max: true, abstraction, default);
            float* last = f + ((long)(n - 1) * w), sl = segT + ((long)(n - 1) * w);
            int state = 0;
            for (int j = 0; j <= n; j++)
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
                if (state == t + 1)
                {
                    state = pointer;
                }
            }

            return score;
        }
    }
}
