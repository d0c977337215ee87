using ILGPU;
using ILGPU.Algorithms;

namespace RA3.Kernels.Ilgpu;

/// <summary>Scalars of an ELBO launch: T lines, log α, span limit (0 = none).</summary>
internal readonly record struct ElboParams(int T, float PriorAct, int MaxSpan)
{
    /// <summary>Whether state (line t, abstraction j) exists (see <see cref="Cpu.ElboKernel"/>).</summary>
    public bool Live(int j, int t) => j <= t + 1 && (j == 0 || MaxSpan == 0 || t + 1 - j < MaxSpan);
}

/// <summary>
/// The temporal-ELBO recursion on ILGPU, one thread per trace (the scan over lines is
/// sequential; the batch is the parallel dimension), tables in global scratch laid out like
/// seg. Same recursion and layout as the managed <see cref="Cpu.ElboKernel"/>.
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
        int t1 = p.T, n = lengths[b];
        long o = (long)(int)b * (t1 + 1) * t1, po = (long)(int)b * t1, oo = (long)(int)b * 2 * t1;
        Start(f, pt, o, po, p);
        double offset = Normalise(f, o, 0, 2, t1);
        off[oo] = offset;
        for (int t = 1; t < n; t++)
        {
            float m = float.NegativeInfinity;
            for (int j = 0; j <= t; j++)
            {
                m = XMath.Max(m, f[o + ((long)j * t1) + t - 1] + seg[o + ((long)j * t1) + t - 1]);
            }

            float sum = 0f;
            for (int j = 0; j <= t1; j++)
            {
                long i = o + ((long)j * t1);
                float emitted = j <= t ? f[i + t - 1] + seg[i + t - 1] : float.NegativeInfinity;
                if (j <= t && m > float.NegativeInfinity)
                {
                    sum += XMath.Exp(emitted - m);
                }

                f[i + t] = j <= t && p.Live(j, t) ? emitted + p.PriorAct : float.NegativeInfinity;
            }

            f[o + ((long)(t + 1) * t1) + t] = (sum > 0f ? m + XMath.Log(sum) : float.NegativeInfinity) + pt[po + t];
            offset += Normalise(f, o, t, t + 2, t1);
            off[oo + t] = offset;
        }

        double z = off[oo + n - 1] + End(seg, f, o, n, t1, false, out _);
        for (int j = 0; j <= t1; j++)
        {
            back[o + ((long)j * t1) + n - 1] = p.Live(j, n - 1) ? seg[o + ((long)j * t1) + n - 1] : float.NegativeInfinity;
        }

        offset = Normalise(back, o, n - 1, n + 1, t1);
        off[oo + t1 + n - 1] = offset;

        for (int t = n - 2; t >= 0; t--)
        {
            float think = pt[po + t + 1] + back[o + ((long)(t + 2) * t1) + t + 1];
            for (int j = 0; j <= t1; j++)
            {
                long i = o + ((long)j * t1);
                float stay = p.Live(j, t + 1) ? p.PriorAct + back[i + t + 1] : float.NegativeInfinity;
                float m = XMath.Max(stay, think);
                back[i + t] = !p.Live(j, t) || m == float.NegativeInfinity ? float.NegativeInfinity : seg[i + t] + m + XMath.Log(XMath.Exp(stay - m) + XMath.Exp(think - m));
            }

            offset += Normalise(back, o, t, t + 2, t1);
            off[oo + t1 + t] = offset;
        }

        logZ[b] = (float)z;
        int lines = z > double.NegativeInfinity ? n : 0;  // an impossible trace has no mass anywhere (exp(−∞ − −∞) is NaN)
        for (int t = 0; t < t1; t++)
        {
            float shift = t < lines ? (float)(off[oo + t] + off[oo + t1 + t] - z) : 0f;
            for (int j = 0; j <= t1; j++)
            {
                long i = o + ((long)j * t1) + t;
                f[i] = t < lines && p.Live(j, t) ? XMath.Exp(f[i] + back[i] + shift) : 0f;
            }

            post[po + t] = t < lines ? f[o + ((long)(t + 1) * t1) + t] : 0f;
        }
    }

    /// <summary>The best score and the abstraction of every line of trace b (max-product with back-pointers).</summary>
    public static void Viterbi(Index1D b, ArrayView<float> seg, ArrayView<float> pt, ArrayView<int> lengths, ArrayView<float> f, ArrayView<float> best, ArrayView<int> abstraction, ElboParams p)
    {
        int t1 = p.T, n = lengths[b];
        long o = (long)(int)b * (t1 + 1) * t1, po = (long)(int)b * t1;
        Start(f, pt, o, po, p);
        for (int t = 1; t < n; t++)
        {
            float top = float.NegativeInfinity;
            int arg = 0;
            for (int j = 0; j <= t1; j++)
            {
                long i = o + ((long)j * t1);
                float emitted = j <= t ? f[i + t - 1] + seg[i + t - 1] : float.NegativeInfinity;
                if (emitted > top)
                {
                    top = emitted;
                    arg = j;
                }

                f[i + t] = j <= t && p.Live(j, t) ? emitted + p.PriorAct : float.NegativeInfinity;
            }

            f[o + ((long)(t + 1) * t1) + t] = top + pt[po + t];
            abstraction[po + t] = arg;
        }

        best[b] = End(seg, f, o, n, t1, true, out int state);
        for (int t = n; t < t1; t++)
        {
            abstraction[po + t] = -1;
        }

        for (int t = n - 1; t >= 0; t--)
        {
            int pointer = abstraction[po + t];
            abstraction[po + t] = state;
            if (state == t + 1)
            {
                state = pointer;
            }
        }
    }

    /// <summary>Subtracts the maximum of column t over states j &lt; count and returns it (0 when all are −∞).</summary>
    private static double Normalise(ArrayView<float> x, long o, int t, int count, int t1)
    {
        float m = float.NegativeInfinity;
        for (int j = 0; j < count; j++)
        {
            m = XMath.Max(m, x[o + ((long)j * t1) + t]);
        }

        if (m == float.NegativeInfinity)
        {
            return 0.0;
        }

        for (int j = 0; j < count; j++)
        {
            x[o + ((long)j * t1) + t] -= m;
        }

        return m;
    }

    private static void Start(ArrayView<float> f, ArrayView<float> pt, long o, long po, ElboParams p)
    {
        for (int j = 0; j <= p.T; j++)
        {
            f[o + ((long)j * p.T)] = j == 0 ? p.PriorAct : j == 1 ? pt[po] : float.NegativeInfinity;
        }
    }

    /// <summary>log Σ_j (or max_j with <paramref name="max"/>) of F[j, n−1] + seg[j, n−1].</summary>
    private static float End(ArrayView<float> seg, ArrayView<float> f, long o, int n, int t1, bool max, out int arg)
    {
        float m = float.NegativeInfinity;
        arg = 0;
        for (int j = 0; j <= n; j++)
        {
            float v = f[o + ((long)j * t1) + n - 1] + seg[o + ((long)j * t1) + n - 1];
            if (v > m)
            {
                m = v;
                arg = j;
            }
        }

        if (max || m == float.NegativeInfinity)
        {
            return m;
        }

        float sum = 0f;
        for (int j = 0; j <= n; j++)
        {
            sum += XMath.Exp(f[o + ((long)j * t1) + n - 1] + seg[o + ((long)j * t1) + n - 1] - m);
        }

        return m + XMath.Log(sum);
    }
}
