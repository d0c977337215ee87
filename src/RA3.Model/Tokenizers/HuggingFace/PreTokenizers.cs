using System.Text.Json.Nodes;

namespace RA3.Model.Tokenizers.HuggingFace;

/// <summary>One step of a tokenizer.json <c>pre_tokenizer</c>: cuts (and may rewrite) a piece into the pieces BPE sees.</summary>
internal abstract class PreTokenizer
{
    /// <summary>GPT-2's pattern, the ByteLevel pre-tokenizer's own (use_regex).</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>Appends the pieces <paramref name="piece"/> becomes to <paramref name="output"/>.</summary>
    public abstract void Apply(Workspace ws, Piece piece, List<Piece> output);

    /// <summary>
    /// Reads a pre-tokenizer into its steps, Sequences flattened (each step runs on every piece of
    /// the one before, which is what a Sequence does): ByteLevel, Metaspace, Split, Digits,
    /// Whitespace, WhitespaceSplit, Punctuation. <paramref name="byteLevel"/> says whether a
    /// ByteLevel step maps the pieces to bytes — done by the model on each piece's UTF-8, so it
    /// must be the last step. Others are an error naming the field.
    /// </summary>
    public static List<PreTokenizer> Parse(JsonSpec spec, JsonNode? node, out bool byteLevel)
    {
        var steps = new List<PreTokenizer>();
        bool bytes = false;
        void One(JsonNode? n, string field)
        {
            var o = spec.Object(n, field);
            string type = spec.Type(o, field);
            if (bytes && type != "Sequence")
            {
                throw spec.Bad($"{field}.type", $"'{type}' after a ByteLevel step is not supported (ByteLevel must come last)");
            }

            switch (type)
            {
                case "Sequence":
                    var items = spec.Array(o["pretokenizers"], $"{field}.pretokenizers");
                    for (int i = 0; i < items.Count; i++)
                    {
                        One(items[i], $"{field}.pretokenizers[{i}]");
                    }

                    break;
                case "ByteLevel":
                    bytes = true;
                    steps.Add(new ByteLevel(spec.Bool(o, "add_prefix_space", field, true), spec.Bool(o, "use_regex", field, true)));
                    break;
                case "Metaspace":
                    steps.Add(Metaspace.Parse(spec, o, field));
                    break;
                case "Split":
                    steps.Add(new Split(Normalizer.PatternOf(spec, o, field), BehaviorOf(spec, o, field), spec.Bool(o, "invert", field, false)));
                    break;
                case "Digits":
                    steps.Add(new Split(RegexPattern(spec.Bool(o, "individual_digits", field, false) ? @"\p{N}" : @"\p{N}+"), SplitBehavior.Isolated, false));
                    break;
                case "Whitespace":
                    steps.Add(new Split(RegexPattern(@"\w+|[^\w\s]+"), SplitBehavior.Removed, true));
                    break;
                case "WhitespaceSplit":
                    steps.Add(new Split(RegexPattern(@"\s+"), SplitBehavior.Removed, false));
                    break;
                case "Punctuation":
                    // tokenizers' is_punc: ASCII punctuation or a Unicode P* character, one match per character.
                    steps.Add(new Split(RegexPattern(@"[\p{P}!-/:-@\[-`{-~]"), BehaviorOf(spec, o, field, SplitBehavior.Isolated), false));
                    break;
                default:
                    throw spec.Bad($"{field}.type", $"'{type}' is not supported (ByteLevel, Metaspace, Split, Digits, Whitespace, WhitespaceSplit, Punctuation, Sequence)");
            }
        }

        if (node is not null)
        {
            One(node, "pre_tokenizer");
        }

        byteLevel = bytes;
        return steps;
    }

    private static SplitPattern RegexPattern(string pattern) => SplitPattern.Regex(new CodePointRegex(pattern));

    private static SplitBehavior BehaviorOf(JsonSpec spec, JsonObject o, string field, SplitBehavior? absent = null) => spec.String(o, "behavior", field) switch
    {
        "Removed" => SplitBehavior.Removed,
        "Isolated" => SplitBehavior.Isolated,
        "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
        "MergedWithNext" => SplitBehavior.MergedWithNext,
        "Contiguous" => SplitBehavior.Contiguous,
        null when absent is { } b => b,
        var other => throw spec.Bad($"{field}.behavior", $"'{other}' is not Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous"),
    };

