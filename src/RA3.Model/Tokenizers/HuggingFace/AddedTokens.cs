using System.Buffers;
using System.Text.Json.Nodes;

namespace RA3.Model.Tokenizers.HuggingFace;

/// <summary>One entry of a tokenizer.json's <c>added_tokens</c>.</summary>
/// <param name="Content">Its text.</param>
/// <param name="Id">Its id.</param>
/// <param name="Special">A control token (skipped by <c>skip_special_tokens</c>; text, not a token, in a document).</param>
/// <param name="SingleWord">Matched only between non-word characters.</param>
/// <param name="LStrip">Takes the whitespace before it.</param>
/// <param name="RStrip">Takes the whitespace after it.</param>
/// <param name="Normalized">Matched in the normalized text rather than the input.</param>
internal sealed record AddedToken(string Content, int Id, bool Special, bool SingleWord, bool LStrip, bool RStrip, bool Normalized);

/// <summary>
/// The added-token pass that runs before everything else, as tokenizers' <c>AddedVocabulary</c>:
/// tokens matched leftmost-longest in the input (or, for <c>normalized</c> ones, in each
/// normalized piece), with their <c>single_word</c>, <c>lstrip</c> and <c>rstrip</c> rules; the text
/// between them goes on to the normalizer and the model. Special tokens can be left as text
/// (tokenizers' <c>encode_special_tokens</c>), which documents use.
/// </summary>
internal sealed class AddedTokens
{
    private readonly Matcher raw;
    private readonly Matcher normalized;

    private AddedTokens(IReadOnlyList<AddedToken> all, Normalizer? normalizer)
    {
        All = all;
        raw = new Matcher(all.Where(t => !t.Normalized).Select(t => (t.Content, t)));
        normalized = new Matcher(all.Where(t => t.Normalized).Select(t => (normalizer?.Normalize(t.Content) ?? t.Content, t)));
    }

    /// <summary>Every added token.</summary>
    public IReadOnlyList<AddedToken> All { get; }

    /// <summary>Whether some tokens are matched in normalized text.</summary>
    public bool AnyNormalized => normalized.Any;

    /// <summary>Reads <c>added_tokens</c>; each entry needs content and id.</summary>
    public static AddedTokens Parse(JsonSpec spec, JsonNode? node, Normalizer? normalizer)
    {
        var tokens = new List<AddedToken>();
        if (node is not null)
        {
            var items = spec.Array(node, "added_tokens");
            for (int i = 0; i < items.Count; i++)
            {
                string field = $"added_tokens[{i}]";
                var o = spec.Object(items[i], field);
                tokens.Add(new AddedToken(
                    spec.String(o, "content", field) ?? throw spec.Bad($"{field}.content", "missing"),
                    o["id"] is null ? throw spec.Bad($"{field}.id", "missing") : spec.Int(o, "id", field, -1),
                    spec.Bool(o, "special", field, false),
                    spec.Bool(o, "single_word", field, false),
                    spec.Bool(o, "lstrip", field, false),
                    spec.Bool(o, "rstrip", field, false),
                    spec.Bool(o, "normalized", field, !spec.Bool(o, "special", field, false))));
            }
        }

        return new AddedTokens(tokens, normalizer);
    }

    /// <summary>Splits the input: (start, end, id) per piece, id −1 for text between tokens.</summary>
    public void SplitInput(ReadOnlySpan<char> text, bool specialTokensAsText, List<(int Start, int End, int Id)> output) => raw.Split(text, specialTokensAsText, output);

    /// <summary>Splits a normalized piece by the normalized tokens, as <see cref="SplitInput"/>.</summary>
    public void SplitNormalized(ReadOnlySpan<char> text, bool specialTokensAsText, List<(int Start, int End, int Id)> output) => normalized.Split(text, specialTokensAsText, output);

    /// <summary>Leftmost-longest matching of a set of strings: candidates found by their first character.</summary>
    private sealed class Matcher
    {
        private readonly Dictionary<char, (string Pattern, AddedToken Token)[]> byFirst;
        private readonly SearchValues<char> firsts;

        public Matcher(IEnumerable<(string Pattern, AddedToken Token)> tokens)
        {
            byFirst = tokens.Where(t => t.Pattern.Length > 0)
                .GroupBy(t => t.Pattern[0])
                .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Pattern.Length).ToArray());
            firsts = SearchValues.Create([.. byFirst.Keys]);
        }

        public bool Any => byFirst.Count > 0;

        public void Split(ReadOnlySpan<char> text, bool specialTokensAsText, List<(int Start, int End, int Id)> output)
        {
            int done = 0, from = 0;
            while (from < text.Length)
            {
                int at = text[from..].IndexOfAny(firsts);
                if (at < 0)
                {
                    break;
                }

                at += from;
                AddedToken? token = null;
                int end = at;
                foreach (var (pattern, t) in byFirst[text[at]])
                {
                    if (text[at..].StartsWith(pattern, StringComparison.Ordinal))
                    {
                        (token, end) = (t, at + pattern.Length);
                        break;
                    }
                }

                if (token is null)
                {
                    from = at + 1;
                    continue;
                }

                from = end;  // matches do not overlap, kept or not
                if ((specialTokensAsText && token.Special) || (token.SingleWord && !(IsWordBoundary(text, at - 1) && IsWordBoundary(text, end))))
                {
                    continue;
                }

                int start = at, stop = end;
                if (token.LStrip)
                {
                    while (start > done && char.IsWhiteSpace(text[start - 1]))
                    {
                        start--;
                    }
                }

                if (token.RStrip)
                {
                    while (stop < text.Length && char.IsWhiteSpace(text[stop]))
                    {
                        stop++;
                    }

                    from = stop;
                }

                if (start > done)
                {
                    output.Add((done, start, -1));
                }

                output.Add((start, stop, token.Id));
                done = stop;
            }

            if (done < text.Length)
            {
                output.Add((done, text.Length, -1));
            }
        }

        // Whether the character at i (outside the text counts) is not a word character.
        private static bool IsWordBoundary(ReadOnlySpan<char> text, int i) =>
            i < 0 || i >= text.Length || !(char.IsLetterOrDigit(text[i]) || text[i] == '_');
    }
}
