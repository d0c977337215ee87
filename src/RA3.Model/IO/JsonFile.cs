using System.Text.Json;
using System.Text.Json.Nodes;

namespace RA3.Model.IO;

/// <summary>Reads JSON files whose top level must be an object, with errors that name the file.</summary>
public static class JsonFile
{
    /// <summary>The top-level object of <paramref name="path"/>.</summary>
    public static JsonObject ReadObject(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e);
        }
    }
}
