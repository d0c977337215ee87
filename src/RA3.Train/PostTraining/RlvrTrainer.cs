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
/// RLVR post-training (spec §6): GRPO on problems with unit tests, with the knobs RL post-training
/// users rely on (TRL's GRPOTrainer, verl's DAPO recipe). Each step samples G completions for a few
/// prompts (continuous batching across them), runs each against the problem's tests in the sandbox
/// (reward 1 when all pass, or the fraction of asserts passed; DAPO's soft overlong punishment
/// optionally), drops groups whose rewards all agree and samples more prompts in their place when
/// dynamic sampling is on, turns rewards into group-relative advantages (scaled by the group's, the
/// batch's or no standard deviation), and takes μ clipped-ratio policy-gradient steps (ε_low,
/// ε_high; loss averaged per sequence, per token or by a constant) with a KL penalty to the initial
/// model (k1, k2 or k3; none at β = 0) — <see cref="PolicyGradient"/>, the E-step's update. Held-out
/// pass@1 is measured at step 0, every <see cref="RlvrSettings.EvalEvery"/> steps and at the end, on
/// the same problems with the same sampling seeds each time (<see cref="HeldOutSampling"/>), so the
/// curve's points differ by the model alone. Checkpoints are atomic; prompt choice and sampling
/// depend only on (seed, step), so a resumed run continues exactly. <c>metrics.jsonl</c>: one object
/// per step — reward, pass rate, the zero-std fraction of the groups sampled, clip fractions (low,
/// high, region), entropy, completion lengths, the truncated fraction, KL; <c>eval_pass_at_1</c>
/// where measured.
/// <para>
/// Among the ranks of <paramref name="world"/> (mpirun) each rank samples the completions of its
/// share of a round's prompts (seeded by their global index, so the world size does not change
/// them) and runs their tests in its sandbox; the ranks gather the completions and rewards in
/// prompt order, so every rank keeps the same groups, and the update is data-parallel
/// (<see cref="PolicyGradient"/>); the held-out evaluation is split by problem; rank 0 writes
/// metrics and checkpoints. Each step's line also carries a digest of its sampled token ids
/// (<c>samples_sha256</c>), by which two runs compare sample for sample.
/// </para>
/// </summary>
public sealed class RlvrTrainer(RlvrSettings settings, TextWriter log, bool interactive, Communicator? world = null)
{
    private const string PartialMarker = "@@ra3-partial";

    /// <summary>
    /// The held-out protocol every pass@k of a demo shares: temperature 0.2 (the Codex paper's best
    /// for pass@1; at 0.8 the demo's small model spends most samples on garbage past the function:
    /// 8.0 % pass@1 against 10.3 % at 0.2 on 120 problems), top-p 0.95, the given budget and seed
    /// (problem i's samples from (seed + i·n, j), <see cref="Completions.GenerateBatched"/>).
    /// </summary>
    public static SamplingOptions HeldOutSampling(int maxNewTokens, ulong seed) => new() { Temperature = 0.2f, TopP = 0.95f, MaxNewTokens = maxNewTokens, Seed = seed };

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
        using var reference = s.KlCoefficient > 0 ? HuggingFaceCheckpoint.Load(init, backend, dtype: dtype) : null;
        model.RecomputeActivations = s.Recompute;
        using var optimizer = parallel.Optimizer(model, weightDecay: 0f);
        using var update = new PolicyGradient(model, reference, optimizer, s.Update(), new NonFiniteGuard(s.SkipNonFinite, () => TrainingCheckpoint.Latest(s.Out), log));
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
                Measure(first, generator, tokenizer, held, pool, 0, parallel);
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
            var record = TrainStep(step, problems, generator, tokenizer, pool, update, parallel);
            string extra = $"  reward {record["reward"]!.GetValue<double>():F3}  kl {record["kl"]?.GetValue<double>() ?? double.NaN:F4}";
            if (held.Count > 0 && (step % s.EvalEvery == 0 || step == s.Steps))
            {
                lastPass = Measure(record, generator, tokenizer, held, pool, step, parallel);
                extra += $"  held-out pass@1 {lastPass:P1}";
            }

            if (parallel.IsRoot)
            {
                File.AppendAllText(metricsPath, record.ToJsonString() + "\n");
            }

            progress.Step(step, -record["reward"]!.GetValue<double>(), record["new_tokens"]!.GetValue<long>(), extra + "  (loss column: −reward)");
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

