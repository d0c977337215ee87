using NUnit.Framework;
using RA3.Kernels.Ops;
using RA3.Model.Config;
using RA3.Testing;
using static RA3.Testing.Oracle;
using TTensor = TorchSharp.torch.Tensor;

namespace RA3.Model.Tests;

/// <summary>
/// The whole model's loss, logits and every parameter gradient against <see cref="TorchReferenceModel"/>
/// (TorchSharp float64 autograd, the same weights) on random configurations of both families:
/// GQA, tied and untied heads, Qwen2's q/k/v biases, Llama's attention biases, odd sizes.
/// Logits and loss within 1e-5; gradients within 1e-3 (the fixtures' bound: a parameter whose
/// gradient is 10⁻⁵ of the others', like a deep q_proj at initialisation, carries float32 rounding
/// of the larger terms it cancels).
/// </summary>
public sealed class GradientTests(string backendName) : BackendTest(backendName)
{
    public static IEnumerable<TestCaseData> Configs()
    {
        yield return new TestCaseData(ModelConfig.Gpt2(vocab: 97, hidden: 48, layers: 2, heads: 4, maxPositions: 24)).SetArgDisplayNames("gpt2");
        yield return new TestCaseData(ModelConfig.Llama(vocab: 101, hidden: 40, layers: 2, heads: 4, kvHeads: 2, intermediate: 70, maxPositions: 64)).SetArgDisplayNames("llama-gqa-untied");
        yield return new TestCaseData(ModelConfig.Llama(vocab: 90, hidden: 36, layers: 2, heads: 3, kvHeads: 1, intermediate: 50, maxPositions: 64, tiedHead: true, ropeTheta: 1e6) with { ModelType = "qwen2", QkvBias = true }).SetArgDisplayNames("qwen2-mqa-tied");
        yield return new TestCaseData(ModelConfig.Llama(vocab: 64, hidden: 32, layers: 1, heads: 2, kvHeads: 2, intermediate: 48, maxPositions: 64) with { QkvBias = true, OutputBias = true, HeadDim = 10 }).SetArgDisplayNames("llama-attention-bias-headdim10");
        yield return new TestCaseData(ModelConfig.Llama(vocab: 80, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48, maxPositions: 64, tiedHead: true, ropeTheta: 1e6) with { Family = ModelFamily.Qwen3, ModelType = "qwen3", HeadDim = 12 }).SetArgDisplayNames("qwen3-qknorm-headdim12");
        yield return new TestCaseData(ModelConfig.Llama(vocab: 70, hidden: 32, layers: 2, heads: 4, kvHeads: 1, intermediate: 40, maxPositions: 64) with { ModelType = "mistral", SlidingWindow = 4 }).SetArgDisplayNames("mistral-window4");
        yield return new TestCaseData(ModelConfig.Llama(vocab: 70, hidden: 32, layers: 3, heads: 2, kvHeads: 2, intermediate: 40, maxPositions: 64) with { ModelType = "qwen2", QkvBias = true, SlidingWindow = 3, FirstWindowLayer = 1 }).SetArgDisplayNames("qwen2-window3-upper-layers");
    }

    [Test]
    public void WeightedTokenBackwardIsThePolicyGradient()
    {
        // loss = −Σ_r w[r] log p(ids[r+1] | ids[..r]) with advantages on some rows and 0 elsewhere.
        var config = ModelConfig.Llama(vocab: 61, hidden: 32, layers: 2, heads: 2, kvHeads: 1, intermediate: 40, maxPositions: 32);
        const int batch = 2, time = 9;
        using var model = new Transformer(Backend, config, trainable: true);
        model.InitializeRandom(17);
        int[] ids = RandomInts(batch * time, 0, config.VocabSize);
        float[] w = [.. Enumerable.Range(0, batch * time).Select(r => r % time is 2 or 5 or 7 ? (float)((r % 3) - 1.3) : 0f)];
        using var plan = model.Plan(batch, time, PassKind.Train);
        plan.SetBatch(ids);
        model.Forward(plan);
        Backend.Zero(model.Gradients!.Buffer);
        model.Backward(plan, w);

        var weights = OracleWeights(model);
        var logits = TorchReferenceModel.Forward(config, weights, Ids(ids, [batch, time]));
        var logp = TorchSharp.torch.nn.functional.log_softmax(logits, 2);
        TTensor loss = TorchSharp.torch.zeros(1, TorchSharp.torch.float64);
        for (int r = 0; r < batch * time; r++)
        {
            if (w[r] != 0f && r % time != time - 1)
            {
                loss = loss - (w[r] * logp[r / time, r % time, ids[r + 1]]);
            }
        }

        loss.sum().backward();
        foreach (var (name, weight) in weights)
        {
            Close(model.Gradients[name], weight.grad!, $"grad {name}", 1e-3);
        }

        Assert.Throws<ArgumentException>(() => model.Backward(plan, new float[3]));
    }

