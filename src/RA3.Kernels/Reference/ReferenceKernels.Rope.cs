namespace RA3.Kernels.Reference;

/// <summary>Rotary position embedding, Hugging Face's rotate-half layout.</summary>
internal static partial class ReferenceKernels
{
    /// <summary>
    /// x, y [B·T, H, D], positions [B·T], invFreq [D/2]: element i of each head pairs with i + D/2,
    /// both rotated by θ = positions[row]·invFreq[i]: y[i] = x[i]cos θ − x[i + D/2]sin θ,
    /// y[i + D/2] = x[i + D/2]cos θ + x[i]sin θ. <paramref name="inverse"/>: the backward,
    /// y += Rᵀx (the rotation by −θ, accumulated).
    /// </summary>
    public static void Rope(ReadOnlySpan<float> x, ReadOnlySpan<int> positions, ReadOnlySpan<float> invFreq, Span<float> y, int heads, bool inverse)
    {
        int half = invFreq.Length, d = 2 * half;
        for (int row = 0; row < positions.Length; row++)
        {
            for (int h = 0; h < heads; h++)
            {
                int o = ((row * heads) + h) * d;
                for (int i = 0; i < half; i++)
                {
                    double angle = (double)positions[row] * invFreq[i], cos = Math.Cos(angle), sin = inverse ? -Math.Sin(angle) : Math.Sin(angle);
                    double x1 = x[o + i], x2 = x[o + i + half];
                    float y1 = (float)((x1 * cos) - (x2 * sin)), y2 = (float)((x2 * cos) + (x1 * sin));
                    if (inverse)
                    {
                        y[o + i] += y1;
                        y[o + i + half] += y2;
                    }
                    else
                    {
                        y[o + i] = y1;
                        y[o + i + half] = y2;
                    }
                }
            }
        }
    }
}
