using System.Text;
using System.Text.Json.Nodes;
using NUnit.Framework;
using RA3.Model.Tokenizers;
using RA3.Testing;

namespace RA3.Model.Tests;

/// <summary>
/// tokenizer.json semantics the fixtures do not exercise, on small files built here: the expected
/// pieces are Hugging Face tokenizers' documented ones (its SplitDelimiterBehavior docs, its
/// Metaspace and BPE unit tests). Vocabularies hold the expected pieces whole and set
/// ignore_merges, so an id says which piece the pre-tokenizer made.
/// </summary>
public sealed class TokenizerJsonTests
{
    private string dir = null!;

    [OneTimeSetUp]
    public void Open() => dir = Directory.CreateTempSubdirectory("ra3-tokjson-").FullName;

    [OneTimeTearDown]
    public void Close() => Directory.Delete(dir, recursive: true);

    [TestCase("Removed", "the|final|countdown")]
    [TestCase("Isolated", "the|-|final|-|-|countdown")]
    [TestCase("MergedWithPrevious", "the-|final-|-|countdown")]
    [TestCase("MergedWithNext", "the|-final|-|-countdown")]
    [TestCase("Contiguous", "the|-|final|--|countdown")]
    public void SplitBehavioursCutAsTokenizersDocumentsThem(string behavior, string pieces)
    {
        var tok = Tokenizer(
            WholePieces(pieces.Split('|')),
            preTokenizer: $$"""{"type": "Split", "pattern": {"String": "-"}, "behavior": "{{behavior}}", "invert": false}""");
        Assert.That(Pieces(tok, "the-final--countdown"), Is.EqualTo(pieces));
    }

    [Test]
    public void InvertedSplitKeepsTheMatches()
    {
        // The Whitespace pre-tokenizer is this split: words and punctuation runs, spaces removed.
        var tok = Tokenizer(WholePieces(["Hey", "friend", "!?"]), preTokenizer: """{"type": "Whitespace"}""");
        Assert.That(Pieces(tok, "Hey   friend!?"), Is.EqualTo("Hey|friend|!?"));
    }

    [Test]
    public void MetaspaceReplacesSpacesPrependsAndSplitsBeforeEachSpace()
    {
        var tok = Tokenizer(WholePieces(["▁Hey", "▁", "▁friend!"]), preTokenizer: """{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}""");
        Assert.That(Pieces(tok, "Hey   friend!"), Is.EqualTo("▁Hey|▁|▁|▁friend!"));
    }

    [Test]
    public void MetaspaceFirstPrependsOnlyAtTheStartOfTheInput()
    {
        // tokenizers' non_legacy_meta_space test: "first" skips the piece after an added token.
        var tok = Tokenizer(
            WholePieces(["▁Hey▁", "how"]),
            preTokenizer: """{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}""",
            added: """[{"id": 100, "content": "<s>", "special": true}]""");
        Assert.That(Pieces(tok, " Hey <s>how"), Is.EqualTo("▁Hey▁|<s>|how"));
        var always = Tokenizer(
            WholePieces(["▁Hey▁", "▁how"]),
            preTokenizer: """{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": false}""",
            added: """[{"id": 100, "content": "<s>", "special": true}]""");
        Assert.That(Pieces(always, " Hey <s>how"), Is.EqualTo("▁Hey▁|<s>|▁how"));
    }

    [Test]
    public void RegexesMatchCodePointsNotUtf16Units()
    {
        // "[^\r\n\p{L}\p{N}]?\p{L}+" takes an emoji (one code point) before letters, and an astral letter is a letter.
        var tok = Tokenizer(WholePieces(["😀abc", "𝔸b", "\n", "😀", "abc", "b"]), preTokenizer: """{"type": "Split", "pattern": {"Regex": "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\s+|[^\\s\\p{L}\\p{N}]+"}, "behavior": "Isolated", "invert": false}""");
        Assert.That(Pieces(tok, "😀abc\n𝔸b"), Is.EqualTo("😀abc|\n|𝔸b"));
    }

