using BenchmarkDotNet.Attributes;
using RA3.Kernels;
using RA3.Kernels.Ops;
using RA3.Model;
using RA3.Model.Config;
using RA3.Model.Optim;
using RA3.Testing;
using static TorchSharp.torch;
using DType = RA3.Kernels.Tensors.DType;

namespace RA3.Bench;

/// <summary>
/// One training step of a Qwen2.5-0.5B-shaped model (494M parameters: C 896, 24 layers, 14 query /
/// 2 KV heads, MLP 4864, vocabulary 151,936, tied head), B 2 × T 512, ours on each CPU backend in
/// f32 and with bf16 weights (f32 masters), with and without activation recomputation, against
/// the same model in TorchSharp (float32 autograd, torch.optim.AdamW) with the same weights and
/// batch. Not in the default run (`--only RealModelStep`): a step is tens of seconds on 2 cores.
/// </summary>
public class RealModelStepBench
{
    /// <summary>Sequences per batch.</summary>
    public const int B = 2;

    /// <summary>Tokens per sequence.</summary>
    public const int T = 512;

    private Backend? backend;
    private Transformer? model;
    private Activations? plan;
    private AdamWOptimizer? optimizer;
    private Dictionary<string, Tensor>? torchWeights;
    private TorchSharp.Modules.AdamW? torchOptimizer;
    private Tensor? torchIds;
    private int step;

    /// <summary>cpu / native in f32; -bf16 with bf16 weights; -recompute with activation recomputation; torch.</summary>
    [Params("cpu", "native", "native-bf16", "native-recompute", "native-bf16-recompute", "torch")]
    public string Impl { get; set; } = "cpu";

    /// <summary>Tokens per step.</summary>
    public static double Tokens => B * T;

    /// <summary>Qwen2.5-Coder-0.5B's shape (its config.json's sizes).</summary>
    public static ModelConfig Config { get; } = ModelConfig.Llama(vocab: 151_936, hidden: 896, layers: 24, heads: 14, kvHeads: 2, intermediate: 4864, maxPositions: 32768, tiedHead: true, ropeTheta: 1e6) with { ModelType = "qwen2", QkvBias = true };

    /// <summary>FLOPs of one step by the 6·N rule plus causal attention (12·L·B·T²·Hq·D / 2), recomputation not counted.</summary>
    public static double Flops => (6.0 * Config.ParameterCount * Tokens) + (6.0 * Config.Layers * B * (double)T * T * Config.Heads * Config.HeadDim);

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Rng(3);
        int[] ids = [.. Enumerable.Range(0, B * T).Select(_ => rng.NextInt(Config.VocabSize))];
        backend = BackendCatalog.Create(Impl == "torch" ? "cpu" : Impl.Split('-')[0]);
        var weights = Impl.Contains("-bf16", StringComparison.Ordinal) ? DType.BFloat16 : DType.Float32;
        model = new Transformer(backend, Config, trainable: true, weights) { RecomputeActivations = Impl.EndsWith("-recompute", StringComparison.Ordinal) };
        model.InitializeRandom(11);
        if (Impl == "torch")
        {
            torchWeights = model.Weights.Specs.ToDictionary(
                s => s.Name,
                s => (Tensor)new TorchSharp.Modules.Parameter(tensor(model.Weights[s.Name].ToFloatArray(), [.. s.Shape.Select(d => (long)d)], float32)));
            torchOptimizer = optim.AdamW(torchWeights.Values.Cast<TorchSharp.Modules.Parameter>(), lr: 1e-4, beta1: 0.9, beta2: 0.95, weight_decay: 0.0);
            torchIds = tensor(ids.Select(i => (long)i).ToArray(), [B, T], int64);
            model.Dispose();
            model = null;
            return;
        }

        plan = model.Plan(B, T, PassKind.Train);
        plan.SetBatch(ids);
        optimizer = new AdamWOptimizer(model, weightDecay: 0f);
    }

    [Benchmark]
    public void Step()
    {
        step++;
        if (torchWeights is not null)
        {
            torchOptimizer!.zero_grad();
            using var scope = NewDisposeScope();
            var logits = TorchReferenceModel.Forward(Config, torchWeights, torchIds!);
            TorchReferenceModel.Loss(logits, torchIds!).backward();
            torchOptimizer.step();
            return;
        }

        backend!.Zero(model!.Gradients!.Buffer);
        model.Forward(plan!);
        model.Backward(plan!);
        optimizer!.Step(1e-4f, step);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        plan?.Dispose();
        optimizer?.Dispose();
        model?.Dispose();
        backend?.Dispose();
        foreach (var t in torchWeights?.Values.AsEnumerable() ?? [])
        {
            t.Dispose();
        }

        torchIds?.Dispose();
        GC.Collect();
    }
}
