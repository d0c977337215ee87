using NUnit.Framework;
using RA3.Kernels.Ops;
using RA3.Model.Generation;
using RA3.Model.IO;
using RA3.Model.Tokenizers;
using RA3.Testing;

namespace RA3.Model.Tests;

/// <summary>
/// Generation with the KV cache: greedy output identical to transformers' on the fixtures, batched
/// prompts of different lengths identical to recomputing every step without a cache, continuous
/// batching and chunked prefill giving each sequence the tokens it gets alone, a step split into
/// passes equal to a full forward pass, seeded sampling reproducible, stop strings cutting text and tokens.
/// </summary>
public sealed class GenerationTests(string backendName) : BackendTest(backendName)
{
    [TestCase("gpt2-tiny")]
    [TestCase("llama-tiny")]
    public void GreedyMatchesTransformersTokenForToken(string fixture)
    {
        string dir = Fixtures.SharedPath("fixtures", "hf", fixture);
        using var model = HuggingFaceCheckpoint.Load(dir, Backend);
        using var reference = SafeTensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        int[] prompt = reference.ReadInts("generate.prompt");
        int[] want = reference.ReadInts("generate.output");
        var result = new Generator(model).Generate([prompt], new SamplingOptions { MaxNewTokens = want.Length - prompt.Length, StopAtEos = false });
        Assert.That(prompt.Concat(result[0].Tokens), Is.EqualTo(want));
    }

    [TestCase("gpt2-tiny")]
    [TestCase("llama-tiny")]
    public void BatchedPromptsOfDifferentLengthsMatchRecomputingWithoutCache(string fixture)
    {
        using var model = HuggingFaceCheckpoint.Load(Fixtures.SharedPath("fixtures", "hf", fixture), Backend);
        CacheMatchesRecomputing(model);
    }

    /// <summary>The KV-cache decode of the families with their own attention: a sliding window narrower than the sequences (every layer, or the upper ones) and Qwen3's q/k norms.</summary>
    [TestCaseSource(typeof(GradientTests), nameof(GradientTests.Configs))]
    public void EveryFamilysCacheMatchesRecomputing(Config.ModelConfig config)
    {
        using var model = new Transformer(Backend, config);
        model.InitializeRandom(31);
        CacheMatchesRecomputing(model);
    }

    private void CacheMatchesRecomputing(Transformer model)
    {
        var rng = new Rng(7);
        int[][] prompts = [.. new[] { 3, 9, 5 }.Select(n => Enumerable.Range(0, n).Select(_ => rng.NextInt(model.Config.VocabSize)).ToArray())];
        const int steps = 8;
        var batched = new Generator(model).Generate(prompts, new SamplingOptions { MaxNewTokens = steps, StopAtEos = false });
        for (int i = 0; i < prompts.Length; i++)
        {
            var sequence = prompts[i].ToList();
            for (int s = 0; s < steps; s++)
            {
                using var plan = model.Plan(1, sequence.Count, PassKind.Score, withLogits: true);
                plan.SetBatch([.. sequence]);
                model.Forward(plan);
                float[] logits = plan.Logits!.ToFloatArray();
                int v = model.Config.VocabSize, last = (sequence.Count - 1) * v;
                int best = 0;
                for (int j = 1; j < v; j++)
                {
                    best = logits[last + j] > logits[last + best] ? j : best;
                }

                sequence.Add(best);
            }

            Assert.That(batched[i].Tokens, Is.EqualTo(sequence.Skip(prompts[i].Length)), $"prompt {i} (length {prompts[i].Length})");
        }

        Assert.That(Backend.HostFallbacks, Is.Empty, "prefill, decode or scoring fell back to the reference tier");
    }

    [Test]
    public void ContinuousBatchingGivesEachSequenceTheTokensItGetsAlone()
    {
        // Five prompts of different lengths, generated one at a time, all together, and in two
        // slots (a finished sequence's slot takes the next prompt, prefilled beside the others' decode rows).
        using var model = HuggingFaceCheckpoint.Load(Fixtures.SharedPath("fixtures", "hf", "llama-tiny"), Backend);
        var generator = new Generator(model);
        var rng = new Rng(3);
        int[][] prompts = [.. new[] { 4, 17, 2, 9, 30 }.Select(n => Enumerable.Range(0, n).Select(_ => rng.NextInt(model.Config.VocabSize)).ToArray())];
        foreach (var options in new[] { new SamplingOptions { MaxNewTokens = 10, StopAtEos = false }, new SamplingOptions { MaxNewTokens = 10, StopAtEos = false, Temperature = 1.2f, TopP = 0.9f, Seed = 11 } })
        {
            var requests = prompts.Select((p, i) => new GenerationRequest(p, options.Seed, i)).ToList();
            var alone = requests.Select(r => generator.GenerateAll([r], options, 1)[0].Tokens).ToList();
            var together = generator.GenerateAll(requests, options, 5).Select(g => g.Tokens).ToList();
            var twoSlots = generator.GenerateAll(requests, options, 2).Select(g => g.Tokens).ToList();
            Assert.That(together, Is.EqualTo(alone), $"all at once (temperature {options.Temperature})");
            Assert.That(twoSlots, Is.EqualTo(alone), $"two slots, continuous batching (temperature {options.Temperature})");
        }

        Assert.That(Backend.HostFallbacks, Is.Empty, "the extend pass and the sampling ran on the backend");
    }

