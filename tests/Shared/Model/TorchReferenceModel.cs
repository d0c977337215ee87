using RA3.Model;
using RA3.Model.Config;
using static TorchSharp.torch;
using TTensor = TorchSharp.torch.Tensor;

namespace RA3.Testing;

/// <summary>
/// The same two transformer families written independently with TorchSharp ops (layer_norm, SDPA
/// with is_causal, autograd) over a dictionary of Hugging Face-named weights, in the weights'
/// dtype: float64 as the oracle of the whole-model gradient tests, float32 as the TorchSharp peer
/// in the training-step benchmark.
/// </summary>
internal static class TorchReferenceModel
{
    /// <summary>Logits [B, T, V] for ids [B, T].</summary>
    public static TTensor Forward(ModelConfig c, IReadOnlyDictionary<string, TTensor> w, TTensor ids)
    {
        long batch = ids.shape[0], time = ids.shape[1];
        var pos = arange(time, int64);
        bool gpt2 = c.Family == ModelFamily.Gpt2;
        var x = gpt2 ? w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][pos] : w["model.embed_tokens.weight"][ids];
        for (int l = 0; l < c.Layers; l++)
        {
            x = gpt2 ? Gpt2Block(c, w, $"transformer.h.{l}.", x, batch, time) : LlamaBlock(c, w, $"model.layers.{l}.", x, batch, time);
        }

        x = gpt2
            ? nn.functional.layer_norm(x, [c.Hidden], w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], c.NormEps)
            : Rms(x, w["model.norm.weight"], c.NormEps);
        return matmul(x, w[Parameters.Head(c)].t());
    }

    /// <summary>The Hugging Face causal-LM loss: mean cross-entropy of position t predicting t + 1.</summary>
    public static TTensor Loss(TTensor logits, TTensor ids)
    {
        long v = logits.shape[2];
        var shifted = logits[.., ..^1, ..].reshape(-1, v);
        var targets = ids[.., 1..].reshape(-1);
        return nn.functional.cross_entropy(shifted, targets);
    }

    private static TTensor Gpt2Block(ModelConfig c, IReadOnlyDictionary<string, TTensor> w, string p, TTensor x, long batch, long time)
    {
        var h = nn.functional.layer_norm(x, [c.Hidden], w[p + "ln_1.weight"], w[p + "ln_1.bias"], c.NormEps);
        var qkv = matmul(h, w[p + "attn.c_attn.weight"]) + w[p + "attn.c_attn.bias"];
        var parts = qkv.split(c.Hidden, 2);
        var att = Attend(c, Heads(parts[0], batch, time, c.Heads, c.HeadDim), Heads(parts[1], batch, time, c.Heads, c.HeadDim), Heads(parts[2], batch, time, c.Heads, c.HeadDim), batch, time);
        x = x + matmul(att, w[p + "attn.c_proj.weight"]) + w[p + "attn.c_proj.bias"];
        h = nn.functional.layer_norm(x, [c.Hidden], w[p + "ln_2.weight"], w[p + "ln_2.bias"], c.NormEps);
        var fc = matmul(h, w[p + "mlp.c_fc.weight"]) + w[p + "mlp.c_fc.bias"];
        var gelu = 0.5 * fc * (1 + tanh(Math.Sqrt(2 / Math.PI) * (fc + (0.044715 * fc.pow(3)))));
        return x + matmul(gelu, w[p + "mlp.c_proj.weight"]) + w[p + "mlp.c_proj.bias"];
    }

    private static TTensor LlamaBlock(ModelConfig c, IReadOnlyDictionary<string, TTensor> w, string p, TTensor x, long batch, long time)
    {
        TTensor Linear(string name, TTensor input)
        {
            var y = matmul(input, w[p + name + ".weight"].t());
            return w.TryGetValue(p + name + ".bias", out var bias) ? y + bias : y;
        }

        var h = Rms(x, w[p + "input_layernorm.weight"], c.NormEps);
        var q = Rope(c, Heads(Linear("self_attn.q_proj", h), batch, time, c.Heads, c.HeadDim), time);
        var k = Rope(c, Heads(Linear("self_attn.k_proj", h), batch, time, c.KvHeads, c.HeadDim), time);
        var v = Heads(Linear("self_attn.v_proj", h), batch, time, c.KvHeads, c.HeadDim);
        int group = c.Heads / c.KvHeads;
        var att = Attend(c, q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1), batch, time);
        x = x + Linear("self_attn.o_proj", att);
        h = Rms(x, w[p + "post_attention_layernorm.weight"], c.NormEps);
        var gate = Linear("mlp.gate_proj", h);
        return x + Linear("mlp.down_proj", gate * sigmoid(gate) * Linear("mlp.up_proj", h));
    }

    /// <summary>[B, T, H·D] → [B, H, T, D].</summary>
    private static TTensor Heads(TTensor x, long batch, long time, int heads, int d) => x.reshape(batch, time, heads, d).transpose(1, 2);

    /// <summary>Causal SDPA on [B, H, T, D], back to [B, T, H·D].</summary>
    private static TTensor Attend(ModelConfig c, TTensor q, TTensor k, TTensor v, long batch, long time) =>
        nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true).transpose(1, 2).reshape(batch, time, c.Heads * c.HeadDim);

    private static TTensor Rms(TTensor x, TTensor weight, float eps) => x * rsqrt(x.pow(2).mean([-1], keepdim: true) + eps) * weight;

    /// <summary>Rotate-half RoPE on [B, H, T, D] with the config's inverse frequencies.</summary>
    private static TTensor Rope(ModelConfig c, TTensor x, long time)
    {
        var inv = tensor(c.Rope.InverseFrequencies(c.HeadDim).Select(f => (double)f).ToArray(), float64).to_type(x.dtype);
        var angle = arange(time, x.dtype).unsqueeze(1) * inv.unsqueeze(0);      // [T, D/2]
        var cos = cat([angle.cos(), angle.cos()], 1);
        var sin = cat([angle.sin(), angle.sin()], 1);
        int half = c.HeadDim / 2;
        var rotated = cat([-x[.., .., .., half..], x[.., .., .., ..half]], -1);
        return (x * cos) + (rotated * sin);
    }
}
