using System.Diagnostics;
using System.Text.Json.Nodes;
using RA3.Model.Generation;
using RA3.Model.Tokenizers;
using RA3.Train.Distributed;
using RA3.Train.Runs;
using RA3.Train.Sandbox;

namespace RA3.Train.Evaluation;

/// <summary>One sample's run on one test variant: "tests" (the problem's asserts), or EvalPlus "base" and "plus" (base and extra inputs).</summary>
public sealed record SampleOutcome(string TaskId, int Sample, string Variant, RunResult Run)
{
    /// <summary>Whether the sample counts as correct for this variant.</summary>
    public bool Passed => Run.Outcome == RunOutcome.Passed;
}

/// <summary>pass@k of one variant: averaged over the problems with at least k samples.</summary>
public sealed record VariantScore(string Variant, IReadOnlyDictionary<int, double> PassAtK, IReadOnlyDictionary<int, int> ProblemsCounted, IReadOnlyList<(string TaskId, int Samples, int Correct)> PerProblem);

/// <summary>Everything an evaluation measured.</summary>
public sealed record EvalReport(
    IReadOnlyList<SampleOutcome> Outcomes,
    IReadOnlyList<VariantScore> Scores,
    IReadOnlyDictionary<string, int> OutcomeCounts,
    IReadOnlyList<string> Issues,
    int Programs,
    TimeSpan WallTime,
    string Isolation)
{
    /// <summary>Sandboxed programs per second over the whole evaluation (reference runs included).</summary>
    public double ProgramsPerSecond => Programs / Math.Max(WallTime.TotalSeconds, 1e-9);
}

/// <summary>
/// Scores samples against problems in the sandbox: one program per sample (two for EvalPlus
/// problems: base inputs, and base plus extra inputs), after one reference run per EvalPlus
/// problem that computes the canonical solution's outputs (and sets that problem's time limit:
/// at least three times the reference run's). Results do not depend on the number of
/// workers: each program's result is its own, and they are gathered in the samples' order.
/// <paramref name="challengeTests"/> adds the original MBPP's challenge asserts. With a
/// <paramref name="journal"/>, each sample program's result is recorded as it finishes, keyed by
/// the program and its limits, and a program already there is not run again: an evaluation stopped
/// by a signal or a kill continues where it was.
/// </summary>
public sealed class Evaluator(SandboxPool pool, bool challengeTests = false, Journal? journal = null)
{
    /// <summary>Limits of the reference runs (trusted canonical solutions over every input; their outputs can be large).</summary>
    public static SandboxLimits ReferenceLimits(SandboxLimits limits) =>
        limits with { WallTime = TimeSpan.FromSeconds(300), CpuSeconds = 280, MemoryBytes = Math.Max(limits.MemoryBytes, 4L << 30), MaxOutputBytes = 1 << 30 };

