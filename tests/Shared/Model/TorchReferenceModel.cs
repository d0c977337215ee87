using RA3.Model.Config;
using static TorchSharp.torch;
using TTensor = TorchSharp.torch.Tensor;

namespace RA3.Testing;

/// <summary>
/// The transformer families written independently with TorchSharp ops (layer_norm, SDPA with
/// is_causal or an explicit sliding-window mask, autograd) over a dictionary of Hugging
/// Face-named weights, in the weights' dtype: float64 as the oracle of the whole-model gradient
/// tests, float32 as the TorchSharp peer in the training-step benchmark. GPT-2; Llama and its
/// kin — Qwen2 (q/k/v biases, a sliding window in the layers from <c>max_window_layers</c> on),
/// Mistral (a sliding window in every layer), Qwen3 (per-head RMSNorm of q and k before RoPE).
/// Nothing of the model's own code is used: the weight names and shapes (<see cref="Weights"/>),
/// the rotary frequencies (<see cref="InverseFrequencies"/>) and which layers slide are written
/// here from Hugging Face's modelling code, so a wrong layout, frequency or window in the model is
/// not copied into its oracle. From the config it reads only the sizes and settings.
/// </summary>
internal static class TorchReferenceModel
{
    /// <summary>
    /// Logits [B, T, V] for ids [B, T]. With <paramref name="cache"/>, ids sit at positions
    /// cache.Length.. after the tokens the cache holds, which they attend to, and their keys and
    /// values are appended (a decoding loop's forward); <paramref name="lastOnly"/> gives the last
    /// position's logits only, [B, 1, V], as a sampler needs.
    /// </summary>
    public static TTensor Forward(ModelConfig c, IReadOnlyDictionary<string, TTensor> w, TTensor ids, KvCache? cache = null, bool lastOnly = false)
    {
        long batch = ids.shape[0], time = ids.shape[1];
        int start = cache?.Length ?? 0;
        bool gpt2 = c.Family == ModelFamily.Gpt2;
        var x = gpt2 ? w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][arange(start, start + time, int64)] : w["model.embed_tokens.weight"][ids];
        for (int l = 0; l < c.Layers; l++)
        {
            var at = new Positions(batch, time, start, cache, l);
            x = gpt2 ? Gpt2Block(c, w, $"transformer.h.{l}.", x, at) : LlamaBlock(c, w, $"model.layers.{l}.", x, at, Window(c, l));
        }

        if (cache is not null)
        {
            cache.Length += (int)time;
        }

        if (lastOnly)
        {
            x = x[.., ^1.., ..];
        }

