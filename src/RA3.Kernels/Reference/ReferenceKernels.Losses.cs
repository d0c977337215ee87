namespace RA3.Kernels.Reference;

/// <summary>Softmax and token cross-entropy over the last dimension C of [rows, C].</summary>
internal static partial class ReferenceKernels
{
    /// <summary>y[r, :] = softmax(x[r, :]).</summary>
    public static void Softmax(ReadOnlySpan<float> x, Span<float> y, int c)
    {
        for (int r = 0; r < x.Length / c; r++)
        {
            var row = x.Slice(r * c, c);
            double z = LogSumExp(row);
            for (int j = 0; j < c; j++)
            {
                y[(r * c) + j] = (float)Math.Exp(row[j] - z);
            }
        }
    }

    /// <summary>dx += y ⊙ (dy − Σ dy ⊙ y), from the softmax output y.</summary>
    public static void SoftmaxBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, int c)
    {
        for (int r = 0; r < y.Length / c; r++)
        {
            double dot = 0;
            for (int j = 0; j < c; j++)
            {
                dot += (double)y[(r * c) + j] * dy[(r * c) + j];
            }

            for (int j = 0; j < c; j++)
            {
                dx[(r * c) + j] += (float)(y[(r * c) + j] * (dy[(r * c) + j] - dot));
            }
        }
    }

    /// <summary>losses[r] = logsumexp(logits[r, :]) − logits[r, targets[r]]; a negative target is padding (loss 0).</summary>
    public static void CrossEntropy(ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, Span<float> losses, int c)
    {
        for (int r = 0; r < targets.Length; r++)
        {
            losses[r] = targets[r] < 0 ? 0f : (float)(LogSumExp(logits.Slice(r * c, c)) - logits[(r * c) + targets[r]]);
        }
    }

    /// <summary>dLogits[r, :] += dLosses[r] · (softmax(logits[r, :]) − onehot(targets[r])); padding rows get nothing.</summary>
    public static void CrossEntropyBackward(ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, ReadOnlySpan<float> dLosses, Span<float> dLogits, int c)
    {
        for (int r = 0; r < targets.Length; r++)
        {
            if (targets[r] < 0)
            {
                continue;
            }

            var row = logits.Slice(r * c, c);
            double z = LogSumExp(row);
            for (int j = 0; j < c; j++)
            {
                dLogits[(r * c) + j] += (float)(dLosses[r] * (Math.Exp(row[j] - z) - (j == targets[r] ? 1 : 0)));
            }
        }
    }

    /// <summary>log Σ exp(x), −∞ for an empty or all −∞ span.</summary>
    private static double LogSumExp(ReadOnlySpan<float> x)
    {
        double max = double.NegativeInfinity, sum = 0;
        foreach (float v in x)
        {
            max = Math.Max(max, v);
        }

        if (double.IsNegativeInfinity(max))
        {
            return max;
        }

        foreach (float v in x)
        {
            sum += Math.Exp(v - max);
        }

        return max + Math.Log(sum);
    }
}
