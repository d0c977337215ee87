using RA3.Model.Tokenizers;

namespace RA3.Model.Generation;

/// <summary>
/// Generated tokens as text, as they come: <see cref="Push"/> returns the text a token adds. The
/// text is decoded over a short window that starts in the prompt — decoders treat a sequence's
/// first token specially (SentencePiece's leading space), so a continuation is never decoded on
/// its own — and a token that ends inside a character (byte-level BPE, byte fallback) adds nothing
/// until the character is complete.
/// </summary>
public sealed class TextStream
{
    private const int Keep = 3;

    private readonly TextTokenizer tokenizer;
    private readonly List<int> window = [];
    private int emitted;

    /// <summary>A stream continuing <paramref name="prompt"/>'s tokens.</summary>
    public TextStream(TextTokenizer tokenizer, ReadOnlySpan<int> prompt)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        this.tokenizer = tokenizer;
        foreach (int id in prompt[Math.Max(0, prompt.Length - Keep)..])
        {
            window.Add(id);
        }

        emitted = Decoded().Length;
    }

    /// <summary>The text <paramref name="token"/> adds (empty while a character is incomplete).</summary>
    public string Push(int token)
    {
        window.Add(token);
        string text = Decoded();
        if (text.EndsWith('\uFFFD') || text.Length < emitted)
        {
            return string.Empty;
        }

        string added = text[emitted..];
        if (window.Count > Keep * 2)
        {
            // Restart the window on the last few tokens: everything before them is out.
            window.RemoveRange(0, window.Count - Keep);
            emitted = Decoded().Length;
        }
        else
        {
            emitted = text.Length;
        }

        return added;
    }

    /// <summary>The text held back at the end of the generation (bytes that never made a character, as U+FFFD).</summary>
    public string Flush()
    {
        string text = Decoded();
        string rest = text.Length > emitted ? text[emitted..] : string.Empty;
        emitted = text.Length;
        return rest;
    }

    private string Decoded() => tokenizer.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(window));
}
