using System.Text.Json;
using System.Text.Json.Nodes;

namespace RA3.Train.Data;

/// <summary>
/// Documents for pre-training: every source file under a folder (sorted by path, so the order is
/// the same on every machine), or the <c>text</c> / <c>content</c> field of each line of a jsonl file.
/// </summary>
public static class Corpus
{
    /// <summary>File extensions read from a folder.</summary>
    public static readonly IReadOnlySet<string> SourceExtensions = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        ".py", ".cs", ".c", ".h", ".cc", ".cpp", ".hpp", ".java", ".js", ".ts", ".go", ".rs", ".rb", ".sh", ".txt", ".md",
    };

    /// <summary>The documents of <paramref name="source"/> (a folder or a .jsonl file).</summary>
    public static IEnumerable<string> Read(string source)
    {
        if (Directory.Exists(source))
        {
            return Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories)
                .Where(f => SourceExtensions.Contains(Path.GetExtension(f)))
                .Order(StringComparer.Ordinal)
                .Select(File.ReadAllText)
                .Where(t => t.Length > 0);
        }

        if (File.Exists(source))
        {
            return ReadJsonl(source);
        }

        throw new FileNotFoundException($"corpus '{source}': no such folder or jsonl file", source);
    }

    private static IEnumerable<string> ReadJsonl(string path)
    {
        int line = 0;
        foreach (string text in File.ReadLines(path))
        {
            line++;
            if (string.IsNullOrWhiteSpace(text))
            {
                continue;
            }

            JsonNode? node;
            try
            {
                node = JsonNode.Parse(text);
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{path}:{line}: not valid JSON ({e.Message})", e);
            }

            var field = node?["text"] ?? node?["content"] ?? throw new InvalidDataException($"{path}:{line}: no 'text' or 'content' field");
            yield return field.GetValue<string>();
        }
    }
}