    [Test]
    public void AStepLongerThanAPassIsSplitAndItsLogitsAreAFullForwardPasss()
    {
        using var model = HuggingFaceCheckpoint.Load(Fixtures.SharedPath("fixtures", "hf", "llama-tiny"), Backend);
        var rng = new Rng(9);
        int[] a = [.. Enumerable.Range(0, 45).Select(_ => rng.NextInt(model.Config.VocabSize))], b = [.. Enumerable.Range(0, 7).Select(_ => rng.NextInt(model.Config.VocabSize))];
        using var session = new DecodeSession(model, 2, 64, maxRows: 16);
        session.Step([30, 7], [.. a.Take(30), .. b]);   // 37 rows: three passes of at most 16
        session.Step([15, 0], a.Skip(30).ToArray());    // slot 1 fed nothing
        Assert.That(session.Lengths, Is.EqualTo(new[] { 45, 7 }));
        Assert.That(session.Passes, Is.EqualTo(4));

        int[] probes = [3, 100, 7, -1];
        var drawn = new int[2];
        var logProbs = new float[2];
        var draw = new float[2];
        var probeLogProbs = new float[4];
        session.Sample([0.5, 0.5], new SamplingOptions(), null, probes, drawn, logProbs, draw, probeLogProbs);

        using var plan = model.Plan(1, a.Length, PassKind.Score, withLogits: true);
        plan.SetBatch(a);
        model.Forward(plan);
        float[] logits = plan.Logits!.ToFloatArray();
        int v = model.Config.VocabSize;
        var last = logits.AsSpan((a.Length - 1) * v, v);
        double max = double.NegativeInfinity, sum = 0;
        foreach (float x in last)
        {
            max = Math.Max(max, x);
        }

        foreach (float x in last)
        {
            sum += Math.Exp(x - max);
        }

        double lse = max + Math.Log(sum);
        Assert.That(drawn[0], Is.EqualTo(Array.IndexOf(last.ToArray(), (float)max)), "greedy: the full pass's arg max");
        Assert.That(probeLogProbs[0], Is.EqualTo(last[3] - lse).Within(1e-4));
        Assert.That(probeLogProbs[1], Is.EqualTo(last[100] - lse).Within(1e-4));
        Assert.That(logProbs[0], Is.EqualTo(max - lse).Within(1e-4));
    }

    [Test]
    public void SeededSamplingIsReproducibleAndTopKOneIsGreedy()
    {
        using var model = HuggingFaceCheckpoint.Load(Fixtures.SharedPath("fixtures", "hf", "llama-tiny"), Backend);
        var generator = new Generator(model);
        int[][] prompts = [[5, 6, 7], [9]];
        var sampled = new SamplingOptions { MaxNewTokens = 12, Temperature = 1.3f, TopK = 50, TopP = 0.95f, Seed = 42, StopAtEos = false };
        var a = generator.Generate(prompts, sampled);
        var b = generator.Generate(prompts, sampled);
        var c = generator.Generate(prompts, sampled with { Seed = 43 });
        Assert.That(a.Select(g => g.Tokens), Is.EqualTo(b.Select(g => g.Tokens)));
        Assert.That(a.Select(g => g.Tokens), Is.Not.EqualTo(c.Select(g => g.Tokens)));
        var otherCompany = generator.Generate([prompts[0], [11, 12, 13, 14, 15]], sampled);
        Assert.That(otherCompany[0].Tokens, Is.EqualTo(a[0].Tokens), "sequence i draws from stream (seed, i) whatever else is in the batch");

        var greedy = generator.Generate(prompts, new SamplingOptions { MaxNewTokens = 12, StopAtEos = false });
        var topOne = generator.Generate(prompts, sampled with { TopK = 1 });
        Assert.That(topOne.Select(g => g.Tokens), Is.EqualTo(greedy.Select(g => g.Tokens)));
        Assert.That(generator.LastStats!.NewTokens, Is.EqualTo(24));
    }

    [Test]
    public void StopStringsCutTextAndTokens()
    {
        string dir = Fixtures.SharedPath("fixtures", "hf");
        using var model = HuggingFaceCheckpoint.Load(Path.Combine(dir, "gpt2-tiny"), Backend);
        var tokenizer = TokenizerLoader.Load(Path.Combine(dir, "tokenizer-bpe512"));
        var generator = new Generator(model, tokenizer);
        int[] prompt = tokenizer.Encode("def add(a, b):\n");
        var free = generator.Generate([prompt], new SamplingOptions { MaxNewTokens = 20, StopAtEos = false })[0];
        Assert.That(free.FinishReason, Is.EqualTo("length"));
        Assert.That(free.Text, Is.EqualTo(tokenizer.Decode(free.Tokens)));

        // Stop at the text of generated tokens 5 and 6: where it first occurs, the text is cut.
        string stop = tokenizer.Decode(free.Tokens.AsSpan(5, 2));
        Assert.That(stop, Is.Not.Empty);
        int at = free.Text!.IndexOf(stop, StringComparison.Ordinal);
        var cut = generator.Generate([prompt], new SamplingOptions { MaxNewTokens = 20, StopAtEos = false, StopStrings = [stop] })[0];
        Assert.That(cut.FinishReason, Is.EqualTo("stop_string"));
        Assert.That(cut.Text, Is.EqualTo(free.Text[..at]));
        Assert.That(cut.Tokens, Is.EqualTo(free.Tokens.Take(cut.Tokens.Length)), "the tokens are a prefix of the free run's");
        Assert.That(cut.Tokens.Length, Is.LessThanOrEqualTo(7));
    }
}
