using RA3.Kernels.Tensors;
using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.Json;
using RA3.Model.Generation;
using RA3.Model.Scoring;
using RA3.Model.Tokenizers;
using RA3.Train.Evaluation;
using RA3.Train.Runs;
using RA3.Train.Sandbox;

namespace RA3.Train.Cli;

/// <summary><c>ra3 eval</c>: pass@k of completions on a problem set, every program run in the sandbox.</summary>
public static class EvalCommand
{
    /// <summary>Usage text: every option of <see cref="EvalSettings"/> with its default.</summary>
    public static string Usage { get; } = SettingsCommandLine.Usage<EvalSettings>("usage: ra3 eval --problems FILE (--samples FILE.jsonl | --samples canonical | --model DIR -n N) [options]");

    /// <summary>
    /// Runs the command. A stop signal ends it at the next generated problem or finished program,
    /// with what is done kept in journals beside the outputs; the same command again does the rest.
    /// </summary>
    public static int Run(IEnumerable<string> args, TextWriter stdout)
    {
        string[] given = [.. args];
        string again = CommandLine.Again("eval", given) + " (the same command: it does only what is left)";
        var (s, _) = SettingsCommandLine.Parse<EvalSettings>(given.Select(a => a is "-k" ? "--k" : a is "-n" ? "--n" : a));
        if ((s.Samples is null) == (s.Model is null))
        {
            throw new SettingsException("samples", "give exactly one of --samples and --model");
        }

        string problemsPath = s.Problems!;
        string? samplesSpec = s.Samples, model = s.Model, outPath = s.Out, split = s.Split;
        int[] ks = ParseKs(s.K);
        string outcomesPath = s.Outcomes ?? (outPath ?? samplesSpec ?? problemsPath) + ".outcomes.jsonl";
        int limit = s.Limit > 0 ? s.Limit : int.MaxValue, workers = s.Workers, n = s.N;
        bool strict = s.Strict, challenge = s.Challenge;
        var limits = new SandboxLimits { WallTime = TimeSpan.FromSeconds(s.Timeout), MemoryBytes = (long)s.Memory << 20 };
        limits = limits with { CpuSeconds = Math.Max(1, (int)limits.WallTime.TotalSeconds - 2) };
        var sampling = s.Generation.Sampling();
        string backendName = s.Generation.Backend;
        string? tokenizerSpec = s.Generation.Tokenizer;
        var set = ProblemSetLoader.Load(problemsPath, strict);
        var problems = set.Problems.Where(p => split is null || p.Split == split).Take(limit).ToList();
        if (problems.Count == 0)
        {
            throw new UsageException(split is null ? "no problems selected" : $"no problems in split '{split}' (splits exist for MBPP files)");
        }

        var issues = new List<string>(set.Issues);
        IReadOnlyList<Sample> samples;
        if (samplesSpec == "canonical")
        {
            samples = [.. problems.Where(p => p.CanonicalSolution is not null).Select(p => new Sample(p.TaskId, p.CanonicalSolution!))];
        }
        else if (samplesSpec is not null)
        {
            var loaded = SampleLoader.Load(samplesSpec, strict);
            samples = loaded.Samples;
            issues.AddRange(loaded.Issues);
        }
        else
        {
            string samplesPath = (outPath ?? problemsPath) + ".samples.jsonl";
            using var journal = Journal.Open(samplesPath + ".journal");
            samples = Generate(problems, model!, tokenizerSpec ?? model!, backendName, WeightStorage.Parse(s.Generation.DType), n, sampling, journal, again, stdout);
            RA3.Model.IO.AtomicFile.WriteAllText(samplesPath, string.Concat(samples.Select(x => new JsonObject { ["task_id"] = x.TaskId, ["completion"] = x.Completion }.ToJsonString() + "\n")));
            journal.Delete();
            stdout.WriteLine($"generated completions: {samplesPath}");
        }

        foreach (string issue in issues.Take(20))
        {
            stdout.WriteLine($"warning: {issue}");
        }

        if (issues.Count > 20)
        {
            stdout.WriteLine($"warning: ... and {issues.Count - 20} more");
        }

        using var sandbox = Sandbox.Sandbox.Create(limits);
        stdout.WriteLine(sandbox.Description);
        using var pool = new SandboxPool(sandbox, workers);
        using var outcomesJournal = Journal.Open(outcomesPath + ".journal");
        EvalReport report;
        try
        {
            report = new Evaluator(pool, challenge, outcomesJournal).EvaluateAsync(problems, samples, ks, line => stdout.WriteLine(line), StopSignal.Token).GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) when (StopSignal.Requested)
        {
            throw new StoppedBySignalException($"stopped by {StopSignal.Name} after scoring {outcomesJournal.Count} programs, their results kept in {outcomesJournal.Path}", again);
        }

        issues.AddRange(report.Issues);
        WriteOutcomes(outcomesPath, report);
        outcomesJournal.Delete();
        stdout.WriteLine();
        stdout.WriteLine($"{problems.Count} problems ({set.Problems[0].Format}), {samples.Count} samples, {report.Programs} programs in {report.WallTime.TotalSeconds:0.0} s ({report.ProgramsPerSecond:0.0} programs/s, {pool.Workers} workers)");
        stdout.WriteLine(Table(report, ks));
        stdout.WriteLine("outcomes: " + string.Join(", ", report.OutcomeCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key} {kv.Value}")));
        stdout.WriteLine($"per-sample outcomes: {outcomesPath}");
        if (outPath is not null)
        {
            File.WriteAllText(outPath, Summary(problemsPath, problems.Count, samples.Count, report, ks, issues));
            stdout.WriteLine($"summary: {outPath}");
        }

        return 0;
    }

    private static int[] ParseKs(string text)
    {
        try
        {
            int[] ks = [.. text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture))];
            return ks.Length > 0 && ks.All(k => k >= 1) ? ks : throw new UsageException($"-k: '{text}' must list positive integers");
        }
        catch (FormatException)
        {
            throw new UsageException($"-k: '{text}' must list positive integers, e.g. 1,5");
        }
    }

    // Completions problem by problem, each problem's recorded in the journal under a key of the
    // model, tokenizer, sampling and the problem's place and context, so a stopped or killed
    // generation continues with the next problem and gives what one uninterrupted run gives.
    private static List<Sample> Generate(List<Problem> problems, string model, string tokenizerSpec, string backendName, DType? dtype, int n, SamplingOptions sampling, Journal journal, string again, TextWriter stdout)
    {
        using var backend = BackendChoice.Create(backendName);
        using var transformer = Scorer.LoadModel(model, backend, dtype);
        var tokenizer = TokenizerLoader.Load(tokenizerSpec);
        var generator = new Generator(transformer, tokenizer);
        string identity = JsonSerializer.Serialize(new { model = Path.GetFullPath(model), tokenizer = tokenizerSpec, backend = backendName, dtype = transformer.Weights.DType.ToString(), n, sampling.MaxNewTokens, sampling.Temperature, sampling.TopP, sampling.Seed });
        if (journal.Recovered > 0)
        {
            stdout.WriteLine($"{journal.Path}: continuing an interrupted generation");
        }

        var samples = new List<Sample>(problems.Count * n);
        for (int i = 0; i < problems.Count; i++)
        {
            string key = Journal.KeyOf(identity, i.ToString(CultureInfo.InvariantCulture), problems[i].TaskId, Completions.Context(problems[i]));
            if (!journal.TryGet(key, out var texts))
            {
                // The generator cuts the text before a stop string.
                texts = new JsonArray([.. Completions.GenerateOne(generator, tokenizer, problems[i], i, n, sampling).Samples.Select(g => (JsonNode)JsonValue.Create(g.Text ?? string.Empty))]);
                journal.Add(key, texts);
            }

            samples.AddRange(texts.AsArray().Select(t => new Sample(problems[i].TaskId, t!.GetValue<string>())));
            stdout.WriteLine($"generated {samples.Count}/{problems.Count * n} completions");
            if (StopSignal.Requested && i + 1 < problems.Count)
            {
                throw new StoppedBySignalException($"stopped by {StopSignal.Name} after generating the completions of {i + 1} of {problems.Count} problems, kept in {journal.Path}", again);
            }
        }

        return samples;
    }

    private static string Table(EvalReport report, int[] ks)
    {
        var lines = new List<string> { "| tests | " + string.Join(" | ", ks.Select(k => $"pass@{k}")) + " |", "|---|" + string.Concat(ks.Select(_ => "---:|")) };
        foreach (var s in report.Scores)
        {
            lines.Add($"| {s.Variant} | " + string.Join(" | ", ks.Select(k => double.IsNaN(s.PassAtK[k]) ? "n/a" : $"{100 * s.PassAtK[k]:0.0}% ({s.ProblemsCounted[k]} problems)")) + " |");
        }

        return string.Join(Environment.NewLine, lines);
    }

    private static void WriteOutcomes(string path, EvalReport report)
    {
        using var writer = new StreamWriter(path);
        foreach (var o in report.Outcomes)
        {
            writer.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["task_id"] = o.TaskId,
                ["sample"] = o.Sample,
                ["variant"] = o.Variant,
                ["outcome"] = o.Run.OutcomeName,
                ["type"] = o.Run.ExceptionType,
                ["message"] = o.Run.Message,
                ["wall_ms"] = Math.Round(o.Run.WallTime.TotalMilliseconds, 1),
            }));
        }
    }

    private static string Summary(string problems, int problemCount, int sampleCount, EvalReport report, int[] ks, List<string> issues) =>
        JsonSerializer.Serialize(
            new Dictionary<string, object>
            {
                ["problems_file"] = problems,
                ["problems"] = problemCount,
                ["samples"] = sampleCount,
                ["pass_at_k"] = report.Scores.ToDictionary(s => s.Variant, s => ks.ToDictionary(k => $"pass@{k}", k => (object?)(double.IsNaN(s.PassAtK[k]) ? null : s.PassAtK[k]))),
                ["per_problem"] = report.Scores.ToDictionary(s => s.Variant, s => s.PerProblem.Select(p => new Dictionary<string, object?>
                {
                    ["task_id"] = p.TaskId,
                    ["n"] = p.Samples,
                    ["c"] = p.Correct,
                    ["pass_at_k"] = ks.Where(k => k <= p.Samples).ToDictionary(k => $"pass@{k}", k => PassAtK.Estimate(p.Samples, p.Correct, k)),
                }).ToList()),
                ["outcomes"] = report.OutcomeCounts,
                ["programs"] = report.Programs,
                ["seconds"] = Math.Round(report.WallTime.TotalSeconds, 2),
                ["programs_per_second"] = Math.Round(report.ProgramsPerSecond, 2),
                ["sandbox"] = report.Isolation,
                ["issues"] = issues,
            },
            new JsonSerializerOptions { WriteIndented = true });
}
