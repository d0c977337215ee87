using RA3.Model.Config;

namespace RA3.Model.Layers;

/// <summary>The parameter views of one transformer block, bound to the model's weight and gradient stores.</summary>
internal sealed class Block
{
    public Block(ModelConfig c, int layer, ParameterStore w, ParameterStore? g)
    {
        var f = c.Family;
        var n = f.Names;
        string p = n.Block(layer);
        bool layerNorm = f.Norm == NormKind.LayerNorm;
        Norm MakeNorm(string name) => new(
            w[p + name + ".weight"],
            layerNorm ? w[p + name + ".bias"] : null,
            g?[p + name + ".weight"],
            layerNorm ? g?[p + name + ".bias"] : null,
            rms: !layerNorm,
            c.NormEps);
        Linear Lin(string name, bool withBias) => new(
            w[p + name + ".weight"],
            withBias ? w[p + name + ".bias"] : null,
            !f.WeightsInOut,
            g?[p + name + ".weight"],
            withBias ? g?[p + name + ".bias"] : null);

        Norm1 = MakeNorm(n.Norm1);
        if (n.Qkv is not null)
        {
            Qkv = Lin(n.Qkv, f.LinearBiases);
        }
        else
        {
            Q = Lin(n.Q, c.QkvBias || f.LinearBiases);
            K = Lin(n.K, c.QkvBias || f.LinearBiases);
            V = Lin(n.V, c.QkvBias || f.LinearBiases);
        }

        Output = Lin(n.Output, f.LinearBiases || c.OutputBias);
        if (f.QkNorm)
        {
            QNorm = new Norm(w[p + n.QNorm + ".weight"], null, g?[p + n.QNorm + ".weight"], null, rms: true, c.NormEps);
            KNorm = new Norm(w[p + n.KNorm + ".weight"], null, g?[p + n.KNorm + ".weight"], null, rms: true, c.NormEps);
        }

        Norm2 = MakeNorm(n.Norm2);
        Hidden = Lin(n.Hidden, f.LinearBiases);
        Up = n.Up is null ? null : Lin(n.Up, f.LinearBiases);
        Down = Lin(n.Down, f.LinearBiases);
    }

    public Norm Norm1 { get; }

    /// <summary>The fused q, k, v projection [C, 3C] (GPT-2), or null.</summary>
    public Linear? Qkv { get; }

    public Linear? Q { get; }

    public Linear? K { get; }

    public Linear? V { get; }

    public Linear Output { get; }

    /// <summary>Qwen3's RMSNorm of each query head over D (before RoPE), or null.</summary>
    public Norm? QNorm { get; }

    /// <summary>Qwen3's RMSNorm of each key head over D, or null.</summary>
    public Norm? KNorm { get; }

    public Norm Norm2 { get; }

    /// <summary>The MLP's first projection: GPT-2's c_fc, Llama's gate_proj.</summary>
    public Linear Hidden { get; }

    /// <summary>The gated MLP's up_proj (Llama), or null.</summary>
    public Linear? Up { get; }

    /// <summary>GPT-2's mlp.c_proj, Llama's down_proj.</summary>
    public Linear Down { get; }
}
