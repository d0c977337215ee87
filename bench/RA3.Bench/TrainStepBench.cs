using BenchmarkDotNet.Attributes;
using RA3.Kernels;
using RA3.Kernels.Cpu;
using RA3.Kernels.Native;
using RA3.Kernels.Ops;
using RA3.Model;
using RA3.Model.Config;
using RA3.Model.Optim;
using RA3.Testing;
using static TorchSharp.torch;

namespace RA3.Bench;

/// <summary>
/// One training step (zero gradients, forward, backward, AdamW) of a GPT-2-family model (C 256,
/// 4 layers, 4 heads) and a Llama-family one of similar size (C 256, 4 layers, 4 query / 2 KV
/// heads, MLP 688), vocabulary 8192, B 8 × T 256: ours on each CPU backend against the same
/// model in TorchSharp (float32 autograd, torch.optim.AdamW) with the same weights and batch.
/// </summary>
public class TrainStepBench
{
    /// <summary>Sequences per batch.</summary>
    public const int B = 8;

    /// <summary>Tokens per sequence.</summary>
    public const int T = 256;

    private Backend? backend;
    private Transformer? model;
    private Activations? plan;
    private AdamWOptimizer? optimizer;
    private Dictionary<string, Tensor>? torchWeights;
    private TorchSharp.Modules.AdamW? torchOptimizer;
    private Tensor? torchIds;
    private int step;

    /// <summary>gpt2 or llama.</summary>
    [Params("gpt2", "llama")]
    public string Family { get; set; } = "gpt2";

    /// <summary>cpu (managed), native (ra3_native) or torch.</summary>
    [Params("cpu", "native", "torch")]
    public string Impl { get; set; } = "cpu";

    /// <summary>Tokens per step.</summary>
    public static double Tokens => B * T;

    /// <summary>The benchmarked configuration.</summary>
    public static ModelConfig Config(string family) => family == "gpt2"
        ? ModelConfig.Gpt2(vocab: 8192, hidden: 256, layers: 4, heads: 4, maxPositions: T)
        : ModelConfig.Llama(vocab: 8192, hidden: 256, layers: 4, heads: 4, kvHeads: 2, intermediate: 688, maxPositions: T);

    [GlobalSetup]
    public void Setup()
    {
        var config = Config(Family);
        var rng = new Rng(3);
        int[] ids = [.. Enumerable.Range(0, B * T).Select(_ => rng.NextInt(config.VocabSize))];
        backend = BackendCatalog.Create(Impl == "torch" ? "cpu" : Impl);  // the torch peer copies its weights from a cpu model
        model = new Transformer(backend, config, trainable: true);
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
            var logits = TorchReferenceModel.Forward(Config(Family), torchWeights, torchIds!);
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
    }
}
