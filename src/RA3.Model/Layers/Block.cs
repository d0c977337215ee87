using RA3.Model.Config;

namespace RA3.Model.Layers;

/// <summary>The parameter views of one transformer block, bound to the model's weight and gradient stores.</summary>
internal sealed class Block
{
    public Block(ModelConfig c, int layer, ParameterStore w, ParameterStore? g)
    {
        Norm Norm(string name, bool withBias) => new(
            w[name + ".weight"],
            withBias ? w[name + ".bias"] : null,
            g?[name + ".weight"],
            withBias ? g?[name + ".bias"] : null,
            rms: !withBias,
            c.NormEps);
        Linear Lin(string name, bool withBias, bool outIn) => new(
            w[name + ".weight"],
            withBias ? w[name + ".bias"] : null,
            outIn,
            g?[name + ".weight"],
            withBias ? g?[name + ".bias"] : null);

        if (c.Family == ModelFamily.Gpt2)
        {
            string p = $"transformer.h.{layer}.";
            Norm1 = Norm(p + "ln_1", true);
            Qkv = Lin(p + "attn.c_attn", true, false);
            Output = Lin(p + "attn.c_proj", true, false);
            Norm2 = Norm(p + "ln_2", true);
            Hidden = Lin(p + "mlp.c_fc", true, false);
            Down = Lin(p + "mlp.c_proj", true, false);
        }
        else
        {
            string p = $"model.layers.{layer}.";
            Norm1 = Norm(p + "input_layernorm", false);
            Q = Lin(p + "self_attn.q_proj", c.QkvBias, true);
            K = Lin(p + "self_attn.k_proj", c.QkvBias, true);
            V = Lin(p + "self_attn.v_proj", c.QkvBias, true);
            Output = Lin(p + "self_attn.o_proj", c.OutputBias, true);
            Norm2 = Norm(p + "post_attention_layernorm", false);
            Hidden = Lin(p + "mlp.gate_proj", false, true);
            Up = Lin(p + "mlp.up_proj", false, true);
            Down = Lin(p + "mlp.down_proj", false, true);
        }
    }

    public Norm Norm1 { get; }

    /// <summary>GPT-2's fused q, k, v projection [C, 3C].</summary>
    public Linear? Qkv { get; }

    public Linear? Q { get; }

    public Linear? K { get; }

    public Linear? V { get; }

    public Linear Output { get; }

    public Norm Norm2 { get; }

    /// <summary>GPT-2's c_fc, Llama's gate_proj.</summary>
    public Linear Hidden { get; }

    /// <summary>Llama's up_proj.</summary>
    public Linear? Up { get; }

    /// <summary>GPT-2's mlp.c_proj, Llama's down_proj.</summary>
    public Linear Down { get; }
}
