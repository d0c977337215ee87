using System.Text.Json.Nodes;
using NUnit.Framework;
using RA3.Model.Tokenizers;
using RA3.Testing;

namespace RA3.Model.Tests;

/// <summary>Tokenizers against the ids Hugging Face <c>tokenizers</c> and GPT-2 give.</summary>
public sealed class TokenizerTests
{
    private static readonly Lazy<JsonObject> Reference = new(() => JsonNode.Parse(File.ReadAllText(Fixtures.SharedPath("fixtures", "tokenizers", "reference.json")))!.AsObject());

    /// <summary>The real tokenizers of the fixtures (byte-level Qwen3 and Llama 3, SentencePiece-style Llama 2).</summary>
    public static readonly string[] RealTokenizers = ["qwen3", "llama3", "llama2"];

    [TestCaseSource(nameof(RealTokenizers))]
    public void RealTokenizersGiveTheReferenceIdsForEveryText(string name)
    {
        // The 164 HumanEval prompts + solutions and 22 hard strings (unicode, emoji, CRLF, tabs,
        // space runs, special-token text, long runs), ids from an independent implementation.
        var tokenizer = TokenizerLoader.Load(Fixtures.SharedPath("fixtures", "tokenizers", name));
        var texts = Reference.Value["texts"]!.AsArray().Select(t => t!.GetValue<string>()).ToArray();
        var want = Reference.Value["tokenizers"]![name]!;
        var ids = want["ids"]!.AsArray();
        Assert.That(ids, Has.Count.EqualTo(texts.Length));
        var wrong = new List<string>();
        for (int i = 0; i < texts.Length; i++)
        {
            int[] expected = [.. ids[i]!.AsArray().Select(x => x!.GetValue<int>())];
            int[] got = tokenizer.Encode(texts[i], addSpecialTokens: false);
            if (!got.SequenceEqual(expected))
            {
                int at = Enumerable.Range(0, Math.Min(got.Length, expected.Length)).FirstOrDefault(k => got[k] != expected[k], Math.Min(got.Length, expected.Length));
                wrong.Add($"text {i} ({Snippet(texts[i])}): first difference at token {at}: got [{string.Join(", ", got.Skip(at).Take(6))}], want [{string.Join(", ", expected.Skip(at).Take(6))}]");
            }
        }

        var withSpecials = want["ids_with_specials"]!.AsArray();
        for (int i = 0; i < withSpecials.Count; i++)
        {
            int[] expected = [.. withSpecials[i]!.AsArray().Select(x => x!.GetValue<int>())];
            if (!tokenizer.Encode(texts[i], addSpecialTokens: true).SequenceEqual(expected))
            {
                wrong.Add($"text {i} with special tokens: got [{string.Join(", ", tokenizer.Encode(texts[i]).Take(8))}…], want [{string.Join(", ", expected.Take(8))}…]");
            }
        }

        Assert.That(wrong, Is.Empty, $"{wrong.Count} of {texts.Length + withSpecials.Count} encodings differ from reference.json");
    }

    [TestCaseSource(nameof(RealTokenizers))]
    public void TheDocumentEncodingKeepsSpecialTokenTextAsTextAndSaysWhereEachTokenStarts(string name)
    {
        var tokenizer = TokenizerLoader.Load(Fixtures.SharedPath("fixtures", "tokenizers", name));
        var texts = Reference.Value["texts"]!.AsArray().Select(t => t!.GetValue<string>()).ToArray();
        int prefix = tokenizer.SequencePrefix.Count, suffix = tokenizer.SequenceSuffix.Count, cuts = 0;
        foreach (string text in texts)
        {
            var doc = tokenizer.EncodeDocument(text);
            Assert.That(doc.Ids[..prefix], Is.EqualTo(tokenizer.SequencePrefix), "the template's tokens first");
            int[] content = doc.Ids[prefix..^suffix], starts = doc.Starts[prefix..^suffix];
            Assert.That(content.Where(tokenizer.SpecialIds.Contains), Is.Empty, $"{Snippet(text)}: special-token text stays text");
            string expected = name == "qwen3" ? text.Normalize(System.Text.NormalizationForm.FormC) : text;  // Qwen normalizes to NFC
            Assert.That(tokenizer.Decode(content), Is.EqualTo(expected), $"{Snippet(text)}: round trip");
            for (int k = 0; k < content.Length; k++)
            {
                Assert.That(starts[k], Is.InRange(k == 0 ? 0 : starts[k - 1], Math.Max(0, text.Length - 1)), $"{Snippet(text)}: token {k} starts in order, inside the text");
                if (k > 0 && starts[k] > starts[k - 1] && text[..(starts[k] + 1)].All(char.IsAscii))
                {
                    // Where a token starts at an ASCII character (no token before it can hold part of it), the tokens before it are exactly the text before it.
                    Assert.That(tokenizer.Decode(content[..k]), Is.EqualTo(text[..starts[k]]), $"{Snippet(text)}: tokens before token {k}");
                    cuts++;
                }
            }
        }

        Assert.That(cuts, Is.GreaterThan(10_000), "most token boundaries checked");
        string quoted = texts.Single(t => t.StartsWith("<|endoftext|>", StringComparison.Ordinal));
        Assert.That(tokenizer.Encode(quoted, false).Intersect(tokenizer.SpecialIds), name == "qwen3" ? Is.Not.Empty : Is.Empty, "Encode reads Qwen's special-token text as its ids (Hugging Face's encode)");
    }

