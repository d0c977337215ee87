using RA3.Model.Tokenizers;

namespace RA3.Train.Tests;

/// <summary>
/// Another tokenizer's encoding and decoding with the properties a test needs and no fixture has:
/// its control tokens, its end-of-text and its template's prefix and suffix.
/// </summary>
internal sealed class TokenizerVariant(TextTokenizer inner, IReadOnlySet<int> specialIds, int? endOfText, IReadOnlyList<int> prefix, IReadOnlyList<int>? suffix = null) : TextTokenizer
{
    public override string Name => $"{inner.Name}-variant";

    public override int VocabSize => inner.VocabSize;

    public override int? EndOfText => endOfText;

    public override IReadOnlySet<int> SpecialIds => specialIds;

    public override IReadOnlyList<int> SequencePrefix => prefix;

    public override IReadOnlyList<int> SequenceSuffix => suffix ?? [];

    public override string Decode(ReadOnlySpan<int> ids) => inner.Decode(ids);

    protected override void EncodeText(string text, bool specialTokensAsText, List<int> ids, List<int>? starts)
    {
        var doc = inner.EncodeDocument(text);
        ids.AddRange(doc.Ids);
        starts?.AddRange(doc.Starts);
    }
}
