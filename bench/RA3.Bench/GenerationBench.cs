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

    // The TorchSharp peer: the reference model's forward with a KV cache (its keys and values
    // grow by concatenation), the prompt batched causally, then a token a step; greedy arg max of
    // the last position's logits.
    private int[][] TorchGreedy(int newTokens)
    {
        using var scope = NewDisposeScope();
        var cache = new TorchReferenceModel.KvCache(Config.Layers);
        var ids = tensor(prompts.SelectMany(p => p.Select(x => (long)x)).ToArray(), [Batch, PromptTokens], int64);
        var generated = new List<long[]>();
        for (int step = 0; step < newTokens; step++)
        {
            ids = TorchReferenceModel.Forward(Config, torchWeights!, ids, cache, lastOnly: true)[.., 0, ..].argmax(-1).unsqueeze(1);
            generated.Add(ids.data<long>().ToArray());
        }

        return [.. Enumerable.Range(0, Batch).Select(b => generated.Select(g => (int)g[b]).ToArray())];
    }
}
