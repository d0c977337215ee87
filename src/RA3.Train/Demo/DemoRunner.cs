using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using RA3.Kernels.Distributed;
using RA3.Model.Config;
using RA3.Model.Generation;
using RA3.Model.IO;
using RA3.Model.Scoring;
using RA3.Model.Tokenizers;
using RA3.Train.Distributed;
using RA3.Train.Evaluation;
using RA3.Train.Midtraining;
using RA3.Train.PostTraining;
using RA3.Train.Pretraining;
using RA3.Train.Reporting;
using RA3.Train.Runs;
using RA3.Train.Sandbox;
using RA3.Train.Tasks;

namespace RA3.Train.Demo;

/// <summary>
/// The whole pipeline on the procedural task family, in one resumable run folder: the tasks
/// (<c>tasks/</c>), a small model pre-trained on functions of the training compositions, half of
/// them with plan comments (<c>pretrain/</c>, reused when present), its held-out evaluation
/// (<c>eval-base.json</c>), then per seed NTP and RA3 mid-training with the same M-step budget on
/// bare traces (<c>seed-N/ntp</c>, <c>seed-N/ra3</c>), their held-out evaluations
/// (<c>seed-N/eval-*.json</c>: pass@1 and pass@n per problem, on the same problems with the same
/// sampling seeds for every model, and each problem's code cross-entropy), RLVR from each of the
/// three models of the first seeds (<c>seed-N/rlvr-*</c>, with held-out curves on the first problems
/// of the same evaluation), and the report with paired statistics and plots. Every stage is skipped
/// when its output exists, so a killed demo continues where it stopped. Among the ranks of
/// <paramref name="world"/> (mpirun) every stage is data-parallel (the evaluations split by
/// problem) and rank 0 writes the tasks, the evaluations' summaries, the timings and the report.
/// </summary>
public sealed class DemoRunner(DemoSettings settings, TextWriter log, bool interactive, Communicator? world = null)
{
    private const string Tokenizer = "bytes";

