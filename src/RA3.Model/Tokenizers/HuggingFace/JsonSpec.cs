using System.Text.Json.Nodes;

namespace RA3.Model.Tokenizers.HuggingFace;

/// <summary>
/// Reads the fields of a tokenizer.json: every value that is missing, of the wrong kind or not
/// supported is one <see cref="InvalidDataException"/> naming the file and the field's path
/// (<c>pre_tokenizer.pretokenizers[1].behavior</c>).
/// </summary>
/// <param name="file">The tokenizer.json being read.</param>
internal sealed class JsonSpec(string file)
{
    /// <summary>The file.</summary>
    public string File { get; } = file;

    /// <summary>The error for <paramref name="field"/>.</summary>
    public InvalidDataException Bad(string field, string what) => new($"{File}: field '{field}': {what}");

    /// <summary>The object <paramref name="node"/>, or an error naming <paramref name="field"/>.</summary>
    public JsonObject Object(JsonNode? node, string field) => node as JsonObject ?? throw Bad(field, node is null ? "missing" : "must be an object");

    /// <summary>The array <paramref name="node"/>, or an error naming <paramref name="field"/>.</summary>
    public JsonArray Array(JsonNode? node, string field) => node as JsonArray ?? throw Bad(field, node is null ? "missing" : "must be an array");

    /// <summary>A component's <c>type</c>.</summary>
    public string Type(JsonObject component, string field) => String(component, "type", field) ?? throw Bad($"{field}.type", "missing");

    /// <summary>The string at <paramref name="name"/> of <paramref name="parent"/>, null when absent or null.</summary>
    public string? String(JsonObject parent, string name, string field) => Value<string>(parent[name], $"{field}.{name}", "a string");

    /// <summary>The boolean at <paramref name="name"/>, <paramref name="absent"/> when absent or null.</summary>
    public bool Bool(JsonObject parent, string name, string field, bool absent) => Value<bool?>(parent[name], $"{field}.{name}", "true or false") ?? absent;

    /// <summary>The integer at <paramref name="name"/>, <paramref name="absent"/> when absent or null.</summary>
    public int Int(JsonObject parent, string name, string field, int absent) => Value<int?>(parent[name], $"{field}.{name}", "an integer") ?? absent;

    /// <summary>The value of <paramref name="node"/> as <typeparamref name="T"/>, default when null.</summary>
    public T? Value<T>(JsonNode? node, string field, string kind)
    {
        if (node is null)
        {
            return default;
        }

        try
        {
            return node.GetValue<T>();
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw Bad(field, $"must be {kind}, not {node.ToJsonString()}");
        }
    }
}
