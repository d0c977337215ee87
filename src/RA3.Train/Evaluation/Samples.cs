using System.Text;
using System.Text.Json;

namespace RA3.Train.Evaluation;

/// <summary>A completion to score: the HumanEval/EvalPlus <c>{"task_id", "completion"}</c> convention (or <c>"solution"</c> for whole programs).</summary>
public sealed record Sample(string TaskId, string Completion);

/// <summary>Reads sample files: one JSON object per line; a malformed line is reported with file and line and skipped (strict: thrown).</summary>
public static class SampleLoader
{
    /// <summary>The samples of <paramref name="path"/> and the issues met.</summary>
    public static (IReadOnlyList<Sample> Samples, IReadOnlyList<string> Issues) Load(string path, bool strict = false)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"samples file not found: {path}", path);
        }

        var samples = new List<Sample>();
        var issues = new List<string>();
        var utf8 = new UTF8Encoding(false, throwOnInvalidBytes: true);
        int line = 0;
        foreach (byte[] raw in Lines(File.ReadAllBytes(path)))
        {
            line++;
            string? problem = null;
            try
            {
                string text = utf8.GetString(raw).Trim();
                if (text.Length == 0)
                {
                    continue;
                }

                using var json = JsonDocument.Parse(text);
                var r = json.RootElement;
                if (r.ValueKind != JsonValueKind.Object || !r.TryGetProperty("task_id", out var id))
                {
                    problem = "expected an object with task_id";
                }
                else if ((r.TryGetProperty("completion", out var c) || r.TryGetProperty("solution", out c)) && c.ValueKind == JsonValueKind.String)
                {
                    samples.Add(new Sample(id.ValueKind == JsonValueKind.String ? id.GetString()! : id.GetRawText(), c.GetString()!));
                }
                else
                {
                    problem = "expected a string field 'completion' (or 'solution')";
                }
            }
            catch (DecoderFallbackException)
            {
                problem = "not valid UTF-8";
            }
            catch (JsonException e)
            {
                problem = $"not valid JSON ({e.Message})";
            }

            if (problem is not null)
            {
                string message = $"{path}:{line}: {problem}";
                if (strict)
                {
                    throw new InvalidDataException(message);
                }

                issues.Add(message);
            }
        }

        return (samples, issues);
    }

    private static IEnumerable<byte[]> Lines(byte[] bytes)
    {
        for (int start = 0; start < bytes.Length;)
        {
            int end = Array.IndexOf(bytes, (byte)'\n', start);
            end = end < 0 ? bytes.Length : end;
            yield return bytes[start..end];
            start = end + 1;
        }
    }
}
