using ILGPU;
using ILGPU.Algorithms;
using RA3.Kernels.Ops;

namespace RA3.Kernels.Ilgpu;

/// <summary>Elementwise ILGPU kernels: one thread per element.</summary>
internal static class ElementwiseKernels
{
    private const float GeluK = 0.7978845608028654f;
    private const float GeluC = 0.044715f;

    /// <summary>y = a + b.</summary>
    public static void Add(Index1D i, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y) => y[i] = a[i] + b[i];

    /// <summary>dst = src rounded to bfloat16: nearest, ties to even, NaN → 0x7FC0 (the reference tier's rounding).</summary>
    public static void ToBFloat16(Index1D i, ArrayView<float> src, ArrayView<ushort> dst)
    {
        uint bits = Interop.FloatAsInt(src[i]);
        dst[i] = (bits & 0x7FFFFFFFu) > 0x7F800000u ? (ushort)0x7FC0 : (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }

    /// <summary>dst = the floats of src (exact).</summary>
    public static void FromBFloat16(Index1D i, ArrayView<ushort> src, ArrayView<float> dst) => dst[i] = Interop.IntAsFloat((uint)src[i] << 16);

    /// <summary>x *= s.</summary>
    public static void Scale(Index1D i, ArrayView<float> x, float s) => x[i] *= s;

    /// <summary>y = ½x(1 + tanh(k(x + c·x³))).</summary>
    public static void Gelu(Index1D i, ArrayView<float> x, ArrayView<float> y)
    {
        float v = x[i];
        y[i] = 0.5f * v * (1f + XMath.Tanh(GeluK * (v + (GeluC * v * v * v))));
    }

    /// <summary>dx += gelu'(x)·dy.</summary>
    public static void GeluBackward(Index1D i, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx)
    {
        float v = x[i];
        float t = XMath.Tanh(GeluK * (v + (GeluC * v * v * v)));
        dx[i] += dy[i] * ((0.5f * (1f + t)) + (0.5f * v * (1f - (t * t)) * GeluK * (1f + (3f * GeluC * v * v))));
    }

    /// <summary>y = silu(gate)·up.</summary>
    public static void SwiGlu(Index1D i, ArrayView<float> gate, ArrayView<float> up, ArrayView<float> y) => y[i] = gate[i] * Sigmoid(gate[i]) * up[i];

    /// <summary>dGate += silu'(gate)·up·dy; dUp += silu(gate)·dy.</summary>
    public static void SwiGluBackward(Index1D i, ArrayView<float> gate, ArrayView<float> up, ArrayView<float> dy, ArrayView<float> dGate, ArrayView<float> dUp)
    {
        float g = gate[i], s = Sigmoid(g);
        dGate[i] += s * (1f + (g * (1f - s))) * up[i] * dy[i];
        dUp[i] += g * s * dy[i];
    }

    /// <summary>One AdamW update per element (see <see cref="AdamWSettings"/>); c1 = 1 − β1ᵗ, sqrtC2 = √(1 − β2ᵗ).</summary>
    public static void AdamW(Index1D i, ArrayView<float> p, ArrayView<float> grad, ArrayView<float> m, ArrayView<float> v, AdamWSettings s, float c1, float sqrtC2)
    {
        float g = grad[i];
        float mi = m[i] = (s.Beta1 * m[i]) + ((1f - s.Beta1) * g);
        float vi = v[i] = (s.Beta2 * v[i]) + ((1f - s.Beta2) * g * g);
        p[i] = (p[i] * (1f - (s.LearningRate * s.WeightDecay))) - (s.LearningRate / c1 * mi / ((XMath.Sqrt(vi) / sqrtC2) + s.Epsilon));
    }

    /// <summary>partials[i] = Σ x² over chunk i of <paramref name="chunk"/> elements, in double.</summary>
    public static void SumOfSquares(Index1D i, ArrayView<float> x, ArrayView<double> partials, int chunk)
    {
        long start = (long)i.X * chunk, end = XMath.Min(start + chunk, x.Length);
        double s = 0;
        for (long j = start; j < end; j++)
        {
            s += (double)x[j] * x[j];
        }

        partials[i] = s;
    }

    /// <summary>dBias[n] += Σ_rows dOut[row, n]; one thread per column.</summary>
    public static void BiasBackward(Index1D col, ArrayView<float> dOut, ArrayView<float> dBias)
    {
        int n = (int)dBias.Length;
        float s = 0f;
        for (long r = col.X; r < dOut.Length; r += n)
        {
            s += dOut[r];
        }

        dBias[col] += s;
    }

    /// <summary>dst[r, dstColumn + j] = src[r, srcColumn + j]; idx = (r, j).</summary>
    public static void CopyColumns(Index2D idx, ArrayView<float> src, int srcColumns, int srcColumn, ArrayView<float> dst, int dstColumns, int dstColumn) =>
        dst[((long)idx.X * dstColumns) + dstColumn + idx.Y] = src[((long)idx.X * srcColumns) + srcColumn + idx.Y];

    private static float Sigmoid(float x) => 1f / (1f + XMath.Exp(-x));
}