    /// <summary>
    /// Runs every sample; <paramref name="log"/> gets progress lines. Cancelling <paramref name="cancel"/>
    /// stops queuing programs; the queued ones finish (and are journaled) before
    /// <see cref="OperationCanceledException"/> is thrown.
    /// </summary>
    public async Task<EvalReport> EvaluateAsync(IReadOnlyList<Problem> problems, IReadOnlyList<Sample> samples, IReadOnlyList<int> ks, Action<string>? log = null, CancellationToken cancel = default)
    {
        var clock = Stopwatch.StartNew();
        var byId = problems.ToDictionary(p => p.TaskId, StringComparer.Ordinal);
        var issues = new List<string>();
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        var kept = new List<(Problem Problem, int Index, string Completion)>();
        foreach (var s in samples)
        {
            if (!byId.TryGetValue(s.TaskId, out var p))
            {
                issues.Add($"sample for unknown task_id '{s.TaskId}' ignored");
                continue;
            }

            counts[s.TaskId] = counts.GetValueOrDefault(s.TaskId) + 1;
            kept.Add((p, counts[s.TaskId] - 1, s.Completion));
        }

        // Reference outputs of the EvalPlus problems that have samples.
        var references = kept.Select(k => k.Problem).Where(p => p.Inputs is not null).DistinctBy(p => p.TaskId).ToList();
        var expected = new Dictionary<string, (string Base, string Plus)>(StringComparer.Ordinal);
        var referenceTime = new Dictionary<string, TimeSpan>(StringComparer.Ordinal);
        int programs = 0;
        if (references.Count > 0)
        {
            log?.Invoke($"computing the expected outputs of {references.Count} problems from their canonical solutions");
            var reference = ReferenceLimits(pool.Sandbox.Limits);
            var runs = await pool.RunAllAsync([.. references.Select(TestPrograms.ExpectedOutputs)], limits: _ => reference, cancel: cancel).ConfigureAwait(false);
            programs += runs.Length;
            for (int i = 0; i < references.Count; i++)
            {
                if (runs[i].Outcome == RunOutcome.Passed && TestPrograms.ParseExpected(runs[i].Stdout) is { } e)
                {
                    expected[references[i].TaskId] = e;
                    referenceTime[references[i].TaskId] = runs[i].WallTime;
                }
                else
                {
                    issues.Add($"{references[i].TaskId}: the canonical solution did not produce outputs ({runs[i].OutcomeName}: {runs[i].ExceptionType} {runs[i].Message}); its samples count as failed");
                }
            }
        }

        var jobs = new List<(string TaskId, int Sample, string Variant, string? Program)>();
        foreach (var (p, index, completion) in kept)
        {
            if (p.Inputs is null)
            {
                jobs.Add((p.TaskId, index, "tests", TestPrograms.WithTests(p, completion, challengeTests)));
            }
            else
            {
                bool ok = expected.TryGetValue(p.TaskId, out var e);
                jobs.Add((p.TaskId, index, "base", ok ? TestPrograms.WithInputs(p, completion, plus: false, e.Base) : null));
                jobs.Add((p.TaskId, index, "plus", ok ? TestPrograms.WithInputs(p, completion, plus: true, e.Plus) : null));
            }
        }

        var runnable = jobs.Where(j => j.Program is not null).ToList();
        int step = Math.Max(1, runnable.Count / 20);
        // A problem whose canonical solution is slow on its inputs gets proportionally more time, as EvalPlus does per input.
        var limits = pool.Sandbox.Limits;
        SandboxLimits? LimitsOf(int i) => referenceTime.TryGetValue(runnable[i].TaskId, out var t) && (3 * t.TotalSeconds) + 5 > limits.WallTime.TotalSeconds
            ? limits with { WallTime = (3 * t) + TimeSpan.FromSeconds(5), CpuSeconds = (int)Math.Ceiling((3 * t.TotalSeconds) + 3) }
            : null;
        int finished = 0, recalled = 0;
        async Task<RunResult> RunOrRecall(int i)
        {
            var limits = LimitsOf(i);
            string? key = journal is null ? null : Journal.KeyOf(runnable[i].Program!, (limits ?? pool.Sandbox.Limits).ToString());
            RunResult result;
            if (key is not null && journal!.TryGet(key, out var known))
            {
                result = FromJournal(known);
                Interlocked.Increment(ref recalled);
            }
            else
            {
                result = await pool.RunAsync(runnable[i].Program!, limits, cancel).ConfigureAwait(false);
                if (key is not null)
                {
                    journal!.Add(key, ToJournal(result));
                }
            }

            int done = Interlocked.Increment(ref finished);
            if (done % step == 0 || done == runnable.Count)
            {
                log?.Invoke($"{done}/{runnable.Count} programs ({clock.Elapsed.TotalSeconds:0} s)");
            }

            return result;
        }

        var results = await Task.WhenAll(Enumerable.Range(0, runnable.Count).Select(RunOrRecall)).ConfigureAwait(false);
        programs += results.Length - recalled;
        if (recalled > 0)
        {
            log?.Invoke($"{recalled} of {runnable.Count} programs' results came from {journal!.Path}, left by an interrupted run");
        }

        var outcomes = new List<SampleOutcome>(jobs.Count);
        var missing = new RunResult(RunOutcome.Error, "NoReference", "the canonical solution's outputs are missing", TimeSpan.Zero, -1, 0, "", "");
        int r = 0;
        foreach (var j in jobs)
        {
            outcomes.Add(new SampleOutcome(j.TaskId, j.Sample, j.Variant, j.Program is null ? missing : results[r++]));
        }

        return Summarise(outcomes, ks, issues, programs, clock.Elapsed, pool.Sandbox.Description);
    }

