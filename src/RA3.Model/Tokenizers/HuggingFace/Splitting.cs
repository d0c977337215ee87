namespace RA3.Model.Tokenizers.HuggingFace;

/// <summary>What a split does with the pattern's matches (tokenizers' <c>SplitDelimiterBehavior</c>).</summary>
internal enum SplitBehavior
{
    /// <summary>Drop the matches.</summary>
    Removed,

    /// <summary>Each match a piece of its own.</summary>
    Isolated,

    /// <summary>A match joins the piece before it.</summary>
    MergedWithPrevious,

    /// <summary>A match joins the piece after it.</summary>
    MergedWithNext,

    /// <summary>Runs of matches, and runs of the rest, are pieces.</summary>
    Contiguous,
}

/// <summary>A split pattern: a literal string (every occurrence) or a regular expression.</summary>
internal sealed class SplitPattern
{
    private readonly string? literal;
    private readonly CodePointRegex? regex;

    private SplitPattern(string? literal, CodePointRegex? regex) => (this.literal, this.regex) = (literal, regex);

    /// <summary>Every occurrence of <paramref name="text"/>.</summary>
    public static SplitPattern Literal(string text) => new(text, null);

    /// <summary>Every match of <paramref name="regex"/>.</summary>
    public static SplitPattern Regex(CodePointRegex regex) => new(null, regex);

    /// <summary>Appends the matches in <paramref name="text"/> to <paramref name="found"/>.</summary>
    public void Find(ReadOnlySpan<char> text, List<(int Start, int End)> found, RegexScratch scratch)
    {
        if (regex is not null)
        {
            regex.Matches(text, found, scratch);
            return;
        }

        if (literal!.Length == 0)
        {
            return;  // an empty string matches nothing (as tokenizers has it)
        }

        for (int at = 0; at <= text.Length - literal.Length;)
        {
            int i = text[at..].IndexOf(literal, StringComparison.Ordinal);
            if (i < 0)
            {
                break;
            }

            found.Add((at + i, at + i + literal.Length));
            at += i + literal.Length;
        }
    }
}

/// <summary>
/// Splits a piece by a pattern as tokenizers' <c>NormalizedString::split</c> does: the piece is cut
/// into the matches and the text between them (with <c>invert</c>, the text between is what
/// matched), the behaviour decides what joins what, and empty pieces are dropped.
/// </summary>
internal static class Splitter
{
    /// <summary>Appends the pieces <paramref name="piece"/> splits into to <paramref name="output"/>.</summary>
    public static void Split(Workspace ws, Piece piece, SplitPattern pattern, SplitBehavior behavior, bool invert, List<Piece> output)
    {
        var found = ws.Found;
        var ranges = ws.Ranges;
        found.Clear();
        ranges.Clear();
        pattern.Find(ws.Text(piece), found, ws.Regex);
        int previous = 0;
        foreach (var (start, end) in found)
        {
            if (start != previous)
            {
                ranges.Add(new SplitRange(previous, start, invert));
            }

            ranges.Add(new SplitRange(start, end, !invert));
            previous = end;
        }

        if (previous != piece.Length)
        {
            ranges.Add(new SplitRange(previous, piece.Length, invert));
        }

        switch (behavior)
        {
            case SplitBehavior.Removed:
                foreach (var r in ranges)
                {
                    if (!r.IsMatch)
                    {
                        Emit(piece, r.Start, r.End, output);
                    }
                }

                break;
            case SplitBehavior.Isolated:
                foreach (var r in ranges)
                {
                    Emit(piece, r.Start, r.End, output);
                }

                break;
            case SplitBehavior.MergedWithPrevious:
            case SplitBehavior.Contiguous:
                // Fold forward: a match right after a non-match (or, contiguous, anything like the
                // range before it) extends the last piece; anything else starts one.
                bool previousMatch = false;
                int runStart = -1, runEnd = -1;
                foreach (var r in ranges)
                {
                    bool extend = behavior == SplitBehavior.Contiguous ? r.IsMatch == previousMatch : r.IsMatch && !previousMatch;
                    if (extend && runStart >= 0)
                    {
                        runEnd = r.End;
                    }
                    else
                    {
                        if (runStart >= 0)
                        {
                            Emit(piece, runStart, runEnd, output);
                        }

                        (runStart, runEnd) = (r.Start, r.End);
                    }

                    previousMatch = r.IsMatch;
                }

                if (runStart >= 0)
                {
                    Emit(piece, runStart, runEnd, output);
                }

                break;
            case SplitBehavior.MergedWithNext:
                // Fold backward: a match right before a non-match extends the piece after it.
                int at = output.Count;
                bool nextMatch = false;
                int backStart = -1, backEnd = -1;
                for (int k = ranges.Count - 1; k >= 0; k--)
                {
                    var r = ranges[k];
                    if (r.IsMatch && !nextMatch && backStart >= 0)
                    {
                        backStart = r.Start;
                    }
                    else
                    {
                        if (backStart >= 0)
                        {
                            Emit(piece, backStart, backEnd, output, at);
                        }

                        (backStart, backEnd) = (r.Start, r.End);
                    }

                    nextMatch = r.IsMatch;
                }

                if (backStart >= 0)
                {
                    Emit(piece, backStart, backEnd, output, at);
                }

                break;
        }
    }

    // A non-empty range of the piece as a piece of its own (inserted at `at` for the backward fold).
    private static void Emit(Piece piece, int start, int end, List<Piece> output, int at = -1)
    {
        if (end > start)
        {
            if (at < 0)
            {
                output.Add(piece.Slice(start, end));
            }
            else
            {
                output.Insert(at, piece.Slice(start, end));
            }
        }
    }
}
