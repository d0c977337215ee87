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
        opensLogicalLine = LogicalLineStarts(lines);
    }

    private readonly bool[] opensLogicalLine;

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
    /// Whether a rationale may stand before line <paramref name="line"/> (1-based): the line has code
    /// and starts a logical line of Python — not inside brackets, a string (a triple-quoted one
    /// spans lines) or after a backslash continuation, where a comment line would be part of a
    /// string (the program changes) or break the statement. A blank line starts no abstraction: the
    /// decision belongs to the next line with code.
    /// </summary>
    public bool RationaleAllowed(int line)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(line, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(line, Count);
        return opensLogicalLine[line - 1] && Lines[line - 1].Trim().Length > 0;
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
    /// Per line, whether it starts a logical line: a small scan of Python's lexical structure —
    /// strings (with escapes, triple quotes across lines), comments, bracket depth and backslash
    /// continuations. Enough to place comment lines; it does not validate the code.
    /// </summary>
    private static bool[] LogicalLineStarts(string[] lines)
    {
        var starts = new bool[lines.Length];
        int depth = 0;
        string? triple = null;
        bool continued = false;
        for (int l = 0; l < lines.Length; l++)
        {
            starts[l] = depth == 0 && triple is null && !continued;
            continued = false;
            string line = lines[l];
            for (int i = 0; i < line.Length; i++)
            {
                char ch = line[i];
                if (triple is not null)
                {
                    if (ch == '\\')
                    {
                        i++;
                    }
                    else if (string.CompareOrdinal(line, i, triple, 0, 3) == 0)
                    {
                        i += 2;
                        triple = null;
                    }

                    continue;
                }

                if (ch == '#')
                {
                    break;
                }

                if (ch is '\'' or '"')
                {
                    if (i + 2 < line.Length && line[i + 1] == ch && line[i + 2] == ch)
                    {
                        triple = new string(ch, 3);
                        i += 2;
                        continue;
                    }

                    // A one-line string: to its closing quote, or (unterminated) on to the next line.
                    int j = i + 1;
                    while (j < line.Length && line[j] != ch)
                    {
                        j += line[j] == '\\' ? 2 : 1;
                    }

                    continued |= j >= line.Length;
                    i = j;
                    continue;
                }

                depth = ch switch
                {
                    '(' or '[' or '{' => depth + 1,
                    ')' or ']' or '}' => Math.Max(0, depth - 1),
                    _ => depth,
                };
                continued |= ch == '\\' && i == line.Length - 1;
            }
        }

        return starts;
    }

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
