using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace RA3.Model.Tokenizers;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> with a byte-level BPE model — GPT-2, Llama 3, Qwen2 and
/// the fixtures' tokenizer: added tokens split out first, optional NFC normalisation, a
/// pre-tokenizer of regex splits and the byte-to-unicode map, BPE merges by rank, the byte-level
/// decoder, and the template post-processor's special tokens when asked for. Anything else in
/// the file is rejected with the field named, rather than tokenised differently.
/// </summary>
public sealed class HuggingFaceBpeTokenizer : TextTokenizer
{
    /// <summary>GPT-2's pre-tokenization pattern (the ByteLevel pre-tokenizer's use_regex).</summary>
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly char[] ByteToChar = BuildByteMap();
    private static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, b) => (c, b)).ToDictionary(p => p.c, p => (byte)p.b);

    private readonly Dictionary<string, int> vocab;
    private readonly string[] idToToken;
    private readonly Dictionary<(string, string), int> mergeRanks;
    private readonly Dictionary<string, int> added;
    private readonly HashSet<int> specialIds;
    private readonly List<Regex> splits = [];
    private readonly bool addPrefixSpace;
    private readonly bool nfc;
    private readonly bool ignoreMerges;
    private readonly int[] prefixIds = [];
    private readonly int[] suffixIds = [];
    private readonly Dictionary<string, int[]> cache = new(StringComparer.Ordinal);

    private HuggingFaceBpeTokenizer(string path, JsonObject json)
    {
        Path = path;
        var model = json["model"] as JsonObject ?? throw Bad("model", "missing");
        if (model["type"]?.GetValue<string>() != "BPE")
        {
            throw Bad("model.type", $"'{model["type"]}' is not supported (only BPE)");
        }

        if (model["byte_fallback"]?.GetValue<bool>() == true)
        {
            throw Bad("model.byte_fallback", "SentencePiece-style byte fallback is not supported (byte-level BPE only)");
        }

        ignoreMerges = model["ignore_merges"]?.GetValue<bool>() == true;
        vocab = (model["vocab"] as JsonObject ?? throw Bad("model.vocab", "missing")).ToDictionary(p => p.Key, p => p.Value!.GetValue<int>(), StringComparer.Ordinal);
        mergeRanks = [];
        var merges = model["merges"] as JsonArray ?? throw Bad("model.merges", "missing");
        for (int r = 0; r < merges.Count; r++)
        {
            (string a, string b) = merges[r] switch
            {
                JsonArray pair when pair.Count == 2 => (pair[0]!.GetValue<string>(), pair[1]!.GetValue<string>()),
                JsonValue v when v.GetValue<string>().Split(' ') is [var x, var y] => (x, y),
                _ => throw Bad($"model.merges[{r}]", "must be \"a b\" or [a, b]"),
            };
            mergeRanks.TryAdd((a, b), r);
        }

        added = [];
        specialIds = [];
        foreach (var t in json["added_tokens"] as JsonArray ?? [])
        {
            string content = t!["content"]!.GetValue<string>();
            int id = t["id"]!.GetValue<int>();
            added[content] = id;
            vocab[content] = id;
            if (t["special"]?.GetValue<bool>() == true)
            {
                specialIds.Add(id);
            }
        }

        int size = vocab.Values.DefaultIfEmpty(-1).Max() + 1;
        idToToken = new string[size];
        foreach (var (token, id) in vocab)
        {
            idToToken[id] = token;
        }

        nfc = ParseNormalizer(json["normalizer"]);
        addPrefixSpace = ParsePreTokenizer(json["pre_tokenizer"]);
        (prefixIds, suffixIds) = ParsePostProcessor(json["post_processor"]);
        EndOfText = added.TryGetValue("<|endoftext|>", out int eot) ? eot : added.TryGetValue("<|end_of_text|>", out int eot3) ? eot3 : null;
    }

    /// <summary>The file this tokenizer was read from.</summary>
    public string Path { get; }

    /// <inheritdoc/>
    public override string Name => $"tokenizer.json ({Path})";

    /// <inheritdoc/>
    public override int VocabSize => idToToken.Length;

    /// <inheritdoc/>
    public override int? EndOfText { get; }

    /// <summary>Whether <see cref="Encode"/> adds the post-processor's special tokens (BOS for Llama 3), as transformers' add_special_tokens=True does.</summary>
    public bool AddSpecialTokens { get; init; } = true;

    /// <summary>Reads a <c>tokenizer.json</c>; unsupported components are errors naming the file and field.</summary>
    public static HuggingFaceBpeTokenizer Load(string path) => new(path, IO.JsonFile.ReadObject(path));

    /// <inheritdoc/>
    public override int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3);
        if (AddSpecialTokens)
        {
            ids.AddRange(prefixIds);
        }

        foreach (var (piece, special) in SpecialTokens.Split(text, [.. added.Keys]))
        {
            if (special)
            {
                ids.Add(added[piece]);
                continue;
            }

            string normalized = nfc ? piece.Normalize(NormalizationForm.FormC) : piece;
            if (addPrefixSpace && !normalized.StartsWith(' '))
            {
                normalized = " " + normalized;
            }

            foreach (string word in PreTokenize(normalized))
            {
                ids.AddRange(Bpe(ToByteLevel(word)));
            }
        }

        if (AddSpecialTokens)
        {
            ids.AddRange(suffixIds);
        }

        return [.. ids];
    }

    /// <inheritdoc/>
    public override string Decode(ReadOnlySpan<int> ids)
    {
        var text = new StringBuilder();
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            if (id < 0 || id >= idToToken.Length || idToToken[id] is null)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), $"id {id} is not in the vocabulary of {Path}");
            }

            string token = idToToken[id];
            if (added.ContainsKey(token))
            {
                text.Append(Encoding.UTF8.GetString([.. bytes]));
                bytes.Clear();
                text.Append(token);
                continue;
            }

            foreach (char c in token)
            {
                bytes.Add(CharToByte.TryGetValue(c, out byte b) ? b : (byte)'?');
            }
        }

        return text.Append(Encoding.UTF8.GetString([.. bytes])).ToString();
    }

    /// <summary>GPT-2's byte ↔ printable-character map: printable Latin-1 bytes map to themselves, the rest to 256 + n.</summary>
    private static char[] BuildByteMap()
    {
        var map = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is (>= '!' and <= '~') or (>= 0xA1 and <= 0xAC) or (>= 0xAE and <= 0xFF);
            map[b] = printable ? (char)b : (char)(256 + next++);
        }

        return map;
    }

    private static string ToByteLevel(string word)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(word);
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++)
        {
            chars[i] = ByteToChar[bytes[i]];
        }

        return new string(chars);
    }

    private IEnumerable<string> PreTokenize(string text)
    {
        IEnumerable<string> pieces = [text];
        foreach (var regex in splits)
        {
            pieces = pieces.SelectMany(p => Isolate(regex, p));
        }

        return pieces;
    }

    /// <summary>The Split pre-tokenizer with behaviour "Isolated": matches and the text between them, in order.</summary>
    private static IEnumerable<string> Isolate(Regex regex, string text)
    {
        int last = 0;
        for (var m = regex.Match(text); m.Success; m = m.NextMatch())
        {
            if (m.Length == 0)
            {
                continue;
            }

            if (m.Index > last)
            {
                yield return text[last..m.Index];
            }

            yield return m.Value;
            last = m.Index + m.Length;
        }

        if (last < text.Length)
        {
            yield return text[last..];
        }
    }

    /// <summary>BPE on one pre-token: merge the adjacent pair of lowest rank until none applies.</summary>
    private int[] Bpe(string word)
    {
        if (cache.TryGetValue(word, out int[]? hit))
        {
            return hit;
        }

        int[] result;
        if (ignoreMerges && vocab.TryGetValue(word, out int whole))
        {
            result = [whole];
        }
        else
        {
            var symbols = word.Select(c => c.ToString()).ToList();
            while (symbols.Count > 1)
            {
                int best = -1, bestRank = int.MaxValue;
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    if (mergeRanks.TryGetValue((symbols[i], symbols[i + 1]), out int rank) && rank < bestRank)
                    {
                        (best, bestRank) = (i, rank);
                    }
                }

                if (best < 0)
                {
                    break;
                }

                symbols[best] += symbols[best + 1];
                symbols.RemoveAt(best + 1);
            }

            result = [.. symbols.Select(s => vocab.TryGetValue(s, out int id) ? id : throw new InvalidDataException($"{Path}: BPE produced '{s}', which is not in the vocabulary"))];
        }

        if (cache.Count < 100_000)
        {
            cache[word] = result;
        }

        return result;
    }

    private InvalidDataException Bad(string field, string what) => new($"{Path}: field '{field}': {what}");

    private bool ParseNormalizer(JsonNode? node) => node?["type"]?.GetValue<string>() switch
    {
        null => false,
        "NFC" => true,
        var other => throw Bad("normalizer.type", $"'{other}' is not supported (none or NFC)"),
    };

    /// <summary>Reads the pre-tokenizer into <see cref="splits"/>; returns ByteLevel's add_prefix_space.</summary>
    private bool ParsePreTokenizer(JsonNode? node)
    {
        bool prefix = false, byteLevel = false;
        void One(JsonNode n, string where)
        {
            switch (n["type"]?.GetValue<string>())
            {
                case "ByteLevel":
                    byteLevel = true;
                    prefix = n["add_prefix_space"]?.GetValue<bool>() == true;
                    if (n["use_regex"]?.GetValue<bool>() != false)
                    {
                        splits.Add(new Regex(Gpt2Pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant));
                    }

                    break;
                case "Split":
                    string pattern = n["pattern"]?["Regex"]?.GetValue<string>() ?? throw Bad($"{where}.pattern", "only Regex patterns are supported");
                    if (n["behavior"]?.GetValue<string>() != "Isolated" || n["invert"]?.GetValue<bool>() == true)
                    {
                        throw Bad($"{where}.behavior", "only the Isolated, non-inverted split is supported");
                    }

                    splits.Add(new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant));
                    break;
                case "Sequence":
                    var items = n["pretokenizers"] as JsonArray ?? throw Bad($"{where}.pretokenizers", "missing");
                    for (int i = 0; i < items.Count; i++)
                    {
                        One(items[i]!, $"{where}.pretokenizers[{i}]");
                    }

                    break;
                case var other:
                    throw Bad($"{where}.type", $"'{other}' is not supported (ByteLevel, Split, Sequence)");
            }
        }

        One(node ?? throw Bad("pre_tokenizer", "missing (a byte-level BPE needs ByteLevel)"), "pre_tokenizer");
        return byteLevel ? prefix : throw Bad("pre_tokenizer", "has no ByteLevel step (not a byte-level BPE)");
    }

    /// <summary>The special tokens a TemplateProcessing post-processor puts around a single sequence.</summary>
    private (int[] Prefix, int[] Suffix) ParsePostProcessor(JsonNode? node)
    {
        if (node is null || node["type"]?.GetValue<string>() == "ByteLevel")
        {
            return ([], []);
        }

        var template = node["type"]?.GetValue<string>() == "TemplateProcessing"
            ? node["single"] as JsonArray ?? throw Bad("post_processor.single", "missing")
            : node["type"]?.GetValue<string>() == "Sequence"
                ? (node["processors"] as JsonArray)?.FirstOrDefault(p => p?["type"]?.GetValue<string>() == "TemplateProcessing")?["single"] as JsonArray ?? []
                : throw Bad("post_processor.type", $"'{node["type"]}' is not supported");
        var prefix = new List<int>();
        var suffix = new List<int>();
        bool seenSequence = false;
        foreach (var item in template)
        {
            if (item?["Sequence"] is not null)
            {
                seenSequence = true;
            }
            else if (item?["SpecialToken"]?["id"]?.GetValue<string>() is string token)
            {
                int id = added.TryGetValue(token, out int a) ? a : throw Bad("post_processor", $"special token '{token}' is not an added token");
                (seenSequence ? suffix : prefix).Add(id);
            }
        }

        return ([.. prefix], [.. suffix]);
    }
}
