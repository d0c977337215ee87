using RA3.Kernels.Tensors;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using RA3.Kernels.Ops;
using RA3.Model.Config;
using RA3.Model.IO;
using RA3.Model.Optim;
using RA3.Model.Tokenizers;
using RA3.Model;
using RA3.Kernels.Distributed;
using RA3.Train.Data;
using RA3.Train.Distributed;
using RA3.Train.Runs;

namespace RA3.Train.Pretraining;

/// <summary>Summary of a finished (or stopped) run.</summary>
/// <param name="Steps">Last step taken.</param>
/// <param name="TrainLoss">Loss of the last step.</param>
/// <param name="ValidationLoss">Last validation loss (NaN if none ran).</param>
/// <param name="TokensPerSecond">Training throughput of this process.</param>
/// <param name="FinalModel">Folder of the final Hugging Face model, when the run reached its last step.</param>
public sealed record PretrainResult(int Steps, double TrainLoss, double ValidationLoss, double TokensPerSecond, string? FinalModel)
{
    /// <summary>Whether the run was already complete when this process started (the figures are the run's last, from its metrics).</summary>
    public bool AlreadyComplete { get; init; }
}

/// <summary>
/// Next-token pre-training: packed corpus, AdamW with warmup and cosine decay, gradient
/// accumulation and clipping, periodic validation, atomic checkpoints, exact resume, metrics as
/// jsonl (one object per step; validation steps add <c>val_loss</c>).
/// <para>
/// Among the ranks of <paramref name="world"/> (mpirun) it is data-parallel: <c>--batch</c> stays
/// the global micro-batch, every rank reads the same global batches in the same order and trains
/// on its contiguous share of each, its gradient weighted by its share of the sequences; the
/// ranks sum the gradients before clipping and AdamW, validate on their shares of the validation
/// sequences, and rank 0 writes the metrics, checkpoints and final model. The weights are those of
/// one process with the same batch but for the order in which the gradient's terms are summed.
/// </para>
/// </summary>
public sealed class Pretrainer(PretrainSettings settings, TextWriter log, bool interactive, Communicator? world = null)
{
    /// <summary>Runs (or resumes, when the run folder has a checkpoint and <paramref name="resume"/> is set) the training.</summary>
    public PretrainResult Run(bool resume)
    {
        var s = settings;
        Declared.Validate(s);
        var tokenizer = TokenizerLoader.Load(s.Tokenizer);
        string data = s.Data ?? StdlibCorpus.Ensure(Path.Combine(s.Out, "..", "cache", "python-stdlib-functions.jsonl"));
        using var dataset = PackedDataset.Open(data, tokenizer, s.SequenceLength, s.Seed);
        log.WriteLine($"corpus {data}: {dataset.Documents:N0} documents, {dataset.TrainTokens:N0} train / {dataset.ValidationTokens:N0} validation tokens ({tokenizer.Name})");

        using var backend = BackendChoice.Create(s.Backend);
        using var parallel = DataParallel.Join(world ?? Communicator.Single, backend, s.Parallel);
        KernelChoices.Pin(s.Out, log.WriteLine, parallel);
        if (s.BatchSize < parallel.Size)
        {
            throw new SettingsException("batch", $"{s.BatchSize} sequences per micro-batch cannot be divided among {parallel.Size} ranks: give each at least one");
        }

        var (first, count) = parallel.Share(s.BatchSize);
        var dtype = WeightStorage.Parse(s.DType);
        using var model = s.Init is null
            ? new Transformer(backend, FreshConfig(s, tokenizer), trainable: true, dtype ?? DType.Float32)
            : HuggingFaceCheckpoint.Load(s.Init, backend, trainable: true, dtype);
        model.RecomputeActivations = s.Recompute;
        if (model.Config.VocabSize < tokenizer.VocabSize)
        {
            throw new InvalidDataException($"the model's vocabulary ({model.Config.VocabSize}) is smaller than the tokenizer's ({tokenizer.VocabSize})");
        }

        using var optimizer = parallel.Optimizer(model, s.WeightDecay, s.DecayAll);
        var schedule = new LearningRateSchedule(s.LearningRate, s.Warmup, s.Steps, s.MinLearningRateRatio);
        int step = 0;
        string metricsPath = Path.Combine(s.Out, "metrics.jsonl");
        if (resume && TrainingCheckpoint.LoadNewestIntact(s.Out, model, optimizer, s.Identity(), log.WriteLine) is var (latest, state))
        {
            step = state.Step;
            dataset.Seek(DataPosition.Parse(state.DataPosition));
            parallel.RootWrites(() => TruncateMetrics(metricsPath, step));
            log.WriteLine($"resumed from {latest} at step {step}");
        }
        else
        {
            if (s.Init is null)
            {
                model.InitializeRandom(s.Seed);
            }

            parallel.RootWrites(() =>
            {
                Directory.CreateDirectory(s.Out);
                File.WriteAllText(metricsPath, string.Empty);
            });
        }

        parallel.RootWrites(() => Declared.Save(s, s.Out));  // after the resume check: a refused resume leaves the run's own config
        if (step >= s.Steps)
        {
            // Resuming a finished run: nothing to train; its figures are the last ones it logged.
            var last = LastFigures(metricsPath);
            log.WriteLine($"the run in {s.Out} is complete ({step} of {s.Steps} steps); its final model is {Path.Combine(s.Out, "final")}");
            return new PretrainResult(step, last.Loss, last.Validation, last.TokensPerSecond, Path.Combine(s.Out, "final")) { AlreadyComplete = true };
        }

        log.WriteLine($"model {model.Config.ModelType}: {model.Config.ParameterCount:N0} parameters, {model.Config.Layers} layers, width {model.Config.Hidden}; backend {backend.Name}; {s.Steps} steps of {s.BatchSize}×{s.Accumulation}×{s.SequenceLength} tokens{(Launch.ByMpirun ? $"; data-parallel: {parallel.Group.Description}{(parallel.ShardOptimizer ? ", optimizer state sharded (ZeRO-1)" : string.Empty)}" : string.Empty)}");
        using var plan = model.Plan(count, s.SequenceLength, PassKind.Train);
        using var metrics = parallel.IsRoot ? new StreamWriter(metricsPath, append: true) : StreamWriter.Null;
        var ids = new int[s.BatchSize * s.SequenceLength];  // the global micro-batch; this rank trains on its share
        float share = (float)count / s.BatchSize;
        var progress = new Progress(log, s.Steps, step, interactive);
        double loss = double.NaN, validation = double.NaN;
        int stopAt = s.StopAfter > 0 ? Math.Min(s.Steps, step + s.StopAfter) : s.Steps;
        var guard = new NonFiniteGuard(s.SkipNonFinite, () => TrainingCheckpoint.Latest(s.Out), log);
        while (step < stopAt)
        {
            step++;
            backend.Zero(model.Gradients!.Buffer);
            loss = 0;
            for (int micro = 0; micro < s.Accumulation; micro++)
            {
                dataset.NextBatch(ids);
                plan.SetBatch(ids.AsSpan(first * s.SequenceLength, count * s.SequenceLength));
                loss += model.Forward(plan) * ((double)count / s.BatchSize) / s.Accumulation;
                model.Backward(plan, share / s.Accumulation);
            }

            // The ranks' weighted gradients and losses summed: the global batch's; a stop signal seen by any rank stops all at this step.
            parallel.Group.AllReduceSum(model.Gradients.Buffer);
            Span<double> figures = [loss, StopSignal.Requested ? 1 : 0];
            parallel.Sum(figures);
            loss = figures[0];
            bool stop = figures[1] > 0;
            double norm = s.Clip > 0 ? backend.ClipGradNorm(model.Gradients.Buffer, s.Clip) : Math.Sqrt(backend.SumOfSquares(model.Gradients.Buffer));
            float lr = schedule.At(step);
            bool applied = guard.Admit(step, loss, norm);
            if (applied)
            {
                optimizer.Step(lr, step);
            }

            var record = new JsonObject
            {
                ["step"] = step,
                ["loss"] = NonFiniteGuard.Metric(loss),
                ["lr"] = lr,
                ["grad_norm"] = NonFiniteGuard.Metric(norm),
                ["tokens"] = (long)step * ids.Length * s.Accumulation,
            };
            string extra = string.Empty;
            if (!applied)
            {
                record["skipped"] = true;
            }

            if (step % s.EvalEvery == 0 || step == s.Steps)
            {
                validation = ValidationLoss(model, dataset, s, parallel);
                if (double.IsFinite(validation))
                {
                    // A corpus too small for a validation sequence has none (JSON has no NaN).
                    record["val_loss"] = validation;
                    extra = $"  val {validation:F4}";
                }
            }

            // This step's tokens counted first: the rate is the run's so far, this step included.
            progress.Step(step, loss, ids.Length * s.Accumulation, extra);
            record["tokens_per_s"] = Math.Round(progress.TokensPerSecond);
            metrics.WriteLine(record.ToJsonString());
            if (step % s.SaveEvery == 0 || step == s.Steps || step == stopAt || stop)
            {
                metrics.Flush();
                string dir = TrainingCheckpoint.Save(s.Out, model, optimizer, new TrainingState(step, dataset.Position.ToString(), s.Identity()), s.Keep);
                progress.Message($"checkpoint {dir}");
                if (stop && step < s.Steps)
                {
                    throw new StoppedBySignalException($"stopped by {StopSignal.Name} at step {step} of {s.Steps} after writing {dir}", $"ra3 pretrain --config {Path.Combine(s.Out, Declared.ConfigFileName)} --resume");
                }
            }
        }

        string? final = null;
        if (step == s.Steps)
        {
            final = Path.Combine(s.Out, "final");
            var stored = WeightStorage.Parse(s.SaveDType, "save-dtype") ?? (s.Init is null ? model.Weights.DType : HuggingFaceCheckpoint.StoredDType(s.Init));
            parallel.RootWrites(() => HuggingFaceCheckpoint.Save(model, final, dtype: stored));
            log.WriteLine($"final model (Hugging Face layout) in {final}");
        }

        return new PretrainResult(step, loss, validation, progress.TokensPerSecond, final);
    }

