using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.Json;
using RA3.Kernels.Distributed;
using RA3.Kernels.Ops;
using RA3.Model.IO;
using RA3.Model.Inference;
using RA3.Model.Scoring;
using RA3.Model.Tokenizers;
using RA3.Model;
using RA3.Train.Data;
using RA3.Train.Distributed;
using RA3.Train.Pretraining;
using RA3.Train.Runs;
using RA3.Train.Sandbox;

namespace RA3.Train.Midtraining;

/// <summary>
/// The EM loop of RA3 (spec §3) and its NTP baseline, as a resumable run. Each round r writes
/// <c>round-r/</c>: for RA3 the E-step's rollout policy and candidates (<c>estep/</c>; the policy
/// starts from the round's model θ_r and is kept only for inspection; the E-step checkpoints itself
/// there while it runs), the temporal-ELBO inference
/// and the bootstrapped corpus (<c>inference.json</c>, <c>kept.json</c>, <c>corpus.jsonl</c>), then the
/// M-step — a next-token run from θ_r on that corpus (<c>mstep/</c>, checkpointed and resumable like
/// any pre-training run), whose final model is θ_{r+1} — and <c>summary.json</c>; NTP runs the same
/// M-step budget on the raw traces.
/// Every phase's output is written atomically and skipped when present, and every phase is
/// deterministic under the run's seed, so a run killed anywhere resumes to the result the
/// uninterrupted run would have had. <c>metrics.jsonl</c> holds one line per finished round.
/// <para>
/// Among the ranks of <paramref name="world"/> (mpirun) the E-step's rollouts and the candidate
/// scoring are split by trace and gathered in trace order, the M-step is a data-parallel
/// pre-training run, and rank 0 writes every phase's output (the others wait for it, then read
/// it back as a resumed run does) and computes the figures only the summary needs.
/// </para>
/// </summary>
public sealed class Midtrainer(MidtrainSettings settings, TextWriter log, bool interactive, Communicator? world = null)
{
    /// <summary>Runs (or resumes) every round; returns the round summaries.</summary>
    public IReadOnlyList<JsonObject> Run()
    {
        Declared.Validate(settings);
        var tokenizer = TokenizerLoader.Load(settings.Tokenizer);

        // Sizes left at 0 were chosen in bytes: scale them by this tokenizer's bytes per token on these traces.
        var all = TraceSet.Load(settings.Data, int.MaxValue, settings.Seed);
        double bytesPerToken = ByteScaledDefaults.BytesPerToken(tokenizer, all.Train.Select(t => t.Render()));
        settings = ByteScaledDefaults.Resolve(settings, bytesPerToken);
        var s = settings;
        using var backend = BackendChoice.Create(s.Backend);
        using var parallel = DataParallel.Join(world ?? Communicator.Single, backend, s.Parallel);
        parallel.RootWrites(() =>
        {
            RunFolder.Claim(s.Out, s.Identity());
            Declared.Save(s, s.Out);
        });
        KernelChoices.Pin(s.Out, log.WriteLine, parallel);
        var traces = all.Within(s.MaxLines);
        if (traces.Train.Count == 0)
        {
            throw new InvalidDataException($"{s.Data}: no traces of 2 to {s.MaxLines} lines");
        }

        log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{tokenizer.Name}: {bytesPerToken:0.00} bytes per token on these traces; latent_max_tokens {s.LatentMaxTokens}, M-step sequences of {s.MStepSequenceLength} tokens, traces of at most {s.MaxLines} lines"));

        log.WriteLine($"{s.Method}: {traces.Train.Count} training traces ({traces.Train.Sum(t => t.Count)} lines), {traces.HeldOut.Count} held out; {s.Rounds} rounds of {s.MStepSteps} M-step steps × {s.MStepBatch} × {s.MStepSequenceLength} tokens");
        using var sandbox = Sandbox.Sandbox.Create(new SandboxLimits { WallTime = TimeSpan.FromSeconds(20), CpuSeconds = 10 });  // ast.parse of whole traces
        using var pool = new SandboxPool(sandbox);
        var summaries = new List<JsonObject>();
        string start = ResolveInit(s.Init);
        for (int round = 1; round <= s.Rounds; round++)
        {
            string dir = Path.Combine(s.Out, $"round-{round}");
            string summaryPath = Path.Combine(dir, "summary.json");
            if (!File.Exists(summaryPath))
            {
                parallel.RootWrites(() => Directory.CreateDirectory(dir));
                var summary = s.Method == "ra3" ? Ra3Round(round, dir, start, traces, tokenizer, backend, pool, parallel) : NtpRound(round, dir, start, traces, tokenizer, parallel);
                string from = start;
                parallel.RootWrites(() =>
                {
                    summary["code_ce_heldout"] = Num(HeldOutCodeLoss(Path.Combine(dir, "mstep", "final"), traces, tokenizer, backend));
                    if (round == 1)
                    {
                        summary["code_ce_heldout_init"] = Num(HeldOutCodeLoss(from, traces, tokenizer, backend));
                    }

                    AtomicFile.WriteAllText(summaryPath, summary.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                });
            }

            var done = JsonFile.ReadObject(summaryPath);
            summaries.Add(done);
            parallel.RootWrites(() => AtomicFile.WriteAllText(Path.Combine(s.Out, "metrics.jsonl"), string.Concat(summaries.Select(x => x.ToJsonString() + "\n"))));
            log.WriteLine($"round {round}: {string.Join(", ", done.Where(kv => kv.Value is null or JsonValue).Select(kv => $"{kv.Key} {(kv.Value is null ? "n/a" : Format(kv.Value))}"))}");
            start = Path.Combine(dir, "mstep", "final");
        }

        string final = Path.Combine(s.Out, "final");
        if (!HuggingFaceCheckpoint.IsModelFolder(final))
        {
            parallel.RootWrites(() => CopyFolder(start, final));
        }

        log.WriteLine($"final model in {final}; metrics in {Path.Combine(s.Out, "metrics.jsonl")}");
        return summaries;
    }

    /// <summary>The model folder a spec names: a Hugging Face folder, or a run folder's <c>final/</c> or latest checkpoint.</summary>
    public static string ResolveInit(string init)
    {
        ArgumentNullException.ThrowIfNull(init);
        if (HuggingFaceCheckpoint.IsModelFolder(init))
        {
            return init;
        }

        string final = Path.Combine(init, "final");
        return HuggingFaceCheckpoint.IsModelFolder(final) ? final
            : TrainingCheckpoint.Latest(init) ?? throw new FileNotFoundException($"{init}: not a model folder (config.json + model.safetensors) nor a run folder with a final model or checkpoints");
    }

    private JsonObject Ra3Round(int round, string dir, string start, TraceSet traces, TextTokenizer tokenizer, Backend backend, SandboxPool pool, DataParallel parallel)
    {
        var s = settings;
        var summary = new JsonObject { ["round"] = round, ["method"] = "ra3" };

        // E-step: RL on the rollouts; the policy moves, the scorer is the round's starting model.
        string estep = Path.Combine(dir, "estep"), candidatesPath = Path.Combine(estep, "candidates.json");
        if (!File.Exists(candidatesPath))
        {
            using var policy = HuggingFaceCheckpoint.Load(start, backend, trainable: true, WeightStorage.Parse(s.DType));
            policy.RecomputeActivations = s.Recompute;
            using var scorer = HuggingFaceCheckpoint.Load(start, backend, dtype: WeightStorage.Parse(s.DType));
            int steps = EStep.Steps(traces.Train.Count, s.EStep());
            var progress = new Progress(log, steps, 0, interactive, every: 5);
            // The E-step checkpoints itself under estep/ (policy, moments, best-candidate tables):
            // a kill, a stop signal or a divergence there loses at most --estep-save-every updates.
            var checkpoints = new EStepCheckpoints(estep, s.EStepSaveEvery, s.Identity() + $"/round {round}", log.WriteLine);
            var guard = new NonFiniteGuard(0, () => TrainingCheckpoint.Latest(estep), log);
            var estepRun = new EStep(policy, scorer, tokenizer, s.EStep(), guard, parallel);
            var result = estepRun.Run(
                traces.Train,
                s.Seed + (ulong)round,
                p =>
                {
                    progress.Step(p.Step, -p.MeanReward, 0, $"  think {p.ThinkRate:P0}  kl {p.Update.MeanKl:F4}  (loss column: −reward)");
                    if (estepRun.Stopping && p.Step < steps)
                    {
                        // The E-step wrote its checkpoint at this update: stop here, within a scheduler's grace period.
                        throw new StoppedBySignalException($"stopped by {StopSignal.Name} in round {round}'s E-step after update {p.Step} of {steps}, after writing {TrainingCheckpoint.Latest(estep)}", $"ra3 midtrain --config {Path.Combine(s.Out, Declared.ConfigFileName)}");
                    }
                },
                checkpoints);
            parallel.RootWrites(() =>
            {
                Directory.CreateDirectory(estep);
                string modelTemp = Path.Combine(estep, ".model.tmp"), model = Path.Combine(estep, "model");
                DeleteIfPresent(modelTemp);
                HuggingFaceCheckpoint.Save(policy, modelTemp);
                DeleteIfPresent(model);
                Directory.Move(modelTemp, model);
                AtomicFile.WriteAllText(Path.Combine(estep, "metrics.jsonl"), string.Concat(result.Progress.Select(p => JsonSerializer.Serialize(p) + "\n")));
                var stats = new JsonObject
                {
                    ["reward"] = Num(result.Progress.Count > 0 ? result.Progress.Average(p => p.MeanReward) : double.NaN),
                    ["rollout_think_rate"] = result.Progress.Count > 0 ? result.Progress.Average(p => p.ThinkRate) : 0,
                    ["rollout_tokens_per_s"] = result.RolloutTokens / Math.Max(result.RolloutSeconds, 1e-9),
                };
                AtomicFile.WriteAllText(Path.Combine(estep, "stats.json"), stats.ToJsonString());
                AtomicFile.WriteAllText(candidatesPath, JsonSerializer.Serialize(result.Candidates));
                DeleteIfPresent(Path.Combine(estep, "checkpoints"));  // the phase is done: its own checkpoints are not needed again
            });
        }

        foreach (var kv in JsonFile.ReadObject(Path.Combine(estep, "stats.json")))
        {
            summary[kv.Key] = kv.Value?.DeepClone();
        }

        var candidates = JsonSerializer.Deserialize<string[][][]>(File.ReadAllText(candidatesPath)) ?? throw new InvalidDataException($"{candidatesPath}: not a list of candidate lists");
        if (candidates.Length != traces.Train.Count)
        {
            throw new InvalidDataException($"{candidatesPath}: {candidates.Length} traces of candidates, the run has {traces.Train.Count}");
        }

        // Temporal-ELBO inference with the scorer: log Z, think posteriors and the kept rationales.
        string corpus = Path.Combine(dir, "corpus.jsonl"), inferencePath = Path.Combine(dir, "inference.json"), keptPath = Path.Combine(dir, "kept.json");
        if (!File.Exists(inferencePath))
        {
            using var scorer = HuggingFaceCheckpoint.Load(start, backend, dtype: WeightStorage.Parse(s.DType));
            var inference = Infer(scorer, tokenizer, backend, traces.Train, candidates, sweep: true, parallel);
            var kept = traces.Train.Select((_, i) => inference.Segmentations[i].KeptRationales(candidates[i])).ToList();

            // Every bootstrapped trace must be its bare program with comments added: one whose syntax
            // tree changed (a comment inside a string) or that no longer parses keeps no rationale.
            parallel.RootWrites(() =>
            {
                var checks = SyntaxCheck.CompareAsync(pool, [.. traces.Train.Select((t, i) => (t.Render(), t.Render(kept[i])))]).GetAwaiter().GetResult();
                int dropped = 0;
                for (int i = 0; i < kept.Count; i++)
                {
                    if (checks[i] is ProgramCheck.Changed or ProgramCheck.Unparsable && kept[i].Count > 0)
                    {
                        kept[i] = new Dictionary<int, string>();
                        dropped++;
                    }
                }

                WriteCorpus(corpus, [.. traces.Train.Select((t, i) => t.Render(kept[i]))]);
                AtomicFile.WriteAllText(keptPath, JsonSerializer.Serialize(kept));
                inference.Summary["program_same_rate"] = checks.Count(c => c == ProgramCheck.Same) / (double)Math.Max(1, checks.Length);
                inference.Summary["program_unchecked"] = checks.Count(c => c == ProgramCheck.Unchecked);
                inference.Summary["traces_dropped_by_check"] = dropped;
                AtomicFile.WriteAllText(inferencePath, inference.Summary.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            });
        }

        foreach (var kv in JsonFile.ReadObject(inferencePath))
        {
            summary[kv.Key] = kv.Value?.DeepClone();
        }

        // The M-step trains the M-step model θ_r (spec §3): the E-step's rollout policy only proposes
        // rationales; its RL drift stays out of the model that is fine-tuned.
        var mstep = MStep(round, dir, start, corpus, tokenizer, parallel);
        summary["mstep_tokens"] = mstep.Tokens;
        summary["mstep_tokens_per_s"] = mstep.TokensPerSecond;
        summary["mstep_loss"] = Num(mstep.TrainLoss);

        // The same candidates under the M-step's model: what the round did to the ELBO of its traces.
        using (var after = HuggingFaceCheckpoint.Load(Path.Combine(dir, "mstep", "final"), backend, dtype: WeightStorage.Parse(s.DType)))
        {
            summary["log_z_after_mstep"] = Infer(after, tokenizer, backend, traces.Train, candidates, sweep: false, parallel).Summary["log_z"]!.DeepClone();

            // The M-step's own loss split (spec §3): code tokens apart from rationale tokens, on
            // bootstrapped training traces; a figure of the summary only, which rank 0 writes.
            if (parallel.IsRoot)
            {
                var kept = JsonSerializer.Deserialize<Dictionary<int, string>[]>(File.ReadAllText(keptPath)) ?? throw new InvalidDataException($"{keptPath}: not a list of kept rationales");
                var split = CodeTokenLoss.Measure(after, tokenizer, traces.Train.Take(32).Select((t, i) => (t, (IReadOnlyDictionary<int, string>?)kept[i])));
                summary["mstep_code_ce"] = Num(split.Code);
                summary["mstep_rationale_ce"] = Num(split.Rationale);
            }
        }

        return summary;
    }

    private JsonObject NtpRound(int round, string dir, string start, TraceSet traces, TextTokenizer tokenizer, DataParallel parallel)
    {
        string corpus = Path.Combine(dir, "corpus.jsonl");
        if (!File.Exists(corpus))
        {
            parallel.RootWrites(() => WriteCorpus(corpus, [.. traces.Train.Select(t => t.Render())]));
        }

        var mstep = MStep(round, dir, start, corpus, tokenizer, parallel);
        return new JsonObject
        {
            ["round"] = round,
            ["method"] = "ntp",
            ["mstep_tokens"] = mstep.Tokens,
            ["mstep_tokens_per_s"] = mstep.TokensPerSecond,
            ["mstep_loss"] = Num(mstep.TrainLoss),
        };
    }

    /// <summary>Costs c of the sweep that shows how the think rate and the abstractions' length follow c (same candidates, same scores).</summary>
    public static readonly double[] CostSweep = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0];

    /// <summary>
    /// The round's inference figures over <paramref name="traces"/> with their candidates (K per
    /// boundary), under <paramref name="model"/>: log Z — the DP's log-sum over segmentations of
    /// prior × likelihood, which carries log α per line and c per rationale, so a score of the
    /// segmentations, not a bound on log p(x); next to it the figures comparable with a model's
    /// log-likelihood of the code: the log-marginal bound log Σ_z p(x, z) over the candidate
    /// comments (the model's own probabilities, the comments' included, no prior; see
    /// <see cref="SegmentationInference.LogMarginalBound"/>) and the bare code's log-likelihood (its
    /// z = none term), per line. With <paramref name="sweep"/>, also the MAP segmentation's think rate
    /// and lines per abstraction for each c of <see cref="CostSweep"/> (scoring once, inferring per c).
    /// </summary>
    private (Segmentation[] Segmentations, JsonObject Summary) Infer(Transformer model, TextTokenizer tokenizer, Backend backend, IReadOnlyList<Trace> traces, string[][][] candidates, bool sweep, DataParallel parallel)
    {
        // Each rank scores its share of the traces; all gather the scores in trace order and infer alike.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (first, count) = parallel.Share(traces.Count);
        var scores = parallel.Gather(
            [.. traces.Skip(first).Take(count).Select((t, i) => CandidateScorer.Score(model, tokenizer, t, candidates[first + i]))],
            (w, x) =>
            {
                Write(w, x.DecisionFree);
                Write(w, x.Joint);
                w.Write(x.Tokens);
            },
            r => new CandidateScores(Read(r), Read(r), r.ReadInt64()));
        double scoringSeconds = clock.Elapsed.TotalSeconds;
        var scored = scores.Select(x => settings.RationaleLogProb ? x.Joint : x.DecisionFree).ToList();
        var segmentations = SegmentationInference.Infer(backend, scored, settings.Elbo());
        var bound = SegmentationInference.LogMarginalBound(backend, [.. scores.Select(x => x.Joint)]);
        long lines = traces.Sum(t => (long)t.Count);
        double bare = scores.Sum(x => x.Joint.Seg.Take(x.Joint.Lines).Sum(v => (double)v));
        var summary = new JsonObject
        {
            ["log_z"] = Num(segmentations.Average(x => x.LogZ)),
            ["log_z_per_line"] = Num(segmentations.Sum(x => x.LogZ) / lines),
            ["log_marginal_bound_per_line"] = Num(bound.Sum() / lines),
            ["log_likelihood_bare_per_line"] = Num(bare / lines),
            ["posterior_think"] = segmentations.Sum(x => x.ThinkPosterior.Sum(p => (double)p)) / lines,
            ["candidate_rate"] = candidates.Sum(c => c.Count(x => x.Length > 0)) / (double)lines,
            ["candidates_per_boundary"] = Num(candidates.Sum(c => c.Sum(x => x.Length)) / (double)Math.Max(1, candidates.Sum(c => c.Count(x => x.Length > 0)))),
            ["candidate_scoring_tokens_per_s"] = scores.Sum(x => x.Tokens) / Math.Max(scoringSeconds, 1e-9),
        };
        foreach (var kv in Abstractions(segmentations, traces))
        {
            summary[kv.Key] = kv.Value?.DeepClone();
        }

        if (sweep)
        {
            var points = new JsonArray();
            foreach (double c in CostSweep)
            {
                var point = Abstractions(SegmentationInference.Infer(backend, scored, settings.Elbo() with { ThinkCost = c }), traces);
                point["c"] = c;
                points.Add(point);
            }

            summary["c_sweep"] = points;
        }

        return (segmentations, summary);

        static void Write(BinaryWriter w, ScoredTrace x)
        {
            w.WriteArray(x.Seg);
            w.WriteArray(x.RationaleLogProbs);
            w.Write(x.Lines);
            w.Write(x.Candidates);
        }

        static ScoredTrace Read(BinaryReader r) => new(r.ReadArray<float>(), r.ReadArray<float>(), r.ReadInt32(), r.ReadInt32());
    }

    // Think rate of the MAP segmentations, rationales kept, and mean lines per abstraction (lines from a kept rationale to the next or the end).
    private static JsonObject Abstractions(Segmentation[] segmentations, IReadOnlyList<Trace> traces)
    {
        long lines = traces.Sum(t => (long)t.Count), kept = segmentations.Sum(x => (long)x.KeptBoundaries.Count), covered = 0;
        foreach (var (seg, trace) in segmentations.Zip(traces))
        {
            covered += seg.KeptBoundaries.Count > 0 ? trace.Count - seg.KeptBoundaries[0] + 1 : 0;
        }

        return new JsonObject
        {
            ["think_rate"] = kept / (double)lines,
            ["rationales_kept"] = kept,
            ["lines_per_abstraction"] = Num(kept > 0 ? covered / (double)kept : double.NaN),
        };
    }

    private (long Tokens, double TokensPerSecond, double TrainLoss) MStep(int round, string dir, string init, string corpus, TextTokenizer tokenizer, DataParallel parallel)
    {
        var s = settings;

        // The M-step reads its corpus as token shards (memory-mapped), the way a corpus of any size is read.
        string shards = Path.Combine(dir, "corpus-tokens");
        var p = new PretrainSettings
        {
            Data = shards,
            Out = Path.Combine(dir, "mstep"),
            Tokenizer = s.Tokenizer,
            Init = init,
            SequenceLength = s.MStepSequenceLength,
            BatchSize = s.MStepBatch,
            Steps = s.MStepSteps,
            LearningRate = s.MStepLearningRate,
            Warmup = Math.Max(1, s.MStepSteps / 10),
            EvalEvery = s.MStepSteps,
            SaveEvery = Math.Max(1, s.MStepSteps / 4),
            Keep = 1,
            Seed = s.Seed + (ulong)round,
            Backend = s.Backend,
            DType = s.DType,
            SaveDType = s.SaveDType,
            Recompute = s.Recompute,
            Parallel = s.Parallel,
        };
        if (HuggingFaceCheckpoint.IsModelFolder(Path.Combine(p.Out, "final")))
        {
            var last = Pretrainer.LastFigures(Path.Combine(p.Out, "metrics.jsonl"));
            return ((long)p.Steps * p.BatchSize * p.SequenceLength, last.TokensPerSecond, last.Loss);
        }

        parallel.RootWrites(() =>
        {
            if (!TokenShards.IsShardFolder(shards))
            {
                TokenShards.Write(shards, Corpus.Read(corpus), tokenizer);
            }
        });

        log.WriteLine($"M-step of round {round} on {corpus}");
        var result = new Pretrainer(p, log, interactive, world).Run(resume: true);
        return ((long)p.Steps * p.BatchSize * p.SequenceLength, result.TokensPerSecond, result.TrainLoss);
    }

    private static double HeldOutCodeLoss(string modelFolder, TraceSet traces, TextTokenizer tokenizer, Backend backend)
    {
        if (traces.HeldOut.Count == 0)
        {
            return double.NaN;
        }

        using var model = HuggingFaceCheckpoint.Load(modelFolder, backend);
        return CodeTokenLoss.Measure(model, tokenizer, traces.HeldOut.Select(t => (t, (IReadOnlyDictionary<int, string>?)null))).Code;
    }

    private static void WriteCorpus(string path, IReadOnlyList<string> documents) =>
        AtomicFile.WriteAllText(path, string.Concat(documents.Select(d => new JsonObject { ["text"] = d }.ToJsonString() + "\n")));

    private static void DeleteIfPresent(string dir)
    {
        if (Directory.Exists(dir))
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static void CopyFolder(string from, string to)
    {
        string temp = to + ".tmp";
        if (Directory.Exists(temp))
        {
            Directory.Delete(temp, recursive: true);
        }

        Directory.CreateDirectory(temp);
        foreach (string file in Directory.GetFiles(from))
        {
            File.Copy(file, Path.Combine(temp, Path.GetFileName(file)));
        }

        Directory.Move(temp, to);
    }

    /// <summary>A number for a JSON summary: null where it is not finite (no data to measure it on).</summary>
    private static JsonNode? Num(double value) => double.IsFinite(value) ? JsonValue.Create(value) : null;

    private static string Format(JsonNode value) =>
        value.GetValueKind() == JsonValueKind.Number ? value.GetValue<double>().ToString("G4", CultureInfo.InvariantCulture) : value.ToString();
}
