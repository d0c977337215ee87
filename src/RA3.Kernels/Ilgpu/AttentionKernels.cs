using ILGPU;
using ILGPU.Algorithms;

namespace RA3.Kernels.Ilgpu;

/// <summary>Attention sizes passed to the kernels: q [B, T, Hq, D], k, v [B, T, Hkv, D].</summary>
internal readonly record struct AttentionDims(int B, int T, int Hq, int Hkv, int D)
{
    public long Q(int b, int t, int h) => ((((long)b * T) + t) * Hq + h) * D;

    public long Kv(int b, int t, int h) => ((((long)b * T) + t) * Hkv + h) * D;

    public long P(int b, int h, int i) => ((((long)b * Hq) + h) * T + i) * T;
}

/// <summary>
/// Plain causal attention on ILGPU, one thread per query row (forward, dq) or per key row (dk,
/// dv). The backward uses rowDot[b, h, i] = Σ_j p_ij·(dout_i·v_j), computed with dq, so dk and dv
/// need no atomics.
/// </summary>
internal static class AttentionKernels
{
    /// <summary>Forward for the row idx = (b·Hq + h)·T + i.</summary>
    public static void Forward(Index1D idx, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> output, ArrayView<float> probs, AttentionDims s)
    {
        int i = idx % s.T, h = idx / s.T % s.Hq, b = idx / s.T / s.Hq, hk = h / (s.Hq / s.Hkv);
        float scale = 1f / XMath.Sqrt(s.D);
        long p = s.P(b, h, i), qi = s.Q(b, i, h);
        float m = float.NegativeInfinity;
        for (int j = 0; j <= i; j++)
        {
            float dot = 0f;
            long kj = s.Kv(b, j, hk);
            for (int c = 0; c < s.D; c++)
            {
                dot += q[qi + c] * k[kj + c];
            }

            probs[p + j] = dot * scale;
            m = XMath.Max(m, dot * scale);
        }

        float sum = 0f;
        for (int j = 0; j <= i; j++)
        {
            float e = XMath.Exp(probs[p + j] - m);
            probs[p + j] = e;
            sum += e;
        }

        for (int c = 0; c < s.D; c++)
        {
            output[qi + c] = 0f;
        }

        for (int j = 0; j < s.T; j++)
        {
            if (j > i)
            {
                probs[p + j] = 0f;
                continue;
            }

            float pj = probs[p + j] / sum;
            probs[p + j] = pj;
            long vj = s.Kv(b, j, hk);
            for (int c = 0; c < s.D; c++)
            {
                output[qi + c] += pj * v[vj + c];
            }
        }
    }

    /// <summary>dq for the query row idx, and rowDot[idx] for the key-side kernel.</summary>
    public static void BackwardQuery(Index1D idx, ArrayView<float> k, ArrayView<float> v, ArrayView<float> probs, ArrayView<float> dout, ArrayView<float> dq, ArrayView<float> rowDot, AttentionDims s)
    {
        int i = idx % s.T, h = idx / s.T % s.Hq, b = idx / s.T / s.Hq, hk = h / (s.Hq / s.Hkv);
        float scale = 1f / XMath.Sqrt(s.D);
        long p = s.P(b, h, i), qi = s.Q(b, i, h);
        float pdp = 0f;
        for (int j = 0; j <= i; j++)
        {
            pdp += probs[p + j] * Dot(dout, qi, v, s.Kv(b, j, hk), s.D);
        }

        rowDot[idx] = pdp;
        for (int j = 0; j <= i; j++)
        {
            long kj = s.Kv(b, j, hk);
            float g = probs[p + j] * (Dot(dout, qi, v, kj, s.D) - pdp) * scale;
            for (int c = 0; c < s.D; c++)
            {
                dq[qi + c] += g * k[kj + c];
            }
        }
    }

    /// <summary>dk and dv for the key row idx = (b·Hkv + hk)·T + j, over the query heads of its group.</summary>
    public static void BackwardKey(Index1D idx, ArrayView<float> q, ArrayView<float> v, ArrayView<float> probs, ArrayView<float> dout, ArrayView<float> rowDot, ArrayView<float> dk, ArrayView<float> dv, AttentionDims s)
    {
        int j = idx % s.T, hk = idx / s.T % s.Hkv, b = idx / s.T / s.Hkv, group = s.Hq / s.Hkv;
        float scale = 1f / XMath.Sqrt(s.D);
        long kj = s.Kv(b, j, hk);
        for (int h = hk * group; h < (hk + 1) * group; h++)
        {
            for (int i = j; i < s.T; i++)
            {
                float pij = probs[s.P(b, h, i) + j];
                long qi = s.Q(b, i, h);
                float g = pij * (Dot(dout, qi, v, kj, s.D) - rowDot[(((b * s.Hq) + h) * s.T) + i]) * scale;
                for (int c = 0; c < s.D; c++)
                {
                    dk[kj + c] += g * q[qi + c];
                    dv[kj + c] += pij * dout[qi + c];
                }
            }
        }
    }

    private static float Dot(ArrayView<float> a, long ao, ArrayView<float> b, long bo, int n)
    {
        float s = 0f;
        for (int c = 0; c < n; c++)
        {
            s += a[ao + c] * b[bo + c];
        }

        return s;
    }
}
