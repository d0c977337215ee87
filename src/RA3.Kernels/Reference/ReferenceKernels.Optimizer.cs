using RA3.Kernels.Ops;

namespace RA3.Kernels.Reference;

/// <summary>The AdamW step and the gradient norm's sum of squares.</summary>
internal static partial class ReferenceKernels
{
    /// <summary>
    /// One AdamW step t (1-based) with decoupled weight decay, as <c>torch.optim.AdamW</c>:
    /// m = β₁m + (1 − β₁)g, v = β₂v + (1 − β₂)g², p = p(1 − lr·wd) − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε).
    /// </summary>
    public static void AdamW(Span<float> param, ReadOnlySpan<float> grad, Span<float> m, Span<float> v, AdamWSettings s, int step)
    {
        double b1 = s.Beta1, b2 = s.Beta2, c1 = 1 - Math.Pow(b1, step), sqrtC2 = Math.Sqrt(1 - Math.Pow(b2, step));
        for (int i = 0; i < param.Length; i++)
        {
            double g = grad[i];
            m[i] = (float)((b1 * m[i]) + ((1 - b1) * g));
            v[i] = (float)((b2 * v[i]) + ((1 - b2) * g * g));
            param[i] = (float)((param[i] * (1 - ((double)s.LearningRate * s.WeightDecay))) - (s.LearningRate / c1 * m[i] / ((Math.Sqrt(v[i]) / sqrtC2) + s.Epsilon)));
        }
    }

    /// <summary>Σ x², in double.</summary>
    public static double SumOfSquares(ReadOnlySpan<float> x)
    {
        double sum = 0;
        foreach (float v in x)
        {
            sum += (double)v * v;
        }

        return sum;
    }
}