    /// <summary>Runs the demo; returns the report's path.</summary>
    public string Run()
    {
        var s = settings;
        var clock = Stopwatch.StartNew();
        string timingsPath = Path.Combine(s.Out, "timings.json");
        var timings = File.Exists(timingsPath) ? JsonFile.ReadObject(timingsPath) : new JsonObject();
        Declared.Validate(s);
        using var parallel = DataParallel.Join(world ?? Communicator.Single, backend: null, s.Parallel);
        parallel.RootWrites(() =>
        {
            RunFolder.Claim(s.Out, System.Text.Json.JsonSerializer.Serialize(s with { Backend = string.Empty }));
            Declared.Save(s, s.Out);
        });
        string tasks = Path.Combine(s.Out, "tasks");
        string train = Path.Combine(tasks, "train.jsonl"), heldOut = Path.Combine(tasks, "heldout.jsonl"), pretrainCorpus = Path.Combine(tasks, "pretrain.jsonl");
        if (!File.Exists(pretrainCorpus))
        {
            parallel.RootWrites(() =>
            {
                Directory.CreateDirectory(tasks);
                ProceduralTasks.Write(train, ProceduralTasks.Generate(2000, heldOut: false, s.Seed));
                ProceduralTasks.Write(heldOut, ProceduralTasks.Generate(s.HeldOutProblems, heldOut: true, s.Seed + 1));
                ProceduralTasks.WritePretrainingCorpus(pretrainCorpus, ProceduralTasks.Generate(s.PretrainFunctions, heldOut: false, s.Seed + 2));
            });
        }

        Stage("pretrain", timings, () =>
        {
            var p = new PretrainSettings
            {
                Data = pretrainCorpus,
                Out = Path.Combine(s.Out, "pretrain"),
                Tokenizer = Tokenizer,
                Hidden = 128,
                Layers = 4,
                Heads = 4,
                KvHeads = 2,
                Intermediate = 384,
                Steps = s.PretrainSteps,
                EvalEvery = Math.Max(1, s.PretrainSteps / 5),
                SaveEvery = Math.Max(1, s.PretrainSteps / 5),
                Seed = s.Seed,
                Backend = s.Backend,
                Parallel = s.Parallel,
            };
            if (!HuggingFaceCheckpoint.IsModelFolder(Path.Combine(p.Out, "final")))
            {
                new Pretrainer(p, log, interactive, world).Run(resume: true);
            }
        });
        string pretrained = Path.Combine(s.Out, "pretrain", "final");
        var problems = ProblemSetLoader.Load(heldOut).Problems;
        Stage("eval-base", timings, () => Evaluate(pretrained, problems, Path.Combine(s.Out, "eval-base.json")));
        for (int i = 1; i <= s.Seeds; i++)
        {
            string dir = Path.Combine(s.Out, $"seed-{i}");
            ulong seed = s.Seed + (ulong)(1000 * i);
            foreach (string method in new[] { "ntp", "ra3" })
            {
                Stage($"seed-{i}/{method}", timings, () => new Midtrainer(Midtraining(method, dir, pretrained, seed), log, interactive, world).Run());
                Stage($"seed-{i}/eval-{method}", timings, () => Evaluate(Path.Combine(dir, method, "final"), problems, Path.Combine(dir, $"eval-{method}.json")));
            }

            var models = new Dictionary<string, string> { ["base"] = pretrained, ["ntp"] = Path.Combine(dir, "ntp", "final"), ["ra3"] = Path.Combine(dir, "ra3", "final") };
            foreach (var (name, model) in i <= s.RlvrSeeds ? models : [])
            {
                Stage($"seed-{i}/rlvr-{name}", timings, () => new RlvrTrainer(Rlvr(model, Path.Combine(dir, $"rlvr-{name}"), train, heldOut, seed), log, interactive, world).Run());
            }
        }

        timings["total_s"] = Math.Round(timings.Where(kv => kv.Key != "total_s").Sum(kv => kv.Value!.GetValue<double>()), 1);
        var m = ModelConfig.Load(Path.Combine(pretrained, "config.json"));
        string modelLine = string.Create(CultureInfo.InvariantCulture, $"{m.ParameterCount / 1e6:0.00}M-parameter {m.ModelType} (C {m.Hidden}, {m.Layers} layers, {Tokenizer} tokenizer)");
        string ranks = parallel.Size > 1 ? string.Create(CultureInfo.InvariantCulture, $", {parallel.Size} data-parallel ranks") : string.Empty;
        string report = Path.Combine(s.Out, "report.md");
        parallel.RootWrites(() =>
        {
            AtomicFile.WriteAllText(timingsPath, timings.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            report = DemoReport.Write(s.Out, string.Create(CultureInfo.InvariantCulture, $"Procedural task family; model: {modelLine}, pre-trained {s.PretrainSteps} steps; mid-training: {s.Traces} traces, {s.Midtrain.Rounds} rounds of {s.Midtrain.MStepSteps} M-step steps × {s.Midtrain.MStepBatch} × {s.Midtrain.MStepSequenceLength} tokens, c = {s.Midtrain.ThinkCost:G3}, α = {s.Midtrain.Alpha:G3}, k = {s.Midtrain.Horizon}, G = {s.Midtrain.Group}, K = {s.Midtrain.Candidates}, baseline {s.Midtrain.Baseline}; evaluation: {s.HeldOutProblems} held-out problems × {s.Samples} samples (temperature 0.2, top-p 0.95, the same seeds for every model); RLVR: {s.Rlvr.Steps} steps ({s.Rlvr.PromptsPerStep} prompts × G = {s.Rlvr.Group}, loss {s.Rlvr.LossType}) from each model of the first {s.RlvrSeeds} seed(s), held-out curves on the first {CurveProblems} problems every {s.Rlvr.EvalEvery} steps. Compute time of the stages: {timings["total_s"]!.GetValue<double>() / 60:0.0} min ({s.Backend} backend{ranks}; this process: {clock.Elapsed.TotalMinutes:0.0} min)."));
        });
        log.WriteLine($"report: {Path.GetFullPath(report)}");
        return report;
    }

    /// <summary>The curves' problems: the first <see cref="DemoSettings.CurveProblems"/> of the evaluation, at most all of them.</summary>
    private int CurveProblems => Math.Min(settings.CurveProblems, settings.HeldOutProblems);

    // The demo's mid-training and RLVR settings with what each stage sets itself.
    private MidtrainSettings Midtraining(string method, string dir, string init, ulong seed) => settings.Midtrain with
    {
        Method = method,
        Init = init,
        Data = $"procedural:{settings.Traces}",
        Out = Path.Combine(dir, method),
        Tokenizer = Tokenizer,
        Seed = seed,
        Backend = settings.Backend,
        Parallel = settings.Parallel,
    };

    private RlvrSettings Rlvr(string init, string dir, string train, string heldOut, ulong seed) => settings.Rlvr with
    {
        Init = init,
        Problems = train,
        EvalProblems = heldOut,
        Out = dir,
        Tokenizer = Tokenizer,
        EvalLimit = CurveProblems,
        EvalSamples = settings.Samples,
        EvalSeed = settings.EvalSeed,
        Seed = seed,
        Backend = settings.Backend,
        Parallel = settings.Parallel,
    };

    /// <summary>
    /// Held-out pass@1 and pass@n of a model and each problem's code cross-entropy, written to
    /// <paramref name="path"/> unless it exists: n samples per problem under the shared protocol
    /// (<see cref="RlvrTrainer.HeldOutSampling"/>, problem i's samples from (eval seed + i·n, j)), the
    /// RLVR curves' first problems generated as their own batch exactly as an RLVR measurement
    /// generates them, so a curve's step 0 is this table's figure on those problems.
    /// </summary>
    private void Evaluate(string model, IReadOnlyList<Problem> problems, string path)
    {
        if (File.Exists(path))
        {
            return;
        }

        var s = settings;
        using var backend = BackendChoice.Create(s.Backend);
        using var parallel = DataParallel.Join(world ?? Communicator.Single, backend, s.Parallel);
        using var transformer = Scorer.LoadModel(model, backend);
        var tokenizer = TokenizerLoader.Load(Tokenizer);
        using var sandbox = Sandbox.Sandbox.Create(s.Rlvr.SampleLimits());
        using var pool = new SandboxPool(sandbox);
        var generator = new Generator(transformer, tokenizer);
        int n = s.Samples, curve = CurveProblems;
        var perProblem = new List<(string TaskId, int Samples, int Correct)>();
        var outcomes = new Dictionary<string, int>(StringComparer.Ordinal);
        try
        {
            foreach (var (from, count) in new[] { (0, curve), (curve, problems.Count - curve) }.Where(x => x.Item2 > 0))
            {
                var part = problems.Skip(from).Take(count).ToList();
                var report = new Evaluator(pool).EvaluateModelAsync(generator, tokenizer, part, n, [1], RlvrTrainer.HeldOutSampling(s.Rlvr.MaxNewTokens, s.EvalSeed + (ulong)(from * n)), s.Rlvr.Slots, StopSignal.Token, parallel).GetAwaiter().GetResult();
                perProblem.AddRange(report.Scores[0].PerProblem);
                foreach (var (outcome, c) in report.OutcomeCounts)
                {
                    outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + c;
                }
            }
        }
        catch (OperationCanceledException) when (StopSignal.Requested)
        {
            // An evaluation is short next to the stages around it: it starts again on resume.
            throw new StoppedBySignalException($"stopped by {StopSignal.Name} while evaluating {model} (held out; that evaluation starts again, the finished stages are kept)", "ra3 demo");
        }

        // Each rank scores its share of the problems' code; the ranks gather the losses in problem order.
        var (first, share) = parallel.Share(problems.Count);
        var ce = parallel.Gather(
            CodeTokenLoss.PerDocument(transformer, tokenizer, [.. problems.Skip(first).Take(share).Select(p => (RA3.Train.Midtraining.Trace.FromCode(p.TaskId, p.Prompt + p.CanonicalSolution), (IReadOnlyDictionary<int, string>?)null))]),
            (w, x) =>
            {
                w.Write(x.Code);
                w.Write(x.CodeTokens);
                w.Write(x.Rationale);
                w.Write(x.RationaleTokens);
            },
            r => new TokenLoss(r.ReadDouble(), r.ReadInt64(), r.ReadDouble(), r.ReadInt64()));
        var rows = new JsonArray();
        for (int i = 0; i < problems.Count; i++)
        {
            rows.Add(new JsonObject { ["task_id"] = perProblem[i].TaskId, ["n"] = perProblem[i].Samples, ["c"] = perProblem[i].Correct, ["code_ce"] = ce[i].Code });
        }

        double pass1 = perProblem.Average(p => PassAtK.Estimate(p.Samples, p.Correct, 1));
        var summary = new JsonObject
        {
            ["model"] = model,
            ["problems"] = problems.Count,
            ["samples"] = n,
            ["pass_at_1"] = pass1,
            [$"pass_at_{n}"] = perProblem.Average(p => PassAtK.Estimate(p.Samples, p.Correct, n)),
            ["code_ce"] = ce.Sum(x => x.Code * x.CodeTokens) / ce.Sum(x => x.CodeTokens),
            ["per_problem"] = rows,
        };
        foreach (var (outcome, count) in outcomes)
        {
            summary[outcome] = count;
        }

        parallel.RootWrites(() => AtomicFile.WriteAllText(path, summary.ToJsonString()));
        log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{model}: held-out pass@1 {pass1:P1}, pass@{n} {summary[$"pass_at_{n}"]!.GetValue<double>():P1}, code CE {summary["code_ce"]!.GetValue<double>():0.0000}"));
    }

    private void Stage(string name, JsonObject timings, Action run)
    {
        var clock = Stopwatch.StartNew();
        log.WriteLine($"== {name}");
        run();
        if (!timings.ContainsKey(name))
        {
            timings[name] = Math.Round(clock.Elapsed.TotalSeconds, 1);
            if (world?.IsRoot ?? true)
            {
                AtomicFile.WriteAllText(Path.Combine(settings.Out, "timings.json"), timings.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            }
        }
    }
}
