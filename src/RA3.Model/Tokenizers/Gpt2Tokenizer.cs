using Microsoft.ML.Tokenizers;

namespace RA3.Model.Tokenizers;

/// <summary>
/// GPT-2's own BPE (50,257 ids, <c>&lt;|endoftext|&gt;</c> = 50256) from Microsoft.ML.Tokenizers'
/// Tiktoken implementation and its GPT-2 data package — no files to download.
/// </summary>
public sealed class Gpt2Tokenizer : TextTokenizer
{
    private readonly TiktokenTokenizer tokenizer = TiktokenTokenizer.CreateForModel("gpt2");

    /// <inheritdoc/>
    public override string Name => "gpt2";

    /// <inheritdoc/>
    public override int VocabSize => 50257;

    /// <inheritdoc/>
    public override int? EndOfText => 50256;

    /// <inheritdoc/>
    public override int[] Encode(string text) => [.. tokenizer.EncodeToIds(text)];

    /// <inheritdoc/>
    public override string Decode(ReadOnlySpan<int> ids) => tokenizer.Decode(ids.ToArray()) ?? string.Empty;
}
