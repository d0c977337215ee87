namespace RA3.Model.Tokenizers.HuggingFace;

/// <summary>A run of characters in <see cref="Workspace.Chars"/>.</summary>
/// <param name="Start">Index of its first character.</param>
/// <param name="Length">Number of characters.</param>
internal readonly record struct Piece(int Start, int Length)
{
    /// <summary>One past its last character.</summary>
    public int End => Start + Length;

    /// <summary>The characters <see cref="Start"/>.. of this piece, <paramref name="from"/> and <paramref name="to"/> relative to it.</summary>
    public Piece Slice(int from, int to) => new(Start + from, to - from);
}

/// <summary>One match of a split pattern: where it is in the piece, and whether it is a delimiter.</summary>
/// <param name="Start">First character (relative to the piece).</param>
/// <param name="End">One past the last.</param>
/// <param name="IsMatch">Whether the pattern matched here (else the text between matches).</param>
internal readonly record struct SplitRange(int Start, int End, bool IsMatch);

/// <summary>
/// The scratch memory of one encode call on one thread, reused from call to call so that the hot
/// path allocates nothing: text being normalized and pre-tokenized lives in <see cref="Chars"/>
/// with, per character, the index in the caller's text of the character it came from
/// (<see cref="Origin"/>, Hugging Face's alignments reduced to starts). Steps that only split
/// make pieces that point into it; steps that rewrite (normalizers, Metaspace) append.
/// </summary>
internal sealed class Workspace
{
    [ThreadStatic]
    private static Workspace? current;

    /// <summary>Characters of every piece made in this call.</summary>
    public char[] Chars { get; private set; } = new char[4096];

    /// <summary>Per character of <see cref="Chars"/>: the index in the caller's text it came from.</summary>
    public int[] Origin { get; private set; } = new int[4096];

    /// <summary>Characters in use.</summary>
    public int Used { get; private set; }

    /// <summary>The pieces a pre-tokenizer step reads.</summary>
    public List<Piece> Pieces { get; private set; } = [];

    /// <summary>The pieces a pre-tokenizer step writes.</summary>
    public List<Piece> Next { get; private set; } = [];

    /// <summary>Where a pattern matched (reused).</summary>
    public List<(int Start, int End)> Found { get; } = [];

    /// <summary>A piece's split into matches and the text between them (reused).</summary>
    public List<SplitRange> Ranges { get; } = [];

    /// <summary>Splits by added tokens (start, end, id or −1 for text).</summary>
    public List<(int Start, int End, int Id)> Added { get; } = [];

    /// <summary>Splits of a normalized piece by normalized added tokens (reused).</summary>
    public List<(int Start, int End, int Id)> AddedInner { get; } = [];

    /// <summary>Scratch of the regular expressions' code-point view.</summary>
    public RegexScratch Regex { get; } = new();

    /// <summary>Scratch of the BPE merge loop.</summary>
    public BpeScratch Bpe { get; } = new();

    /// <summary>This thread's workspace, emptied.</summary>
    public static Workspace Rent()
    {
        var w = current ??= new Workspace();
        w.Used = 0;
        w.Pieces.Clear();
        w.Next.Clear();
        return w;
    }

    /// <summary>The characters of <paramref name="piece"/>.</summary>
    public ReadOnlySpan<char> Text(Piece piece) => Chars.AsSpan(piece.Start, piece.Length);

    /// <summary>Copies <paramref name="text"/>[<paramref name="start"/>..<paramref name="end"/>) in as a piece whose characters come from those indices.</summary>
    public Piece AppendOriginal(ReadOnlySpan<char> text, int start, int end)
    {
        int at = Reserve(end - start);
        text[start..end].CopyTo(Chars.AsSpan(at));
        for (int i = start; i < end; i++)
        {
            Origin[at + i - start] = i;
        }

        return Commit(at, end - start);
    }

    /// <summary>Room for <paramref name="n"/> more characters; returns where they go (write, then <see cref="Commit"/>).</summary>
    public int Reserve(int n)
    {
        if (Used + n > Chars.Length)
        {
            int size = Math.Max(Chars.Length * 2, Used + n);
            var chars = new char[size];
            var origin = new int[size];
            Chars.AsSpan(0, Used).CopyTo(chars);
            Origin.AsSpan(0, Used).CopyTo(origin);
            (Chars, Origin) = (chars, origin);
        }

        return Used;
    }

    /// <summary>Marks <paramref name="n"/> characters written at <paramref name="at"/> (from <see cref="Reserve"/>) as a piece.</summary>
    public Piece Commit(int at, int n)
    {
        Used = at + n;
        return new Piece(at, n);
    }

    /// <summary>Makes <see cref="Next"/> the pieces to read and empties the other list.</summary>
    public void SwapPieces()
    {
        (Pieces, Next) = (Next, Pieces);
        Next.Clear();
    }
}
