using RA3.Kernels.Reference;
using RA3.Kernels.Tensors;

namespace RA3.Kernels.Ops;

/// <summary>Drawing tokens from logits where they are: only ids and log-probabilities leave the backend, never the [B, V] logits.</summary>
public abstract partial class Backend
{
    /// <summary>
    /// Draws one token per row of logits [B, V] with the random number uniforms[b] ∈ [0, 1) (float32
    /// [B], drawn by the caller, so the draw is the same on every backend): temperature
    /// (0 = greedy), top-k (0 = all) and top-p (1 = all), as <c>ReferenceKernels.SampleTokens</c>
    /// defines them — without sorting the vocabulary, ties at a set's boundary joining in index order.
    /// banned [V] (int32, nonzero = never drawn; null = none) masks ids such as control tokens.
    /// Outputs: tokens [B] (int32; −1 for a row with a NaN logit or nothing to draw), logProbs [B] =
    /// log softmax(logits)[token] over all V (the model's, untempered), sampleLogProbs [B] = the log
    /// of the probability the draw gave the token (the behaviour distribution; 0 for greedy), and,
    /// for probes [B, P] (int32 ids, −1 = none), probeLogProbs [B, P] = log softmax(logits)[probe];
    /// entropies [B] (null: not wanted) = the entropy of softmax(logits) in nats (the model's, untempered).
    /// </summary>
    public void SampleTokens(Tensor logits, Tensor uniforms, float temperature, float topP, int topK, Tensor? banned, Tensor? probes, Tensor tokens, Tensor logProbs, Tensor sampleLogProbs, Tensor? probeLogProbs, Tensor? entropies = null)
    {
        Own(logits, nameof(logits));
        Own(uniforms, nameof(uniforms));
        Own(tokens, nameof(tokens), DType.Int32);
        Own(logProbs, nameof(logProbs));
        Own(sampleLogProbs, nameof(sampleLogProbs));
        ShapeCheck.Rank(logits, 2, nameof(logits), "[B, V]");
        int b = logits.Shape[0], v = logits.Shape[1];
        ShapeCheck.Is(uniforms, nameof(uniforms), b);
        ShapeCheck.Is(tokens, nameof(tokens), b);
        ShapeCheck.Is(logProbs, nameof(logProbs), b);
        ShapeCheck.Is(sampleLogProbs, nameof(sampleLogProbs), b);
        ShapeCheck.Require(temperature >= 0 && float.IsFinite(temperature) && topP is > 0 and <= 1 && topK >= 0, $"sample tokens: temperature {temperature} must be finite and >= 0, top-p {topP} in (0, 1], top-k {topK} >= 0");
        if (banned is not null)
        {
            Own(banned, nameof(banned), DType.Int32);
            ShapeCheck.Is(banned, nameof(banned), v);
        }

        ShapeCheck.Require((probes is null) == (probeLogProbs is null), "sample tokens: probes and probeLogProbs come together");
        if (probes is not null)
        {
            Own(probes, nameof(probes), DType.Int32);
            Own(probeLogProbs!, nameof(probeLogProbs));
            ShapeCheck.Require(probes.Shape.Rank == 2 && probes.Shape[0] == b, $"sample tokens: probes {probes.Shape} must be [{b}, P]");
            ShapeCheck.Same(probes, nameof(probes), probeLogProbs!, nameof(probeLogProbs));
            CheckIndices(probes, -1, v, nameof(probes));
        }

        if (entropies is not null)
        {
            Own(entropies, nameof(entropies));
            ShapeCheck.Is(entropies, nameof(entropies), b);
        }

        if (OnReference(nameof(SampleTokens), logits, uniforms, banned, probes, tokens, logProbs, sampleLogProbs, probeLogProbs, entropies))
        {
            SampleTokensReference(logits, uniforms, temperature, topP, topK, banned, probes, tokens, logProbs, sampleLogProbs, probeLogProbs, entropies);
            return;
        }

        SampleTokensCore(logits, uniforms, temperature, topP, topK, banned, probes, tokens, logProbs, sampleLogProbs, probeLogProbs, entropies);
    }

    private protected virtual void SampleTokensCore(Tensor logits, Tensor uniforms, float temperature, float topP, int topK, Tensor? banned, Tensor? probes, Tensor tokens, Tensor logProbs, Tensor sampleLogProbs, Tensor? probeLogProbs, Tensor? entropies) =>
        SampleTokensReference(logits, uniforms, temperature, topP, topK, banned, probes, tokens, logProbs, sampleLogProbs, probeLogProbs, entropies);

    private void SampleTokensReference(Tensor logits, Tensor uniforms, float temperature, float topP, int topK, Tensor? banned, Tensor? probes, Tensor tokens, Tensor logProbs, Tensor sampleLogProbs, Tensor? probeLogProbs, Tensor? entropies)
    {
        using var h = Host(nameof(SampleTokens));
        ReferenceKernels.SampleTokens(h.In(logits), h.In(uniforms), temperature, topP, topK, h.Ints(banned), h.Ints(probes), h.OutInts(tokens), h.Out(logProbs), h.Out(sampleLogProbs), probeLogProbs is null ? [] : h.Out(probeLogProbs), entropies is null ? [] : h.Out(entropies));
    }
}
