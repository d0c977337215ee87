using System.IO.Compression;
using System.Text;
using System.Text.Json;

namespace RA3.Train.Evaluation;

/// <summary>Problems loaded from a file, and what could not be read (file:line: why).</summary>
public sealed record ProblemSet(string Path, IReadOnlyList<Problem> Problems, IReadOnlyList<string> Issues);

/// <summary>
/// Reads the benchmark formats, deciding per record by its fields:
/// HumanEval (<c>task_id, prompt, entry_point, canonical_solution, test</c>; .jsonl or .jsonl.gz);
/// HumanEval+ and MBPP+ (EvalPlus: <c>base_input</c>, <c>plus_input</c>, <c>atol</c>);
/// the original MBPP <c>mbpp.jsonl</c> (<c>text, code, test_setup_code, test_list, challenge_test_list</c>,
/// split by task id: 1–10 prompt, 11–510 test, 511–600 validation, 601–974 train);
/// sanitized MBPP (a JSON array of <c>prompt, code, test_imports, test_list</c>);
/// and a plain jsonl of <c>{task_id?, prompt, tests, canonical_solution?}</c> for one's own problems.
/// A malformed record (bad JSON, a missing field, a wrong type, bytes that are not UTF-8) is
/// reported with its file and line and skipped; strict mode throws at the first one instead.
/// </summary>
public static class ProblemSetLoader
{
    /// <summary>Loads <paramref name="path"/>; throws <see cref="InvalidDataException"/> in strict mode or when nothing could be read.</summary>
    public static ProblemSet Load(string path, bool strict = false)
    {
        byte[] bytes = ReadAll(path);
        var problems = new List<Problem>();
        var issues = new List<string>();
        void Issue(int line, string message)
        {
            string text = $"{path}:{line}: {message}";
            if (strict)
            {
                throw new InvalidDataException(text);
            }

            issues.Add(text);
        }

        int first = Array.FindIndex(bytes, b => !char.IsWhiteSpace((char)b));
        if (first >= 0 && bytes[first] == (byte)'[')
        {
            ReadArray(bytes, problems, Issue);
        }
        else
        {
            JsonLines.Read(bytes, (line, record) => Add(record, line, problems, Issue), Issue);
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in problems.Where(p => !seen.Add(p.TaskId)).ToList())
        {
            Issue(0, $"task_id '{p.TaskId}' appears more than once; the first is kept");
            problems.Remove(p);
        }

        if (problems.Count == 0)
        {
            throw new InvalidDataException($"{path}: no problem could be read{(issues.Count > 0 ? ": " + issues[0] : string.Empty)}");
        }

        return new ProblemSet(path, problems, issues);
    }

