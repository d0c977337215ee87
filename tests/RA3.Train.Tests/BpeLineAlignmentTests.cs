using System.Text.Json.Nodes;
using NUnit.Framework;
using RA3.Kernels.Cpu;
using RA3.Model;
using RA3.Model.Config;
using RA3.Model.IO;
using RA3.Model.Tokenizers;
using RA3.Testing;
using RA3.Train.Data;
using RA3.Train.Midtraining;

namespace RA3.Train.Tests;

/// <summary>
/// RA3 with BPE tokenizers, for every tokenizer of the fixtures (Qwen3, Llama 3, Llama 2, the
/// 512-token BPE, GPT-2, bytes) on real code (HumanEval prompts with their solutions): the line
/// layout is the M-step's encoding of the same bootstrapped document, every token is owned by the
/// line it starts in, and rollouts decide between the two canonical encodings' first differing
/// tokens and keep the document's canonical code tokens whatever they thought.
/// </summary>
public sealed class BpeLineAlignmentTests
{
    public static readonly string[] AllTokenizers = ["qwen3", "llama3", "llama2", "bpe512", "gpt2", "bytes"];

    private static readonly Lazy<string[]> Code = new(() =>
        [.. JsonNode.Parse(File.ReadAllText(Fixtures.SharedPath("fixtures", "tokenizers", "reference.json")))!["texts"]!.AsArray().Take(164).Select(t => t!.GetValue<string>())]);

    private CpuBackend cpu = null!;

    [OneTimeSetUp]
    public void Open() => cpu = new CpuBackend();

    [OneTimeTearDown]
    public void Close() => cpu.Dispose();

    [TestCaseSource(nameof(AllTokenizers))]
    public void TheLineLayoutIsTheMStepsEncodingAndTokensBelongToTheLineTheyStartIn(string name)
    {
        var tokenizer = Load(name);
        var rng = new Rng(7);
        int straddling = 0;
        foreach (string code in Code.Value.Take(40))
        {
            var trace = Trace.FromCode("t", code);
            var rationales = Enumerable.Range(1, trace.Count).Where(_ => rng.NextDouble() < 0.3).ToDictionary(t => t, t => $"step {t}: keep <|endoftext|> as text");
            var layout = LineTokens.Of(tokenizer, trace, rationales);
            string document = trace.Render(rationales);

            // The M-step packs the same document: its first sequence of exactly that many tokens is these ids.
            int lead = LineTokens.Lead(tokenizer).Length;
            int[] own = layout.Ids[lead..];
            using (var packed = new PackedDataset([document], tokenizer, own.Length, 1))
            {
                var batch = new int[own.Length];
                packed.NextBatch(batch);
                Assert.That(batch, Is.EqualTo(own), "the E-step's tokens of the document are the M-step's");
            }

            // Owners: the rendered line (counted here from the newlines) of each token's first character.
            var kinds = new List<int>();
            for (int t = 1; t <= trace.Count; t++)
            {
                if (rationales.ContainsKey(t))
                {
                    kinds.Add(LineTokens.RationaleOwner);
                }

                kinds.Add(t - 1);
            }

            for (int k = lead; k < layout.Ids.Length; k++)
            {
                int start = layout.Starts[k];
                int expected = start < 0 ? LineTokens.PrefixOwner : kinds[document.AsSpan(0, start).Count('\n')];
                Assert.That(layout.Owner[k], Is.EqualTo(expected), $"token {k} starting at {start}");
                if (k + 1 < layout.Ids.Length && layout.Starts[k + 1] > 0 && document.AsSpan(start, layout.Starts[k + 1] - start).Contains('\n') && layout.Starts[k + 1] > start + document.AsSpan(start).IndexOf('\n') + 1)
                {
                    straddling++;  // a token that runs past a newline into the next line
                }
            }
        }

        TestContext.Out.WriteLine($"{name}: {straddling} tokens straddle a line boundary");
        if (name == "gpt2")
        {
            Assert.That(straddling, Is.GreaterThan(0), "GPT-2's pattern merges a newline with the next line's indentation, so the rule is exercised");
        }
    }

