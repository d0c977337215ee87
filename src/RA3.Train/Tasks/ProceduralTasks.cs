using System.Globalization;
using System.Text;
using RA3.Model;
using RA3.Train.Evaluation;

namespace RA3.Train.Tasks;

/// <summary>One generated task: a Python function with a docstring, its solution and its asserts.</summary>
/// <param name="TaskId">procedural/&lt;composition&gt;/&lt;n&gt;.</param>
/// <param name="Composition">idiom:predicate:transform — what the held-out split is made of.</param>
/// <param name="Prompt">Signature and docstring (the completion continues it).</param>
/// <param name="Solution">The body that solves it (indented, ends with a newline).</param>
/// <param name="Tests">Asserts calling the function on concrete lists.</param>
public sealed record GeneratedTask(string TaskId, string Composition, string Prompt, string Solution, string Tests)
{
    /// <summary>The solution with plan comments before its blocks (set-up, loop, answer), as a commenting programmer writes it.</summary>
    public string AnnotatedSolution { get; init; } = string.Empty;

    /// <summary>The whole function: a code document for mid-training.</summary>
    public string Code => Prompt + Solution;

    /// <summary>The task as an evaluation problem (HumanEval style: the completion continues the prompt).</summary>
    public Problem ToProblem() => new(TaskId, Prompt, CompletionMode.ContinuesPrompt, Solution, string.Empty, Tests, null, "procedural", null);
}

/// <summary>
/// A procedurally generated family of Python tasks for machines whose models cannot solve
/// HumanEval: functions over a list of integers whose solutions compose multi-line idioms — a loop
/// that accumulates, counts, collects, searches, tracks a maximum, builds a string, or checks all
/// elements — with a predicate (even, positive, above a bound, divisible …) and a transform
/// (scale, shift, square, absolute value …). A composition is an (idiom, predicate, transform)
/// triple; a fixed share of compositions is held out, so evaluation asks for combinations the
/// training traces never showed, only their parts. Expected outputs are computed here with
/// Python's semantics (floor division and modulo), and the tests check that the solutions pass in
/// the sandbox.
/// </summary>
public static class ProceduralTasks
{
    // Body: the solution's lines, each with the plan comment an annotated copy writes before it (or null).
    private sealed record Idiom(string Name, bool UsesTransform, Func<Predicate, Transform, (string Line, string? Comment)[]> Body, Func<string, string, string> Doc, Func<long[], Func<long, bool>, Func<long, long>, string> Expected);

    private sealed record Predicate(string Name, string Python, string Phrase, Func<long, bool> Test);

    private sealed record Transform(string Name, string Python, string Phrase, Func<long, long> Apply);

    /// <summary>Every idiom name, in generation order.</summary>
    public static IReadOnlyList<string> IdiomNames => [.. Idioms.Select(i => i.Name)];

