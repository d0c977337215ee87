using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using BenchmarkDotNet.Attributes;
using Microsoft.ML.Tokenizers;
using RA3.Model.Tokenizers;
using RA3.Testing;

namespace RA3.Bench;

/// <summary>
/// Tokenizer throughput: the 164 HumanEval prompts with their solutions (the fixtures' reference
/// texts) encoded with each real tokenizer of the fixtures, ours (<c>ra3</c>) beside
/// Microsoft.ML.Tokenizers' BPE (<c>ml</c>: byte-level, the same vocabulary, merges and Split
/// regex, built from the same tokenizer.json) where it applies — Qwen3 and Llama 3. It has no
/// byte_fallback, so Llama 2 runs ours only. Setup says whether the two give the same ids (ML's BPE
/// has no ignore_merges and no NFC; neither changes these texts' ids).
/// </summary>
public class TokenizerBench
{
    private string[] texts = [];
    private TextTokenizer? ours;
    private Microsoft.ML.Tokenizers.Tokenizer? theirs;

    /// <summary>tokenizer/impl.</summary>
    [Params("qwen3/ra3", "qwen3/ml", "llama3/ra3", "llama3/ml", "llama2/ra3")]
    public string Case { get; set; } = "qwen3/ra3";

    /// <summary>UTF-8 bytes of the texts.</summary>
    public static long Bytes { get; private set; }

    [GlobalSetup]
    public void Setup()
    {
        var reference = JsonNode.Parse(File.ReadAllText(Fixtures.SharedPath("fixtures", "tokenizers", "reference.json")))!;
        texts = [.. reference["texts"]!.AsArray().Take(164).Select(t => t!.GetValue<string>())];
        Bytes = texts.Sum(t => (long)Encoding.UTF8.GetByteCount(t));
        string name = Case.Split('/')[0];
        string dir = Fixtures.SharedPath("fixtures", "tokenizers", name);
        ours = TokenizerLoader.Load(dir);
        if (Case.EndsWith("/ml", StringComparison.Ordinal))
        {
            theirs = MlPeer(Path.Combine(dir, "tokenizer.json"));
            int differ = texts.Count(t => !theirs.EncodeToIds(t).SequenceEqual(ours.Encode(t, false)));
            Console.WriteLine($"// {name}: Microsoft.ML.Tokenizers and ra3 give {(differ == 0 ? "the same ids on every text" : $"different ids on {differ} of {texts.Length} texts")}");
        }
    }

    [Benchmark]
    public long Encode()
    {
        long tokens = 0;
        foreach (string text in texts)
        {
            tokens += theirs is null ? ours!.Encode(text, false).Length : theirs.EncodeToIds(text).Count;
        }

        return tokens;
    }

    // Microsoft.ML.Tokenizers' byte-level BPE on a tokenizer.json's vocabulary, merges and first Split regex.
    private static BpeTokenizer MlPeer(string path)
    {
        var json = JsonNode.Parse(File.ReadAllText(path))!;
        var model = json["model"]!;
        var vocab = model["vocab"]!.AsObject().Select(kv => KeyValuePair.Create(kv.Key, kv.Value!.GetValue<int>()));
        var merges = model["merges"]!.AsArray().Select(m => m is JsonArray pair ? $"{pair[0]} {pair[1]}" : m!.GetValue<string>()).ToList();
        string pattern = json["pre_tokenizer"]!["pretokenizers"]![0]!["pattern"]!["Regex"]!.GetValue<string>();
        return BpeTokenizer.Create(new BpeOptions(vocab)
        {
            Merges = merges,
            ByteLevel = true,
            PreTokenizer = new RegexPreTokenizer(new Regex(pattern, RegexOptions.Compiled), null),
        });
    }
}
