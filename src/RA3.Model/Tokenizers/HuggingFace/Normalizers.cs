using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace RA3.Model.Tokenizers.HuggingFace;

/// <summary>
/// One step of a tokenizer.json <c>normalizer</c>: rewrites a piece into a new one, keeping for each
/// character the index of the input character it came from.
/// </summary>
internal abstract class Normalizer
{
    /// <summary>The normalized piece (appended to <paramref name="ws"/>, or <paramref name="piece"/> itself when nothing changes).</summary>
    public abstract Piece Apply(Workspace ws, Piece piece);

    /// <summary>
    /// Reads a normalizer: NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Prepend, Replace
    /// and Sequences of them; null when there is none. Others are an error naming the field.
    /// </summary>
    public static Normalizer? Parse(JsonSpec spec, JsonNode? node, string field)
    {
        if (node is null)
        {
            return null;
        }

        var o = spec.Object(node, field);
        return spec.Type(o, field) switch
        {
            "NFC" => new UnicodeForm(NormalizationForm.FormC),
            "NFD" => new UnicodeForm(NormalizationForm.FormD),
            "NFKC" => new UnicodeForm(NormalizationForm.FormKC),
            "NFKD" => new UnicodeForm(NormalizationForm.FormKD),
            "Lowercase" => new Lowercase(),
            "StripAccents" => new StripAccents(),
            "Strip" => new Strip(spec.Bool(o, "strip_left", field, true), spec.Bool(o, "strip_right", field, true)),
            "Prepend" => new Prepend(spec.String(o, "prepend", field) ?? throw spec.Bad($"{field}.prepend", "missing")),
            "Replace" => new Replace(
                PatternOf(spec, o, field),
                spec.String(o, "content", field) ?? throw spec.Bad($"{field}.content", "missing")),
            "Sequence" => new Sequence([.. spec.Array(o["normalizers"], $"{field}.normalizers").Select((n, i) => Parse(spec, n, $"{field}.normalizers[{i}]")!)]),
            var other => throw spec.Bad($"{field}.type", $"'{other}' is not supported (NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Prepend, Replace, Sequence)"),
        };
    }

    /// <summary>A component's <c>pattern</c>: <c>{"String": …}</c> or <c>{"Regex": …}</c>.</summary>
    public static SplitPattern PatternOf(JsonSpec spec, JsonObject component, string field)
    {
        var pattern = spec.Object(component["pattern"], $"{field}.pattern");
        if (spec.String(pattern, "String", $"{field}.pattern") is { } literal)
        {
            return SplitPattern.Literal(literal);
        }

        string regex = spec.String(pattern, "Regex", $"{field}.pattern") ?? throw spec.Bad($"{field}.pattern", "needs String or Regex");
        try
        {
            return SplitPattern.Regex(new CodePointRegex(regex));
        }
        catch (ArgumentException e)
        {
            throw spec.Bad($"{field}.pattern.Regex", $"not a regular expression .NET reads ({e.Message})");
        }
    }

    /// <summary>Normalizes a string on its own (an added token's content), without offsets.</summary>
    public string Normalize(string text)
    {
        var ws = new Workspace();
        var piece = Apply(ws, ws.AppendOriginal(text, 0, text.Length));
        return new string(ws.Text(piece));
    }

    /// <summary>Appends <paramref name="chars"/>, each from input character <paramref name="origin"/>.</summary>
    protected static Piece AppendFrom(Workspace ws, ReadOnlySpan<char> chars, int origin)
    {
        int at = ws.Reserve(chars.Length);
        chars.CopyTo(ws.Chars.AsSpan(at));
        ws.Origin.AsSpan(at, chars.Length).Fill(origin);
        return ws.Commit(at, chars.Length);
    }

    private sealed class Sequence(Normalizer[] steps) : Normalizer
    {
        public override Piece Apply(Workspace ws, Piece piece)
        {
            foreach (var step in steps)
            {
                piece = step.Apply(ws, piece);
            }

            return piece;
        }
    }

