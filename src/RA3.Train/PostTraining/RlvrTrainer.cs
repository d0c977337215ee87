using System.Globalization;
using System.Text.Json.Nodes;
using System.Text;
using RA3.Kernels.Distributed;
using RA3.Model.Generation;
using RA3.Model.IO;
using RA3.Model.Optim;
using RA3.Model.Scoring;
using RA3.Model.Tokenizers;
using RA3.Model;
using RA3.Train.Distributed;
using RA3.Train.Evaluation;
using RA3.Train.Midtraining;
using RA3.Train.Pretraining;
using RA3.Train.Runs;
using RA3.Train.Sandbox;

namespace RA3.Train.PostTraining;

/// <summary>
/// RLVR post-training (spec §6): GRPO on problems with unit tests. Each step samples G completions
/// for a few prompts, runs each against the problem's tests in the sandbox (reward 1 when all
/// pass, or the fraction of asserts passed), normalises rewards within each group, and takes the
/// clipped-ratio policy-gradient step with a KL penalty to the initial model
/// (<see cref="PolicyGradient"/>, the E-step's update). Held-out pass@1 is measured at step 0,
/// every <see cref="RlvrSettings.EvalEvery"/> steps and at the end. Checkpoints are atomic; prompt
/// choice and sampling depend only on (seed, step), so a resumed run continues exactly.
/// <c>metrics.jsonl</c>: one object per step (reward, pass rate, KL …, and a digest of the
/// step's sampled token ids, by which two runs compare sample for sample; <c>eval_pass_at_1</c>
/// where measured).
/// <para>
/// Among the ranks of <paramref name="world"/> (mpirun) each rank samples the completions of its
/// share of a step's prompts (seeded by their global index, so the world size does not change
/// them) and runs their tests in its sandbox, the ranks gather the samples and rewards in prompt
/// order, and the update is data-parallel (<see cref="PolicyGradient"/>); the held-out evaluation
/// is split by problem; rank 0 writes metrics and checkpoints.
/// </para>
/// </summary>
public sealed class RlvrTrainer(RlvrSettings settings, TextWriter log, bool interactive, Communicator? world = null)
{
    private const string PartialMarker = "@@ra3-partial";

