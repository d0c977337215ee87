using ILGPU;
using ILGPU.Algorithms;

namespace RA3.Kernels.Ilgpu;

/// <summary>Scalars of an ELBO launch: T lines, K candidates per boundary, log α, span limit (0 = none).</summary>
internal readonly record struct ElboParams(int T, int K, float PriorAct, int MaxSpan)
{
    /// <summary>Abstractions per trace: none, and K per boundary.</summary>
    public int States => (T * K) + 1;

    /// <summary>Whether state (line t, abstraction s) exists (see <see cref="Cpu.ElboKernel"/>): its boundary 1 + (s − 1)/K is at most t + 1 and within the span limit.</summary>
    public bool Live(int s, int t)
    {
        int j = s == 0 ? 0 : 1 + ((s - 1) / K);
        return j <= t + 1 && (j == 0 || MaxSpan == 0 || t + 1 - j < MaxSpan);
    }
}

/// <summary>
/// The temporal-ELBO recursion on ILGPU with K candidates per boundary, one thread per trace (the
/// scan over lines is sequential; the batch is the parallel dimension), tables in global scratch
/// laid out like seg [1 + T·K, T]. Same recursion and state numbering as the managed <see cref="Cpu.ElboKernel"/>.
/// </summary>
internal static class ElboKernels
{
    /// <summary>
    /// log Z, think posteriors and line marginals of trace b (F is built in the marginals' slot).
    /// Each column of F and B is stored minus its maximum, the running sums of those maxima kept
    /// in <paramref name="off"/> (double, 2T per trace), so exp(F + B − log Z) is computed from
    /// small numbers.
    /// </summary>
    public static void ForwardBackward(Index1D b, ArrayView<float> seg, ArrayView<float> pt, ArrayView<int> lengths, ArrayView<float> back, ArrayView<float> logZ, ArrayView<float> post, ArrayView<float> f, ArrayView<double> off, ElboParams p)
    {
        int t1 = p.T, k = p.K, n = lengths[b], states = p.States;
        long o = (long)(int)b * states * t1, po = (long)(int)b * t1 * k, oo = (long)(int)b * 2 * t1;
        Start(f, pt, o, po, p);
        double offset = Normalise(f, o, 0, 1 + k, t1);
        off[oo] = offset;
        for (int t = 1; t < n; t++)
        {
            int before = 1 + (t * k);
            float m = float.NegativeInfinity;
            for (int s = 0; s < before; s++)
            {
                m = XMath.Max(m, f[o + ((long)s * t1) + t - 1] + seg[o + ((long)s * t1) + t - 1]);
            }

            float sum = 0f;
            for (int s = 0; s < states; s++)
            {
                long i = o + ((long)s * t1);
                float emitted = s < before ? f[i + t - 1] + seg[i + t - 1] : float.NegativeInfinity;
                if (s < before && m > float.NegativeInfinity)
                {
                    sum += XMath.Exp(emitted - m);
                }

                f[i + t] = s < before && p.Live(s, t) ? emitted + p.PriorAct : float.NegativeInfinity;
            }

            float into = sum > 0f ? m + XMath.Log(sum) : float.NegativeInfinity;
            for (int c = 0; c < k; c++)
            {
                f[o + ((long)(before + c) * t1) + t] = into + pt[po + (t * k) + c];
            }

            offset += Normalise(f, o, t, before + k, t1);
            off[oo + t] = offset;
        }

        double z = off[oo + n - 1] + End(seg, f, o, n, p, false, out _);
        for (int s = 0; s < states; s++)
        {
            back[o + ((long)s * t1) + n - 1] = p.Live(s, n - 1) ? seg[o + ((long)s * t1) + n - 1] : float.NegativeInfinity;
        }

        offset = Normalise(back, o, n - 1, 1 + (n * k), t1);
        off[oo + t1 + n - 1] = offset;

        for (int t = n - 2; t >= 0; t--)
        {
            // logsumexp over the candidates a think at boundary t + 2 may write
            int started = 1 + ((t + 1) * k);
            float think = float.NegativeInfinity;
            for (int c = 0; c < k; c++)
            {
                think = XMath.Max(think, pt[po + ((t + 1) * k) + c] + back[o + ((long)(started + c) * t1) + t + 1]);
            }

            if (k > 1 && think > float.NegativeInfinity)
            {
                float total = 0f;
                for (int c = 0; c < k; c++)
                {
                    total += XMath.Exp(pt[po + ((t + 1) * k) + c] + back[o + ((long)(started + c) * t1) + t + 1] - think);
                }

                think += XMath.Log(total);
            }

            for (int s = 0; s < states; s++)
            {
                long i = o + ((long)s * t1);
                float stay = p.Live(s, t + 1) ? p.PriorAct + back[i + t + 1] : float.NegativeInfinity;
                float m = XMath.Max(stay, think);
                back[i + t] = !p.Live(s, t) || m == float.NegativeInfinity ? float.NegativeInfinity : seg[i + t] + m + XMath.Log(XMath.Exp(stay - m) + XMath.Exp(think - m));
            }

            offset += Normalise(back, o, t, started, t1);
            off[oo + t1 + t] = offset;
        }

        logZ[b] = (float)z;
        int lines = z > double.NegativeInfinity ? n : 0;  // an impossible trace has no mass anywhere (exp(−∞ − −∞) is NaN)
        for (int t = 0; t < t1; t++)
        {
            float shift = t < lines ? (float)(off[oo + t] + off[oo + t1 + t] - z) : 0f;
            for (int s = 0; s < states; s++)
            {
                long i = o + ((long)s * t1) + t;
                f[i] = t < lines && p.Live(s, t) ? XMath.Exp(f[i] + back[i] + shift) : 0f;
            }

            for (int c = 0; c < k; c++)
            {
                post[po + (t * k) + c] = t < lines ? f[o + ((long)(1 + (t * k) + c) * t1) + t] : 0f;
            }
        }
    }