    /// <summary>The model config of a fresh run: vocabulary rounded up to a multiple of 64.</summary>
    public static ModelConfig FreshConfig(PretrainSettings s, TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(s);
        ArgumentNullException.ThrowIfNull(tokenizer);
        int vocab = (tokenizer.VocabSize + 63) / 64 * 64;
        var eos = tokenizer.EndOfText is int e ? new[] { e } : [];
        return s.Family switch
        {
            "gpt2" => ModelConfig.Gpt2(vocab, s.Hidden, s.Layers, s.Heads, s.SequenceLength) with { EosTokenIds = eos },
            "llama" => ModelConfig.Llama(vocab, s.Hidden, s.Layers, s.Heads, s.KvHeads, s.Intermediate, s.SequenceLength) with { EosTokenIds = eos },
            _ => throw new SettingsException("family", $"'{s.Family}' is not gpt2 or llama"),
        };
    }

    /// <summary>Mean next-token loss over the first validation sequences (the same ones every time), each rank scoring its share.</summary>
    private static double ValidationLoss(Transformer model, PackedDataset data, PretrainSettings s, DataParallel parallel)
    {
        int count = Math.Min(s.EvalSequences, data.ValidationSequences);
        if (count == 0)
        {
            return double.NaN;
        }

        var (first, mine) = parallel.Share(count);
        using var plan = model.Plan(1, s.SequenceLength, PassKind.Score);
        Span<double> sum = [0];
        var ids = new int[s.SequenceLength];
        for (int i = first; i < first + mine; i++)
        {
            data.ValidationSequence(i, ids);
            plan.SetBatch(ids);
            sum[0] += model.Forward(plan);
        }

        parallel.Sum(sum);
        return sum[0] / count;
    }