    [Test]
    public void SubwordPrefixSuffixUnknownFusingAndByteFallback()
    {
        // continuing_subword_prefix: "abc" is a, ##b, ##c; the merge (a, ##b) makes "ab".
        var prefixed = Tokenizer("""{"a": 0, "##b": 1, "##c": 2, "ab": 3}""", merges: """["a ##b"]""", model: """ "continuing_subword_prefix": "##", """, ignoreMerges: false, preTokenizer: """{"type": "WhitespaceSplit"}""");
        Assert.That(prefixed.Encode("abc", false), Is.EqualTo(new[] { 3, 2 }));

        // end_of_word_suffix: the last character carries it, and the merge (a, b</w>) makes "ab</w>".
        var suffixed = Tokenizer("""{"a": 0, "b</w>": 1, "ab</w>": 2, "b": 3}""", merges: """["a b</w>"]""", model: """ "end_of_word_suffix": "</w>", """, ignoreMerges: false, preTokenizer: """{"type": "WhitespaceSplit"}""");
        Assert.That(suffixed.Encode("ab b", false), Is.EqualTo(new[] { 2, 1 }));

        // Unknown characters: one <unk> per run with fuse_unk, one per character without.
        const string vocab = """{"a": 0, "<unk>": 1, "<0xC3>": 2, "<0xA9>": 3}""";
        var fused = Tokenizer(vocab, model: """ "unk_token": "<unk>", "fuse_unk": true, """);
        var unfused = Tokenizer(vocab, model: """ "unk_token": "<unk>", "fuse_unk": false, """);
        Assert.That(fused.Encode("axxa", false), Is.EqualTo(new[] { 0, 1, 0 }));
        Assert.That(unfused.Encode("axxa", false), Is.EqualTo(new[] { 0, 1, 1, 0 }));

        // byte_fallback: é (not in the vocabulary) is its UTF-8 bytes, and decodes back through ByteFallback + Fuse.
        var bytes = Tokenizer(vocab, model: """ "unk_token": "<unk>", "byte_fallback": true, """, decoder: """{"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]}""");
        Assert.That(bytes.Encode("aéx", false), Is.EqualTo(new[] { 0, 2, 3, 1 }), "é as <0xC3> <0xA9>; x has no bytes tokens: <unk>");
        Assert.That(bytes.Decode([0, 2, 3]), Is.EqualTo("aé"));
        Assert.That(bytes.Decode([0, 2]), Is.EqualTo("a\uFFFD"), "a cut-short byte run is one U+FFFD per byte");
    }

    [Test]
    public void DecodersRestoreSpacesAndStripThePrependedOne()
    {
        var meta = Tokenizer(WholePieces(["▁Hey", "▁friend!"]), decoder: """{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"}""");
        Assert.That(meta.Decode([0, 1]), Is.EqualTo("Hey friend!"));
        var strip = Tokenizer(WholePieces(["▁Hey", "▁friend!"]), decoder: """{"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}""");
        Assert.That(strip.Decode([0, 1]), Is.EqualTo("Hey friend!"));
    }

    [Test]
    public void NormalizersRewriteAndOffsetsStillPointIntoTheInput()
    {
        // Lowercase, Replace (regex), then Prepend: the document encoding's starts index the original text.
        var tok = Tokenizer(
            WholePieces(["_", "hello_", "world"]),
            normalizer: """{"type": "Sequence", "normalizers": [{"type": "Lowercase"}, {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": "_"}, {"type": "Prepend", "prepend": "_"}]}""",
            preTokenizer: """{"type": "Split", "pattern": {"String": "_"}, "behavior": "MergedWithPrevious", "invert": false}""");
        var doc = tok.EncodeDocument("HELLO  World");
        Assert.That(doc.Ids, Is.EqualTo(new[] { 0, 1, 2 }), "_ | hello_ | world");
        Assert.That(doc.Starts, Is.EqualTo(new[] { 0, 0, 7 }), "the prepended _ comes from character 0, hello_ starts there too, world at 7");
    }

