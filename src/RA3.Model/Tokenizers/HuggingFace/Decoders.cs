using System.Text;
using System.Text.Json.Nodes;

namespace RA3.Model.Tokenizers.HuggingFace;

/// <summary>
/// One step of a tokenizer.json <c>decoder</c>, as tokenizers' <c>decode_chain</c>: token strings in,
/// token strings out (rewritten in place); the final text is their concatenation.
/// </summary>
internal abstract class Decoder
{
    /// <summary>Rewrites <paramref name="tokens"/>.</summary>
    public abstract void Apply(List<string> tokens);

    /// <summary>
    /// Reads a decoder: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip and Sequences of
    /// them; null when there is none. Others are an error naming the field.
    /// </summary>
    public static Decoder? Parse(JsonSpec spec, JsonNode? node, string field)
    {
        if (node is null)
        {
            return null;
        }

        var o = spec.Object(node, field);
        return spec.Type(o, field) switch
        {
            "ByteLevel" => new ByteLevel(),
            "ByteFallback" => new ByteFallback(),
            "Fuse" => new Fuse(),
            "Strip" => new Strip(StripChar(spec, o, field), spec.Int(o, "start", field, 0), spec.Int(o, "stop", field, 0)),
            "Replace" => new Replace(Normalizer.PatternOf(spec, o, field), spec.String(o, "content", field) ?? throw spec.Bad($"{field}.content", "missing")),
            "Metaspace" => ParseMetaspace(spec, o, field),
            "Sequence" => new Sequence([.. spec.Array(o["decoders"], $"{field}.decoders").Select((d, i) => Parse(spec, d, $"{field}.decoders[{i}]")!)]),
            var other => throw spec.Bad($"{field}.type", $"'{other}' is not supported (ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence)"),
        };
    }

    private static char StripChar(JsonSpec spec, JsonObject o, string field)
    {
        string content = spec.String(o, "content", field) ?? " ";
        return content.Length == 1 ? content[0] : throw spec.Bad($"{field}.content", $"'{content}' must be one character");
    }

    private static Metaspace ParseMetaspace(JsonSpec spec, JsonObject o, string field)
    {
        string replacement = spec.String(o, "replacement", field) ?? "\u2581";
        string scheme = spec.String(o, "prepend_scheme", field) ?? (spec.Bool(o, "add_prefix_space", field, true) ? "always" : "never");
        return replacement.Length == 1 ? new Metaspace(replacement[0], scheme != "never") : throw spec.Bad($"{field}.replacement", $"'{replacement}' must be one character");
    }

    private sealed class Sequence(Decoder[] steps) : Decoder
    {
        public override void Apply(List<string> tokens)
        {
            foreach (var step in steps)
            {
                step.Apply(tokens);
            }
        }
    }

    /// <summary>All tokens' GPT-2 characters back to bytes, one string (a token with other characters is its own UTF-8).</summary>
    private sealed class ByteLevel : Decoder
    {
        public override void Apply(List<string> tokens)
        {
            var bytes = new List<byte>();
            foreach (string token in tokens)
            {
                bool mapped = true;
                foreach (char c in token)
                {
                    mapped &= ByteLevelAlphabet.Byte(c) >= 0;
                }

                if (mapped)
                {
                    foreach (char c in token)
                    {
                        bytes.Add((byte)ByteLevelAlphabet.Byte(c));
                    }
                }
                else
                {
                    bytes.AddRange(Encoding.UTF8.GetBytes(token));
                }
            }

            tokens.Clear();
            tokens.Add(Encoding.UTF8.GetString([.. bytes]));
        }
    }

    /// <summary>Runs of <c>&lt;0xXX&gt;</c> tokens become their UTF-8 text, or one U+FFFD per byte when it is not valid UTF-8.</summary>
    private sealed class ByteFallback : Decoder
    {
        private static readonly UTF8Encoding Strict = new(false, throwOnInvalidBytes: true);

        public override void Apply(List<string> tokens)
        {
            var output = new List<string>(tokens.Count);
            var run = new List<byte>();
            foreach (string token in tokens)
            {
                if (token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
                    && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out byte b))
                {
                    run.Add(b);
                    continue;
                }

                Flush(run, output);
                output.Add(token);
            }

            Flush(run, output);
            tokens.Clear();
            tokens.AddRange(output);
        }

        private static void Flush(List<byte> run, List<string> output)
        {
            if (run.Count == 0)
            {
                return;
            }

            try
            {
                output.Add(Strict.GetString([.. run]));
            }
            catch (DecoderFallbackException)
            {
                output.AddRange(Enumerable.Repeat("\uFFFD", run.Count));
            }

            run.Clear();
        }
    }

    private sealed class Fuse : Decoder
    {
        public override void Apply(List<string> tokens)
        {
            string all = string.Concat(tokens);
            tokens.Clear();
            tokens.Add(all);
        }
    }

    /// <summary>Removes up to <c>start</c> leading and <c>stop</c> trailing copies of a character from each token.</summary>
    private sealed class Strip(char content, int start, int stop) : Decoder
    {
        public override void Apply(List<string> tokens)
        {
            for (int i = 0; i < tokens.Count; i++)
            {
                string t = tokens[i];
                int from = 0, to = t.Length;
                while (from < Math.Min(start, t.Length) && t[from] == content)
                {
                    from++;
                }

                for (int k = 0; k < stop && to > from && t[to - 1] == content; k++)
                {
                    to--;
                }

                tokens[i] = t[from..to];
            }
        }
    }

    private sealed class Replace(SplitPattern pattern, string content) : Decoder
    {
        private readonly List<(int Start, int End)> found = [];
        private readonly RegexScratch scratch = new();

        public override void Apply(List<string> tokens)
        {
            lock (found)
            {
                for (int i = 0; i < tokens.Count; i++)
                {
                    found.Clear();
                    pattern.Find(tokens[i], found, scratch);
                    if (found.Count == 0)
                    {
                        continue;
                    }

                    var text = new StringBuilder();
                    int previous = 0;
                    foreach (var (s, e) in found)
                    {
                        text.Append(tokens[i], previous, s - previous).Append(content);
                        previous = e;
                    }

                    tokens[i] = text.Append(tokens[i], previous, tokens[i].Length - previous).ToString();
                }
            }
        }
    }

    /// <summary>The replacement character back to a space, except in the first token when the pre-tokenizer prepends one.</summary>
    private sealed class Metaspace(char replacement, bool prepends) : Decoder
    {
        public override void Apply(List<string> tokens)
        {
            for (int i = 0; i < tokens.Count; i++)
            {
                var text = new StringBuilder(tokens[i].Length);
                foreach (char c in tokens[i])
                {
                    if (c != replacement)
                    {
                        text.Append(c);
                    }
                    else if (i > 0 || !prepends)
                    {
                        text.Append(' ');
                    }
                }

                tokens[i] = text.ToString();
            }
        }
    }
}
