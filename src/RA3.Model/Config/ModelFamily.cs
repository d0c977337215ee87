namespace RA3.Model.Config;

/// <summary>How a block normalises: LayerNorm (mean and variance, with bias) or RMSNorm.</summary>
public enum NormKind
{
    /// <summary>y = (x − μ)·rstd·w + b (GPT-2).</summary>
    LayerNorm,

    /// <summary>y = x·rstd·w (Llama, Qwen2).</summary>
    RmsNorm,
}

/// <summary>How positions enter the model.</summary>
public enum PositionKind
{
    /// <summary>A learned table added to the token embedding; sequences are limited to its rows (GPT-2).</summary>
    Learned,

    /// <summary>Rotary embedding of q and k (Llama, Qwen2); <see cref="ModelConfig.Rope"/> has its settings.</summary>
    Rotary,
}

/// <summary>The MLP of a block.</summary>
public enum MlpKind
{
    /// <summary>c_fc, GELU-tanh, c_proj (GPT-2).</summary>
    GeluTanh,

    /// <summary>down(silu(gate(x)) · up(x)) (Llama, Qwen2).</summary>
    SwiGlu,
}

/// <summary>
/// Where each tensor of a family lives in a Hugging Face checkpoint: the parameter layout, the
/// blocks' views and the checkpoint reader all read these names, so they are written once.
/// Block names are relative to <see cref="Block"/>(layer).
/// </summary>
/// <param name="Embedding">Token embedding [V, C] (the head too when tied).</param>
/// <param name="Positions">Learned position table [P, C], or null.</param>
/// <param name="BlockPrefix">Prefix of layer l's tensors, with {0} for l.</param>
/// <param name="Norm1">The norm before attention.</param>
/// <param name="Qkv">The fused q, k, v projection, or null for separate ones.</param>
/// <param name="Q">The query projection (separate projections only).</param>
/// <param name="K">The key projection.</param>
/// <param name="V">The value projection.</param>
/// <param name="Output">The attention output projection.</param>
/// <param name="Norm2">The norm before the MLP.</param>
/// <param name="Hidden">The MLP's first projection (GPT-2 c_fc, Llama gate_proj).</param>
/// <param name="Up">The gated MLP's up projection, or null.</param>
/// <param name="Down">The MLP's last projection.</param>
/// <param name="FinalNorm">The norm after the last block.</param>
/// <param name="Head">The untied output head [V, C].</param>
/// <param name="BaseModelPrefix">The prefix a bare base-model checkpoint omits (GPT2Model saves <c>h.0.…</c> for <c>transformer.h.0.…</c>), or null when such checkpoints are not read.</param>
/// <param name="QNorm">The per-head RMSNorm of the queries (Qwen3's q_norm, weight [D]), or null.</param>
/// <param name="KNorm">The per-head RMSNorm of the keys (Qwen3's k_norm), or null.</param>
public sealed record ParameterNames(
    string Embedding, string? Positions, string BlockPrefix, string Norm1, string? Qkv, string Q, string K, string V, string Output, string Norm2, string Hidden, string? Up, string Down, string FinalNorm, string Head, string? BaseModelPrefix, string? QNorm = null, string? KNorm = null)
{
    /// <summary>The prefix of layer <paramref name="layer"/>'s tensors.</summary>
    public string Block(int layer) => string.Format(System.Globalization.CultureInfo.InvariantCulture, BlockPrefix, layer);
}

