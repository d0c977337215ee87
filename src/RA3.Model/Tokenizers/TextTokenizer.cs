namespace RA3.Model.Tokenizers;

/// <summary>Text ↔ token ids, as the model's vocabulary defines them.</summary>
public abstract class TextTokenizer
{
    /// <summary>A short description (kind and source).</summary>
    public abstract string Name { get; }

    /// <summary>Number of ids (the model's vocab_size must be at least this).</summary>
    public abstract int VocabSize { get; }

    /// <summary>The end-of-text id, if the vocabulary has one (documents are separated by it).</summary>
    public abstract int? EndOfText { get; }

    /// <summary>Encodes <paramref name="text"/>; special tokens written in the text become their ids.</summary>
    public abstract int[] Encode(string text);

    /// <summary>Decodes ids to text (invalid UTF-8 becomes U+FFFD).</summary>
    public abstract string Decode(ReadOnlySpan<int> ids);
}
