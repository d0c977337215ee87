using BenchmarkDotNet.Attributes;
using RA3.Kernels;
using RA3.Kernels.Cpu;
using RA3.Kernels.Native;
using RA3.Kernels.Ops;
using RA3.Model;
using RA3.Model.Generation;

namespace RA3.Bench;

/// <summary>
/// Greedy generation with the KV cache on the Llama-family model of <see cref="TrainStepBench"/>:
/// 8 prompts of 17–48 tokens, 64 new tokens each (prefill included). There is no TorchSharp peer
/// (TorchSharp has no KV-cache generation loop to compare with fairly); the figure is tokens/s
/// on each of our CPU backends.
/// </summary>
public class GenerationBench
{
    /// <summary>Sequences.</summary>
    public const int Batch = 8;

    /// <summary>New tokens per sequence.</summary>
    public const int NewTokens = 64;

    private Backend? backend;
    private Transformer? model;
    private int[][] prompts = [];

    /// <summary>cpu (managed) or native (ra3_native).</summary>
    [Params("cpu", "native")]
    public string Impl { get; set; } = "cpu";

    /// <summary>Tokens generated per call.</summary>
    public static double Tokens => Batch * NewTokens;

    [GlobalSetup]
    public void Setup()
    {
        backend = BackendCatalog.Create(Impl);
        model = new Transformer(backend, TrainStepBench.Config("llama"));
        model.InitializeRandom(5);
        var rng = new Rng(9);
        prompts = [.. Enumerable.Range(0, Batch).Select(i => Enumerable.Range(0, 17 + (i * 31 % 32)).Select(_ => rng.NextInt(model.Config.VocabSize)).ToArray())];
    }

    [Benchmark]
    public void Generate() => new Generator(model!).Generate(prompts, new SamplingOptions { MaxNewTokens = NewTokens, StopAtEos = false });

    [GlobalCleanup]
    public void Cleanup()
    {
        model?.Dispose();
        backend?.Dispose();
    }
}