    /// <summary>Runs (or resumes) the run; returns the last held-out pass@1 (NaN without held-out problems).</summary>
    public double Run()
    {
        var s = settings;
        Declared.Validate(s);
        var problems = ProblemSetLoader.Load(s.Problems).Problems;
        var held = s.EvalProblems is null ? [] : ProblemSetLoader.Load(s.EvalProblems).Problems.Take(s.EvalLimit).ToList();
        var tokenizer = TokenizerLoader.Load(s.Tokenizer);
        using var backend = BackendChoice.Create(s.Backend);
        using var parallel = DataParallel.Join(world ?? Communicator.Single, backend, s.Parallel);
        KernelChoices.Pin(s.Out, log.WriteLine, parallel);
        string init = Midtrainer.ResolveInit(s.Init);
        var dtype = WeightStorage.Parse(s.DType);
        using var model = HuggingFaceCheckpoint.Load(init, backend, trainable: true, dtype);
        using var reference = HuggingFaceCheckpoint.Load(init, backend, dtype: dtype);
        model.RecomputeActivations = s.Recompute;
        using var optimizer = parallel.Optimizer(model, weightDecay: 0f);
        using var update = new PolicyGradient(model, reference, optimizer, new PolicyGradientOptions(s.LearningRate, s.KlCoefficient, s.ClipRange), new NonFiniteGuard(s.SkipNonFinite, () => TrainingCheckpoint.Latest(s.Out), log));
        using var sandbox = Sandbox.Sandbox.Create(s.SampleLimits());
        using var pool = new SandboxPool(sandbox);
        var generator = new Generator(model, tokenizer);
        string metricsPath = Path.Combine(s.Out, "metrics.jsonl");
        int step = 0;
        if (TrainingCheckpoint.LoadNewestIntact(s.Out, model, optimizer, s.Identity(), log.WriteLine) is var (latest, state))
        {
            step = state.Step;
            parallel.RootWrites(() => Pretrainer.TruncateMetrics(metricsPath, step));
            log.WriteLine($"resumed from {latest} at step {step}");
        }
        else
        {
            var first = new JsonObject { ["step"] = 0 };
            if (held.Count > 0)
            {
                first["eval_pass_at_1"] = PassAtOne(generator, tokenizer, held, pool, 0, parallel);
            }

            parallel.RootWrites(() =>
            {
                Directory.CreateDirectory(s.Out);
                File.WriteAllText(metricsPath, first.ToJsonString() + "\n");
            });
        }

        parallel.RootWrites(() => Declared.Save(s, s.Out));  // after the resume check: a refused resume leaves the run's own config

        log.WriteLine($"RLVR from {init}: {problems.Count} problems, {held.Count} held out; {s.Steps} steps of {s.PromptsPerStep} prompts × G {s.Group}; sandbox: {sandbox.Description}");
        var progress = new Progress(log, s.Steps, step, interactive, every: 5);
        double lastPass = double.NaN;
        int stopAt = s.StopAfter > 0 ? Math.Min(s.Steps, step + s.StopAfter) : s.Steps;
        while (step < stopAt)
        {
            step++;
            var rng = new Rng(s.Seed ^ (0x9E3779B97F4A7C15UL * (ulong)step));
            var chosen = Enumerable.Range(0, s.PromptsPerStep).Select(_ => problems[rng.NextInt(problems.Count)]).ToList();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var samples = Sample(generator, tokenizer, pool, chosen, new SamplingOptions { Temperature = s.Temperature, MaxNewTokens = s.MaxNewTokens, Seed = rng.NextUInt64() }, parallel);
            double generationSeconds = clock.Elapsed.TotalSeconds;
            var rewards = samples.Select(x => x.Reward).ToArray();
            var sequences = new List<PolicySequence>(samples.Count);
            var ids = samples.Select(x => x.Context.Concat(x.Tokens).ToArray()).ToList();
            for (int g = 0; g < chosen.Count; g++)
            {
                var advantages = Rewards.GroupAdvantages(rewards.AsSpan(g * s.Group, s.Group), normalise: true);
                for (int i = 0; i < s.Group; i++)
                {
                    int k = (g * s.Group) + i, context = samples[k].Context.Length;
                    var acting = new bool[ids[k].Length];
                    acting.AsSpan(context).Fill(true);
                    var a = new float[ids[k].Length];
                    a.AsSpan(context).Fill((float)advantages[i]);
                    sequences.Add(new PolicySequence(ids[k], acting, a, OldLogProbs: null));  // sampled by the model being updated
                }
            }

            var stats = update.Step(sequences, step, s.Epochs);

            long newTokens = samples.Sum(x => (long)x.Tokens.Length);
            var record = new JsonObject
            {
                ["step"] = step,
                ["reward"] = rewards.Average(),
                ["pass_rate"] = samples.Count(x => x.Passed) / (double)samples.Count,
                ["kl"] = NonFiniteGuard.Metric(stats.MeanKl),
                ["clipped"] = stats.ClippedFraction,
                ["grad_norm"] = NonFiniteGuard.Metric(stats.GradNorm),
                ["new_tokens"] = newTokens,
                ["samples_sha256"] = SampleDigest(samples),
                ["generation_tokens_per_s"] = newTokens / Math.Max(generationSeconds, 1e-9),
            };
            string extra = $"  reward {rewards.Average():F3}  kl {stats.MeanKl:F4}";
            if (held.Count > 0 && (step % s.EvalEvery == 0 || step == s.Steps))
            {
                lastPass = PassAtOne(generator, tokenizer, held, pool, step, parallel);
                record["eval_pass_at_1"] = lastPass;
                extra += $"  held-out pass@1 {lastPass:P1}";
            }

            if (parallel.IsRoot)
            {
                File.AppendAllText(metricsPath, record.ToJsonString() + "\n");
            }

            progress.Step(step, -rewards.Average(), newTokens, extra + "  (loss column: −reward)");
            bool stop = parallel.Any(StopSignal.Requested);
            if (step % s.SaveEvery == 0 || step == s.Steps || step == stopAt || stop)
            {
                string dir = TrainingCheckpoint.Save(s.Out, model, optimizer, new TrainingState(step, step.ToString(CultureInfo.InvariantCulture), s.Identity()), keep: 1);
                if (stop && step < s.Steps)
                {
                    throw new StoppedBySignalException($"stopped by {StopSignal.Name} at step {step} of {s.Steps} after writing {dir}", $"ra3 rlvr --config {Path.Combine(s.Out, Declared.ConfigFileName)}");
                }
            }
        }

        if (step == s.Steps)
        {
            parallel.RootWrites(() => HuggingFaceCheckpoint.Save(model, Path.Combine(s.Out, "final"), dtype: WeightStorage.Parse(s.SaveDType, "save-dtype") ?? HuggingFaceCheckpoint.StoredDType(init)));
            log.WriteLine($"final model in {Path.Combine(s.Out, "final")}; metrics in {metricsPath}");
        }

        return lastPass;
    }

    /// <summary>One sampled completion as the update needs it: its prompt's tokens, its own, and its test run's reward.</summary>
    /// <param name="Context">The prompt's token ids.</param>
    /// <param name="Tokens">The completion's token ids.</param>
    /// <param name="Reward">Its reward.</param>
    /// <param name="Passed">Whether every test passed.</param>
    private sealed record Completion(int[] Context, int[] Tokens, double Reward, bool Passed);

