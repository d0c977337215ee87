using System.Text.Json.Nodes;

namespace RA3.Model.Tokenizers.HuggingFace;

/// <summary>
/// The special tokens a tokenizer.json <c>post_processor</c> puts around one sequence:
/// TemplateProcessing's <c>single</c> template, Bert- and RobertaProcessing's CLS … SEP, nothing for
/// ByteLevel, and a Sequence's processors nested in order (the last one outermost).
/// </summary>
internal static class PostProcessor
{
    /// <summary>The ids before and after a single sequence.</summary>
    public static (int[] Prefix, int[] Suffix) Parse(JsonSpec spec, JsonNode? node, string field)
    {
        if (node is null)
        {
            return ([], []);
        }

        var o = spec.Object(node, field);
        switch (spec.Type(o, field))
        {
            case "ByteLevel":
                return ([], []);
            case "TemplateProcessing":
                return Template(spec, o, field);
            case "BertProcessing" or "RobertaProcessing":
                return ([IdOf(spec, o["cls"], $"{field}.cls")], [IdOf(spec, o["sep"], $"{field}.sep")]);
            case "Sequence":
                var prefix = new List<int>();
                var suffix = new List<int>();
                var items = spec.Array(o["processors"], $"{field}.processors");
                for (int i = 0; i < items.Count; i++)
                {
                    var (p, s) = Parse(spec, items[i], $"{field}.processors[{i}]");
                    prefix.InsertRange(0, p);
                    suffix.AddRange(s);
                }

                return ([.. prefix], [.. suffix]);
            case var other:
                throw spec.Bad($"{field}.type", $"'{other}' is not supported (TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing, Sequence)");
        }
    }

    private static (int[] Prefix, int[] Suffix) Template(JsonSpec spec, JsonObject o, string field)
    {
        var specials = o["special_tokens"] as JsonObject;
        var prefix = new List<int>();
        var suffix = new List<int>();
        bool seenSequence = false;
        var single = spec.Array(o["single"], $"{field}.single");
        for (int i = 0; i < single.Count; i++)
        {
            string item = $"{field}.single[{i}]";
            var piece = spec.Object(single[i], item);
            if (piece["Sequence"] is not null)
            {
                seenSequence = true;
                continue;
            }

            var special = spec.Object(piece["SpecialToken"], $"{item}.SpecialToken");
            string name = spec.String(special, "id", $"{item}.SpecialToken") ?? throw spec.Bad($"{item}.SpecialToken.id", "missing");
            var entry = specials?[name] as JsonObject ?? throw spec.Bad($"{field}.special_tokens", $"has no entry for '{name}'");
            var ids = spec.Array(entry["ids"], $"{field}.special_tokens.{name}.ids").Select(id => spec.Value<int>(id, $"{field}.special_tokens.{name}.ids", "a list of integers"));
            (seenSequence ? suffix : prefix).AddRange(ids);
        }

        return ([.. prefix], [.. suffix]);
    }

    private static int IdOf(JsonSpec spec, JsonNode? node, string field) =>
        spec.Array(node, field) is [_, var id] ? spec.Value<int>(id, field, "[token, id]") : throw spec.Bad(field, "must be [token, id]");
}
