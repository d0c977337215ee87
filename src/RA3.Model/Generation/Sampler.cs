namespace RA3.Model.Generation;

/// <summary>
/// Picks the next token from one row of logits: greedy arg max, or temperature, top-k and top-p
/// (nucleus) sampling with a seeded <see cref="Rng"/>. Works in a reusable scratch buffer.
/// </summary>
public sealed class Sampler(int vocab)
{
    private readonly float[] probs = new float[vocab];
    private readonly int[] order = new int[vocab];
    private readonly float[] keys = new float[vocab];

    /// <summary>The next token for <paramref name="logits"/> [V].</summary>
    public int Next(ReadOnlySpan<float> logits, SamplingOptions o, Rng rng)
    {
        // A NaN logit (a diverged model) makes every probability NaN and the draw meaningless; a row
        // of −∞ leaves nothing to draw. Both are said, never turned into some token id.
        for (int i = 0; i < logits.Length; i++)
        {
            if (float.IsNaN(logits[i]))
            {
                throw new InvalidOperationException($"the logits hold NaN (token id {i}): the model's weights or inputs are not finite");
            }
        }

        if (logits.IndexOfAnyExcept(float.NegativeInfinity) < 0)
        {
            throw new InvalidOperationException("every logit is -inf: no token can be drawn");
        }

        if (o.Temperature == 0f)
        {
            return ArgMax(logits);
        }

        int v = logits.Length, keep = o.TopK > 0 ? Math.Min(o.TopK, v) : v;
        for (int i = 0; i < v; i++)
        {
            order[i] = i;
        }

        var idx = order.AsSpan(0, v);
        if (keep < v || o.TopP < 1f)
        {
            // Most likely first: sort ids by negated logit (the same input always sorts the same way).
            var negated = keys.AsSpan(0, v);
            for (int i = 0; i < v; i++)
            {
                negated[i] = -logits[i];
            }

            negated.Sort(idx);
        }

        float max = float.NegativeInfinity;
        for (int i = 0; i < keep; i++)
        {
            max = Math.Max(max, logits[idx[i]]);
        }

        double sum = 0;
        for (int i = 0; i < keep; i++)
        {
            probs[i] = MathF.Exp((logits[idx[i]] - max) / o.Temperature);
            sum += probs[i];
        }

        if (o.TopP < 1f)
        {
            double cumulative = 0;
            for (int i = 0; i < keep; i++)
            {
                cumulative += probs[i] / sum;
                if (cumulative >= o.TopP)
                {
                    keep = i + 1;
                    break;
                }
            }

            sum = 0;
            for (int i = 0; i < keep; i++)
            {
                sum += probs[i];
            }
        }

        double u = rng.NextDouble() * sum, acc = 0;
        for (int i = 0; i < keep; i++)
        {
            acc += probs[i];
            if (u < acc)
            {
                return idx[i];
            }
        }

        return idx[keep - 1];
    }

    /// <summary>Index of the first largest logit (torch.argmax's choice).</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best])
            {
                best = i;
            }
        }

        return best;
    }
}
