using ILGPU;
using ILGPU.Algorithms;

namespace RA3.Kernels.Ilgpu;

/// <summary>
/// Fused causal attention on ILGPU: one thread per query row runs an online softmax over the
/// keys (running max and sum, the output row rescaled in place), saving only the row's
/// log-sum-exp; the backward recomputes p from it — one thread per query row for dq (and the
/// row term dout·out), one per key row for dk and dv, so no atomics are needed.
/// Lengths mark right padding (a length of T everywhere when absent).
/// </summary>
internal static class FlashAttentionKernels
{
    /// <summary>Output and lse of query row idx = (b·Hq + h)·T + i.</summary>
    public static void Forward(Index1D idx, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<int> lengths, ArrayView<float> output, ArrayView<float> lse, AttentionDims s)
    {
        int i = idx % s.T, h = idx / s.T % s.Hq, b = idx / s.T / s.Hq, hk = h / (s.Hq / s.Hkv);
        long qi = s.Q(b, i, h);
        for (int c = 0; c < s.D; c++)
        {
            output[qi + c] = 0f;
        }

        if (i >= lengths[b])
        {
            lse[idx] = 0f;
            return;
        }

        float scale = 1f / XMath.Sqrt(s.D), m = float.NegativeInfinity, l = 0f;
        for (int j = 0; j <= i; j++)
        {
            long kj = s.Kv(b, j, hk);
            float dot = 0f;
            for (int c = 0; c < s.D; c++)
            {
                dot += q[qi + c] * k[kj + c];
            }

            dot *= scale;
            float mNew = XMath.Max(m, dot), rescale = XMath.Exp(m - mNew), e = XMath.Exp(dot - mNew);
            l = (l * rescale) + e;
            for (int c = 0; c < s.D; c++)
            {
                output[qi + c] = (output[qi + c] * rescale) + (e * v[kj + c]);
            }

            m = mNew;
        }

        for (int c = 0; c < s.D; c++)
        {
            output[qi + c] /= l;
        }

        lse[idx] = m + XMath.Log(l);
    }

    /// <summary>dq of query row idx, and rowDot[idx] = dout·out for the key pass.</summary>
    public static void BackwardQuery(Index1D idx, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<int> lengths, ArrayView<float> output, ArrayView<float> lse, ArrayView<float> dOut, ArrayView<float> dq, ArrayView<float> rowDot, AttentionDims s)
    {
        int i = idx % s.T, h = idx / s.T % s.Hq, b = idx / s.T / s.Hq, hk = h / (s.Hq / s.Hkv);
        long qi = s.Q(b, i, h);
        float di = 0f;
        for (int c = 0; c < s.D; c++)
        {
            di += dOut[qi + c] * output[qi + c];
        }

        rowDot[idx] = di;
        if (i >= lengths[b])
        {
            return;
        }

        float scale = 1f / XMath.Sqrt(s.D);
        for (int j = 0; j <= i; j++)
        {
            long kj = s.Kv(b, j, hk);
            float dot = 0f, dp = 0f;
            for (int c = 0; c < s.D; c++)
            {
                dot += q[qi + c] * k[kj + c];
                dp += dOut[qi + c] * v[kj + c];
            }

            float ds = XMath.Exp((dot * scale) - lse[idx]) * (dp - di) * scale;
            for (int c = 0; c < s.D; c++)
            {
                dq[qi + c] += ds * k[kj + c];
            }
        }
    }

    /// <summary>dk and dv of key row idx = (b·Hkv + hk)·T + j, over the query rows i ≥ j of its query heads.</summary>
    public static void BackwardKey(Index1D idx, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<int> lengths, ArrayView<float> lse, ArrayView<float> dOut, ArrayView<float> rowDot, ArrayView<float> dk, ArrayView<float> dv, AttentionDims s)
    {
        int j = idx % s.T, hk = idx / s.T % s.Hkv, b = idx / s.T / s.Hkv, group = s.Hq / s.Hkv, n = lengths[b];
        long kj = s.Kv(b, j, hk);
        float scale = 1f / XMath.Sqrt(s.D);
        for (int h = hk * group; h < (hk + 1) * group; h++)
        {
            for (int i = j; i < n; i++)
            {
                long qi = s.Q(b, i, h), row = ((((long)b * s.Hq) + h) * s.T) + i;
                float dot = 0f, dp = 0f;
                for (int c = 0; c < s.D; c++)
                {
                    dot += q[qi + c] * k[kj + c];
                    dp += dOut[qi + c] * v[kj + c];
                }

                float p = XMath.Exp((dot * scale) - lse[row]), ds = p * (dp - rowDot[row]) * scale;
                for (int c = 0; c < s.D; c++)
                {
                    dk[kj + c] += ds * q[qi + c];
                    dv[kj + c] += p * dOut[qi + c];
                }
            }
        }
    }
}