    /// <summary>The last train loss, validation loss and throughput a run's metrics.jsonl records (NaN where none).</summary>
    internal static (double Loss, double Validation, double TokensPerSecond) LastFigures(string path)
    {
        double loss = double.NaN, validation = double.NaN, rate = double.NaN;
        foreach (string line in File.Exists(path) ? File.ReadLines(path) : [])
        {
            if (JsonNode.Parse(line) is JsonObject record)
            {
                loss = record["loss"]?.GetValue<double>() ?? loss;
                validation = record["val_loss"]?.GetValue<double>() ?? validation;
                rate = record["tokens_per_s"]?.GetValue<double>() ?? rate;
            }
        }

        return (loss, validation, rate);
    }

    /// <summary>Drops metric lines of steps after <paramref name="step"/> (written after the checkpoint a resume starts from).</summary>
    internal static void TruncateMetrics(string path, int step)
    {
        if (!File.Exists(path))
        {
            return;
        }

        var kept = File.ReadLines(path).Where(l => StepOf(l) <= step).ToList();
        AtomicFile.WriteAllText(path, string.Concat(kept.Select(l => l + "\n")));
    }

    // The step a metrics line records; null for a line a kill cut short (only the last can be).
    private static int? StepOf(string line)
    {
        try
        {
            return line.Length > 0 ? JsonNode.Parse(line)?["step"]?.GetValue<int>() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