    /// <summary>
    /// NFC/NFD/NFKC/NFKD. Text already in the form is left alone (the common case, and no copy).
    /// Otherwise each run that starts at an ASCII character is normalized on its own — no
    /// composition reaches back across an ASCII character, so the result is the whole text's — and
    /// its characters keep their origins when the run keeps its length, else all take the run's
    /// first: offsets stay exact at every ASCII character, newlines included.
    /// </summary>
    private sealed class UnicodeForm(NormalizationForm form) : Normalizer
    {
        public override Piece Apply(Workspace ws, Piece piece)
        {
            bool normalized;
            try
            {
                normalized = ws.Text(piece).IsNormalized(form);
            }
            catch (ArgumentException)
            {
                return piece;  // a lone surrogate: not text the normalizer can read; left as it is
            }

            if (normalized)
            {
                return piece;
            }

            var runs = new List<(string Text, int From, int Length)>();
            var text = ws.Text(piece);
            for (int i = 0; i < text.Length;)
            {
                int j = i + 1;
                while (j < text.Length && text[j] >= 0x80)
                {
                    j++;
                }

                string run = new(text[i..j]);
                try
                {
                    runs.Add((run.Normalize(form), i, j - i));
                }
                catch (ArgumentException)
                {
                    runs.Add((run, i, j - i));
                }

                i = j;
            }

            int total = runs.Sum(r => r.Text.Length);
            int at = ws.Reserve(total);
            int k = at;
            foreach (var (run, from, length) in runs)
            {
                for (int c = 0; c < run.Length; c++, k++)
                {
                    ws.Chars[k] = run[c];
                    ws.Origin[k] = ws.Origin[piece.Start + from + (run.Length == length ? c : 0)];
                }
            }

            return ws.Commit(at, total);
        }
    }

    private sealed class Lowercase : Normalizer
    {
        public override Piece Apply(Workspace ws, Piece piece)
        {
            int at = ws.Reserve(piece.Length);
            for (int i = 0; i < piece.Length; i++)
            {
                ws.Chars[at + i] = char.ToLowerInvariant(ws.Chars[piece.Start + i]);
                ws.Origin[at + i] = ws.Origin[piece.Start + i];
            }

            return ws.Commit(at, piece.Length);
        }
    }

    private sealed class StripAccents : Normalizer
    {
        public override Piece Apply(Workspace ws, Piece piece)
        {
            int at = ws.Reserve(piece.Length), n = 0;
            for (int i = 0; i < piece.Length; i++)
            {
                char c = ws.Chars[piece.Start + i];
                if (CharUnicodeInfo.GetUnicodeCategory(c) != UnicodeCategory.NonSpacingMark)
                {
                    ws.Chars[at + n] = c;
                    ws.Origin[at + n++] = ws.Origin[piece.Start + i];
                }
            }

            return ws.Commit(at, n);
        }
    }

    private sealed class Strip(bool left, bool right) : Normalizer
    {
        public override Piece Apply(Workspace ws, Piece piece)
        {
            var text = ws.Text(piece);
            int start = 0, end = text.Length;
            while (left && start < end && char.IsWhiteSpace(text[start]))
            {
                start++;
            }

            while (right && end > start && char.IsWhiteSpace(text[end - 1]))
            {
                end--;
            }

            return piece.Slice(start, end);
        }
    }

    /// <summary>Prepends a string to a non-empty piece; its characters come from the piece's first.</summary>
    private sealed class Prepend(string prefix) : Normalizer
    {
        public override Piece Apply(Workspace ws, Piece piece)
        {
            if (piece.Length == 0)
            {
                return piece;
            }

            int at = ws.Reserve(prefix.Length + piece.Length);
            prefix.CopyTo(ws.Chars.AsSpan(at));
            ws.Origin.AsSpan(at, prefix.Length).Fill(ws.Origin[piece.Start]);
            ws.Chars.AsSpan(piece.Start, piece.Length).CopyTo(ws.Chars.AsSpan(at + prefix.Length));
            ws.Origin.AsSpan(piece.Start, piece.Length).CopyTo(ws.Origin.AsSpan(at + prefix.Length));
            return ws.Commit(at, prefix.Length + piece.Length);
        }
    }

    /// <summary>Replaces every match with the content, whose characters come from the match's first.</summary>
    private sealed class Replace(SplitPattern pattern, string content) : Normalizer
    {
        public override Piece Apply(Workspace ws, Piece piece)
        {
            var found = ws.Found;
            found.Clear();
            pattern.Find(ws.Text(piece), found, ws.Regex);
            if (found.Count == 0)
            {
                return piece;
            }

            int at = ws.Reserve(piece.Length + (found.Count * content.Length)), n = at, previous = 0;
            foreach (var (start, end) in found)
            {
                Copy(ws, piece.Start + previous, start - previous, ref n);
                if (end > start)
                {
                    content.CopyTo(ws.Chars.AsSpan(n));
                    ws.Origin.AsSpan(n, content.Length).Fill(ws.Origin[piece.Start + start]);
                    n += content.Length;
                }

                previous = end;
            }

            Copy(ws, piece.Start + previous, piece.Length - previous, ref n);
            return ws.Commit(at, n - at);
        }

        private static void Copy(Workspace ws, int from, int length, ref int to)
        {
            ws.Chars.AsSpan(from, length).CopyTo(ws.Chars.AsSpan(to));
            ws.Origin.AsSpan(from, length).CopyTo(ws.Origin.AsSpan(to));
            to += length;
        }
    }
}