    [TestCaseSource(nameof(AllTokenizers))]
    public void RolloutsDecideBetweenTheCanonicalEncodingsAndKeepTheDocumentsCodeTokens(string name)
    {
        var tokenizer = Load(name);
        var config = ModelConfig.Llama(tokenizer.VocabSize, 8, 1, 2, 1, 16, 4096);
        using var model = new Transformer(cpu, config);
        model.InitializeRandom(3);
        var traces = Code.Value.Where(c => c.Split('\n').Length is > 8 and < 18).Take(3).Select((c, i) => Trace.FromCode($"he{i}", c)).ToList();
        var rollouts = new RolloutSampler(model, tokenizer).Sample(traces, new RolloutOptions(Group: 2, LatentMaxTokens: 4, TopP: 1f, ThinkFloor: 1.0), seed: 5);
        int decisions = 0, boundaries = 0, thoughts = 0, allowed = 0;
        foreach (var r in rollouts)
        {
            var kept = Enumerable.Range(1, r.Trace.Count).Where(r.Thinks).ToDictionary(t => t, t => r.Rationales[t - 1]!);
            var canonical = LineTokens.Of(tokenizer, r.Trace, kept);
            var code = Enumerable.Range(0, r.Ids.Length).Where(p => r.Owner[p] >= 0).Select(p => (r.Ids[p], r.Owner[p]));
            Assert.That(code, Is.EqualTo(Enumerable.Range(0, canonical.Ids.Length).Where(p => canonical.Owner[p] >= 0).Select(p => (canonical.Ids[p], canonical.Owner[p]))), "code tokens and lines: the canonical encoding's");
            if (r.ThinkCount == 0)
            {
                Assert.That(r.Ids, Is.EqualTo(canonical.Ids), "a rollout that never thought is the document's canonical encoding");
            }

            thoughts += r.ThinkCount;
            for (int t = 1; t <= r.Trace.Count; t++)
            {
                boundaries++;
                bool may = r.Trace.RationaleAllowed(t) && !r.Trace.Lines[t - 1].TrimStart().StartsWith('#');
                allowed += may ? 1 : 0;
                int p = Array.IndexOf(r.Boundary, t);
                if (p < 0)
                {
                    continue;  // no decision here
                }

                Assert.That(may, $"boundary {t}: a decision only where a logical line of code starts");
                Assert.That(tokenizer.Decode([r.Thinks(t) ? r.Ids[p] : r.ThinkIds[p]]), Does.Contain("#"), $"boundary {t}: the think token opens the comment");
                decisions++;
                var before = kept.Where(kv => kv.Key < t).ToDictionary();
                var act = LineTokens.Of(tokenizer, r.Trace, before);
                var think = LineTokens.Of(tokenizer, r.Trace, new Dictionary<int, string>(before) { [t] = r.Rationales[t - 1] ?? "x" });
                int d = 0;
                while (act.Ids[d] == think.Ids[d])
                {
                    d++;
                }

                Assert.That(r.Ids[p], Is.EqualTo(r.Thinks(t) ? think.Ids[d] : act.Ids[d]), $"boundary {t}: the decision token is the first token where acting and thinking differ");
                Assert.That(think.Starts[d], Is.LessThanOrEqualTo(think.Layout.Starts[Array.IndexOf(think.Layout.Lines, -t)] + r.Trace.IndentBefore(t).Length), $"boundary {t}: the think token is the stub's first (or the boundary's straddling token)");
            }
        }

        TestContext.Out.WriteLine($"{name}: {decisions} decisions at {allowed} boundaries that allow a rationale (of {boundaries}), {thoughts} rationales");
        Assert.That(decisions, Is.GreaterThan(allowed * 8 / 10), "nearly every boundary where a rationale may stand is a real comment-or-code decision");
        Assert.That(thoughts, Is.GreaterThan(0));
    }

