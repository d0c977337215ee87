using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using RA3.Model.Tokenizers;

namespace RA3.Train.Tokenizing;

/// <summary>
/// <c>ra3 tokenize --out</c>: each line of a jsonl's <c>"text"</c> as Hugging Face's
/// <c>encode(text, add_special_tokens)</c> gives it, one <c>{"ids": [...]}</c> line per input line in
/// the same order (blank lines are skipped, as by every jsonl reader here), encoded a batch at a
/// time on every core and written to a temporary file that is renamed at the end.
/// </summary>
public static class JsonlTokenizer
{
    /// <summary>Tokenizes <paramref name="input"/> into <paramref name="output"/>; returns the lines and tokens written.</summary>
    public static (long Lines, long Tokens) Run(string input, string output, TextTokenizer tokenizer, bool addSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (!File.Exists(input))
        {
            throw new FileNotFoundException($"{input}: no such file", input);
        }

        string temp = output + ".tmp";
        long lines = 0, tokens = 0;
        using (var writer = new StreamWriter(temp, false, new UTF8Encoding(false), 1 << 20))
        {
            foreach (var batch in Texts(input).Chunk(512))
            {
                var ids = new int[batch.Length][];
                Parallel.For(0, batch.Length, i => ids[i] = tokenizer.Encode(batch[i], addSpecialTokens));
                foreach (int[] line in ids)
                {
                    writer.Write("{\"ids\": [");
                    writer.Write(string.Join(", ", line));
                    writer.Write("]}\n");
                    lines++;
                    tokens += line.Length;
                }
            }
        }

        File.Move(temp, output, overwrite: true);
        return (lines, tokens);
    }

    // The "text" of each non-blank line; a line that is not JSON or has no text is named by its number.
    private static IEnumerable<string> Texts(string path)
    {
        int number = 0;
        foreach (string line in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            JsonNode? node;
            try
            {
                node = JsonNode.Parse(line);
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{path}:{number}: not valid JSON ({e.Message})", e);
            }

            yield return node?["text"] is JsonValue text && text.TryGetValue(out string? s)
                ? s
                : throw new InvalidDataException($"{path}:{number}: no \"text\" string");
        }
    }
}
