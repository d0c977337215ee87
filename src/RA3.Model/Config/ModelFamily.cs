namespace RA3.Model.Config;

/// <summary>The two decoder families the transformer implements.</summary>
public enum ModelFamily
{
    /// <summary>GPT-2: LayerNorm with bias, learned positions, GELU-tanh MLP, fused QKV stored [in, out], tied head.</summary>
    Gpt2,

    /// <summary>Llama (and Qwen2: Llama plus q/k/v biases): RMSNorm, RoPE, SwiGLU, grouped-query attention, weights stored [out, in].</summary>
    Llama,
}