    private sealed class Split(SplitPattern pattern, SplitBehavior behavior, bool invert) : PreTokenizer
    {
        public override void Apply(Workspace ws, Piece piece, List<Piece> output) => Splitter.Split(ws, piece, pattern, behavior, invert, output);
    }

    /// <summary>ByteLevel: optionally a space before each piece and GPT-2's split; the byte mapping is the model's.</summary>
    private sealed class ByteLevel(bool addPrefixSpace, bool useRegex) : PreTokenizer
    {
        private static readonly SplitPattern Gpt2 = RegexPattern(Gpt2Pattern);

        public override void Apply(Workspace ws, Piece piece, List<Piece> output)
        {
            if (addPrefixSpace && (piece.Length == 0 || ws.Chars[piece.Start] != ' '))
            {
                int at = ws.Reserve(piece.Length + 1);
                ws.Chars[at] = ' ';
                ws.Origin[at] = piece.Length > 0 ? ws.Origin[piece.Start] : 0;
                ws.Chars.AsSpan(piece.Start, piece.Length).CopyTo(ws.Chars.AsSpan(at + 1));
                ws.Origin.AsSpan(piece.Start, piece.Length).CopyTo(ws.Origin.AsSpan(at + 1));
                piece = ws.Commit(at, piece.Length + 1);
            }

            if (useRegex)
            {
                Splitter.Split(ws, piece, Gpt2, SplitBehavior.Isolated, false, output);
            }
            else if (piece.Length > 0)
            {
                output.Add(piece);
            }
        }
    }

    /// <summary>
    /// Metaspace: spaces become the replacement character (▁), which is prepended per the scheme
    /// ("always"; "first": only to the piece that starts the input; "never"), then, with split, each
    /// ▁ starts a new piece.
    /// </summary>
    private sealed class Metaspace(char replacement, string scheme, bool split) : PreTokenizer
    {
        private readonly SplitPattern delimiter = SplitPattern.Literal(replacement.ToString());

        public static Metaspace Parse(JsonSpec spec, JsonObject o, string field)
        {
            string replacement = spec.String(o, "replacement", field) ?? "\u2581";
            if (replacement.Length != 1)
            {
                throw spec.Bad($"{field}.replacement", $"'{replacement}' must be one character");
            }

            // Older files say add_prefix_space instead of prepend_scheme.
            string scheme = spec.String(o, "prepend_scheme", field) ?? (spec.Bool(o, "add_prefix_space", field, true) ? "always" : "never");
            return scheme is "always" or "first" or "never"
                ? new Metaspace(replacement[0], scheme, spec.Bool(o, "split", field, true))
                : throw spec.Bad($"{field}.prepend_scheme", $"'{scheme}' is not always, first or never");
        }

        public override void Apply(Workspace ws, Piece piece, List<Piece> output)
        {
            bool prepend = piece.Length > 0 && scheme != "never" && ws.Chars[piece.Start] != ' ' && ws.Chars[piece.Start] != replacement
                && (scheme == "always" || ws.Origin[piece.Start] == 0);
            int extra = prepend ? 1 : 0;
            int at = ws.Reserve(piece.Length + extra);
            if (prepend)
            {
                ws.Chars[at] = replacement;
                ws.Origin[at] = ws.Origin[piece.Start];
            }

            for (int i = 0; i < piece.Length; i++)
            {
                char c = ws.Chars[piece.Start + i];
                ws.Chars[at + extra + i] = c == ' ' ? replacement : c;
                ws.Origin[at + extra + i] = ws.Origin[piece.Start + i];
            }

            var rewritten = ws.Commit(at, piece.Length + extra);
            if (split)
            {
                Splitter.Split(ws, rewritten, delimiter, SplitBehavior.MergedWithNext, false, output);
            }
            else if (rewritten.Length > 0)
            {
                output.Add(rewritten);
            }
        }
    }
}