    /// <summary>One sampled completion as the update and the metrics need it.</summary>
    /// <param name="Context">The prompt's token ids.</param>
    /// <param name="Tokens">The completion's token ids.</param>
    /// <param name="Reward">Its reward (the overlong punishment included).</param>
    /// <param name="Passed">Whether every test passed.</param>
    /// <param name="Truncated">Whether it stopped at the token limit.</param>
    /// <param name="Entropies">The policy's entropy at each sampled token.</param>
    private sealed record Completion(int[] Context, int[] Tokens, double Reward, bool Passed, bool Truncated, float[] Entropies);

    // G completions of each prompt, scored in the sandbox, in prompt order: each rank samples and
    // runs its share of the prompts (seeded by their index in the round's list), then all gather.
    private List<Completion> Sample(Generator generator, TextTokenizer tokenizer, SandboxPool pool, List<Problem> chosen, SamplingOptions sampling, DataParallel parallel)
    {
        var s = settings;
        var (first, count) = parallel.Share(chosen.Count);
        var samples = Completions.GenerateBatched(generator, tokenizer, chosen.GetRange(first, count), s.Group, sampling, s.Slots, entropies: true, firstIndex: first);
        var results = pool.RunAllAsync([.. samples.Select(x => TestProgram(x.Problem, x.Sample.Text ?? string.Empty, s.PartialCredit))]).GetAwaiter().GetResult();
        var mine = samples.Select((x, i) => new Completion(
            x.Context,
            x.Sample.Tokens,
            OverlongReward(Reward(results[i], s.PartialCredit), x.Sample.Tokens.Length, s.MaxNewTokens, s.OverlongBuffer, s.OverlongPenalty),
            results[i].Outcome == RunOutcome.Passed,
            x.Sample.FinishReason == "length",
            x.Sample.Entropies ?? [])).ToList();
        return parallel.Gather(
            mine,
            (w, c) =>
            {
                w.WriteArray(c.Context);
                w.WriteArray(c.Tokens);
                w.Write(c.Reward);
                w.Write(c.Passed);
                w.Write(c.Truncated);
                w.WriteArray(c.Entropies);
            },
            r => new Completion(r.ReadArray<int>(), r.ReadArray<int>(), r.ReadDouble(), r.ReadBoolean(), r.ReadBoolean(), r.ReadArray<float>()));
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
    /// The reward of a completion of <paramref name="length"/> tokens with DAPO's soft overlong
    /// punishment: the test reward, less <paramref name="penalty"/>·(length − (max − buffer)) / buffer
    /// inside the last <paramref name="buffer"/> tokens before <paramref name="max"/> (0 off).
    /// </summary>
    public static double OverlongReward(double reward, int length, int max, int buffer, double penalty) =>
        buffer <= 0 || length <= max - buffer ? reward : reward - (penalty * Math.Min(length - (max - buffer), buffer) / buffer);

    // One step: sample (and refill under dynamic sampling), reward, advantages, μ updates; its metrics line.
    private JsonObject TrainStep(int step, IReadOnlyList<Problem> problems, Generator generator, TextTokenizer tokenizer, SandboxPool pool, PolicyGradient update, DataParallel parallel)
    {
        var s = settings;
        var rng = new Rng(s.Seed ^ (0x9E3779B97F4A7C15UL * (ulong)step));
        var groups = new List<(double[] Rewards, List<Completion> Members)>();
        var all = new List<Completion>();
        int generated = 0, zeroStd = 0;
        double generationSeconds = 0;
        for (int round = 0; round <= (s.DynamicSampling ? s.MaxRefills : 0) && groups.Count < s.PromptsPerStep; round++)
        {
            var chosen = Enumerable.Range(0, s.PromptsPerStep).Select(_ => problems[rng.NextInt(problems.Count)]).ToList();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var samples = Sample(generator, tokenizer, pool, chosen, new SamplingOptions { Temperature = s.Temperature, MaxNewTokens = s.MaxNewTokens, Seed = rng.NextUInt64() }, parallel);
            generationSeconds += clock.Elapsed.TotalSeconds;
            all.AddRange(samples);
            for (int g = 0; g < chosen.Count; g++)
            {
                var members = samples.GetRange(g * s.Group, s.Group);
                double[] rewards = [.. members.Select(x => x.Reward)];
                generated++;
                bool agree = Rewards.Std(rewards) == 0;
                zeroStd += agree ? 1 : 0;
                if ((!s.DynamicSampling || !agree) && groups.Count < s.PromptsPerStep)
                {
                    groups.Add((rewards, members));
                }
            }
        }

        double batchStd = Rewards.Std([.. groups.SelectMany(g => g.Rewards)]);
        var sequences = new List<PolicySequence>();
        foreach (var (rewards, members) in groups)
        {
            double scale = s.ScaleRewards switch { "group" => Rewards.Std(rewards), "batch" => batchStd, _ => 1.0 };
            var advantages = Rewards.GroupAdvantages(rewards, scale);
            for (int i = 0; i < members.Count; i++)
            {
                var c = members[i];
                int[] ids = [.. c.Context, .. c.Tokens];
                var acting = new bool[ids.Length];
                acting.AsSpan(c.Context.Length).Fill(!(s.MaskTruncated && c.Truncated));
                var a = new float[ids.Length];
                a.AsSpan(c.Context.Length).Fill((float)advantages[i]);
                sequences.Add(new PolicySequence(ids, acting, a, OldLogProbs: null));  // sampled by the model being updated
            }
        }

        // Under dynamic sampling a step whose every group agreed has nothing to learn from: no update.
        var stats = sequences.Count > 0 ? update.Step(sequences, step, s.Epochs) : null;
        var lengths = all.Select(x => x.Tokens.Length).ToList();
        long newTokens = lengths.Sum(l => (long)l);
        var entropies = all.SelectMany(x => x.Entropies).ToList();
        return new JsonObject
        {
            ["step"] = step,
            ["reward"] = all.Average(x => x.Reward),
            ["pass_rate"] = all.Count(x => x.Passed) / (double)all.Count,
            ["groups_generated"] = generated,
            ["groups_used"] = groups.Count,
            ["zero_std_fraction"] = zeroStd / (double)generated,
            ["kl"] = stats is null ? null : NonFiniteGuard.Metric(stats.MeanKl),
            ["clip_low"] = stats?.ClipLowFraction,
            ["clip_high"] = stats?.ClipHighFraction,
            ["clip_region"] = stats?.ClippedFraction,
            ["grad_norm"] = stats is null ? null : NonFiniteGuard.Metric(stats.GradNorm),
            ["entropy"] = entropies.Count > 0 ? entropies.Average(e => (double)e) : null,
            ["completion_length"] = lengths.Average(),
            ["completion_length_min"] = lengths.Min(),
            ["completion_length_max"] = lengths.Max(),
            ["truncated_fraction"] = all.Count(x => x.Truncated) / (double)all.Count,
            ["skipped"] = stats is null ? true : null,
            ["new_tokens"] = newTokens,
            ["samples_sha256"] = SampleDigest(all),
            ["generation_tokens_per_s"] = newTokens / Math.Max(generationSeconds, 1e-9),
        };
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

    /// <summary>
    /// Held-out pass@1 under <see cref="HeldOutSampling"/> (<see cref="RlvrSettings.EvalSamples"/>
    /// samples per problem, the same seeds at every step), scored in the sandbox, into
    /// <paramref name="record"/>: <c>eval_pass_at_1</c>, and per problem the samples that passed
    /// (<c>eval_correct</c>, of <c>eval_samples</c>) for statistics over problems.
    /// </summary>
    private double Measure(JsonObject record, Generator generator, TextTokenizer tokenizer, IReadOnlyList<Problem> held, SandboxPool pool, int step, DataParallel parallel)
    {
        var report = new Evaluator(pool).EvaluateModelAsync(generator, tokenizer, held, settings.EvalSamples, [1], HeldOutSampling(settings.MaxNewTokens, settings.EvalSeed), settings.Slots, parallel: parallel).GetAwaiter().GetResult();
        double pass = report.Scores[0].PassAtK[1];
        record["eval_pass_at_1"] = pass;
        record["eval_samples"] = settings.EvalSamples;
        record["eval_correct"] = new JsonArray([.. report.Scores[0].PerProblem.Select(p => (JsonNode)p.Correct)]);
        log.WriteLine($"step {step}: held-out pass@1 {pass:P1} ({held.Count} problems × {settings.EvalSamples})");
        return pass;
    }
}
