using System.Numerics;
using System.Text;
using System.Text.Json;
using NUnit.Framework;
using RA3.Testing;
using RA3.Train.Cli;
using RA3.Train.Evaluation;
using RA3.Train.Sandbox;

namespace RA3.Train.Tests;

/// <summary>
/// The evaluation harness: the pass@k estimator against exact binomials, the loaders on the shared
/// data and on the formats users bring (malformed records reported with file and line), every
/// canonical solution of HumanEval, HumanEval+ (base and plus inputs) and sanitized MBPP passing
/// while a deliberately wrong solution fails each problem, worker-count independence and the CLI.
/// </summary>
public sealed class EvaluationTests
{
    // Appended to a solution: every function it defined now returns an object equal to nothing.
    private const string Sabotage = "\n\nimport types as _w_types\nclass _W:\n    def __eq__(self, other):\n        return False\n    __hash__ = object.__hash__\n"
        + "for _w_name, _w_f in list(globals().items()):\n    if isinstance(_w_f, _w_types.FunctionType) and not _w_name.startswith('_w_'):\n        globals()[_w_name] = lambda *a, **k: _W()\n";

    private Sandbox.Sandbox sandbox = null!;
    private SandboxPool pool = null!;
    private string dir = null!;

    [OneTimeSetUp]
    public void Open()
    {
        sandbox = Sandbox.Sandbox.Create();
        pool = new SandboxPool(sandbox);
        dir = Directory.CreateTempSubdirectory("ra3-eval-tests-").FullName;
    }

    [OneTimeTearDown]
    public void Close()
    {
        pool.Dispose();
        sandbox.Dispose();
        Directory.Delete(dir, recursive: true);
    }

    [TestCase(5, 0, 1)]
    [TestCase(5, 5, 1)]
    [TestCase(10, 3, 1)]
    [TestCase(10, 3, 5)]
    [TestCase(200, 37, 10)]
    [TestCase(200, 199, 100)]
    public void PassAtKIsTheExactBinomialRatio(int n, int c, int k)
    {
        double exact = n - c < k ? 1.0 : 1.0 - (double)(Binomial(n - c, k) * 1_000_000_000_000 / Binomial(n, k)) / 1_000_000_000_000;
        Assert.That(PassAtK.Estimate(n, c, k), Is.EqualTo(exact).Within(1e-11));
    }

    [Test]
    public void PassAtKOfOneIsTheFractionCorrect() => Assert.That(PassAtK.Estimate(10, 3, 1), Is.EqualTo(0.3).Within(1e-15));

    [TestCase(5, -1, 1, "c")]
    [TestCase(5, 6, 1, "c")]
    [TestCase(5, 2, 0, "k")]
    [TestCase(5, 2, 6, "k")]
    public void PassAtKRefusesCountsOutsideItsSamples(int n, int c, int k, string name) =>
        Assert.That(() => PassAtK.Estimate(n, c, k), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo(name));