/// <summary>
/// A decoder-only family as data: the traits its layers consult and its parameter names. Each
/// supported <c>model_type</c> of <c>config.json</c> maps to one (<see cref="ForModelType"/>); a
/// new family, or a trait such as QK-norm, is a value here plus the code that honours it.
/// </summary>
/// <param name="Name">Short name (gpt2, llama, qwen3).</param>
/// <param name="Norm">The norm of every block and the final one.</param>
/// <param name="Positions">Learned table or rotary.</param>
/// <param name="Mlp">The MLP kind.</param>
/// <param name="WeightsInOut">Projection weights stored [in, out] (GPT-2's Conv1D) rather than nn.Linear's [out, in].</param>
/// <param name="LinearBiases">Every projection, and the norms, carry a bias (GPT-2); otherwise only those <see cref="ModelConfig.QkvBias"/> and <see cref="ModelConfig.OutputBias"/> ask for.</param>
/// <param name="Names">Where each tensor lives in a checkpoint.</param>
public sealed record ModelFamily(string Name, NormKind Norm, PositionKind Positions, MlpKind Mlp, bool WeightsInOut, bool LinearBiases, ParameterNames Names)
{
    /// <summary>GPT-2: LayerNorm with bias, learned positions, GELU-tanh MLP, fused QKV stored [in, out], biases everywhere.</summary>
    public static ModelFamily Gpt2 { get; } = new(
        "gpt2",
        NormKind.LayerNorm,
        PositionKind.Learned,
        MlpKind.GeluTanh,
        WeightsInOut: true,
        LinearBiases: true,
        new ParameterNames(
            Embedding: "transformer.wte.weight",
            Positions: "transformer.wpe.weight",
            BlockPrefix: "transformer.h.{0}.",
            Norm1: "ln_1",
            Qkv: "attn.c_attn",
            Q: "",
            K: "",
            V: "",
            Output: "attn.c_proj",
            Norm2: "ln_2",
            Hidden: "mlp.c_fc",
            Up: null,
            Down: "mlp.c_proj",
            FinalNorm: "transformer.ln_f",
            Head: "lm_head.weight",
            BaseModelPrefix: "transformer."));

    /// <summary>Llama (and Qwen2: Llama with q/k/v biases): RMSNorm, RoPE, SwiGLU, grouped-query attention, weights [out, in].</summary>
    public static ModelFamily Llama { get; } = new(
        "llama",
        NormKind.RmsNorm,
        PositionKind.Rotary,
        MlpKind.SwiGlu,
        WeightsInOut: false,
        LinearBiases: false,
        new ParameterNames(
            Embedding: "model.embed_tokens.weight",
            Positions: null,
            BlockPrefix: "model.layers.{0}.",
            Norm1: "input_layernorm",
            Qkv: null,
            Q: "self_attn.q_proj",
            K: "self_attn.k_proj",
            V: "self_attn.v_proj",
            Output: "self_attn.o_proj",
            Norm2: "post_attention_layernorm",
            Hidden: "mlp.gate_proj",
            Up: "mlp.up_proj",
            Down: "mlp.down_proj",
            FinalNorm: "model.norm",
            Head: "lm_head.weight",
            BaseModelPrefix: null));

    /// <summary>
    /// Qwen3: Llama's layout plus an RMSNorm over each head's dimension of q and of k (one weight
    /// [D] each, shared by the heads), after the projections and before RoPE; a head_dim of its own
    /// (Hq·D need not be C). No q/k/v biases unless <c>attention_bias</c> says so.
    /// </summary>
    public static ModelFamily Qwen3 { get; } = Llama with
    {
        Name = "qwen3",
        Names = Llama.Names with { QNorm = "self_attn.q_norm", KNorm = "self_attn.k_norm" },
    };

    /// <summary>The <c>model_type</c>s that load, and their families (Mistral and Qwen2 are Llama's layout with their own config fields: a sliding window, q/k/v biases).</summary>
    public static IReadOnlyDictionary<string, ModelFamily> ByModelType { get; } = new Dictionary<string, ModelFamily>(StringComparer.Ordinal)
    {
        ["gpt2"] = Gpt2,
        ["llama"] = Llama,
        ["mistral"] = Llama,
        ["qwen2"] = Llama,
        ["qwen3"] = Qwen3,
    };

    /// <summary>Whether q, k and v come from one fused projection [C, 3C].</summary>
    public bool FusedQkv => Names.Qkv is not null;

    /// <summary>Whether q and k pass through a per-head RMSNorm before RoPE (Qwen3).</summary>
    public bool QkNorm => Names.QNorm is not null;

    /// <summary>The family of a <c>config.json</c> <c>model_type</c>, or null when none is supported.</summary>
    public static ModelFamily? ForModelType(string modelType) => ByModelType.GetValueOrDefault(modelType);
}
