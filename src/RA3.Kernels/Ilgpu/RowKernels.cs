using ILGPU;
using ILGPU.Algorithms;

namespace RA3.Kernels.Ilgpu;

/// <summary>
/// ILGPU kernels over rows of the last dimension C: norms, softmax, cross-entropy, RoPE and
/// embedding. One thread per row (or per column for parameter gradients): simple and correct;
/// the GPU-tuned versions (a warp per row) belong to the native CUDA path.
/// </summary>
internal static class RowKernels
{
    /// <summary>LayerNorm (rms = false) or RMSNorm (rms = true) of row r; mean is unused for RMSNorm.</summary>
    public static void NormForward(Index1D r, ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> y, ArrayView<float> mean, ArrayView<float> rstd, int c, float eps, int flags)
    {
        bool rms = (flags & 1) != 0, hasBias = (flags & 2) != 0;
        long o = (long)r.X * c;
        float mu = 0f;
        if (!rms)
        {
            double s = 0;
            for (int i = 0; i < c; i++)
            {
                s += x[o + i];
            }

            mu = (float)(s / c);
            mean[r] = mu;
        }

        double ss = 0;
        for (int i = 0; i < c; i++)
        {
            float d = x[o + i] - mu;
            ss += d * (double)d;
        }

        float rs = (float)(1.0 / XMath.Sqrt((ss / c) + eps));
        rstd[r] = rs;
        for (int i = 0; i < c; i++)
        {
            y[o + i] = ((x[o + i] - mu) * rs * w[i]) + (hasBias ? bias[i] : 0f);
        }
    }

    /// <summary>dx += rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂ ⊙ x̂)) for row r (no mean(dx̂) term for RMSNorm).</summary>
    public static void NormBackwardRows(Index1D r, ArrayView<float> x, ArrayView<float> w, ArrayView<float> mean, ArrayView<float> rstd, ArrayView<float> dy, ArrayView<float> dx, int c, int rms)
    {
        long o = (long)r.X * c;
        float mu = rms != 0 ? 0f : mean[r], rs = rstd[r];
        double sumD = 0, sumDX = 0;
        for (int i = 0; i < c; i++)
        {
            float d = dy[o + i] * w[i];
            sumD += d;
            sumDX += d * (double)((x[o + i] - mu) * rs);
        }

        float meanD = rms != 0 ? 0f : (float)(sumD / c), meanDX = (float)(sumDX / c);
        for (int i = 0; i < c; i++)
        {
            dx[o + i] += rs * ((dy[o + i] * w[i]) - meanD - ((x[o + i] - mu) * rs * meanDX));
        }
    }

    /// <summary>dWeight[col] += Σ_rows dy·x̂; dBias[col] += Σ_rows dy when flags has bit 2.</summary>
    public static void NormBackwardColumns(Index1D col, ArrayView<float> x, ArrayView<float> mean, ArrayView<float> rstd, ArrayView<float> dy, ArrayView<float> dw, ArrayView<float> db, int c, int flags)
    {
        bool rms = (flags & 1) != 0, hasBias = (flags & 2) != 0;
        float sw = 0f, sb = 0f;
        for (long r = 0; r < rstd.Length; r++)
        {
            long o = (r * c) + col;
            float mu = rms ? 0f : mean[r];
            sw += dy[o] * (x[o] - mu) * rstd[r];
            sb += dy[o];
        }

        dw[col] += sw;
        if (hasBias)
        {
            db[col] += sb;
        }
    }

    /// <summary>y = softmax(x) of row r.</summary>
    public static void Softmax(Index1D r, ArrayView<float> x, ArrayView<float> y, int c)
    {
        long o = (long)r.X * c;
        float m = float.NegativeInfinity;
        for (int i = 0; i < c; i++)
        {
            m = XMath.Max(m, x[o + i]);
        }

        float s = 0f;
        for (int i = 0; i < c; i++)
        {
            float e = XMath.Exp(x[o + i] - m);
            y[o + i] = e;
            s += e;
        }

        for (int i = 0; i < c; i++)
        {
            y[o + i] /= s;
        }
    }