    // G completions of each prompt, scored in the sandbox, in prompt order: each rank samples and
    // runs its share of the prompts (seeded by their index in the step's list), then all gather.
    private List<Completion> Sample(Generator generator, TextTokenizer tokenizer, SandboxPool pool, List<Problem> chosen, SamplingOptions sampling, DataParallel parallel)
    {
        var s = settings;
        var (first, count) = parallel.Share(chosen.Count);
        var samples = Completions.Generate(generator, tokenizer, chosen.GetRange(first, count), s.Group, sampling, firstIndex: first);
        var results = pool.RunAllAsync([.. samples.Select(x => TestProgram(x.Problem, x.Sample.Text ?? string.Empty, s.PartialCredit))]).GetAwaiter().GetResult();
        var mine = samples.Select((x, i) => new Completion(x.Context, x.Sample.Tokens, Reward(results[i], s.PartialCredit), results[i].Outcome == RunOutcome.Passed)).ToList();
        return parallel.Gather(
            mine,
            (w, c) =>
            {
                w.WriteArray(c.Context);
                w.WriteArray(c.Tokens);
                w.Write(c.Reward);
                w.Write(c.Passed);
            },
            r => new Completion(r.ReadArray<int>(), r.ReadArray<int>(), r.ReadDouble(), r.ReadBoolean()));
    }

    // The first 16 hex digits of the SHA-256 of a step's completions' token ids, in order.
    private static string SampleDigest(List<Completion> samples)
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var c in samples)
        {
            sha.AppendData(BitConverter.GetBytes(c.Tokens.Length));
            sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(c.Tokens.AsSpan()));
        }

        return Convert.ToHexStringLower(sha.GetHashAndReset())[..16];
    }

    /// <summary>
    /// The program whose run decides a completion's reward: the problem's tests, or with
    /// <paramref name="partial"/> each assert line run on its own and the count printed last
    /// (problems whose tests are not assert lines fall back to all-or-nothing).
    /// </summary>
    public static string TestProgram(Problem problem, string completion, bool partial)
    {
        ArgumentNullException.ThrowIfNull(problem);
        var asserts = problem.Tests.Split('\n').Where(l => l.StartsWith("assert ", StringComparison.Ordinal)).ToList();
        if (!partial || asserts.Count == 0)
        {
            return TestPrograms.WithTests(problem, completion);
        }

        var text = new StringBuilder(TestPrograms.Solution(problem, completion)).Append("\n\n_ra3_passed = 0\n");
        foreach (string a in asserts)
        {
            text.Append("try:\n    ").Append(a).Append("\n    _ra3_passed += 1\nexcept Exception:\n    pass\n");
        }

        return text.Append(CultureInfo.InvariantCulture, $"print('{PartialMarker}', _ra3_passed, {asserts.Count})\nassert _ra3_passed == {asserts.Count}\n").ToString();
    }

    /// <summary>
    /// 1 for a pass; with <paramref name="partial"/> credit, the fraction the last marker line
    /// reports (0 when the program did not reach it). The marker is printed after the completion's
    /// code has run, so it is the last one unless the completion replaces <c>print</c>: partial
    /// credit trusts the completion not to game it, as any reward read from program output does.
    /// </summary>
    public static double Reward(RunResult r, bool partial)
    {
        ArgumentNullException.ThrowIfNull(r);
        if (r.Outcome == RunOutcome.Passed)
        {
            return 1;
        }

        if (!partial || r.Outcome != RunOutcome.Failed)
        {
            return 0;
        }

        string? line = r.Stdout.Split('\n').LastOrDefault(l => l.StartsWith(PartialMarker, StringComparison.Ordinal));
        string[] parts = line?.Split(' ') ?? [];
        return parts.Length == 3 && int.TryParse(parts[1], out int passed) && int.TryParse(parts[2], out int total) && total > 0 ? passed / (double)total : 0;
    }

    /// <summary>Held-out pass@1: <see cref="RlvrSettings.EvalSamples"/> samples per problem at temperature 0.8, scored in the sandbox.</summary>
    private double PassAtOne(Generator generator, TextTokenizer tokenizer, IReadOnlyList<Problem> held, SandboxPool pool, int step, DataParallel parallel)
    {
        var report = new Evaluator(pool).EvaluateModelAsync(generator, tokenizer, held, settings.EvalSamples, [1], new SamplingOptions { Temperature = 0.8f, TopP = 0.95f, MaxNewTokens = settings.MaxNewTokens, Seed = settings.Seed + 7 }, parallel: parallel).GetAwaiter().GetResult();
        double pass = report.Scores[0].PassAtK[1];
        log.WriteLine($"step {step}: held-out pass@1 {pass:P1} ({held.Count} problems × {settings.EvalSamples})");
        return pass;
    }
}