    [TestCase("llama2")]
    [TestCase("qwen3")]
    public void StreamedTextIsTheDecodedContinuationWhereverTheStreamStarts(string name)
    {
        // SentencePiece decoders drop a sequence's leading space and byte tokens make characters
        // only together: streaming token by token must still give exactly the continuation's text.
        var tokenizer = TokenizerLoader.Load(Fixtures.SharedPath("fixtures", "tokenizers", name));
        int[] ids = tokenizer.Encode("def greet(name):\n    return f'héllo {name} 😀 日本'  # done\n\n\nprint(greet('x'))\n", false);
        for (int k = 1; k < ids.Length; k++)
        {
            var stream = new RA3.Model.Generation.TextStream(tokenizer, ids.AsSpan(0, k));
            string streamed = string.Concat(ids[k..].Select(stream.Push));
            string whole = tokenizer.Decode(ids), before = tokenizer.Decode(ids[..k]);
            Assert.That(streamed, Is.EqualTo(whole[before.TrimEnd('\uFFFD').Length..]), $"streaming from token {k}");
        }
    }

    private static string Snippet(string text) => System.Text.Json.JsonSerializer.Serialize(text.Length > 40 ? text[..40] + "…" : text);

    [Test]
    public void TokenizerJsonMatchesEveryReferenceCase()
    {
        string dir = Fixtures.SharedPath("fixtures", "hf", "tokenizer-bpe512");
        var tokenizer = TokenizerLoader.Load(dir);
        var cases = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "reference.json")))!["cases"]!.AsArray();
        Assert.That(cases, Is.Not.Empty);
        foreach (var c in cases)
        {
            string text = c!["text"]!.GetValue<string>();
            int[] want = [.. c["ids"]!.AsArray().Select(i => i!.GetValue<int>())];
            int[] got = tokenizer.Encode(text);
            Assert.That(got, Is.EqualTo(want), $"ids of {text}");
            Assert.That(tokenizer.Decode(got), Is.EqualTo(text), $"round trip of {text}");
        }

        Assert.That(tokenizer.EndOfText, Is.EqualTo(0));
        Assert.That(tokenizer.VocabSize, Is.EqualTo(512));
    }

    [Test]
    public void Gpt2BpeGivesTheKnownIds()
    {
        var tokenizer = new Gpt2Tokenizer();
        Assert.That(tokenizer.Encode("Hello world"), Is.EqualTo(new[] { 15496, 995 }));
        Assert.That(tokenizer.Encode("<|endoftext|>"), Is.EqualTo(new[] { 50256 }));
        Assert.That(tokenizer.Decode(tokenizer.Encode("def f(x):\n    return x\n")), Is.EqualTo("def f(x):\n    return x\n"));
    }

    [Test]
    public void BytesRoundTripAnyTextAndKeepEndOfText()
    {
        var tokenizer = new ByteTokenizer();
        const string text = "héllo ✓ <|endoftext|>def";
        int[] ids = tokenizer.Encode(text);
        Assert.That(ids.Count(i => i == 256), Is.EqualTo(1));
        Assert.That(ids.Max(), Is.LessThan(tokenizer.VocabSize));
        Assert.That(tokenizer.Decode(ids), Is.EqualTo(text));
    }

    [Test]
    public void InvalidUtf8DecodesToReplacementCharactersAndUnknownIdsAreNamed()
    {
        // A sampled sequence can end inside a character or hold bytes that are no UTF-8 at all.
        var bytes = new ByteTokenizer();
        int[] euro = bytes.Encode("€");
        Assert.That(euro, Is.EqualTo(new[] { 0xE2, 0x82, 0xAC }));
        Assert.That(bytes.Decode(euro[..2]), Is.EqualTo("\uFFFD"), "a cut-short character is one U+FFFD");
        Assert.That(bytes.Decode([(int)'a', 0xFF, (int)'b']), Is.EqualTo("a\uFFFDb"));
        Assert.That(bytes.Decode([.. euro[..2], (int)'x']), Is.EqualTo("\uFFFDx"));
        Assert.That(() => bytes.Decode([65, 257]), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("id 257"));

        // Byte-level BPE: ids whose bytes only make a character together decode to it, alone to U+FFFD.
        var bpe = TokenizerLoader.Load(Fixtures.SharedPath("fixtures", "hf", "tokenizer-bpe512"));
        int[] ids = bpe.Encode("✓");
        Assert.That(bpe.Decode(ids), Is.EqualTo("✓"));
        Assert.That(ids, Has.Length.GreaterThan(1), "✓'s three bytes are several tokens of a 512-token vocabulary");
        Assert.That(bpe.Decode(ids[..1]), Does.Contain("\uFFFD"));

        Assert.That(() => bpe.Decode([1, bpe.VocabSize + 5]), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains($"id {bpe.VocabSize + 5}"));
        Assert.That(() => bpe.Decode([-1]), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("id -1"));
    }

    [Test]
    public void UnsupportedTokenizerComponentsNameTheField()
    {
        string path = Path.Combine(Path.GetTempPath(), $"ra3-tok-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """{"model": {"type": "Unigram", "vocab": []}, "added_tokens": []}""");
        try
        {
            var ex = Assert.Throws<InvalidDataException>(() => HuggingFaceBpeTokenizer.Load(path));
            Assert.That(ex!.Message, Does.Contain(path).And.Contain("model.type"));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