    private static byte[] ReadAll(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"problem file not found: {path}", path);
        }

        using var file = File.OpenRead(path);
        using Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
        using var memory = new MemoryStream();
        try
        {
            stream.CopyTo(memory);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: not a valid gzip file ({e.Message})", e);
        }

        return memory.ToArray();
    }

    private static void ReadArray(byte[] bytes, List<Problem> problems, Action<int, string> issue)
    {
        string text;
        try
        {
            text = JsonLines.StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            int offset = e.Index >= 0 ? e.Index : 0;
            issue(1 + bytes.AsSpan(0, Math.Min(offset, bytes.Length)).Count((byte)'\n'), "not valid UTF-8");
            return;
        }

        bytes = Encoding.UTF8.GetBytes(PythonNumbers.Standardize(text));
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip });
        try
        {
            reader.Read();  // [
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                int line = 1 + bytes.AsSpan(0, (int)reader.TokenStartIndex).Count((byte)'\n');
                using var element = JsonDocument.ParseValue(ref reader);
                Add(element.RootElement, line, problems, issue);
            }
        }
        catch (JsonException e)
        {
            issue((int)(e.LineNumber ?? 0) + 1, $"not valid JSON ({e.Message})");
        }
    }

    private static void Add(JsonElement r, int line, List<Problem> problems, Action<int, string> issue)
    {
        try
        {
            if (r.ValueKind != JsonValueKind.Object)
            {
                throw new FormatException($"expected a JSON object, got {r.ValueKind}");
            }

            problems.Add(Parse(r));
        }
        catch (FormatException e)
        {
            issue(line, e.Message);
        }
    }

    private static Problem Parse(JsonElement r)
    {
        if (r.TryGetProperty("base_input", out _))
        {
            string id = Str(r, "task_id");
            bool mbpp = id.StartsWith("Mbpp/", StringComparison.Ordinal) || r.TryGetProperty("assertion", out _);
            var (baseJson, baseCount) = InputLists(r, "base_input");
            var (plusJson, plusCount) = r.TryGetProperty("plus_input", out _) ? InputLists(r, "plus_input") : ("[]", 0);
            var inputs = new InputTests(Str(r, "entry_point"), baseJson, plusJson, Number(r, "atol"), baseCount, plusCount);
            return new Problem(id, Str(r, "prompt"), mbpp ? CompletionMode.WholeProgram : CompletionMode.ContinuesPrompt, Str(r, "canonical_solution"), string.Empty, string.Empty, inputs, mbpp ? "mbpp+" : "humaneval+", null);
        }

        if (r.TryGetProperty("entry_point", out _) && r.TryGetProperty("test", out _))
        {
            string entry = Str(r, "entry_point");
            return new Problem(Str(r, "task_id"), Str(r, "prompt"), CompletionMode.ContinuesPrompt, Str(r, "canonical_solution"), string.Empty, $"\n\n{Str(r, "test")}\n\ncheck({entry})\n", null, "humaneval", null);
        }

        if (r.TryGetProperty("text", out _) && r.TryGetProperty("code", out _))
        {
            int id = Int(r, "task_id");
            string[] tests = Strings(r, "test_list");
            string setup = r.TryGetProperty("test_setup_code", out _) ? Str(r, "test_setup_code") : string.Empty;
            string prompt = $"{Str(r, "text")}\nYour code should pass these tests:\n\n{string.Join("\n", tests)}\n";
            string[] challenge = r.TryGetProperty("challenge_test_list", out _) ? Strings(r, "challenge_test_list") : [];
            return new Problem(id.ToString(System.Globalization.CultureInfo.InvariantCulture), prompt, CompletionMode.WholeProgram, Unix(Str(r, "code")), string.Empty, $"\n\n{Unix(setup)}\n{string.Join("\n", tests)}\n", null, "mbpp", MbppSplit(id))
            {
                ChallengeTests = challenge.Length > 0 ? string.Join("\n", challenge) + "\n" : string.Empty,
            };
        }

        if (r.TryGetProperty("test_list", out _) && r.TryGetProperty("code", out _))
        {
            int id = Int(r, "task_id");
            string[] tests = Strings(r, "test_list");
            string imports = r.TryGetProperty("test_imports", out _) ? string.Join("\n", Strings(r, "test_imports")) : string.Empty;
            string prompt = $"{Str(r, "prompt")}\nYour code should pass these tests:\n\n{string.Join("\n", tests)}\n";
            return new Problem(id.ToString(System.Globalization.CultureInfo.InvariantCulture), prompt, CompletionMode.WholeProgram, Unix(Str(r, "code")), imports.Length > 0 ? imports + "\n" : string.Empty, $"\n\n{string.Join("\n", tests)}\n", null, "mbpp-sanitized", MbppSplit(id));
        }

        if (r.TryGetProperty("prompt", out _) && r.TryGetProperty("tests", out _))
        {
            string tests = r.GetProperty("tests").ValueKind == JsonValueKind.Array ? string.Join("\n", Strings(r, "tests")) : Str(r, "tests");
            string id = r.TryGetProperty("task_id", out var t) ? (t.ValueKind == JsonValueKind.String ? t.GetString()! : t.GetRawText()) : throw new FormatException("field 'task_id' is missing");
            string? canonical = r.TryGetProperty("canonical_solution", out _) ? Str(r, "canonical_solution") : null;
            return new Problem(id, Str(r, "prompt"), CompletionMode.ContinuesPrompt, canonical, string.Empty, $"\n\n{tests}\n", null, "plain", null);
        }

        throw new FormatException($"not a known problem record (fields: {string.Join(", ", r.EnumerateObject().Select(p => p.Name))})");
    }

    private static string MbppSplit(int id) => id switch
    {
        <= 10 => "prompt",
        <= 510 => "test",
        <= 600 => "validation",
        _ => "train",
    };

    private static string Unix(string code) => code.Replace("\r\n", "\n", StringComparison.Ordinal);

    private static JsonElement Field(JsonElement r, string name) =>
        r.TryGetProperty(name, out var v) ? v : throw new FormatException($"field '{name}' is missing");

    private static string Str(JsonElement r, string name)
    {
        var v = Field(r, name);
        return v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new FormatException($"field '{name}' must be a string, got {v.ValueKind}");
    }

    private static int Int(JsonElement r, string name)
    {
        var v = Field(r, name);
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw new FormatException($"field '{name}' must be an integer, got {v.ValueKind}");
    }

    private static double Number(JsonElement r, string name)
    {
        var v = Field(r, name);
        return v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw new FormatException($"field '{name}' must be a number, got {v.ValueKind}");
    }

    private static JsonElement ArrayField(JsonElement r, string name)
    {
        var v = Field(r, name);
        return v.ValueKind == JsonValueKind.Array ? v : throw new FormatException($"field '{name}' must be an array, got {v.ValueKind}");
    }

    // EvalPlus inputs: an array of argument lists. MBPP+ v0.2 has a record whose plus_input is an
    // empty object, which EvalPlus iterates as no inputs; a non-empty object has no such reading.
    private static (string Json, int Count) InputLists(JsonElement r, string name)
    {
        var v = Field(r, name);
        return v.ValueKind switch
        {
            JsonValueKind.Array => (PythonNumbers.RawText(v), v.GetArrayLength()),
            JsonValueKind.Object when !v.EnumerateObject().Any() => ("[]", 0),
            _ => throw new FormatException($"field '{name}' must be an array of argument lists, got {(v.ValueKind == JsonValueKind.Object ? "a non-empty object" : v.ValueKind.ToString())}"),
        };
    }

    private static string[] Strings(JsonElement r, string name) =>
        [.. ArrayField(r, name).EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString()! : throw new FormatException($"field '{name}' must hold strings, got {e.ValueKind}"))];
}
