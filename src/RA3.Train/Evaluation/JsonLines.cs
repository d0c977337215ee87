using System.Text;
using System.Text.Json;

namespace RA3.Train.Evaluation;

/// <summary>
/// Reads JSON-lines bytes for the problem and sample loaders: each non-blank line decoded as strict
/// UTF-8 and parsed, handed over with its 1-based line number; a line that is not UTF-8 or not JSON
/// goes to <c>issue</c> instead and the others go on. Lines may hold the bare number literals
/// <c>NaN</c>, <c>Infinity</c> and <c>-Infinity</c> that Python's json module writes and reads (EvalPlus
/// inputs use them): see <see cref="PythonNumbers"/>.
/// </summary>
internal static class JsonLines
{
    /// <summary>UTF-8 that throws on invalid bytes instead of replacing them.</summary>
    public static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    /// <summary>Calls <paramref name="each"/> for every JSON line of <paramref name="bytes"/>, <paramref name="issue"/> for every bad one.</summary>
    public static void Read(byte[] bytes, Action<int, JsonElement> each, Action<int, string> issue)
    {
        int line = 0;
        for (int start = 0; start < bytes.Length;)
        {
            int end = Array.IndexOf(bytes, (byte)'\n', start);
            end = end < 0 ? bytes.Length : end;
            line++;
            var span = bytes.AsSpan(start, end - start);
            start = end + 1;
            if (span.IndexOfAnyExcept(" \t\r"u8) < 0)
            {
                continue;
            }

            string text;
            try
            {
                text = StrictUtf8.GetString(span);
            }
            catch (DecoderFallbackException)
            {
                issue(line, "not valid UTF-8");
                continue;
            }

            try
            {
                using var json = JsonDocument.Parse(PythonNumbers.Standardize(text));
                each(line, json.RootElement);
            }
            catch (JsonException e)
            {
                issue(line, $"not valid JSON ({e.Message})");
            }
        }
    }
}

/// <summary>
/// Python's json module writes float('nan') and ±float('inf') as the bare literals <c>NaN</c>,
/// <c>Infinity</c> and <c>-Infinity</c>, which standard JSON (and System.Text.Json) refuses. The
/// loaders parse a copy where each such literal outside strings is a marker string, and
/// <see cref="RawText"/> gives the element's text with the literals back, for Python to read.
/// </summary>
internal static class PythonNumbers
{
    // A string no benchmark holds: a NUL and a private-use character around the literal.
    private const string Open = "\"\\u0000\\uE000", Close = "\"";
    private static readonly string[] Literals = ["-Infinity", "Infinity", "NaN"];

    /// <summary><paramref name="text"/> with every bare Python number literal replaced by its marker string.</summary>
    public static string Standardize(string text)
    {
        if (text.AsSpan().IndexOfAny('N', 'I') < 0)
        {
            return text;
        }

        StringBuilder? rewritten = null;
        int copied = 0;
        bool inString = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (inString)
            {
                if (c == '\\')
                {
                    i++;
                }
                else if (c == '"')
                {
                    inString = false;
                }

                continue;
            }

            if (c == '"')
            {
                inString = true;
                continue;
            }

            foreach (string literal in Literals)
            {
                if (string.CompareOrdinal(text, i, literal, 0, literal.Length) == 0 && (i + literal.Length == text.Length || !char.IsAsciiLetterOrDigit(text[i + literal.Length])))
                {
                    rewritten ??= new StringBuilder(text.Length + 32);
                    rewritten.Append(text, copied, i - copied).Append(Open).Append(literal).Append(Close);
                    i += literal.Length - 1;
                    copied = i + 1;
                    break;
                }
            }
        }

        return rewritten is null ? text : rewritten.Append(text, copied, text.Length - copied).ToString();
    }

    /// <summary>The JSON text of <paramref name="element"/>, with the literals <see cref="Standardize"/> replaced written bare again.</summary>
    public static string RawText(JsonElement element)
    {
        string raw = element.GetRawText();
        if (!raw.Contains(Open, StringComparison.Ordinal))
        {
            return raw;
        }

        foreach (string literal in Literals)
        {
            raw = raw.Replace(Open + literal + Close, literal, StringComparison.Ordinal);
        }

        return raw;
    }
}
