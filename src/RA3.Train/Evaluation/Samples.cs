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
        void Issue(int line, string problem)
        {
            string message = $"{path}:{line}: {problem}";
            if (strict)
            {
                throw new InvalidDataException(message);
            }

            issues.Add(message);
        }

        JsonLines.Read(File.ReadAllBytes(path), (line, r) =>
        {
            if (r.ValueKind != JsonValueKind.Object || !r.TryGetProperty("task_id", out var id))
            {
                Issue(line, "expected an object with task_id");
            }
            else if ((r.TryGetProperty("completion", out var c) || r.TryGetProperty("solution", out c)) && c.ValueKind == JsonValueKind.String)
            {
                samples.Add(new Sample(id.ValueKind == JsonValueKind.String ? id.GetString()! : id.GetRawText(), c.GetString()!));
            }
            else
            {
                Issue(line, "expected a string field 'completion' (or 'solution')");
            }
        }, Issue);
        return (samples, issues);
    }
}
