using NUnit.Framework;
using RA3.Kernels.Tensors;
using RA3.Model.Config;
using RA3.Model.Optim;
using RA3.Testing;
using static RA3.Testing.Oracle;

namespace RA3.Model.Tests;

/// <summary>
/// A model whose weights are stored as bfloat16 (the mixed-precision contract: f32 activations,
/// gradients and master weights) computes what a float32 model holding the same, bf16-representable
/// weights computes; the optimizer's f32 masters keep updates far below a bf16 ulp; and on the CPU
/// backends no op of the forward, backward, prefill or decode falls back to the reference.
/// </summary>
public sealed class MixedPrecisionTests(string backendName) : BackendTest(backendName)
{
    public static IEnumerable<TestCaseData> Configs()
    {
        yield return new TestCaseData(ModelConfig.Gpt2(vocab: 97, hidden: 48, layers: 2, heads: 4, maxPositions: 24)).SetArgDisplayNames("gpt2");
        yield return new TestCaseData(ModelConfig.Llama(vocab: 2100, hidden: 40, layers: 2, heads: 4, kvHeads: 2, intermediate: 70, maxPositions: 64) with { ModelType = "qwen2", QkvBias = true }).SetArgDisplayNames("qwen2-gqa-vocab-past-a-chunk");
    }

    [TestCaseSource(nameof(Configs))]
    public void ABFloat16ModelComputesInFloat32(ModelConfig config)
    {
        const int batch = 2, time = 11;
        using var wide = new Transformer(Backend, config, trainable: true);
        using var narrow = new Transformer(Backend, config, trainable: true, weights: DType.BFloat16);
        wide.InitializeRandom(5);
        Backend.Convert(wide.Weights.Buffer, narrow.Weights.Buffer);
        Backend.Convert(narrow.Weights.Buffer, wide.Weights.Buffer);  // the f32 model now holds exactly the bf16 values
        Assert.That(narrow.Weights.DType, Is.EqualTo(DType.BFloat16));
        Assert.That(narrow.Gradients!.DType, Is.EqualTo(DType.Float32), "gradients stay f32");
        var fallbacks = new Dictionary<string, long>(Backend.HostFallbacks);

        int[] ids = RandomInts(batch * time, 0, config.VocabSize);
        using var pw = wide.Plan(batch, time, PassKind.Train, withLogits: true);
        using var pn = narrow.Plan(batch, time, PassKind.Train, withLogits: true);
        pw.SetBatch(ids);
        pn.SetBatch(ids);
        double lw = wide.Forward(pw), ln = narrow.Forward(pn);
        Close(ln, lw, "loss", 1e-6);
        Close(pn.Logits!.ToFloatArray(), T(pw.Logits!.ToFloatArray(), [batch * time, config.VocabSize]), "logits", 1e-6);
        Backend.Zero(wide.Gradients!.Buffer);
        Backend.Zero(narrow.Gradients.Buffer);
        wide.Backward(pw);
        narrow.Backward(pn);
        foreach (var spec in wide.Weights.Specs)
        {
            Close(narrow.Gradients[spec.Name], T(wide.Gradients[spec.Name].ToFloatArray(), spec.Shape), $"grad {spec.Name}", 1e-5);
        }

        // Prefill and a decode step over the KV cache.
        int[] lengths = [time, time - 4];
        int[] next = [3, 7];
        float[] Generate(Transformer m)
        {
            using var prefill = m.Plan(batch, time, PassKind.Prefill);
            using var decode = m.Plan(batch, 1, PassKind.Decode);
            using var cache = new Generation.KvCache(Backend, config, batch, time + 1);
            prefill.Ids.CopyFrom<int>(ids);
            m.Prefill(prefill, cache, lengths);
            float[] first = prefill.Logits!.ToFloatArray();
            m.Decode(decode, cache, next);
            return [.. first, .. decode.Logits!.ToFloatArray()];
        }

        Close(Generate(narrow), T(Generate(wide), [2 * batch * config.VocabSize]), "prefill and decode logits", 1e-6);

        if (Backend.Name is "cpu" or "native")
        {
            var added = Backend.HostFallbacks.Where(f => f.Value != fallbacks.GetValueOrDefault(f.Key)).Select(f => f.Key);
            Assert.That(added, Is.Empty, "a bf16 model's forward, backward, prefill and decode run on the CPU backends' own kernels");
        }
    }

    [Test]
    public void MasterWeightsKeepUpdatesBelowABFloat16Ulp()
    {
        var config = ModelConfig.Llama(vocab: 61, hidden: 32, layers: 1, heads: 2, kvHeads: 1, intermediate: 40, maxPositions: 32);
        using var wide = new Transformer(Backend, config, trainable: true);
        using var narrow = new Transformer(Backend, config, trainable: true, weights: DType.BFloat16);
        wide.InitializeRandom(9);
        Backend.Convert(wide.Weights.Buffer, narrow.Weights.Buffer);
        Backend.Convert(narrow.Weights.Buffer, wide.Weights.Buffer);
        using var ow = new AdamWOptimizer(wide);
        using var on = new AdamWOptimizer(narrow);
        Assert.That(ow.Master, Is.Null, "f32 weights are their own master");
        Assert.That(on.Master, Is.Not.Null, "bf16 weights get f32 masters");

        int[] ids = RandomInts(2 * 8, 0, config.VocabSize);
        float[] before = narrow.Weights.Buffer.ToFloatArray();
        for (int step = 1; step <= 3; step++)
        {
            foreach (var m in new[] { wide, narrow })
            {
                using var plan = m.Plan(2, 8, PassKind.Train);
                plan.SetBatch(ids);
                m.Forward(plan);
                Backend.Zero(m.Gradients!.Buffer);
                m.Backward(plan);
            }

            // A step far below a bf16 ulp (2⁻⁸ relative): the f32 masters move, the bf16 weights cannot.
            ow.Step(1e-8f, step);
            on.Step(1e-8f, step);
        }

        float[] master = on.Master!.ToFloatArray(), weights = narrow.Weights.Buffer.ToFloatArray();
        Close(master, T(wide.Weights.Buffer.ToFloatArray(), [master.Length]), "masters follow the f32 run", 1e-6);
        Assert.That(master.Zip(before).Count(p => p.First != p.Second), Is.GreaterThan(master.Length / 2), "the masters moved");
        var rounded = new ushort[master.Length];
        BFloat16.Round(master, rounded);
        Assert.That(weights, Is.EqualTo(rounded.Select(BFloat16.Widen).ToArray()), "the weights are the masters rounded to bf16, after every step");
        Assert.That(weights.Zip(before).Count(p => p.First != p.Second), Is.LessThan(master.Length / 100), "updates of 1e-8 leave almost every bf16 weight where it was");
    }
}
