using BenchmarkDotNet.Attributes;
using RA3.Kernels;
using RA3.Kernels.Ops;
using RA3.Model;
using RA3.Model.Config;
using RA3.Model.Generation;
using RA3.Testing;
using static TorchSharp.torch;

namespace RA3.Bench;

/// <summary>
/// Greedy generation with a KV cache on the Llama-family model of <see cref="TrainStepBench"/>:
/// 8 prompts of 32 tokens, 64 new tokens each, prefill included — ours on each CPU backend against
/// a greedy KV-cache loop written here in TorchSharp (float32, the same weights: a batched causal
/// prefill, then one token per step with each layer's keys and values appended to its cache).
/// </summary>
public class GenerationBench
{
    /// <summary>Sequences.</summary>
    public const int Batch = 8;

    /// <summary>Prompt tokens per sequence.</summary>
    public const int PromptTokens = 32;

    /// <summary>New tokens per sequence.</summary>
    public const int NewTokens = 64;

    private Backend? backend;
    private Transformer? model;
    private Dictionary<string, Tensor>? torchWeights;
    private int[][] prompts = [];

    /// <summary>cpu (managed), native (ra3_native) or torch.</summary>
    [Params("cpu", "native", "torch")]
    public string Impl { get; set; } = "cpu";

    /// <summary>Tokens generated per call.</summary>
    public static double Tokens => Batch * NewTokens;

    private static ModelConfig Config => TrainStepBench.Config("llama");

    [GlobalSetup]
    public void Setup()
    {
        backend = BackendCatalog.Create(Impl == "torch" ? "cpu" : Impl);
        model = new Transformer(backend, Config);
        model.InitializeRandom(5);
        var rng = new Rng(9);
        prompts = [.. Enumerable.Range(0, Batch).Select(_ => Enumerable.Range(0, PromptTokens).Select(_ => rng.NextInt(Config.VocabSize)).ToArray())];
        if (Impl == "torch")
        {
            torchWeights = model.Weights.Specs.ToDictionary(s => s.Name, s => tensor(model.Weights[s.Name].ToFloatArray(), [.. s.Shape.Select(d => (long)d)], float32));

            // The peer must do the same work: its greedy tokens are ours (a float32 tie could part
            // them; these random weights have none within the first steps).
            var ours = new RA3.Model.Generation.Generator(model).Generate(prompts, new SamplingOptions { MaxNewTokens = 8, StopAtEos = false });
            int[][] theirs = TorchGreedy(8);
            if (!ours.Select(g => g.Tokens).Zip(theirs, (a, b) => a.SequenceEqual(b)).All(x => x))
            {
                throw new InvalidOperationException("the TorchSharp KV-cache loop's greedy tokens differ from ours: the peer computes something else");
            }

            model.Dispose();
            model = null;
        }
    }

    [Benchmark]
    public void Generate()
    {
        if (torchWeights is not null)
        {
            TorchGreedy(NewTokens);
            return;
        }

        new RA3.Model.Generation.Generator(model!).Generate(prompts, new SamplingOptions { MaxNewTokens = NewTokens, StopAtEos = false });
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        model?.Dispose();
        backend?.Dispose();
        foreach (var t in torchWeights?.Values.AsEnumerable() ?? [])
        {
            t.Dispose();
        }
    }

    // The TorchSharp peer: a Llama forward over new tokens at positions start.. with per-layer
    // caches [B, Hkv, S, D] that grow by concatenation, greedy arg max of the last position's logits.
    private int[][] TorchGreedy(int newTokens)
    {
        using var scope = NewDisposeScope();
        var c = Config;
        var w = torchWeights!;
        var caches = new (Tensor K, Tensor V)?[c.Layers];
        var inv = TorchReferenceModel.InverseFrequencies(c.Rope, c.HeadDim).to_type(float32);
        var ids = tensor(prompts.SelectMany(p => p.Select(x => (long)x)).ToArray(), [Batch, PromptTokens], int64);
        int start = 0;
        var generated = new List<long[]>();
        for (int step = 0; step < newTokens; step++)
        {
            long time = ids.shape[1];
            var x = w["model.embed_tokens.weight"][ids];
            var angle = arange(start, start + time, float32).unsqueeze(1) * inv.unsqueeze(0);
            var cos = cat([angle.cos(), angle.cos()], 1);
            var sin = cat([angle.sin(), angle.sin()], 1);
            Tensor Rope(Tensor t)
            {
                int half = c.HeadDim / 2;
                return (t * cos) + (cat([-t[.., .., .., half..], t[.., .., .., ..half]], -1) * sin);
            }

            for (int l = 0; l < c.Layers; l++)
            {
                string p = $"model.layers.{l}.";
                var h = Rms(x, w[p + "input_layernorm.weight"], c.NormEps);
                var q = Rope(matmul(h, w[p + "self_attn.q_proj.weight"].t()).reshape(Batch, time, c.Heads, c.HeadDim).transpose(1, 2));
                var k = Rope(matmul(h, w[p + "self_attn.k_proj.weight"].t()).reshape(Batch, time, c.KvHeads, c.HeadDim).transpose(1, 2));
                var v = matmul(h, w[p + "self_attn.v_proj.weight"].t()).reshape(Batch, time, c.KvHeads, c.HeadDim).transpose(1, 2);
                var (kc, vc) = caches[l] is { } kv ? (cat([kv.K, k], 2), cat([kv.V, v], 2)) : (k, v);
                caches[l] = (kc, vc);  // every step's tensors live until the scope ends: 64 small steps
                int group = c.Heads / c.KvHeads;
                var attention = nn.functional.scaled_dot_product_attention(q, kc.repeat_interleave(group, 1), vc.repeat_interleave(group, 1), is_casual: time > 1);
                x = x + matmul(attention.transpose(1, 2).reshape(Batch, time, c.Heads * c.HeadDim), w[p + "self_attn.o_proj.weight"].t());
                h = Rms(x, w[p + "post_attention_layernorm.weight"], c.NormEps);
                var gate = matmul(h, w[p + "mlp.gate_proj.weight"].t());
                x = x + matmul(gate * sigmoid(gate) * matmul(h, w[p + "mlp.up_proj.weight"].t()), w[p + "mlp.down_proj.weight"].t());
            }

            var last = Rms(x[.., -1, ..], w["model.norm.weight"], c.NormEps);
            var logits = matmul(last, w[c.TiedHead ? "model.embed_tokens.weight" : "lm_head.weight"].t());
            start += (int)time;
            ids = logits.argmax(-1).unsqueeze(1);
            generated.Add(ids.data<long>().ToArray());
        }

        return [.. Enumerable.Range(0, Batch).Select(b => generated.Select(g => (int)g[b]).ToArray())];
    }

    private static Tensor Rms(Tensor x, Tensor weight, float eps) => x * rsqrt(x.pow(2).mean([-1], keepdim: true) + eps) * weight;
}
