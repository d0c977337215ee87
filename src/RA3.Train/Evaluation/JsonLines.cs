using System.Text;
using System.Text.Json;

namespace RA3.Train.Evaluation;

/// <summary>
/// Reads JSON-lines bytes for the problem and sample loaders: each non-blank line decoded as strict
/// UTF-8 and parsed, handed over with its 1-based line number; a line that is not UTF-8 or not JSON
/// goes to <c>issue</c> instead and the others go on.
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
                using var json = JsonDocument.Parse(text);
                each(line, json.RootElement);
            }
            catch (JsonException e)
            {
                issue(line, $"not valid JSON ({e.Message})");
            }
        }
    }
}
