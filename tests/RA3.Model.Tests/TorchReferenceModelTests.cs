using NUnit.Framework;
using RA3.Model.Config;
using RA3.Testing;
using static TorchSharp.torch;

namespace RA3.Model.Tests;

/// <summary>
/// The oracle's decoding form (the generation bench's TorchSharp peer runs it): a forward over a
/// prompt and then one token at a time through <see cref="TorchReferenceModel.KvCache"/> gives the
/// logits of the whole sequence's causal forward, in every family, with a window shorter than the
/// sequence included.
/// </summary>
public sealed class TorchReferenceModelTests
{
    [TestCaseSource(typeof(GradientTests), nameof(GradientTests.Configs))]
    public void AForwardThroughAKvCacheIsTheWholeForward(ModelConfig config)
    {
        const int batch = 2, prompt = 5, time = 9;
        var generator = new TorchSharp.torch.Generator(7);
        var weights = TorchReferenceModel.Weights(config).ToDictionary(w => w.Name, w => randn([.. w.Shape.Select(d => (long)d)], float64, generator: generator) * 0.2);
        var ids = randint(config.VocabSize, [batch, time], dtype: int64, generator: generator);
        var whole = TorchReferenceModel.Forward(config, weights, ids);

        var cache = new TorchReferenceModel.KvCache(config.Layers);
        var pieces = new List<Tensor> { TorchReferenceModel.Forward(config, weights, ids[.., ..prompt], cache) };
        for (int t = prompt; t < time; t++)
        {
            var last = TorchReferenceModel.Forward(config, weights, ids[.., t..(t + 1)], cache, lastOnly: true);
            pieces.Add(last);
        }

        Assert.That(cache.Length, Is.EqualTo(time));
        double error = (cat(pieces, 1) - whole).abs().max().item<double>();
        Assert.That(error, Is.LessThan(1e-10), "float64 logits, prompt then token by token, against the whole forward");
    }
}
