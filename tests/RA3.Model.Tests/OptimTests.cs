using NUnit.Framework;
using RA3.Kernels.Cpu;
using RA3.Model.Config;
using RA3.Model.Optim;

namespace RA3.Model.Tests;

/// <summary>AdamW's decay groups and the learning-rate schedule.</summary>
public sealed class OptimTests
{
    [TestCase(false)]
    [TestCase(true)]
    public void WeightDecayTouchesMatricesOnlyUnlessAskedForAll(bool decayAll)
    {
        using var backend = new CpuBackend();
        using var model = new Transformer(backend, ModelConfig.Gpt2(vocab: 32, hidden: 16, layers: 1, heads: 2, maxPositions: 8), trainable: true);
        model.InitializeRandom(1);
        var before = model.Weights.Specs.ToDictionary(s => s.Name, s => model.Weights[s.Name].ToFloatArray());
        using var optimizer = new AdamWOptimizer(model, weightDecay: 0.5f) { DecayAll = decayAll };
        optimizer.Step(0.1f, 1);  // zero gradients: only the decay moves weights, by a factor 1 − lr·wd
        foreach (var spec in model.Weights.Specs)
        {
            bool decays = decayAll || spec.Decay;
            float[] after = model.Weights[spec.Name].ToFloatArray();
            float[] want = [.. before[spec.Name].Select(w => decays ? w * (1 - (0.1f * 0.5f)) : w)];
            Assert.That(after, Is.EqualTo(want).Within(1e-7f), spec.Name);
        }

        Assert.That(model.Weights.Specs.Where(s => s.Decay).Select(s => s.Name), Has.All.EndsWith(".weight").And.None.Contains("wte").And.None.Contains("wpe").And.None.Contains("ln_"));
    }

    [Test]
    public void WarmupThenCosineToTheFloor()
    {
        var schedule = new LearningRateSchedule(Peak: 1e-3f, WarmupSteps: 10, TotalSteps: 110, MinRatio: 0.1f);
        Assert.That(schedule.At(1), Is.EqualTo(1e-4f).Within(1e-9f));
        Assert.That(schedule.At(10), Is.EqualTo(1e-3f).Within(1e-9f));
        Assert.That(schedule.At(60), Is.EqualTo(0.55e-3f).Within(1e-8f));
        Assert.That(schedule.At(110), Is.EqualTo(1e-4f).Within(1e-9f));
        Assert.That(schedule.At(500), Is.EqualTo(1e-4f).Within(1e-9f));
    }
}