    [TestCase("normalizer", """{"type": "BertNormalizer"}""", "normalizer.type")]
    [TestCase("pre_tokenizer", """{"type": "Sequence", "pretokenizers": [{"type": "Digits"}, {"type": "UnicodeScripts"}]}""", "pre_tokenizer.pretokenizers[1].type")]
    [TestCase("pre_tokenizer", """{"type": "Sequence", "pretokenizers": [{"type": "ByteLevel"}, {"type": "Digits"}]}""", "pre_tokenizer.pretokenizers[1].type")]
    [TestCase("pre_tokenizer", """{"type": "Split", "pattern": {"String": "-"}, "behavior": "Sideways"}""", "pre_tokenizer.behavior")]
    [TestCase("decoder", """{"type": "WordPiece"}""", "decoder.type")]
    [TestCase("post_processor", """{"type": "Mystery"}""", "post_processor.type")]
    [TestCase("model", """{"type": "Unigram", "vocab": []}""", "model.type")]
    [TestCase("model", """{"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}""", "model.merges[0]")]
    [TestCase("model", """{"type": "BPE", "vocab": {"a": 0}, "merges": [], "dropout": 0.1}""", "model.dropout")]
    public void UnsupportedOrBrokenComponentsAreOneLineNamingTheField(string component, string json, string field)
    {
        string path = Write(component == "model"
            ? $$"""{"model": {{json}}, "added_tokens": []}"""
            : $$"""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "{{component}}": {{json}}}""");
        var e = Assert.Throws<InvalidDataException>(() => HuggingFaceBpeTokenizer.Load(path))!;
        Assert.That(e.Message, Does.StartWith(path).And.Contain($"'{field}'").And.Not.Contain("\n"));
    }

    /// <summary>A vocabulary of the given pieces (ids in order) plus their characters.</summary>
    private static string WholePieces(IEnumerable<string> pieces)
    {
        var all = pieces.Distinct().ToList();
        foreach (var rune in all.SelectMany(p => p.EnumerateRunes()).Select(r => r.ToString()).Distinct().ToList())
        {
            if (!all.Contains(rune))
            {
                all.Add(rune);
            }
        }

        return new JsonObject(all.Select((p, i) => KeyValuePair.Create(p, (JsonNode?)i))).ToJsonString();
    }

    // The pieces the ids stand for, joined by '|'.
    private static string Pieces(HuggingFaceBpeTokenizer tok, string text)
    {
        var names = File.ReadAllText(tok.Path);
        var vocab = JsonNode.Parse(names)!["model"]!["vocab"]!.AsObject().ToDictionary(kv => kv.Value!.GetValue<int>(), kv => kv.Key);
        foreach (var a in JsonNode.Parse(names)!["added_tokens"]!.AsArray())
        {
            vocab[a!["id"]!.GetValue<int>()] = a["content"]!.GetValue<string>();
        }

        return string.Join('|', tok.Encode(text, false).Select(id => vocab[id]));
    }

    private HuggingFaceBpeTokenizer Tokenizer(string vocab, string merges = "[]", string model = "", string? preTokenizer = null, string? normalizer = null, string? decoder = null, string added = "[]", bool ignoreMerges = true)
    {
        var json = new StringBuilder("{");
        json.Append($$""" "model": {"type": "BPE", {{model}} "ignore_merges": {{(ignoreMerges ? "true" : "false")}}, "vocab": {{vocab}}, "merges": {{merges}}}, "added_tokens": {{added}} """);
        if (preTokenizer is not null)
        {
            json.Append($""", "pre_tokenizer": {preTokenizer}""");
        }

        if (normalizer is not null)
        {
            json.Append($""", "normalizer": {normalizer}""");
        }

        if (decoder is not null)
        {
            json.Append($""", "decoder": {decoder}""");
        }

        return HuggingFaceBpeTokenizer.Load(Write(json.Append('}').ToString()));
    }

    private string Write(string json)
    {
        string path = Path.Combine(dir, $"{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        return path;
    }
}