    /// <summary>The best score and the abstraction of every line of trace b (max-product with back-pointers).</summary>
    public static void Viterbi(Index1D b, ArrayView<float> seg, ArrayView<float> pt, ArrayView<int> lengths, ArrayView<float> f, ArrayView<float> best, ArrayView<int> abstraction, ElboParams p)
    {
        int t1 = p.T, k = p.K, n = lengths[b], states = p.States;
        long o = (long)(int)b * states * t1, po = (long)(int)b * t1 * k, ao = (long)(int)b * t1;
        Start(f, pt, o, po, p);
        for (int t = 1; t < n; t++)
        {
            int before = 1 + (t * k);
            float top = float.NegativeInfinity;
            int arg = 0;
            for (int s = 0; s < states; s++)
            {
                long i = o + ((long)s * t1);
                float emitted = s < before ? f[i + t - 1] + seg[i + t - 1] : float.NegativeInfinity;
                if (emitted > top)
                {
                    top = emitted;
                    arg = s;
                }

                f[i + t] = s < before && p.Live(s, t) ? emitted + p.PriorAct : float.NegativeInfinity;
            }

            for (int c = 0; c < k; c++)
            {
                f[o + ((long)(before + c) * t1) + t] = top + pt[po + (t * k) + c];
            }

            abstraction[ao + t] = arg;
        }

        best[b] = End(seg, f, o, n, p, true, out int state);
        for (int t = n; t < t1; t++)
        {
            abstraction[ao + t] = -1;
        }

        for (int t = n - 1; t >= 0; t--)
        {
            int pointer = abstraction[ao + t];
            abstraction[ao + t] = state;
            if (state > t * k)
            {
                state = pointer;  // the state started at line t: the think came from the pointer's state
            }
        }
    }

    /// <summary>Subtracts the maximum of column t over states s &lt; count and returns it (0 when all are −∞).</summary>
    private static double Normalise(ArrayView<float> x, long o, int t, int count, int t1)
    {
        float m = float.NegativeInfinity;
        for (int s = 0; s < count; s++)
        {
            m = XMath.Max(m, x[o + ((long)s * t1) + t]);
        }

        if (m == float.NegativeInfinity)
        {
            return 0.0;
        }

        for (int s = 0; s < count; s++)
        {
            x[o + ((long)s * t1) + t] -= m;
        }

        return m;
    }

    private static void Start(ArrayView<float> f, ArrayView<float> pt, long o, long po, ElboParams p)
    {
        for (int s = 0; s < p.States; s++)
        {
            f[o + ((long)s * p.T)] = s == 0 ? p.PriorAct : s <= p.K ? pt[po + s - 1] : float.NegativeInfinity;
        }
    }

    /// <summary>log Σ_s (or max_s with <paramref name="max"/>) of F[s, n−1] + seg[s, n−1].</summary>
    private static float End(ArrayView<float> seg, ArrayView<float> f, long o, int n, ElboParams p, bool max, out int arg)
    {
        int t1 = p.T, final = 1 + (n * p.K);
        float m = float.NegativeInfinity;
        arg = 0;
        for (int s = 0; s < final; s++)
        {
            float v = f[o + ((long)s * t1) + n - 1] + seg[o + ((long)s * t1) + n - 1];
            if (v > m)
            {
                m = v;
                arg = s;
            }
        }

        if (max || m == float.NegativeInfinity)
        {
            return m;
        }

        float sum = 0f;
        for (int s = 0; s < final; s++)
        {
            sum += XMath.Exp(f[o + ((long)s * t1) + n - 1] + seg[o + ((long)s * t1) + n - 1] - m);
        }

        return m + XMath.Log(sum);
    }
}