        x = gpt2
            ? nn.functional.layer_norm(x, [c.Hidden], w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], c.NormEps)
            : Rms(x, w["model.norm.weight"], c.NormEps);
        return matmul(x, w[gpt2 ? "transformer.wte.weight" : c.TiedHead ? "model.embed_tokens.weight" : "lm_head.weight"].t());
    }

    /// <summary>
    /// The keys and values of every layer so far, [B, Hkv, S, D] each (after RoPE, before the
    /// grouped heads are repeated), grown by concatenation; <see cref="Length"/> is S.
    /// </summary>
    public sealed class KvCache(int layers)
    {
        /// <summary>Each layer's keys and values, null before the first forward.</summary>
        public (TTensor K, TTensor V)?[] Layers { get; } = new (TTensor K, TTensor V)?[layers];

        /// <summary>The tokens held.</summary>
        public int Length { get; set; }
    }

    /// <summary>
    /// Every weight of a Hugging Face checkpoint of <paramref name="c"/>, with its shape: GPT-2's
    /// Conv1D weights are [in, out], Llama/Qwen2's Linear weights [out, in].
    /// </summary>
    public static IEnumerable<(string Name, int[] Shape)> Weights(ModelConfig c)
    {
        int h = c.Hidden, q = c.Heads * c.HeadDim, kv = c.KvHeads * c.HeadDim, i = c.Intermediate;
        if (c.Family == ModelFamily.Gpt2)
        {
            yield return ("transformer.wte.weight", [c.VocabSize, h]);
            yield return ("transformer.wpe.weight", [c.MaxPositions, h]);
            for (int l = 0; l < c.Layers; l++)
            {
                string p = $"transformer.h.{l}.";
                foreach (var w in new (string, int[])[]
                {
                    ("ln_1.weight", [h]), ("ln_1.bias", [h]), ("attn.c_attn.weight", [h, 3 * h]), ("attn.c_attn.bias", [3 * h]),
                    ("attn.c_proj.weight", [h, h]), ("attn.c_proj.bias", [h]), ("ln_2.weight", [h]), ("ln_2.bias", [h]),
                    ("mlp.c_fc.weight", [h, i]), ("mlp.c_fc.bias", [i]), ("mlp.c_proj.weight", [i, h]), ("mlp.c_proj.bias", [h]),
                })
                {
                    yield return (p + w.Item1, w.Item2);
                }
            }

            yield return ("transformer.ln_f.weight", [h]);
            yield return ("transformer.ln_f.bias", [h]);
            yield break;
        }

        yield return ("model.embed_tokens.weight", [c.VocabSize, h]);
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"model.layers.{l}.";
            yield return (p + "input_layernorm.weight", [h]);
            foreach (var (name, rows) in new[] { ("q_proj", q), ("k_proj", kv), ("v_proj", kv) })
            {
                yield return (p + $"self_attn.{name}.weight", [rows, h]);
                if (c.QkvBias)
                {
                    yield return (p + $"self_attn.{name}.bias", [rows]);
                }
            }

            yield return (p + "self_attn.o_proj.weight", [h, q]);
            if (c.OutputBias)
            {
                yield return (p + "self_attn.o_proj.bias", [h]);
            }

            if (c.ModelType == "qwen3")
            {
                yield return (p + "self_attn.q_norm.weight", [c.HeadDim]);
                yield return (p + "self_attn.k_norm.weight", [c.HeadDim]);
            }

            yield return (p + "post_attention_layernorm.weight", [h]);
            yield return (p + "mlp.gate_proj.weight", [i, h]);
            yield return (p + "mlp.up_proj.weight", [i, h]);
            yield return (p + "mlp.down_proj.weight", [h, i]);
        }

        yield return ("model.norm.weight", [h]);
        if (!c.TiedHead)
        {
            yield return ("lm_head.weight", [c.VocabSize, h]);
        }
    }

    /// <summary>
    /// RoPE inverse frequencies [D/2] as transformers computes them, in float32:
    /// 1 / θ^(arange(0, D, 2) / D), then "linear" divides by the factor and "llama3" (Llama 3.1)
    /// divides wavelengths above original/low by the factor, keeps those below original/high and
    /// blends in between.
    /// </summary>
    public static TTensor InverseFrequencies(RopeScaling rope, int headDim)
    {
        var inv = pow(tensor((float)rope.Theta, float32), arange(0, headDim, 2, int64).to_type(float32) / headDim).reciprocal();
        if (rope.Type == "linear")
        {
            return inv / (float)rope.Factor;
        }

        if (rope.Type != "llama3")
        {
            return inv;
        }

        double low = rope.OriginalMaxPositions / rope.LowFreqFactor, high = rope.OriginalMaxPositions / rope.HighFreqFactor;
        var wavelen = 2 * Math.PI / inv;
        var slowed = where(wavelen > low, inv / rope.Factor, inv);
        var smooth = ((rope.OriginalMaxPositions / wavelen) - rope.LowFreqFactor) / (rope.HighFreqFactor - rope.LowFreqFactor);
        var blended = ((1 - smooth) * slowed / rope.Factor) + (smooth * slowed);
        return where(wavelen.ge(high).logical_and(wavelen.le(low)), blended, slowed);
    }

    /// <summary>The Hugging Face causal-LM loss: mean cross-entropy of position t predicting t + 1.</summary>
    public static TTensor Loss(TTensor logits, TTensor ids)
    {
        long v = logits.shape[2];
        var shifted = logits[.., ..^1, ..].reshape(-1, v);
        var targets = ids[.., 1..].reshape(-1);
        return nn.functional.cross_entropy(shifted, targets);
    }

    // Where a block's tokens sit: B sequences of T tokens at positions Start.., and the cache of
    // layer Layer to attend to and append to, if any.
    private readonly record struct Positions(long Batch, long Time, int Start, KvCache? Cache, int Layer);

    private static TTensor Gpt2Block(ModelConfig c, IReadOnlyDictionary<string, TTensor> w, string p, TTensor x, Positions at)
    {
        var h = nn.functional.layer_norm(x, [c.Hidden], w[p + "ln_1.weight"], w[p + "ln_1.bias"], c.NormEps);
        var qkv = matmul(h, w[p + "attn.c_attn.weight"]) + w[p + "attn.c_attn.bias"];
        var parts = qkv.split(c.Hidden, 2);
        var att = Attend(c, Heads(parts[0], at, c.Heads, c.HeadDim), Heads(parts[1], at, c.Heads, c.HeadDim), Heads(parts[2], at, c.Heads, c.HeadDim), at, 0);
        x = x + matmul(att, w[p + "attn.c_proj.weight"]) + w[p + "attn.c_proj.bias"];
        h = nn.functional.layer_norm(x, [c.Hidden], w[p + "ln_2.weight"], w[p + "ln_2.bias"], c.NormEps);
        var fc = matmul(h, w[p + "mlp.c_fc.weight"]) + w[p + "mlp.c_fc.bias"];
        var gelu = 0.5 * fc * (1 + tanh(Math.Sqrt(2 / Math.PI) * (fc + (0.044715 * fc.pow(3)))));
        return x + matmul(gelu, w[p + "mlp.c_proj.weight"]) + w[p + "mlp.c_proj.bias"];
    }

    /// <summary>
    /// The attention window of layer l, as transformers' configs say: Mistral's sliding_window in
    /// every layer; Qwen2/Qwen3's only with use_sliding_window, in layers l ≥ max_window_layers.
    /// </summary>
    private static int Window(ModelConfig c, int l) => c.ModelType switch
    {
        "mistral" => c.SlidingWindow,
        "qwen2" or "qwen3" => l >= c.FirstWindowLayer ? c.SlidingWindow : 0,
        _ => 0,
    };

    private static TTensor LlamaBlock(ModelConfig c, IReadOnlyDictionary<string, TTensor> w, string p, TTensor x, Positions at, int window)
    {
        TTensor Linear(string name, TTensor input)
        {
            var y = matmul(input, w[p + name + ".weight"].t());
            return w.TryGetValue(p + name + ".bias", out var bias) ? y + bias : y;
        }

        var h = Rms(x, w[p + "input_layernorm.weight"], c.NormEps);
        var q = Heads(Linear("self_attn.q_proj", h), at, c.Heads, c.HeadDim);
        var k = Heads(Linear("self_attn.k_proj", h), at, c.KvHeads, c.HeadDim);
        if (c.ModelType == "qwen3")
        {
            // Qwen3Attention: q_norm / k_norm over head_dim, after the view into heads, before RoPE.
            q = Rms(q, w[p + "self_attn.q_norm.weight"], c.NormEps);
            k = Rms(k, w[p + "self_attn.k_norm.weight"], c.NormEps);
        }

        q = Rope(c, q, at);
        k = Rope(c, k, at);
        var v = Heads(Linear("self_attn.v_proj", h), at, c.KvHeads, c.HeadDim);
        x = x + Linear("self_attn.o_proj", Attend(c, q, k, v, at, window));
        h = Rms(x, w[p + "post_attention_layernorm.weight"], c.NormEps);
        var gate = Linear("mlp.gate_proj", h);
        return x + Linear("mlp.down_proj", gate * sigmoid(gate) * Linear("mlp.up_proj", h));
    }

    /// <summary>[B, T, H·D] → [B, H, T, D].</summary>
    private static TTensor Heads(TTensor x, Positions at, int heads, int d) => x.reshape(at.Batch, at.Time, heads, d).transpose(1, 2);

    /// <summary>
    /// Causal SDPA of queries [B, Hq, T, D] at positions Start.. over the cached keys and these,
    /// [B, Hkv, S, D] (the kv heads repeated for grouped queries) — with a window, masked as
    /// transformers' sliding_window_overlay (key j seen by query i when i − window &lt; j ≤ i) —
    /// back to [B, T, Hq·D]. The keys and values are appended to the cache first.
    /// </summary>
    private static TTensor Attend(ModelConfig c, TTensor q, TTensor k, TTensor v, Positions at, int window)
    {
        if (at.Cache is { } cache)
        {
            if (cache.Layers[at.Layer] is var (pastK, pastV))
            {
                (k, v) = (cat([pastK, k], 2), cat([pastV, v], 2));
            }

            cache.Layers[at.Layer] = (k, v);
        }

        int group = c.Heads / c.KvHeads;
        (k, v) = group == 1 ? (k, v) : (k.repeat_interleave(group, 1), v.repeat_interleave(group, 1));
        TTensor attention;
        if (window == 0 && at.Start == 0)
        {
            attention = nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true);
        }
        else
        {
            var i = arange(at.Start, at.Start + at.Time, int64).unsqueeze(1);
            var j = arange(k.shape[2], int64).unsqueeze(0);
            var seen = window == 0 ? j.le(i) : j.le(i).logical_and(j.gt(i - window));
            attention = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: where(seen, zeros(1, dtype: q.dtype), full(1, double.NegativeInfinity, dtype: q.dtype)));
        }

        return attention.transpose(1, 2).reshape(at.Batch, at.Time, c.Heads * c.HeadDim);
    }

    private static TTensor Rms(TTensor x, TTensor weight, float eps) => x * rsqrt(x.pow(2).mean([-1], keepdim: true) + eps) * weight;

    /// <summary>Rotate-half RoPE on [B, H, T, D] at positions Start.. with the config's inverse frequencies.</summary>
    private static TTensor Rope(ModelConfig c, TTensor x, Positions at)
    {
        var inv = InverseFrequencies(c.Rope, c.HeadDim).to_type(x.dtype);
        var angle = arange(at.Start, at.Start + at.Time, x.dtype).unsqueeze(1) * inv.unsqueeze(0);      // [T, D/2]
        var cos = cat([angle.cos(), angle.cos()], 1);
        var sin = cat([angle.sin(), angle.sin()], 1);
        int half = c.HeadDim / 2;
        var rotated = cat([-x[.., .., .., half..], x[.., .., .., ..half]], -1);
        return (x * cos) + (rotated * sin);
    }
}
