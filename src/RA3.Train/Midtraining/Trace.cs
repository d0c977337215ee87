namespace RA3.Train.Midtraining;

/// <summary>
/// An expert trace (spec §1): a code document split into lines, each line a primitive action.
/// Line t (1-based) is preceded by boundary t, where a rationale may start; <see cref="Render"/>
/// writes the code with rationales inserted as comment lines indented like the code they precede.
/// </summary>
public sealed class Trace
{
    private Trace(string id, string[] lines)
    {
        Id = id;
        Lines = lines;
    }

    /// <summary>Where the trace came from (a file name, a task id).</summary>
    public string Id { get; }

    /// <summary>The lines, without their newlines (indentation kept).</summary>
    public IReadOnlyList<string> Lines { get; }

    /// <summary>Number of lines T.</summary>
    public int Count => Lines.Count;

    /// <summary>Splits <paramref name="code"/> into lines (\n or \r\n); one final newline ends the last line rather than starting an empty one.</summary>
    public static Trace FromCode(string id, string code)
    {
        ArgumentNullException.ThrowIfNull(code);
        string text = code.Replace("\r\n", "\n", StringComparison.Ordinal);
        if (text.EndsWith('\n'))
        {
            text = text[..^1];
        }

        return new Trace(id, text.Split('\n'));
    }

    /// <summary>
    /// The indentation a rationale before line <paramref name="line"/> (1-based) takes: that line's,
    /// or for a blank line the next non-blank line's (comments do not change Python's indentation,
    /// so this is for the reader and the model, not the parser).
    /// </summary>
    public string IndentBefore(int line)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(line, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(line, Count);
        for (int t = line - 1; t < Count; t++)
        {
            string l = Lines[t];
            if (l.Trim().Length > 0)
            {
                return l[..(l.Length - l.TrimStart().Length)];
            }
        }

        return string.Empty;
    }

    /// <summary>
    /// The code with a comment line "indent# rationale" before each line t that has a rationale
    /// (keys are 1-based boundaries); every line, the last included, ends with a newline.
    /// </summary>
    public string Render(IReadOnlyDictionary<int, string>? rationales = null) => Layout(rationales).Text;

    /// <summary>
    /// <see cref="Render"/>'s text with where each of its lines starts: per rendered line, its first
    /// character's index and what it is — code line t (1-based) as t, the comment before line t as −t.
    /// </summary>
    public RenderedTrace Layout(IReadOnlyDictionary<int, string>? rationales = null)
    {
        var text = new System.Text.StringBuilder();
        var starts = new List<int>(Count);
        var lines = new List<int>(Count);
        for (int t = 1; t <= Count; t++)
        {
            if (rationales is not null && rationales.TryGetValue(t, out string? rationale))
            {
                starts.Add(text.Length);
                lines.Add(-t);
                text.Append(CommentLine(t, rationale));
            }

            starts.Add(text.Length);
            lines.Add(t);
            text.Append(Lines[t - 1]).Append('\n');
        }

        return new RenderedTrace(text.ToString(), [.. starts], [.. lines]);
    }

    /// <summary>The comment line, newline included, that writes <paramref name="rationale"/> before line <paramref name="line"/> (1-based).</summary>
    public string CommentLine(int line, string rationale) => $"{IndentBefore(line)}# {CommentText(rationale)}\n";

    /// <summary>
    /// A rationale as the text of one comment line: first line only, control characters dropped (a
    /// NUL byte alone would make the file unparsable), a leading "#" the model wrote dropped, trimmed.
    /// </summary>
    public static string CommentText(string rationale)
    {
        ArgumentNullException.ThrowIfNull(rationale);
        string first = rationale.Split('\n', 2)[0];
        first = string.Concat(first.Where(ch => !char.IsControl(ch) || ch == '\t').Select(ch => ch == '\t' ? ' ' : ch));
        return first.Trim().TrimStart('#').Trim();
    }
}

/// <summary>A rendered trace: its text and, per line of the text, where it starts and what it is.</summary>
/// <param name="Text">The document.</param>
/// <param name="Starts">Per rendered line: the index of its first character.</param>
/// <param name="Lines">Per rendered line: code line t (1-based) as t, the comment before line t as −t.</param>
public sealed record RenderedTrace(string Text, int[] Starts, int[] Lines)
{
    /// <summary>Index of the first character of code line <paramref name="t"/> (1-based).</summary>
    public int StartOfLine(int t) => Starts[Array.IndexOf(Lines, t)];
}
