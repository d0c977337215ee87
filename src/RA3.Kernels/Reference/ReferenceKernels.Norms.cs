namespace RA3.Kernels.Reference;

/// <summary>Normalisations over the last dimension C of x [rows, C]; statistics [rows] are saved for the backward.</summary>
internal static partial class ReferenceKernels
{
    /// <summary>
    /// LayerNorm: y = (x − μ)·rstd·weight + bias, rstd = 1/√(var + eps) (biased variance);
    /// x, y [rows, C], weight and bias [C] (bias may be empty), mean and rstd [rows].
    /// </summary>
    public static void LayerNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> y, Span<float> mean, Span<float> rstd, float eps)
    {
        int c = weight.Length;
        for (int r = 0; r < rstd.Length; r++)
        {
            var row = x.Slice(r * c, c);
            double mu = 0, variance = 0;
            foreach (float v in row)
            {
                mu += v;
            }

            mu /= c;
            foreach (float v in row)
            {
                variance += (v - mu) * (v - mu);
            }

            double s = 1 / Math.Sqrt((variance / c) + eps);
            for (int j = 0; j < c; j++)
            {
                y[(r * c) + j] = (float)(((row[j] - mu) * s * weight[j]) + (bias.IsEmpty ? 0 : bias[j]));
            }

            mean[r] = (float)mu;
            rstd[r] = (float)s;
        }
    }

    /// <summary>
    /// LayerNorm backward with x̂ = (x − μ)·rstd and g = dy·weight:
    /// dx += rstd·(g − mean(g) − x̂·mean(g·x̂)), dWeight += Σ_rows dy·x̂, dBias += Σ_rows dy (dBias may be empty).
    /// </summary>
    public static void LayerNormBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> mean, ReadOnlySpan<float> rstd, ReadOnlySpan<float> dy, Span<float> dx, Span<float> dWeight, Span<float> dBias)
    {
        int c = weight.Length;
        for (int r = 0; r < rstd.Length; r++)
        {
            double meanG = 0, meanGx = 0;
            for (int j = 0; j < c; j++)
            {
                int i = (r * c) + j;
                double xhat = (x[i] - mean[r]) * (double)rstd[r], g = (double)dy[i] * weight[j];
                meanG += g;
                meanGx += g * xhat;
                dWeight[j] += (float)(dy[i] * xhat);
                if (!dBias.IsEmpty)
                {
                    dBias[j] += dy[i];
                }
            }

            meanG /= c;
            meanGx /= c;
            for (int j = 0; j < c; j++)
            {
                int i = (r * c) + j;
                double xhat = (x[i] - mean[r]) * (double)rstd[r];
                dx[i] += (float)(rstd[r] * (((double)dy[i] * weight[j]) - meanG - (xhat * meanGx)));
            }
        }
    }

    /// <summary>RMSNorm: y = x·rstd·weight, rstd = 1/√(mean(x²) + eps); x, y [rows, C], weight [C], rstd [rows].</summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, Span<float> rstd, float eps)
    {
        int c = weight.Length;
        for (int r = 0; r < rstd.Length; r++)
        {
            double squares = 0;
            for (int j = 0; j < c; j++)
            {
                squares += (double)x[(r * c) + j] * x[(r * c) + j];
            }

            double s = 1 / Math.Sqrt((squares / c) + eps);
            for (int j = 0; j < c; j++)
            {
                y[(r * c) + j] = (float)(x[(r * c) + j] * s * weight[j]);
            }

            rstd[r] = (float)s;
        }
    }

    /// <summary>RMSNorm backward with g = dy·weight: dx += rstd·(g − x·rstd²·mean(g·x)), dWeight += Σ_rows dy·x·rstd.</summary>
    public static void RmsNormBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> rstd, ReadOnlySpan<float> dy, Span<float> dx, Span<float> dWeight)
    {
        int c = weight.Length;
        for (int r = 0; r < rstd.Length; r++)
        {
            double s = rstd[r], meanGx = 0;
            for (int j = 0; j < c; j++)
            {
                int i = (r * c) + j;
                meanGx += (double)dy[i] * weight[j] * x[i];
                dWeight[j] += (float)(dy[i] * x[i] * s);
            }

            meanGx /= c;
            for (int j = 0; j < c; j++)
            {
                int i = (r * c) + j;
                dx[i] += (float)(s * (((double)dy[i] * weight[j]) - (x[i] * s * s * meanGx)));
            }
        }
    }
}
