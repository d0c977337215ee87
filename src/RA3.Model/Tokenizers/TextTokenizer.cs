namespace RA3.Model.Tokenizers;

/// <summary>
/// Text ↔ token ids, as the model's vocabulary defines them. Two encodings: <see cref="Encode"/> is
/// Hugging Face's <c>encode(text, add_special_tokens)</c> (special-token text becomes the special
/// id), what <c>ra3 tokenize</c> writes and the reference ids are checked against;
/// <see cref="EncodeDocument"/> is the canonical encoding of a training or evaluation document
/// (the template's tokens around the whole text, special-token text kept as text), with the place
/// in the text where each token starts.
/// </summary>
public abstract class TextTokenizer
{
    /// <summary>A short description (kind and source).</summary>
    public abstract string Name { get; }

    /// <summary>Number of ids (the model's vocab_size must be at least this).</summary>
    public abstract int VocabSize { get; }

    /// <summary>The end-of-text id, if the vocabulary has one (documents are separated by it).</summary>
    public abstract int? EndOfText { get; }

    /// <summary>
    /// Ids of control tokens (special added tokens, end of text, the template's): never text a model
    /// writes, so sampling text such as a rationale masks them.
    /// </summary>
    public abstract IReadOnlySet<int> SpecialIds { get; }

    /// <summary>Ids the post-processor puts before one sequence when special tokens are added (Llama 2's BOS).</summary>
    public virtual IReadOnlyList<int> SequencePrefix => [];

    /// <summary>Ids the post-processor puts after one sequence when special tokens are added.</summary>
    public virtual IReadOnlyList<int> SequenceSuffix => [];

    /// <summary>
    /// Encodes <paramref name="text"/> as Hugging Face's <c>encode(text, add_special_tokens)</c>:
    /// special-token text in it becomes its id; with <paramref name="addSpecialTokens"/> the
    /// post-processor's tokens go around it.
    /// </summary>
    public int[] Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>((text.Length / 3) + 4);
        if (addSpecialTokens)
        {
            ids.AddRange(SequencePrefix);
        }

        EncodeText(text, specialTokensAsText: false, ids, null);
        if (addSpecialTokens)
        {
            ids.AddRange(SequenceSuffix);
        }

        return [.. ids];
    }

    /// <summary>
    /// The canonical encoding of a document — the one pre-training, the M-step, RA3's line layout
    /// and evaluation prompts all use: the template's tokens around the whole text, encoded in one
    /// pass, and special-token text in it encoded as the text it is (a document that quotes
    /// <c>&lt;|endoftext|&gt;</c> does not end there). <see cref="DocumentTokens.Starts"/> says where
    /// in <paramref name="text"/> each token starts (−1 for the template's tokens).
    /// </summary>
    public DocumentTokens EncodeDocument(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int capacity = (text.Length / 2) + SequencePrefix.Count + SequenceSuffix.Count + 4;
        var ids = new List<int>(capacity);
        var starts = new List<int>(capacity);
        foreach (int id in SequencePrefix)
        {
            ids.Add(id);
            starts.Add(-1);
        }

        EncodeText(text, specialTokensAsText: true, ids, starts);
        foreach (int id in SequenceSuffix)
        {
            ids.Add(id);
            starts.Add(-1);
        }

        return new DocumentTokens([.. ids], [.. starts]);
    }

    /// <summary>
    /// The ids a model continues <paramref name="text"/> from: its document encoding without the
    /// template's closing tokens; an empty text is the end-of-text id, the context a document
    /// starts from in a packed corpus (when the template opens documents, its tokens already are).
    /// </summary>
    public int[] EncodePrompt(string text)
    {
        int[] ids = EncodeDocument(text).Ids[..^SequenceSuffix.Count];
        return ids.Length == 0 && EndOfText is int eot ? [eot] : ids;
    }

    /// <summary>Decodes ids to text (invalid UTF-8 becomes U+FFFD).</summary>
    public abstract string Decode(ReadOnlySpan<int> ids);

    /// <summary>
    /// Appends the ids of <paramref name="text"/> (no template tokens) to <paramref name="ids"/> and,
    /// when <paramref name="starts"/> is given, the index in <paramref name="text"/> of the first
    /// character each token covers. With <paramref name="specialTokensAsText"/>, special-token
    /// text is encoded as ordinary text.
    /// </summary>
    protected abstract void EncodeText(string text, bool specialTokensAsText, List<int> ids, List<int>? starts);
}

/// <summary>A document's canonical token ids, with where each starts in its text.</summary>
/// <param name="Ids">Token ids.</param>
/// <param name="Starts">Per token: the index in the text of the first character it covers; −1 for a template token (BOS, EOS) that covers none.</param>
public sealed record DocumentTokens(int[] Ids, int[] Starts);