    [Test]
    public void PassAtKCountsOnlyProblemsWithAtLeastKSamples()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => PassAtK.Estimate(2, 1, 3), "k > n has no estimate");
        var problems = new[] { "t1", "t2" }.Select(id => new Problem(id, "def f():\n", CompletionMode.ContinuesPrompt, null, string.Empty, "\n\nassert f() == 1\n", null, "plain", null)).ToList();
        Sample Right(string id) => new(id, "    return 1\n");
        Sample Wrong(string id) => new(id, "    return 2\n");
        var report = new Evaluator(pool).EvaluateAsync(problems, [Right("t1"), Wrong("t1"), Wrong("t1"), Wrong("t2"), Right("t2")], [1, 3]).GetAwaiter().GetResult();
        var score = report.Scores.Single();
        Assert.That(score.ProblemsCounted[1], Is.EqualTo(2));
        Assert.That(score.PassAtK[1], Is.EqualTo(((1.0 / 3) + 0.5) / 2).Within(1e-12));
        Assert.That(score.ProblemsCounted[3], Is.EqualTo(1), "t2 has two samples: it counts for pass@1 only");
        Assert.That(score.PassAtK[3], Is.EqualTo(1.0).Within(1e-12), "t1: one right among 3 is pass@3 = 1");
    }

    [Test]
    public void LoadsTheSharedBenchmarks()
    {
        var he = ProblemSetLoader.Load(Fixtures.SharedPath("data", "humaneval", "HumanEval.jsonl.gz"), strict: true);
        var plus = ProblemSetLoader.Load(Fixtures.SharedPath("data", "evalplus", "HumanEvalPlus.jsonl.gz"), strict: true);
        var mbpp = ProblemSetLoader.Load(Fixtures.SharedPath("data", "mbpp", "sanitized-mbpp.json"), strict: true);
        Assert.That(he.Problems, Has.Count.EqualTo(164));
        Assert.That(he.Problems.All(p => p.Format == "humaneval" && p.Mode == CompletionMode.ContinuesPrompt));
        Assert.That(plus.Problems, Has.Count.EqualTo(164));
        Assert.That(plus.Problems.Sum(p => p.Inputs!.PlusCount), Is.EqualTo(122_683), "plus inputs in HumanEval+ v0.1.10 (SOURCE.md)");
        Assert.That(mbpp.Problems, Has.Count.EqualTo(427));
        Assert.That(mbpp.Problems.GroupBy(p => p.Split).ToDictionary(g => g.Key!, g => g.Count()), Is.EqualTo(new Dictionary<string, int> { ["prompt"] = 7, ["test"] = 257, ["validation"] = 43, ["train"] = 120 }));
    }

    [Test]
    public void LoadsTheFormatsUsersBring()
    {
        string mbpp = Write("mbpp.jsonl",
            """{"task_id": 2, "text": "Add two numbers.", "code": "def add(a, b):\r\n    return a + b", "test_setup_code": "", "test_list": ["assert add(1, 2) == 3"], "challenge_test_list": []}""",
            """{"task_id": 927, "text": "Height of a tree.", "code": "class Node:\r\n    def __init__(self, left=None):\r\n        self.left = left\r\ndef height(n):\r\n    return 0 if n is None else 1 + height(n.left)", "test_setup_code": "root = Node(Node())", "test_list": ["assert height(root) == 2"], "challenge_test_list": []}""");
        string mbppPlus = Write("MbppPlus.jsonl",
            """{"task_id": "Mbpp/17", "prompt": "Write a function to add.\nassert add(1, 2) == 3", "entry_point": "add", "canonical_solution": "def add(a, b):\n    return a + b", "base_input": [[1, 2], [3, 4]], "plus_input": [[10, -3]], "atol": 0, "contract": "", "assertion": "assert add(1, 2) == 3"}""");
        string plain = Write("mine.jsonl", """{"task_id": "t1", "prompt": "def double(x):\n", "tests": ["assert double(2) == 4"], "canonical_solution": "    return 2 * x\n"}""");
        var m = ProblemSetLoader.Load(mbpp, strict: true).Problems;
        var mp = ProblemSetLoader.Load(mbppPlus, strict: true).Problems;
        var pl = ProblemSetLoader.Load(plain, strict: true).Problems;
        Assert.That(m.Select(p => (p.Format, p.Split)), Is.EqualTo(new[] { ("mbpp", "prompt"), ("mbpp", "train") }));
        Assert.That(m[0].CanonicalSolution, Does.Not.Contain("\r"));
        Assert.That(mp[0].Format, Is.EqualTo("mbpp+"));
        Assert.That(mp[0].Mode, Is.EqualTo(CompletionMode.WholeProgram));
        Assert.That(pl[0].Format, Is.EqualTo("plain"));

        var problems = m.Concat(mp).Concat(pl).ToList();
        var report = Evaluate(problems, [.. problems.Select(p => new Sample(p.TaskId, p.CanonicalSolution!))]);
        Assert.That(report.Outcomes.Where(o => !o.Passed).Select(o => $"{o.TaskId} {o.Variant}: {o.Run.ExceptionType} {o.Run.Message}"), Is.Empty);
        Assert.That(report.Outcomes, Has.Count.EqualTo(5), "mbpp 2 + mbpp+ base and plus + plain 1");

        // The challenge asserts run only when asked: one that the canonical solution fails shows it.
        var hard = m[0] with { ChallengeTests = "assert add(2, 2) == 5\n" };
        var plainRun = new Evaluator(pool).EvaluateAsync([hard], [new Sample(hard.TaskId, hard.CanonicalSolution!)], [1]).GetAwaiter().GetResult();
        var challengeRun = new Evaluator(pool, challengeTests: true).EvaluateAsync([hard], [new Sample(hard.TaskId, hard.CanonicalSolution!)], [1]).GetAwaiter().GetResult();
        Assert.That(plainRun.Outcomes[0].Passed, Is.True);
        Assert.That(challengeRun.Outcomes[0].Run.Outcome, Is.EqualTo(RunOutcome.Failed));
        Assert.That(ProblemSetLoader.Load(Write("mbpp-challenge.jsonl", """{"task_id": 3, "text": "t", "code": "def f():\n    return 1", "test_setup_code": "", "test_list": ["assert f() == 1"], "challenge_test_list": ["assert f() + 1 == 2"]}""")).Problems[0].ChallengeTests, Is.EqualTo("assert f() + 1 == 2\n"));
    }

    /// <summary>
    /// Synthetic MBPP+ records for each case the real v0.2 release holds that plain JSON and plain
    /// equality cannot: arguments EvalPlus rebuilds as tuples, nested tuples or complex numbers
    /// (Mbpp/106, 124, 252, 580, 720), regex matches compared only as None or not (787), outputs
    /// compared as sets (2), Python's bare NaN / Infinity literals, and an empty-object plus_input.
    /// Each canonical solution must pass and a sabotaged one fail; without the rebuilding the
    /// first five end with "the canonical solution's outputs are missing".
    /// </summary>
    [Test]
    public void MbppPlusRecordsThatJsonCannotCarryPass()
    {
        static string Record(string id, string entry, string code, string baseInput, string plusInput) =>
            $$"""{"task_id": "{{id}}", "prompt": "\"\"\"\nSay NaN or Infinity.\n\"\"\"\n", "entry_point": "{{entry}}", "canonical_solution": {{JsonSerializer.Serialize(code)}}, "base_input": {{baseInput}}, "plus_input": {{plusInput}}, "atol": 0, "assertion": ""}""";
        string path = Write("MbppPlusHard.jsonl",
            Record("Mbpp/106", "add_lists", "def add_lists(test_list, test_tup):\n    return test_tup + tuple(test_list)\n", "[[[5, 6, 7], [9, 10]]]", "[[[1], [2, 3]]]"),
            Record("Mbpp/124", "angle_complex", "import cmath\ndef angle_complex(a, b):\n    return cmath.phase(a + b)\n", """[["0.0", "1j"], ["2.0", "1j"]]""", """[["0.0", "(2+1j)"]]"""),
            Record("Mbpp/252", "convert", "import cmath\ndef convert(numbers):\n    return cmath.polar(numbers)\n", """[["1"], ["(4+3j)"]]""", """[["-2j"]]"""),
            Record("Mbpp/580", "extract_even", "def extract_even(t):\n    return tuple(extract_even(x) if isinstance(x, tuple) else x for x in t if isinstance(x, tuple) or x % 2 == 0)\n", "[[[4, 5, [7, 6, [2, 4]], 6, 8]]]", "[[[1, [2, 3]]]]"),
            Record("Mbpp/720", "add_dict_to_tuple", "def add_dict_to_tuple(test_tup, test_dict):\n    return test_tup + (test_dict,)\n", """[[[4, 5, 6], {"MSAM": 1, "is": 2}]]""", """[[[], {}]]"""),
            Record("Mbpp/787", "text_match_three", "import re\ndef text_match_three(text):\n    return re.search('ab{3}', text)\n", """[["ac"], ["abbbba"]]""", """[["dc"], ["xabbb"]]"""),
            Record("Mbpp/2", "similar_elements", "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n", "[[[3, 4, 5, 6], [5, 7, 4, 10]]]", "[[[1, 2, 3, 4, 5, 6, 7, 8, 9], [9, 8, 7, 6, 5, 4, 3, 2, 1]]]"),
            Record("Mbpp/900", "kind", "def kind(x):\n    return 'nan' if x != x else ('inf' if abs(x) == float('inf') else 'finite')\n", "[[1.5]]", "[[NaN], [Infinity], [-Infinity]]"),
            Record("Mbpp/901", "one", "def one():\n    return 1\n", "[[]]", "{}"),
            Record("Mbpp/902", "two", "def two():\n    return 2\n", "[[]]", """{"a": [1]}"""));
        var set = ProblemSetLoader.Load(path);
        Assert.That(set.Issues, Is.EqualTo(new[] { $"{path}:10: field 'plus_input' must be an array of argument lists, got a non-empty object" }));
        var problems = set.Problems;
        Assert.That(problems, Has.Count.EqualTo(9));
        Assert.That(problems.Single(p => p.TaskId == "Mbpp/900").Inputs!.PlusInputsJson, Is.EqualTo("[[NaN], [Infinity], [-Infinity]]"));
        Assert.That(problems.Single(p => p.TaskId == "Mbpp/900").Prompt, Does.Contain("Say NaN or Infinity."), "literals inside strings stay text");
        Assert.That(problems.Single(p => p.TaskId == "Mbpp/901").Inputs!.PlusCount, Is.Zero);

        var samples = problems.SelectMany(p => new[] { new Sample(p.TaskId, p.CanonicalSolution!), new Sample(p.TaskId, p.CanonicalSolution + Sabotage) }).ToList();
        var report = Evaluate(problems, samples);
        Assert.That(report.Issues, Is.Empty);
        Assert.That(report.Outcomes.Where(o => o.Sample == 0 && !o.Passed).Select(o => $"{o.TaskId} {o.Variant}: {o.Run.ExceptionType} {o.Run.Message}"), Is.Empty);
        var wrongBase = report.Outcomes.Where(o => o.Sample == 1 && o.Variant == "base" && o.Passed).Select(o => o.TaskId);
        Assert.That(wrongBase, Is.Empty, "sabotaged solutions that passed");

        // Set-compared outputs pass in any order; elsewhere the order counts.
        var similar = problems.Single(p => p.TaskId == "Mbpp/2");
        var common = similar with { TaskId = "Mbpp/3", Inputs = similar.Inputs! with { EntryPoint = "common" }, CanonicalSolution = "def common(a, b):\n    return tuple(sorted(set(a) & set(b)))\n" };
        string Reversed(string entry) => $"def {entry}(a, b):\n    return tuple(sorted(set(a) & set(b), reverse=True))\n";
        var reordered = Evaluate([similar, common], [new Sample("Mbpp/2", Reversed("similar_elements")), new Sample("Mbpp/3", Reversed("common"))]);
        Assert.That(reordered.Outcomes.Where(o => o.Variant == "base").Select(o => (o.TaskId, o.Passed)), Is.EqualTo(new[] { ("Mbpp/2", true), ("Mbpp/3", false) }));

        // A regex task's sample may return a bool or a match; None where a match was expected fails.
        var regex = problems.Single(p => p.TaskId == "Mbpp/787");
        var matches = Evaluate([regex], [new Sample(regex.TaskId, "import re\ndef text_match_three(text):\n    return bool(re.search('ab{3}', text))\n"), new Sample(regex.TaskId, "def text_match_three(text):\n    return None\n")]);
        Assert.That(matches.Outcomes.Where(o => o.Variant == "base").Select(o => o.Passed), Is.EqualTo(new[] { true, false }));
    }

    [Test]
    public void ReportsMalformedRecordsWithFileAndLine()
    {
        var bytes = new List<byte>();
        bytes.AddRange(Encoding.UTF8.GetBytes("""{"task_id": "a", "prompt": "def f():\n", "tests": "assert f() == 1"}""" + "\n"));
        bytes.AddRange(Encoding.UTF8.GetBytes("{not json\n"));
        bytes.AddRange(Encoding.UTF8.GetBytes("""{"task_id": "b", "prompt": "x"}""" + "\n"));
        bytes.AddRange(Encoding.UTF8.GetBytes("""{"task_id": "c", "prompt": 7, "tests": "assert True"}""" + "\n"));
        bytes.AddRange([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d, 0x0a]);
        bytes.AddRange(Encoding.UTF8.GetBytes("""{"task_id": "d", "prompt": "def g():\n", "tests": "assert g() == 2"}""" + "\n"));
        string path = Path.Combine(dir, "broken.jsonl");
        File.WriteAllBytes(path, [.. bytes]);

        var set = ProblemSetLoader.Load(path);
        Assert.That(set.Problems.Select(p => p.TaskId), Is.EqualTo(new[] { "a", "d" }));
        Assert.That(set.Issues, Has.Count.EqualTo(4));
        Assert.That(set.Issues[0], Does.StartWith($"{path}:2: not valid JSON"));
        Assert.That(set.Issues[1], Does.StartWith($"{path}:3: not a known problem record"));
        Assert.That(set.Issues[2], Is.EqualTo($"{path}:4: field 'prompt' must be a string, got Number"));
        Assert.That(set.Issues[3], Is.EqualTo($"{path}:5: not valid UTF-8"));
        var strict = Assert.Throws<InvalidDataException>(() => ProblemSetLoader.Load(path, strict: true))!;
        Assert.That(strict.Message, Does.StartWith($"{path}:2: not valid JSON"));

        string array = Write("array.json", "[", """  {"task_id": 11, "prompt": "p", "code": "def f():\n    return 1", "test_imports": [], "test_list": ["assert f() == 1"]},""", """  {"task_id": 12, "prompt": "p", "code": 5, "test_imports": [], "test_list": []}""", "]");
        var fromArray = ProblemSetLoader.Load(array);
        Assert.That(fromArray.Problems, Has.Count.EqualTo(1));
        Assert.That(fromArray.Issues, Is.EqualTo(new[] { $"{array}:3: field 'code' must be a string, got Number" }));

        string samples = Write("samples.jsonl", """{"task_id": "a", "completion": "    return 1\n"}""", "[1, 2]", """{"task_id": "d"}""");
        var (loaded, sampleIssues) = SampleLoader.Load(samples);
        Assert.That(loaded, Has.Count.EqualTo(1));
        Assert.That(sampleIssues, Is.EqualTo(new[] { $"{samples}:2: expected an object with task_id", $"{samples}:3: expected a string field 'completion' (or 'solution')" }));
    }

    [TestCase("humaneval/HumanEval.jsonl.gz", 164)]
    [TestCase("mbpp/sanitized-mbpp.json", 427)]
    [TestCase("evalplus/HumanEvalPlus.jsonl.gz", 164)]
    public void CanonicalSolutionsPassAndAWrongOneFailsEachProblem(string file, int count)
    {
        var problems = ProblemSetLoader.Load(Fixtures.SharedPath("data", file), strict: true).Problems;
        var samples = problems.SelectMany(p => new[] { new Sample(p.TaskId, p.CanonicalSolution!), new Sample(p.TaskId, p.CanonicalSolution + Sabotage) }).ToList();
        var report = Evaluate(problems, samples);
        Assert.That(report.Issues, Is.Empty);
        foreach (var variant in report.Scores)
        {
            Assert.That(variant.PerProblem, Has.Count.EqualTo(count));
            var canonicalFailed = report.Outcomes.Where(o => o.Variant == variant.Variant && o.Sample == 0 && !o.Passed).Select(o => $"{o.TaskId}: {o.Run.OutcomeName} {o.Run.ExceptionType} {o.Run.Message}").ToList();
            var wrongPassed = report.Outcomes.Where(o => o.Variant == variant.Variant && o.Sample == 1 && o.Passed).Select(o => o.TaskId).ToList();
            Assert.That(canonicalFailed, Is.Empty, $"{variant.Variant}: canonical solutions that failed");
            Assert.That(wrongPassed, Is.Empty, $"{variant.Variant}: wrong solutions that passed");
            Assert.That(variant.PassAtK[1], Is.EqualTo(0.5).Within(1e-12), "one of two samples right on every problem");
        }
    }

    [Test]
    public void ResultsDoNotDependOnTheWorkerCount()
    {
        var problems = ProblemSetLoader.Load(Fixtures.SharedPath("data", "humaneval", "HumanEval.jsonl.gz")).Problems.Take(12).ToList();
        var samples = problems.SelectMany((p, i) => new[] { new Sample(p.TaskId, p.CanonicalSolution!), new Sample(p.TaskId, i % 3 == 0 ? "    while True:\n        pass\n" : p.CanonicalSolution + Sabotage), new Sample(p.TaskId, "    raise ValueError('no')\n") }).ToList();
        var limits = new SandboxLimits { WallTime = TimeSpan.FromSeconds(60), CpuSeconds = 2 };  // the loop stops by CPU time, whatever the load
        using var quick = Sandbox.Sandbox.Create(limits);
        string Run(int workers)
        {
            using var p = new SandboxPool(quick, workers);
            var report = new Evaluator(p).EvaluateAsync(problems, samples, [1, 2]).GetAwaiter().GetResult();
            return string.Join("\n", report.Outcomes.Select(o => $"{o.TaskId} {o.Sample} {o.Run.OutcomeName} {o.Run.ExceptionType}")) + "\n" + string.Join(" ", report.Scores.Select(s => $"{s.PassAtK[1]:R} {s.PassAtK[2]:R}"));
        }

        string one = Run(1), two = Run(2);
        Assert.That(two, Is.EqualTo(one));
        Assert.That(one, Does.Contain("timeout").And.Contain("ValueError"));
    }

    [Test]
    public void EvalCommandWritesTheSummaryAndTheOutcomes()
    {
        string problems = Write("cli-problems.jsonl",
            """{"task_id": "t1", "prompt": "def double(x):\n", "tests": ["assert double(2) == 4", "assert double(-1) == -2"]}""",
            """{"task_id": "t2", "prompt": "def neg(x):\n", "tests": "assert neg(3) == -3"}""");
        string samples = Write("cli-samples.jsonl",
            """{"task_id": "t1", "completion": "    return 2 * x\n"}""",
            """{"task_id": "t1", "completion": "    return x + 2\n"}""",
            """{"task_id": "t2", "completion": "    return -x\n"}""",
            """{"task_id": "t2", "completion": "    return -x\n"}""",
            """{"task_id": "zz", "completion": "pass"}""");
        string summary = Path.Combine(dir, "summary.json");
        var stdout = new StringWriter();
        int code = CommandLine.Run(["eval", "--problems", problems, "--samples", samples, "-k", "1,2", "--out", summary], stdout, TextWriter.Null);
        Assert.That(code, Is.EqualTo(0), stdout.ToString());
        using var json = JsonDocument.Parse(File.ReadAllText(summary));
        var pass = json.RootElement.GetProperty("pass_at_k").GetProperty("tests");
        Assert.That(pass.GetProperty("pass@1").GetDouble(), Is.EqualTo((0.5 + 1.0) / 2).Within(1e-12));
        Assert.That(pass.GetProperty("pass@2").GetDouble(), Is.EqualTo(1.0).Within(1e-12));
        Assert.That(json.RootElement.GetProperty("outcomes").GetProperty("passed").GetInt32(), Is.EqualTo(3));
        var perProblem = json.RootElement.GetProperty("per_problem").GetProperty("tests").EnumerateArray().ToDictionary(e => e.GetProperty("task_id").GetString()!, e => e);
        Assert.That(perProblem["t1"].GetProperty("c").GetInt32(), Is.EqualTo(1));
        Assert.That(perProblem["t1"].GetProperty("pass_at_k").GetProperty("pass@1").GetDouble(), Is.EqualTo(0.5).Within(1e-12));
        Assert.That(perProblem["t2"].GetProperty("pass_at_k").GetProperty("pass@2").GetDouble(), Is.EqualTo(1.0).Within(1e-12));
        Assert.That(json.RootElement.GetProperty("outcomes").GetProperty("failed").GetInt32(), Is.EqualTo(1));
        Assert.That(json.RootElement.GetProperty("issues").EnumerateArray().Select(e => e.GetString()), Has.Some.Contains("unknown task_id 'zz'"));
        Assert.That(File.ReadAllLines(summary + ".outcomes.jsonl"), Has.Length.EqualTo(4));
        Assert.That(stdout.ToString(), Does.Contain("| tests | 75.0% (2 problems) | 100.0% (2 problems) |"));

        Assert.That(CommandLine.Run(["eval", "--problems", problems, "--samples", samples, "-k", "0"], TextWriter.Null, TextWriter.Null), Is.EqualTo(2));
        Assert.That(CommandLine.Run(["eval", "--problems", problems], TextWriter.Null, TextWriter.Null), Is.EqualTo(2));
    }

    [Test]
    public void EvalCommandGeneratesWithAModelThenScores()
    {
        string problems = Write("gen-problems.jsonl",
            """{"task_id": "g1", "prompt": "def one():\n", "tests": "assert one() == 1"}""",
            """{"task_id": "g2", "prompt": "def two():\n", "tests": "assert two() == 2"}""");
        string summary = Path.Combine(dir, "gen-summary.json");
        var stdout = new StringWriter();
        int code = CommandLine.Run(
            ["eval", "--problems", problems, "--model", Fixtures.SharedPath("fixtures", "hf", "llama-tiny"), "--tokenizer", Fixtures.SharedPath("fixtures", "hf", "tokenizer-bpe512"), "-n", "3", "-k", "1,3", "--max-new-tokens", "24", "--out", summary],
            stdout,
            TextWriter.Null);
        Assert.That(code, Is.EqualTo(0), stdout.ToString());
        Assert.That(stdout.ToString(), Does.Contain("generated 6/6 completions"));
        using var json = JsonDocument.Parse(File.ReadAllText(summary));
        Assert.That(json.RootElement.GetProperty("samples").GetInt32(), Is.EqualTo(6));
        Assert.That(json.RootElement.GetProperty("outcomes").EnumerateObject().Sum(p => p.Value.GetInt32()), Is.EqualTo(6), "every generated completion ran and has an outcome");
    }

    private EvalReport Evaluate(IReadOnlyList<Problem> problems, IReadOnlyList<Sample> samples) =>
        new Evaluator(pool).EvaluateAsync(problems, samples, [1]).GetAwaiter().GetResult();

    private string Write(string name, params string[] lines)
    {
        string path = Path.Combine(dir, name);
        File.WriteAllText(path, string.Join("\n", lines) + "\n");
        return path;
    }

    private static BigInteger Binomial(int n, int k)
    {
        BigInteger r = BigInteger.One;
        for (int i = 1; i <= k; i++)
        {
            r = r * (n - k + i) / i;
        }

        return r;
    }
}
