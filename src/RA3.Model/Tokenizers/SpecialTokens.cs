namespace RA3.Model.Tokenizers;

/// <summary>Splits text around special-token strings (longest match first), as Hugging Face's added-token pass does.</summary>
internal static class SpecialTokens
{
    /// <summary>The pieces of <paramref name="text"/> in order, each flagged as a special token or plain text.</summary>
    public static IEnumerable<(string Piece, bool Special)> Split(string text, IReadOnlyList<string> tokens)
    {
        var ordered = tokens.Where(t => t.Length > 0).OrderByDescending(t => t.Length).ToArray();
        int start = 0, i = 0;
        while (i < text.Length)
        {
            string? match = null;
            foreach (string t in ordered)
            {
                if (string.CompareOrdinal(text, i, t, 0, t.Length) == 0)
                {
                    match = t;
                    break;
                }
            }

            if (match is null)
            {
                i++;
                continue;
            }

            if (i > start)
            {
                yield return (text[start..i], false);
            }

            yield return (match, true);
            i += match.Length;
            start = i;
        }

        if (start < text.Length)
        {
            yield return (text[start..], false);
        }
    }
}