    /// <summary>
    /// Generates <paramref name="n"/> completions per problem with <paramref name="generator"/>, all
    /// problems together in <paramref name="slots"/> slots of continuous batching
    /// (<see cref="Completions.GenerateBatched"/>), and scores them; <paramref name="cancel"/> is
    /// checked between generation steps and programs. Among data-parallel ranks (<paramref name="parallel"/>) each generates
    /// and runs its share of the problems, seeded by their indices in the whole list, and all
    /// gather the outcomes in problem order: the scores are one process's (the gathered outcomes
    /// keep no program output).
    /// </summary>
    public async Task<EvalReport> EvaluateModelAsync(Generator generator, TextTokenizer tokenizer, IReadOnlyList<Problem> problems, int n, IReadOnlyList<int> ks, SamplingOptions sampling, int slots, CancellationToken cancel = default, DataParallel? parallel = null)
    {
        ArgumentNullException.ThrowIfNull(problems);
        var ranks = parallel ?? DataParallel.Alone;
        var (first, count) = ranks.Share(problems.Count);
        var mine = problems.Skip(first).Take(count).ToList();
        var samples = Completions.GenerateBatched(generator, tokenizer, mine, n, sampling, slots, cancel: cancel, firstIndex: first);
        var report = await EvaluateAsync(mine, [.. samples.Select(x => new Sample(x.Problem.TaskId, x.Sample.Text ?? string.Empty))], ks, cancel: cancel).ConfigureAwait(false);
        if (ranks.Size == 1)
        {
            return report;
        }

        var outcomes = ranks.Gather(
            report.Outcomes,
            (w, o) =>
            {
                w.Write(o.TaskId);
                w.Write(o.Sample);
                w.Write(o.Variant);
                w.Write((int)o.Run.Outcome);
                w.Write(o.Run.ExceptionType);
                w.Write(o.Run.Message);
                w.Write(o.Run.WallTime.Ticks);
                w.Write(o.Run.ExitCode);
                w.Write(o.Run.Signal);
            },
            r => new SampleOutcome(r.ReadString(), r.ReadInt32(), r.ReadString(), new RunResult((RunOutcome)r.ReadInt32(), r.ReadString(), r.ReadString(), TimeSpan.FromTicks(r.ReadInt64()), r.ReadInt32(), r.ReadInt32(), string.Empty, string.Empty)));
        var issues = ranks.Gather(report.Issues, (w, text) => w.Write(text), r => r.ReadString());
        Span<double> programs = [report.Programs];
        ranks.Sum(programs);
        return Summarise(outcomes, ks, issues, (int)programs[0], report.WallTime, report.Isolation);
    }

    // The scores and outcome counts of a list of outcomes.
    private static EvalReport Summarise(List<SampleOutcome> outcomes, IReadOnlyList<int> ks, List<string> issues, int programs, TimeSpan wallTime, string isolation)
    {
        // EvalPlus "plus" = base and extra inputs both pass.
        var baseRuns = outcomes.Where(o => o.Variant == "base").ToDictionary(o => (o.TaskId, o.Sample), o => o.Passed);
        var scores = outcomes.GroupBy(o => o.Variant).Select(g => Score(g.Key, g, baseRuns, ks)).ToList();
        var outcomeCounts = outcomes.GroupBy(o => o.Run.OutcomeName).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        return new EvalReport(outcomes, scores, outcomeCounts, issues, programs, wallTime, isolation);
    }

    // A sample program's result as the journal keeps it (its output is not needed once it has run).
    private static JsonObject ToJournal(RunResult r) => new()
    {
        ["outcome"] = r.OutcomeName,
        ["type"] = r.ExceptionType,
        ["message"] = r.Message,
        ["wall_ms"] = r.WallTime.TotalMilliseconds,
        ["exit"] = r.ExitCode,
        ["signal"] = r.Signal,
    };

    private static RunResult FromJournal(JsonNode v) => new(
        Enum.Parse<RunOutcome>(v["outcome"]!.GetValue<string>(), ignoreCase: true),
        v["type"]!.GetValue<string>(),
        v["message"]!.GetValue<string>(),
        TimeSpan.FromMilliseconds(v["wall_ms"]!.GetValue<double>()),
        v["exit"]!.GetValue<int>(),
        v["signal"]!.GetValue<int>(),
        string.Empty,
        string.Empty);

    private static VariantScore Score(string variant, IEnumerable<SampleOutcome> outcomes, Dictionary<(string, int), bool> baseRuns, IReadOnlyList<int> ks)
    {
        var perProblem = outcomes.GroupBy(o => o.TaskId)
            .Select(g => (g.Key, g.Count(), g.Count(o => o.Passed && (variant != "plus" || baseRuns.GetValueOrDefault((o.TaskId, o.Sample))))))
            .ToList();
        var pass = new Dictionary<int, double>();
        var counted = new Dictionary<int, int>();
        foreach (int k in ks)
        {
            var eligible = perProblem.Where(p => p.Item2 >= k).ToList();
            counted[k] = eligible.Count;
            pass[k] = eligible.Count == 0 ? double.NaN : eligible.Average(p => PassAtK.Estimate(p.Item2, p.Item3, k));
        }

        return new VariantScore(variant, pass, counted, perProblem);
    }
}
