using System.Text.Json.Nodes;
using NUnit.Framework;
using RA3.Kernels.Cpu;
using RA3.Model.Generation;
using RA3.Model.IO;
using RA3.Model.Tokenizers;
using RA3.Testing;
using RA3.Train.Cli;
using RA3.Train.Data;

namespace RA3.Train.Tests;

/// <summary>
/// <c>ra3 tokenize</c> (ids against the reference, order, bad lines), the token shards (the same
/// packed sequences as the text, several shards, a foreign tokenizer and a truncated file refused)
/// and <c>ra3 generate</c> (the streamed text is the generator's own continuation).
/// </summary>
public sealed class TokenizeGenerateTests
{
    private static readonly string Llama2 = Fixtures.SharedPath("fixtures", "tokenizers", "llama2");
    private string work = null!;

    [OneTimeSetUp]
    public void Open() => work = Directory.CreateTempSubdirectory("ra3-tokenize-").FullName;

    [OneTimeTearDown]
    public void Close() => Directory.Delete(work, recursive: true);

    [Test]
    public void TokenizeWritesTheReferenceIdsLineForLineInOrder()
    {
        var reference = JsonNode.Parse(File.ReadAllText(Fixtures.SharedPath("fixtures", "tokenizers", "reference.json")))!;
        string[] texts = [.. reference["texts"]!.AsArray().Select(t => t!.GetValue<string>())];
        string input = Path.Combine(work, "texts.jsonl"), output = Path.Combine(work, "ids.jsonl"), specials = Path.Combine(work, "ids-specials.jsonl");
        File.WriteAllLines(input, texts.Select(t => new JsonObject { ["text"] = t }.ToJsonString()));
        var (code, stdout, stderr) = Ra3("tokenize", "--tokenizer", Llama2, "--in", input, "--out", output);
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain($"{texts.Length} lines"));
        var want = reference["tokenizers"]!["llama2"]!;
        Assert.That(Ids(output), Is.EqualTo(want["ids"]!.AsArray().Select(a => a!.AsArray().Select(x => x!.GetValue<int>()).ToArray())), "every line's ids, in order");