    /// <summary>dx += y ⊙ (dy − Σ dy ⊙ y) for row r.</summary>
    public static void SoftmaxBackward(Index1D r, ArrayView<float> y, ArrayView<float> dy, ArrayView<float> dx, int c)
    {
        long o = (long)r.X * c;
        float dot = 0f;
        for (int i = 0; i < c; i++)
        {
            dot += y[o + i] * dy[o + i];
        }

        for (int i = 0; i < c; i++)
        {
            dx[o + i] += y[o + i] * (dy[o + i] - dot);
        }
    }

    /// <summary>losses[r] = logsumexp(logits[r]) − logits[r, t] (0 for a negative target).</summary>
    public static void CrossEntropy(Index1D r, ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> losses, int v)
    {
        int t = targets[r];
        losses[r] = t < 0 ? 0f : LogSumExp(logits, (long)r.X * v, v) - logits[((long)r.X * v) + t];
    }

    /// <summary>dLogits[r] += dLosses[r]·(softmax(logits[r]) − onehot(t)).</summary>
    public static void CrossEntropyBackward(Index1D r, ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> dLosses, ArrayView<float> dLogits, int v)
    {
        int t = targets[r];
        if (t < 0)
        {
            return;
        }

        long o = (long)r.X * v;
        float lse = LogSumExp(logits, o, v), g = dLosses[r];
        for (int i = 0; i < v; i++)
        {
            dLogits[o + i] += g * XMath.Exp(logits[o + i] - lse);
        }

        dLogits[o + t] -= g;
    }

    /// <summary>RoPE of one (row, pair i) across all heads: forward y = R·x, inverse y += Rᵀ·x.</summary>
    public static void Rope(Index2D idx, ArrayView<float> x, ArrayView<int> positions, ArrayView<float> invFreq, ArrayView<float> y, int heads, int d, int inverse)
    {
        int row = idx.X, i = idx.Y, half = d / 2;
        double angle = positions[row] * (double)invFreq[i];
        float cos = (float)XMath.Cos(angle), sin = (float)XMath.Sin(angle);
        for (int h = 0; h < heads; h++)
        {
            long b = (((long)row * heads) + h) * d;
            float x1 = x[b + i], x2 = x[b + i + half];
            if (inverse != 0)
            {
                y[b + i] += (x1 * cos) + (x2 * sin);
                y[b + i + half] += (x2 * cos) - (x1 * sin);
            }
            else
            {
                y[b + i] = (x1 * cos) - (x2 * sin);
                y[b + i + half] = (x2 * cos) + (x1 * sin);
            }
        }
    }

    /// <summary>output[i, col] = table[ids[i], col].</summary>
    public static void Embedding(Index2D idx, ArrayView<int> ids, ArrayView<float> table, ArrayView<float> output, int c) =>
        output[((long)idx.X * c) + idx.Y] = table[((long)ids[idx.X] * c) + idx.Y];

    /// <summary>dTable[ids[i], col] += dOutput[i, col] (atomic: ids repeat).</summary>
    public static void EmbeddingBackward(Index2D idx, ArrayView<int> ids, ArrayView<float> dOutput, ArrayView<float> dTable, int c) =>
        Atomic.Add(ref dTable[((long)ids[idx.X] * c) + idx.Y], dOutput[((long)idx.X * c) + idx.Y]);

    private static float LogSumExp(ArrayView<float> x, long o, int n)
    {
        float m = float.NegativeInfinity;
        for (int i = 0; i < n; i++)
        {
            m = XMath.Max(m, x[o + i]);
        }

        float s = 0f;
        for (int i = 0; i < n; i++)
        {
            s += XMath.Exp(x[o + i] - m);
        }

        return m + XMath.Log(s);
    }
}
