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

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    [TestCase(7)]
    [TestCase(5000)]
    public void OptimizerShardsCoverEveryParameterOnceOnBlockBoundaries(int ranks)
    {
        using var backend = new CpuBackend();
        using var model = new Transformer(backend, ModelConfig.Llama(vocab: 48, hidden: 24, layers: 2, heads: 4, kvHeads: 2, intermediate: 40, maxPositions: 8), trainable: true);
        var shards = Enumerable.Range(0, ranks).Select(r => OptimizerShard.Of(model.Weights, r, ranks)).ToList();
        long length = model.Weights.Buffer.Count, next = 0;
        foreach (var shard in shards)
        {
            Assert.That(shard.Range.Begin, Is.EqualTo(next), "contiguous, in rank order");
            Assert.That(shard.Range.Begin % OptimizerShard.Alignment, Is.Zero, "a boundary on a block");
            Assert.That(shard.Range.Count, Is.InRange(0L, (length / ranks) + (2 * OptimizerShard.Alignment)), "nearly equal shares");
            next = shard.Range.End;
        }

        Assert.That(next, Is.EqualTo(length), "the last shard ends at the buffer's end");
        foreach (var spec in model.Weights.Specs)
        {
            // Every element of every tensor is in exactly one piece, the pieces in order.
            var pieces = shards.SelectMany(s => s.Pieces).Where(p => p.Spec == spec).ToList();
            Assert.That(pieces.Select(p => p.First), Is.EqualTo(pieces.Select(p => p.First).Order()), spec.Name);
            long covered = 0;
            foreach (var p in pieces)
            {
                Assert.That(p.First, Is.EqualTo(covered), $"{spec.Name}: no gap, no overlap");
                covered += p.Count;
            }

            Assert.That(covered, Is.EqualTo(spec.Count), spec.Name);
        }
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