        File.WriteAllLines(input, texts.Take(5).Select(t => new JsonObject { ["text"] = t }.ToJsonString()));
        Assert.That(Ra3("tokenize", "--tokenizer", Llama2, "--in", input, "--out", specials, "--add-special-tokens").Code, Is.EqualTo(0));
        Assert.That(Ids(specials), Is.EqualTo(want["ids_with_specials"]!.AsArray().Select(a => a!.AsArray().Select(x => x!.GetValue<int>()).ToArray())), "with the template's BOS");
    }

    [Test]
    public void TokenizeNamesTheBadLineOrOption()
    {
        string input = Path.Combine(work, "bad.jsonl");
        File.WriteAllLines(input, ["{\"text\": \"fine\"}", "", "{\"content\": \"no text\"}"]);
        var (code, _, stderr) = Ra3("tokenize", "--tokenizer", "bytes", "--in", input, "--out", Path.Combine(work, "bad.ids.jsonl"));
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr.Trim(), Is.EqualTo($"ra3 tokenize: {input}:3: no \"text\" string"));
        Assert.That(File.Exists(Path.Combine(work, "bad.ids.jsonl")), Is.False, "nothing half written");
        var both = Ra3("tokenize", "--tokenizer", "bytes", "--in", input);
        Assert.That(both.Code, Is.EqualTo(2));
        Assert.That(both.Stderr, Does.StartWith("ra3 tokenize: --out: give exactly one of --out and --shards"));
    }

    [Test]
    public void ShardsPackTheSameSequencesAsTheTextAndRefuseWhatTheyCannotRead()
    {
        var tokenizer = TokenizerLoader.Load(Llama2);
        var reference = JsonNode.Parse(File.ReadAllText(Fixtures.SharedPath("fixtures", "tokenizers", "reference.json")))!;
        string[] texts = [.. reference["texts"]!.AsArray().Select(t => t!.GetValue<string>()).Where(t => t.Length > 0)];
        string corpus = Path.Combine(work, "corpus.jsonl"), dir = Path.Combine(work, "shards");
        File.WriteAllLines(corpus, texts.Select(t => new JsonObject { ["text"] = t }.ToJsonString()));
        var (code, _, stderr) = Ra3("tokenize", "--tokenizer", Llama2, "--in", corpus, "--shards", dir, "--shard-tokens", "6000");
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(Directory.GetFiles(dir, "shard-*.bin"), Has.Length.GreaterThan(3), "several shards");

        using (var fromText = new PackedDataset(texts, tokenizer, 96, 11))
        using (var fromShards = PackedDataset.Open(dir, tokenizer, 96, 11))
        {
            Assert.That((fromShards.Documents, fromShards.TrainTokens, fromShards.ValidationTokens), Is.EqualTo((fromText.Documents, fromText.TrainTokens, fromText.ValidationTokens)));
            var a = new int[96 * 8];
            var b = new int[96 * 8];
            for (int step = 0; step < 60; step++)
            {
                fromText.NextBatch(a);
                fromShards.NextBatch(b);
                Assert.That(b, Is.EqualTo(a), $"batch {step}");
            }

            for (int i = 0; i < fromText.ValidationSequences; i++)
            {
                fromText.ValidationSequence(i, a);
                fromShards.ValidationSequence(i, b);
                Assert.That(b.AsSpan(0, 96).ToArray(), Is.EqualTo(a.AsSpan(0, 96).ToArray()), $"validation sequence {i}");
            }
        }

        var foreign = Assert.Throws<InvalidDataException>(() => PackedDataset.Open(dir, new ByteTokenizer(), 96, 11))!;
        Assert.That(foreign.Message, Does.Contain("tokenized by").And.Contain("bytes"));
        Assert.That(Ra3("tokenize", "--tokenizer", Llama2, "--in", corpus, "--shards", dir).Stderr, Does.Contain($"{dir} exists"), "never overwritten");

        string shard = Directory.GetFiles(dir, "shard-*.bin").Order().Last();
        using (var f = new FileStream(shard, FileMode.Open))
        {
            f.SetLength(f.Length - 8);
        }

        var truncated = Assert.Throws<InvalidDataException>(() => PackedDataset.Open(dir, tokenizer, 96, 11))!;
        Assert.That(truncated.Message, Does.StartWith(shard).And.Contain("truncated or corrupt"));
    }

    [Test]
    public void GenerateStreamsTheGeneratorsOwnContinuation()
    {
        string model = Fixtures.SharedPath("fixtures", "hf", "llama-tiny"), tok = Fixtures.SharedPath("fixtures", "hf", "tokenizer-bpe512");
        const string prompt = "def add(a, b):\n";
        var (code, stdout, stderr) = Ra3("generate", "--model", model, "--tokenizer", tok, "--prompt", prompt, "--temperature", "0", "--max-new-tokens", "40");
        Assert.That(code, Is.EqualTo(0), stderr);

        // The same continuation computed here, without the command: greedy from the prompt's document encoding.
        var tokenizer = TokenizerLoader.Load(tok);
        using var cpu = new CpuBackend();
        using var transformer = HuggingFaceCheckpoint.Load(model, cpu);
        var direct = new Generator(transformer, tokenizer).Generate([tokenizer.EncodePrompt(prompt)], new SamplingOptions { MaxNewTokens = 40 })[0];
        Assert.That(direct.Text, Is.Not.Empty);
        Assert.That(stdout, Is.EqualTo(direct.Text + Environment.NewLine));

        string prompts = Path.Combine(work, "prompts.jsonl"), outFile = Path.Combine(work, "completions.jsonl");
        File.WriteAllLines(prompts, ["{\"prompt\": \"def add(a, b):\\n\"}", "{\"text\": \"x = \"}"]);
        var many = Ra3("generate", "--model", model, "--tokenizer", tok, "--prompts", prompts, "--max-new-tokens", "12", "--seed", "4", "--out", outFile);
        Assert.That(many.Code, Is.EqualTo(0), many.Stderr);
        var lines = File.ReadAllLines(outFile).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.That(lines.Select(l => l["prompt"]!.GetValue<string>()), Is.EqualTo(new[] { "def add(a, b):\n", "x = " }));
        string expected = string.Concat(lines.Select((l, i) => $"--- prompt {i + 1} ---{Environment.NewLine}{l["completion"]!.GetValue<string>()}{Environment.NewLine}"));
        Assert.That(many.Stdout, Is.EqualTo(expected), "the streamed text is each completion");
    }

    private static int[][] Ids(string path) => [.. File.ReadAllLines(path).Select(l => JsonNode.Parse(l)!["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray())];

    private static (int Code, string Stdout, string Stderr) Ra3(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CommandLine.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }
}