    // The plan comments sit where a block starts — the set-up, the whole loop, the answer — so one
    // comment covers the loop's lines: the abstractions a commenting programmer writes.
    private static readonly Idiom[] Idioms =
    [
        new("sum", true,
            (p, f) => [("    total = 0", "start the total at zero"), ("    for x in xs:", $"add {f.Phrase} for each x where {p.Phrase}"), ($"        if {p.Python}:", null), ($"            total += {f.Python}", null), ("    return total", "the total is the answer")],
            (p, f) => $"Return the sum of {f} for each x in xs where {p}.",
            (xs, p, f) => Py(xs.Where(p).Sum(f))),
        new("count", false,
            (p, _) => [("    count = 0", "nothing counted yet"), ("    for x in xs:", $"count each x where {p.Phrase}"), ($"        if {p.Python}:", null), ("            count += 1", null), ("    return count", "the count is the answer")],
            (p, _) => $"Return the number of x in xs where {p}.",
            (xs, p, _) => Py(xs.Count(p))),
        new("collect", true,
            (p, f) => [("    result = []", "an empty list to fill"), ("    for x in xs:", $"keep {f.Phrase} for each x where {p.Phrase}"), ($"        if {p.Python}:", null), ($"            result.append({f.Python})", null), ("    return result", "the list is the answer")],
            (p, f) => $"Return the list of {f} for each x in xs where {p}, in order.",
            (xs, p, f) => "[" + string.Join(", ", xs.Where(p).Select(f).Select(Py)) + "]"),
        new("first", true,
            (p, f) => [("    for x in xs:", $"answer {f.Phrase} for the first x where {p.Phrase}"), ($"        if {p.Python}:", null), ($"            return {f.Python}", null), ("    return None", "no element matched")],
            (p, f) => $"Return {f} for the first x in xs where {p}, or None if there is none.",
            (xs, p, f) => xs.Where(p).Select(v => Py(f(v))).FirstOrDefault() ?? "None"),
        new("largest", true,
            (p, f) => [("    best = None", "no best value yet"), ("    for x in xs:", $"track the largest {f.Phrase} over each x where {p.Phrase}"), ($"        if {p.Python}:", null), ($"            value = {f.Python}", null), ("            if best is None or value > best:", null), ("                best = value", null), ("    return best", "the largest value is the answer")],
            (p, f) => $"Return the largest {f} for x in xs where {p}, or None if there is none.",
            (xs, p, f) => xs.Where(p).Select(f).Select(v => (long?)v).Max() is long m ? Py(m) : "None"),
        new("position", false,
            (p, _) => [("    for i, x in enumerate(xs):", $"answer the index of the first x where {p.Phrase}"), ($"        if {p.Python}:", null), ("            return i", null), ("    return -1", "no element matched")],
            (p, _) => $"Return the index of the first x in xs where {p}, or -1 if there is none.",
            (xs, p, _) => Py(Array.FindIndex(xs, v => p(v)))),
        new("join", true,
            (p, f) => [("    parts = []", "the pieces of the string"), ("    for x in xs:", $"write {f.Phrase} as text for each x where {p.Phrase}"), ($"        if {p.Python}:", null), ($"            parts.append(str({f.Python}))", null), ("    return \",\".join(parts)", "join the pieces with commas")],
            (p, f) => $"Return the values {f} for each x in xs where {p}, as one string separated by commas.",
            (xs, p, f) => "'" + string.Join(",", xs.Where(p).Select(f).Select(Py)) + "'"),
        new("all", false,
            (p, _) => [("    for x in xs:", $"fail at the first x where it is not so that {p.Phrase}"), ($"        if not ({p.Python}):", null), ("            return False", null), ("    return True", "every element passed")],
            (p, _) => $"Return True if {p} for every x in xs, else False.",
            (xs, p, _) => xs.All(p) ? "True" : "False"),
    ];

    private static Predicate[] Predicates(int k) =>
    [
        new("even", "x % 2 == 0", "x is even", x => PyMod(x, 2) == 0),
        new("odd", "x % 2 == 1", "x is odd", x => PyMod(x, 2) == 1),
        new("positive", "x > 0", "x is positive", x => x > 0),
        new("negative", "x < 0", "x is negative", x => x < 0),
        new("above", $"x > {k}", $"x is greater than {k}", x => x > k),
        new("below", $"x < {k}", $"x is less than {k}", x => x < k),
        new("divisible", $"x % {k} == 0", $"x is divisible by {k}", x => PyMod(x, k) == 0),
    ];

    private static Transform[] Transforms(int m) =>
    [
        new("same", "x", "x", x => x),
        new("scaled", $"x * {m}", $"x * {m}", x => x * m),
        new("shifted", $"x + {m}", $"x + {m}", x => x + m),
        new("squared", "x * x", "x * x", x => x * x),
        new("absolute", "abs(x)", "abs(x)", Math.Abs),
        new("halved", "x // 2", "x // 2", x => FloorDiv(x, 2)),
    ];

    /// <summary>Every composition name (idiom:predicate:transform; idioms without a transform use "same").</summary>
    public static IReadOnlyList<string> Compositions()
    {
        var names = new List<string>();
        var predicates = Predicates(3);
        var transforms = Transforms(2);
        foreach (var idiom in Idioms)
        {
            foreach (var p in predicates)
            {
                foreach (var f in idiom.UsesTransform ? transforms : transforms[..1])
                {
                    names.Add($"{idiom.Name}:{p.Name}:{f.Name}");
                }
            }
        }

        return names;
    }

    /// <summary>
    /// Whether a composition is held out for evaluation: a fixed pseudo-random fifth of them
    /// (FNV-1a of the name), the same on every machine and for every seed.
    /// </summary>
    public static bool IsHeldOut(string composition)
    {
        ArgumentNullException.ThrowIfNull(composition);
        uint h = 2166136261;
        foreach (char ch in composition)
        {
            h = (h ^ ch) * 16777619;
        }

        return h % 5 == 0;
    }

