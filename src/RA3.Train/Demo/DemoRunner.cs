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
/// them with plan comments (<c>pretrain/</c>, reused when present), then per seed NTP and RA3
/// mid-training with the same M-step budget on bare traces (<c>seed-N/ntp</c>, <c>seed-N/ra3</c>),
/// held-out pass@1/pass@5 of the pre-trained, NTP and RA3 models (<c>seed-N/eval-*.json</c>), a
/// short RLVR from each (<c>seed-N/rlvr-*</c>), and the report with its plots. Every stage is
/// skipped when its output exists, so a killed demo continues where it stopped. Among the ranks
/// of <paramref name="world"/> (mpirun) every stage is data-parallel (the evaluations split by
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
        var timings = new JsonObject();
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
        for (int i = 1; i <= s.Seeds; i++)
        {
            string dir = Path.Combine(s.Out, $"seed-{i}");
            ulong seed = s.Seed + (ulong)(1000 * i);
            foreach (string method in new[] { "ntp", "ra3" })
            {
                Stage($"seed-{i}/{method}", timings, () => new Midtrainer(Midtraining(method, dir, pretrained, seed), log, interactive, world).Run());
            }

            var models = new Dictionary<string, string> { ["base"] = pretrained, ["ntp"] = Path.Combine(dir, "ntp", "final"), ["ra3"] = Path.Combine(dir, "ra3", "final") };
            Stage($"seed-{i}/eval", timings, () =>
            {
                foreach (var (name, model) in models)
                {
                    Evaluate(model, problems, Path.Combine(dir, $"eval-{name}.json"), seed);
                }
            });
            foreach (var (name, model) in i <= s.RlvrSeeds ? models : [])
            {
                Stage($"seed-{i}/rlvr-{name}", timings, () => new RlvrTrainer(Rlvr(model, Path.Combine(dir, $"rlvr-{name}"), train, heldOut, seed), log, interactive, world).Run());
            }
        }

        timings["total_s"] = clock.Elapsed.TotalSeconds;
        var m = ModelConfig.Load(Path.Combine(pretrained, "config.json"));
        string modelLine = string.Create(CultureInfo.InvariantCulture, $"{m.ParameterCount / 1e6:0.00}M-parameter {m.ModelType} (C {m.Hidden}, {m.Layers} layers, {Tokenizer} tokenizer)");
        string ranks = parallel.Size > 1 ? string.Create(CultureInfo.InvariantCulture, $", {parallel.Size} data-parallel ranks") : string.Empty;
        string report = Path.Combine(s.Out, "report.md");
        parallel.RootWrites(() =>
        {
            AtomicFile.WriteAllText(Path.Combine(s.Out, "timings.json"), timings.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            report = DemoReport.Write(s.Out, string.Create(CultureInfo.InvariantCulture, $"Procedural task family; model: {modelLine}, pre-trained {s.PretrainSteps} steps; mid-training: {s.Traces} traces, {s.Midtrain.Rounds} rounds of {s.Midtrain.MStepSteps} M-step steps × {s.Midtrain.MStepBatch} × {s.Midtrain.MStepSequenceLength} tokens, c = {s.Midtrain.ThinkCost:G3}, k = {s.Midtrain.Horizon}, G = {s.Midtrain.Group}; evaluation: {s.HeldOutProblems} held-out problems × {s.Samples} samples; RLVR: {s.Rlvr.Steps} steps (G = {s.Rlvr.Group}) from each model of the first {s.RlvrSeeds} seed(s). Wall time of this run: {clock.Elapsed.TotalMinutes:0.0} min ({s.Backend} backend{ranks})."));
        });
        log.WriteLine($"report: {Path.GetFullPath(report)}");
        return report;
    }

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
        EvalLimit = settings.HeldOutProblems,
        Seed = seed,
        Backend = settings.Backend,
        Parallel = settings.Parallel,
    };

    /// <summary>Held-out pass@1 and pass@5 of a model (n samples per problem at temperature 0.8), written to <paramref name="path"/> unless it exists.</summary>
    private void Evaluate(string model, IReadOnlyList<Problem> problems, string path, ulong seed)
    {
        if (File.Exists(path))
        {
            return;
        }

        using var backend = BackendChoice.Create(settings.Backend);
        using var parallel = DataParallel.Join(world ?? Communicator.Single, backend, settings.Parallel);
        using var transformer = Scorer.LoadModel(model, backend);
        var tokenizer = TokenizerLoader.Load(Tokenizer);
        using var sandbox = Sandbox.Sandbox.Create(settings.Rlvr.SampleLimits());
        using var pool = new SandboxPool(sandbox);
        int[] ks = [1, settings.Samples];
        EvalReport report;
        try
        {
            report = new Evaluator(pool).EvaluateModelAsync(new Generator(transformer, tokenizer), tokenizer, problems, settings.Samples, ks, new SamplingOptions { Temperature = 0.8f, TopP = 0.95f, MaxNewTokens = 320, Seed = seed }, StopSignal.Token, parallel).GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) when (StopSignal.Requested)
        {
            // An evaluation is short next to the stages around it: it starts again on resume.
            throw new StoppedBySignalException($"stopped by {StopSignal.Name} while evaluating {model} (held out; that evaluation starts again, the finished stages are kept)", "ra3 demo");
        }

        var score = report.Scores[0];
        var summary = new JsonObject { ["model"] = model, ["problems"] = problems.Count, ["samples"] = settings.Samples, ["pass_at_1"] = score.PassAtK[1], [$"pass_at_{settings.Samples}"] = score.PassAtK[settings.Samples] };
        foreach (var (outcome, count) in report.OutcomeCounts)
        {
            summary[outcome] = count;
        }

        parallel.RootWrites(() => AtomicFile.WriteAllText(path, summary.ToJsonString()));
        log.WriteLine($"{model}: held-out pass@1 {score.PassAtK[1]:P1}, pass@{settings.Samples} {score.PassAtK[settings.Samples]:P1}");
    }

    private void Stage(string name, JsonObject timings, Action run)
    {
        var clock = Stopwatch.StartNew();
        log.WriteLine($"== {name}");
        run();
        timings[name] = Math.Round(clock.Elapsed.TotalSeconds, 1);
    }
}