    /// <summary>
    /// The oracle's weights: the names and shapes its own list gives (Hugging Face's), each read
    /// from the model by name, so a parameter stored in another layout reaches the oracle as the
    /// wrong matrix and the logits disagree.
    /// </summary>
    private static Dictionary<string, TTensor> OracleWeights(Transformer model)
    {
        var names = TorchReferenceModel.Weights(model.Config).ToList();
        Assert.That(model.Weights.Specs.Select(s => s.Name).Order(), Is.EqualTo(names.Select(n => n.Name).Order()), "the model's parameters are Hugging Face's, no more, no fewer");
        return names.ToDictionary(n => n.Name, n => T(model.Weights[n.Name].ToFloatArray(), n.Shape, requiresGrad: true));
    }

    /// <summary>
    /// Activation recomputation keeps the residual stream only and recomputes each block in the
    /// backward: the loss and every gradient are the same bit for bit, in a smaller plan.
    /// </summary>
    [TestCaseSource(nameof(Configs))]
    public void RecomputingActivationsGivesTheSameGradientsBitForBit(ModelConfig config)
    {
        const int batch = 2, time = 13;
        int[] ids = RandomInts(batch * time, 0, config.VocabSize);
        (double Loss, float[] Gradients, long Bytes) Run(bool recompute)
        {
            using var model = new Transformer(Backend, config, trainable: true) { RecomputeActivations = recompute };
            model.InitializeRandom(23);
            using var plan = model.Plan(batch, time, PassKind.Train);
            Assert.That(plan.Recompute, Is.EqualTo(recompute));
            plan.SetBatch(ids);
            double loss = model.Forward(plan);
            Backend.Zero(model.Gradients!.Buffer);
            model.Backward(plan);
            return (loss, model.Gradients.Buffer.ToFloatArray(), plan.Bytes);
        }

        var kept = Run(false);
        var recomputed = Run(true);
        Assert.That(recomputed.Loss, Is.EqualTo(kept.Loss));
        Assert.That(recomputed.Gradients, Is.EqualTo(kept.Gradients), "every gradient, bit for bit");
        if (config.Layers > 1)
        {
            Assert.That(recomputed.Bytes, Is.LessThan(kept.Bytes * 3 / 4), $"one block's activations instead of {config.Layers}");
        }
    }

    [Test]
    public void TokenIdsAreCheckedWhereTheHostBuildsThem()
    {
        // The ops on a device do not copy ids back to check them (Backend.CheckDeviceIndices is off
        // here): the plan checks them on the host, before the upload, on every backend.
        var config = ModelConfig.Llama(vocab: 61, hidden: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 24, maxPositions: 16);
        using var model = new Transformer(Backend, config, trainable: false);
        using var plan = model.Plan(1, 4, PassKind.Score);
        Assert.That(Backend.CheckDeviceIndices, Is.False);
        var ex = Assert.Throws<ArgumentException>(() => plan.SetBatch([1, 2, 61, 3]))!;
        Assert.That(ex.Message, Does.Contain("ids[2] = 61").And.Contain("[0, 61)"));
    }

    [TestCaseSource(nameof(Configs))]
    public void LossLogitsAndEveryGradientMatchTorchSharp(ModelConfig config)
    {
        const int batch = 2, time = 11;
        using var model = new Transformer(Backend, config, trainable: true);
        model.InitializeRandom((ulong)TestSeed.Random.NextInt64());
        foreach (var (name, shape) in TorchReferenceModel.Weights(config).Where(w => w.Shape.Length == 1))
        {
            // Norm weights and biases off their initial 1 and 0, so their gradients are exercised.
            model.Weights[name].CopyFrom<float>(Random(shape[0], -0.5, 1.5));
        }

        int[] ids = RandomInts(batch * time, 0, config.VocabSize);
        using var plan = model.Plan(batch, time, PassKind.Train, withLogits: true);
        plan.SetBatch(ids);
        double loss = model.Forward(plan);
        Backend.Zero(model.Gradients!.Buffer);
        model.Backward(plan);

        var weights = OracleWeights(model);
        var reference = TorchReferenceModel.Forward(config, weights, Ids(ids, [batch, time]));
        var refLoss = TorchReferenceModel.Loss(reference, Ids(ids, [batch, time]));
        refLoss.backward();
        Close(plan.Logits!, reference, "logits", 1e-5);
        Close(loss, refLoss.item<double>(), "loss", 1e-5);
        foreach (var (name, weight) in weights)
        {
            Close(model.Gradients[name], weight.grad!, $"grad {name}", 1e-3);
        }

        // The model's ops all run on the backend's own kernels: on a device backend a reference
        // fallback would copy tensors to the host every step.
        Assert.That(Backend.HostFallbacks, Is.Empty, "the training step fell back to the reference tier");
    }
}
