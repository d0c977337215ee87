using System.Text.Json.Nodes;
using RA3.Model.Tokenizers.HuggingFace;

namespace RA3.Model.Tokenizers;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> with a BPE model, encoded with tokenizers' semantics: the
/// added tokens split out first; the <c>normalizer</c> (NFC/NFD/NFKC/NFKD, Lowercase, Strip,
/// StripAccents, Prepend, Replace, Sequence); the <c>pre_tokenizer</c> (ByteLevel, Metaspace,
/// Split, Digits, Whitespace, WhitespaceSplit, Punctuation, Sequence); the BPE model (byte-level
/// or character-level, <c>byte_fallback</c>, unknown tokens, <c>ignore_merges</c>); the
/// <c>post_processor</c>'s special tokens when asked for; and the <c>decoder</c> (ByteLevel,
/// Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence). That covers byte-level BPE (GPT-2,
/// Llama 3, Qwen) and SentencePiece-style BPE (Llama 2, CodeLlama, Mistral). Anything else in the
/// file is one error naming the field, rather than tokenised differently.
/// </summary>
public sealed class HuggingFaceBpeTokenizer : TextTokenizer
{
    /// <summary>Names of end-of-text tokens, first found wins (tokenizer_config.json's eos_token when none is there).</summary>
    private static readonly string[] EndOfTextNames = ["<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|end|>"];

    private readonly BpeModel model;
    private readonly AddedTokens added;
    private readonly HuggingFace.Normalizer? normalizer;
    private readonly List<HuggingFace.PreTokenizer> preTokenizers;
    private readonly bool byteLevel;
    private readonly HuggingFace.Decoder? decoder;
    private readonly int[] prefix;
    private readonly int[] suffix;
    private readonly string?[] idToToken;
    private readonly HashSet<int> specialIds;

    private HuggingFaceBpeTokenizer(string path, JsonObject json)
    {
        Path = path;
        var spec = new JsonSpec(path);
        model = BpeModel.Parse(spec, json["model"]);
        normalizer = HuggingFace.Normalizer.Parse(spec, json["normalizer"], "normalizer");
        preTokenizers = HuggingFace.PreTokenizer.Parse(spec, json["pre_tokenizer"], out byteLevel);
        added = AddedTokens.Parse(spec, json["added_tokens"], normalizer);
        decoder = HuggingFace.Decoder.Parse(spec, json["decoder"], "decoder");
        (prefix, suffix) = PostProcessor.Parse(spec, json["post_processor"], "post_processor");

        int size = Math.Max(model.Vocab.Values.DefaultIfEmpty(-1).Max(), added.All.Select(t => t.Id).DefaultIfEmpty(-1).Max()) + 1;
        idToToken = new string?[size];
        foreach (var (token, id) in model.Vocab)
        {
            idToToken[id] = token;
        }

        foreach (var t in added.All)
        {
            idToToken[t.Id] = t.Content;
        }

        EndOfText = EndOfTextNames.Select(name => added.All.FirstOrDefault(t => t.Content == name)?.Id).FirstOrDefault(id => id is not null) ?? ConfigEndOfText(path);
        specialIds = [.. added.All.Where(t => t.Special).Select(t => t.Id), .. prefix, .. suffix];
        if (EndOfText is int eot)
        {
            specialIds.Add(eot);
        }
    }

    /// <summary>The file this tokenizer was read from.</summary>
    public string Path { get; }

    /// <inheritdoc/>
    public override string Name => $"tokenizer.json ({Path})";

    /// <inheritdoc/>
    public override int VocabSize => idToToken.Length;

    /// <inheritdoc/>
    public override int? EndOfText { get; }

    /// <inheritdoc/>
    public override IReadOnlySet<int> SpecialIds => specialIds;

    /// <inheritdoc/>
    public override IReadOnlyList<int> SequencePrefix => prefix;

    /// <inheritdoc/>
    public override IReadOnlyList<int> SequenceSuffix => suffix;

    /// <summary>Reads a <c>tokenizer.json</c>; unsupported components are errors naming the file and field.</summary>
    public static HuggingFaceBpeTokenizer Load(string path) => new(path, IO.JsonFile.ReadObject(path));

    /// <inheritdoc/>
    public override string Decode(ReadOnlySpan<int> ids)
    {
        var tokens = new List<string>(ids.Length);
        foreach (int id in ids)
        {
            tokens.Add((uint)id < (uint)idToToken.Length && idToToken[id] is { } token
                ? token
                : throw new ArgumentOutOfRangeException(nameof(ids), $"id {id} is not in the vocabulary of {Path}"));
        }

        if (decoder is null)
        {
            return string.Join(' ', tokens);  // tokenizers' decode without a decoder
        }

        decoder.Apply(tokens);
        return string.Concat(tokens);
    }

    /// <inheritdoc/>
    protected override void EncodeText(string text, bool specialTokensAsText, List<int> ids, List<int>? starts)
    {
        var ws = Workspace.Rent();
        var splits = ws.Added;
        splits.Clear();
        added.SplitInput(text, specialTokensAsText, splits);
        foreach (var (start, end, id) in splits)
        {
            if (id >= 0)
            {
                ids.Add(id);
                starts?.Add(start);
                continue;
            }

            var piece = ws.AppendOriginal(text, start, end);
            if (normalizer is not null)
            {
                piece = normalizer.Apply(ws, piece);
            }

            if (!added.AnyNormalized)
            {
                Tokenize(ws, piece, ids, starts);
                continue;
            }

            var inner = ws.AddedInner;
            inner.Clear();
            added.SplitNormalized(ws.Text(piece), specialTokensAsText, inner);
            foreach (var (s, e, innerId) in inner)
            {
                if (innerId >= 0)
                {
                    ids.Add(innerId);
                    starts?.Add(ws.Origin[piece.Start + s]);
                }
                else
                {
                    Tokenize(ws, piece.Slice(s, e), ids, starts);
                }
            }
        }
    }

    // The pre-tokenizer's steps over one normalized piece, then the model on each resulting piece.
    private void Tokenize(Workspace ws, Piece piece, List<int> ids, List<int>? starts)
    {
        ws.Pieces.Clear();
        ws.Next.Clear();
        ws.Pieces.Add(piece);
        foreach (var step in preTokenizers)
        {
            foreach (var p in ws.Pieces)
            {
                step.Apply(ws, p, ws.Next);
            }

            ws.SwapPieces();
        }

        foreach (var p in ws.Pieces)
        {
            if (p.Length > 0)
            {
                model.Tokenize(ws, p, byteLevel, ids, starts);
            }
        }
    }

    // tokenizer_config.json beside the file: its eos_token, a string or {"content": …}.
    private int? ConfigEndOfText(string path)
    {
        string config = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!, "tokenizer_config.json");
        if (!File.Exists(config))
        {
            return null;
        }

        var eos = IO.JsonFile.ReadObject(config)["eos_token"];
        string? name = eos is JsonObject o ? o["content"]?.GetValue<string>() : eos?.GetValue<string>();
        return name is null ? null : added.All.FirstOrDefault(t => t.Content == name)?.Id ?? (model.TryGetId(name, out int id) ? id : null);
    }
}