    /// <summary>
    /// <paramref name="count"/> tasks of the training compositions (<paramref name="heldOut"/> false)
    /// or the held-out ones (true), drawn with <paramref name="seed"/>: a composition, constants,
    /// a function name and five asserts on random lists (one of them empty or without a match, so
    /// the "none" branches are tested).
    /// </summary>
    public static IReadOnlyList<GeneratedTask> Generate(int count, bool heldOut, ulong seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var pool = Compositions().Where(c => IsHeldOut(c) == heldOut).ToArray();
        var rng = new Rng(seed);
        var tasks = new List<GeneratedTask>(count);
        for (int n = 0; n < count; n++)
        {
            string composition = pool[rng.NextInt(pool.Length)];
            string[] parts = composition.Split(':');
            var idiom = Idioms.Single(i => i.Name == parts[0]);
            int k = 2 + rng.NextInt(4), m = 2 + rng.NextInt(4);
            var p = Predicates(k).Single(x => x.Name == parts[1]);
            var f = Transforms(m).Single(x => x.Name == parts[2]);
            string name = $"{idiom.Name}_{(idiom.UsesTransform && f.Name != "same" ? f.Name + "_" : string.Empty)}{p.Name}{(p.Python.Contains(k.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal) ? k.ToString(CultureInfo.InvariantCulture) : string.Empty)}";
            string prompt = $"def {name}(xs):\n    \"\"\"{idiom.Doc(p.Phrase, f.Python)}\"\"\"\n";
            var body = idiom.Body(p, f);
            string solution = string.Concat(body.Select(l => l.Line + "\n"));
            string annotated = string.Concat(body.Select(l => (l.Comment is null ? string.Empty : l.Line[..(l.Line.Length - l.Line.TrimStart().Length)] + "# " + l.Comment + "\n") + l.Line + "\n"));
            var tests = new StringBuilder();
            for (int i = 0; i < 5; i++)
            {
                long[] xs = i == 0 ? [] : RandomList(rng, 3 + rng.NextInt(6));
                tests.Append(CultureInfo.InvariantCulture, $"assert {name}([{string.Join(", ", xs.Select(Py))}]) == {idiom.Expected(xs, p.Test, f.Apply)}\n");
            }

            tasks.Add(new GeneratedTask($"procedural/{composition}/{n}", composition, prompt, solution, tests.ToString()) { AnnotatedSolution = annotated });
        }

        return tasks;
    }

    /// <summary>
    /// Writes <paramref name="tasks"/> as jsonl that serves both as a problem set (the plain
    /// <c>{task_id, prompt, tests, canonical_solution}</c> format of <c>ra3 eval</c> and <c>ra3 rlvr</c>)
    /// and as a corpus (<c>text</c>: the whole function).
    /// </summary>
    public static void Write(string path, IEnumerable<GeneratedTask> tasks)
    {
        ArgumentNullException.ThrowIfNull(tasks);
        var text = new StringBuilder();
        foreach (var t in tasks)
        {
            text.Append(new System.Text.Json.Nodes.JsonObject
            {
                ["task_id"] = t.TaskId,
                ["composition"] = t.Composition,
                ["prompt"] = t.Prompt,
                ["canonical_solution"] = t.Solution,
                ["tests"] = t.Tests,
                ["text"] = t.Code,
            }.ToJsonString(Readable)).Append('\n');
        }

        RA3.Model.IO.AtomicFile.WriteAllText(path, text.ToString());
    }

    /// <summary>
    /// A pre-training corpus of the family: every other function written with its plan comments
    /// (as a commenting programmer writes), the rest bare — so a pre-trained model knows that a
    /// comment may precede a line and what it says there, which is what RA3's E-step samples from.
    /// </summary>
    public static void WritePretrainingCorpus(string path, IEnumerable<GeneratedTask> tasks)
    {
        ArgumentNullException.ThrowIfNull(tasks);
        var text = new StringBuilder();
        foreach (var (t, i) in tasks.Select((t, i) => (t, i)))
        {
            text.Append(new System.Text.Json.Nodes.JsonObject { ["text"] = i % 2 == 0 ? t.Prompt + t.AnnotatedSolution : t.Code }.ToJsonString(Readable)).Append('\n');
        }

        RA3.Model.IO.AtomicFile.WriteAllText(path, text.ToString());
    }

    private static readonly System.Text.Json.JsonSerializerOptions Readable = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static long[] RandomList(Rng rng, int length)
    {
        var xs = new long[length];
        for (int i = 0; i < length; i++)
        {
            xs[i] = rng.NextInt(21) - 8;
        }

        return xs;
    }

    private static long PyMod(long a, long b) => ((a % b) + b) % b;

    private static long FloorDiv(long a, long b) => (a - PyMod(a, b)) / b;

    private static string Py(long v) => v.ToString(CultureInfo.InvariantCulture);
}