    [Test]
    public void ByteSizedDefaultsScaleByTheTokenizersBytesPerToken()
    {
        var documents = Code.Value.Take(60).ToList();
        double bytes = ByteScaledDefaults.BytesPerToken(Load("bytes"), documents);
        Assert.That(bytes, Is.EqualTo(1.0), "a byte is a token");
        var asBytes = ByteScaledDefaults.Resolve(new MidtrainSettings(), bytes);
        Assert.That((asBytes.LatentMaxTokens, asBytes.MStepSequenceLength, asBytes.MaxLines), Is.EqualTo((48, 256, 40)), "the byte tokenizer keeps the sizes the demo was tuned with");

        double qwen = ByteScaledDefaults.BytesPerToken(Load("qwen3"), documents);
        Assert.That(qwen, Is.InRange(2.5, 6.0), "code in Qwen's BPE");
        var scaled = ByteScaledDefaults.Resolve(new MidtrainSettings(), qwen);
        Assert.That(scaled.LatentMaxTokens * qwen, Is.EqualTo(48).Within(qwen), "a rationale of about 48 bytes");
        Assert.That(scaled.MStepSequenceLength * qwen, Is.EqualTo(256).Within(qwen), "M-step sequences of about 256 bytes");
        Assert.That(scaled.MaxLines / qwen, Is.EqualTo(40).Within(1), "traces of as many tokens as 40 lines of bytes");
        Assert.That(ByteScaledDefaults.Resolve(new MidtrainSettings { LatentMaxTokens = 7, MaxLines = 12 }, qwen), Has.Property("LatentMaxTokens").EqualTo(7).And.Property("MaxLines").EqualTo(12), "values given are kept");
        var e = Assert.Throws<RA3.Train.Runs.SettingsException>(() => ByteScaledDefaults.Resolve(new MidtrainSettings { MStepSequenceLength = 1 }, qwen))!;
        Assert.That(e.Option, Is.EqualTo("mstep-seq-len"));
    }

    [Test]
    public void RationalesNeverSampleControlTokens()
    {
        // A tokenizer whose control tokens are most of the vocabulary: unmasked, a random model would
        // sample them nearly every time; masked, a rationale holds none.
        var inner = Load("bpe512");
        using var model = HuggingFaceCheckpoint.Load(Fixtures.SharedPath("fixtures", "hf", "llama-tiny"), cpu);
        var allowed = new HashSet<int>(inner.Encode("abcdefghij \n", false));
        var tokenizer = new TokenizerVariant(inner, new HashSet<int>(Enumerable.Range(0, inner.VocabSize).Where(v => !allowed.Contains(v))), inner.EndOfText, prefix: []);
        var traces = new[] { Trace.FromCode("a", "def f(x):\n    y = x\n    return y\n") };
        var rollouts = new RolloutSampler(model, tokenizer).Sample(traces, new RolloutOptions(Group: 8, LatentMaxTokens: 6, ThinkFloor: 1.0), seed: 9);
        // A boundary's tokens are its decision token, then (on think) the sampled rationale.
        var sampled = rollouts.SelectMany(r => Enumerable.Range(0, r.Ids.Length).Where(p => r.Boundary[p] > 0 && Array.IndexOf(r.Boundary, r.Boundary[p]) != p).Select(p => r.Ids[p])).ToList();
        Assert.That(sampled, Has.Count.GreaterThan(20), "rationales were sampled");
        Assert.That(sampled.Where(tokenizer.SpecialIds.Contains), Is.Empty, "no rationale token is a control token");
    }

    private static TextTokenizer Load(string name) => name switch
    {
        "bytes" or "gpt2" => TokenizerLoader.Load(name),
        "bpe512" => TokenizerLoader.Load(Fixtures.SharedPath("fixtures", "hf", "tokenizer-bpe512")),
        _ => TokenizerLoader.Load(Fixtures.SharedPath("fixtures", "tokenizers", name)),
    };
}
