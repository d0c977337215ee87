using System.Text.Json;
using System.Text.Json.Serialization;
using RA3.Train.Distributed;
using RA3.Train.Runs;
using RA3.Train.Sandbox;

namespace RA3.Train.PostTraining;

/// <summary>Everything that defines an RLVR run (spec §6); saved in its checkpoints so a resume continues the same run.</summary>
public sealed record RlvrSettings
{
    /// <summary>Starting (and KL reference) model: a Hugging Face folder or a run folder.</summary>
    [Option("init", "starting (and KL reference) model: Hugging Face folder or run folder", Value = "DIR")]
    public string Init { get; init; } = "runs/midtrain/final";

    /// <summary>Training problems (any format <c>ra3 eval</c> reads, with asserts: MBPP, the plain jsonl, procedural tasks).</summary>
    [Option("problems", "training problems (MBPP, plain jsonl, ra3 tasks)", Value = "FILE")]
    public string Problems { get; init; } = "runs/tasks/train.jsonl";

    /// <summary>Held-out problems for pass@1 (null: none).</summary>
    [Option("eval-problems", "held-out problems for pass@1", Value = "FILE")]
    public string? EvalProblems { get; init; }

    /// <summary>Run folder.</summary>
    [Option("out", "run folder", Value = "DIR")]
    public string Out { get; init; } = "runs/rlvr";

    /// <summary>Tokenizer spec.</summary>
    [Option("tokenizer", "bytes | gpt2 | tokenizer.json | folder", Value = "SPEC")]
    public string Tokenizer { get; init; } = "bytes";

    /// <summary>Updates.</summary>
    [Option("steps", "updates", Min = 1)]
    public int Steps { get; init; } = 40;

    /// <summary>Prompts per update.</summary>
    [Option("prompts", "prompts per update", Min = 1)]
    public int PromptsPerStep { get; init; } = 4;

    /// <summary>G, samples per prompt.</summary>
    [Option("G", "samples per prompt (a group needs a baseline)", Min = 2)]
    public int Group { get; init; } = 4;

    /// <summary>Sampling temperature of the rollouts.</summary>
    [Option("temperature", "sampling temperature", Min = 0)]
    public float Temperature { get; init; } = 1f;

    /// <summary>Most tokens per completion (320 fits the procedural family's longest solution in bytes).</summary>
    [Option("max-new-tokens", "most tokens per completion", Min = 1)]
    public int MaxNewTokens { get; init; } = 320;

    /// <summary>AdamW step size.</summary>
    [Option("lr", "AdamW step size", Min = 0, MinExclusive = true)]
    public float LearningRate { get; init; } = 5e-5f;

    /// <summary>β, KL to the initial model (0: no penalty, and the reference model is not even loaded).</summary>
    [Option("kl", "KL penalty to the initial model (0: none, no reference model)", Min = 0)]
    public double KlCoefficient { get; init; } = 0.02;

    /// <summary>The KL estimator the penalty differentiates (<see cref="Midtraining.KlEstimator"/>).</summary>
    [Option("kl-estimator", "KL estimator of the penalty: k1, k2 or k3", Choices = "k1|k2|k3")]
    public string KlEstimatorName { get; init; } = "k2";

    /// <summary>ε_low of the clipped ratio (a negative advantage stops at 1 − ε_low).</summary>
    [Option("clip", "epsilon (low) of the clipped ratio", Min = 0)]
    public double ClipRange { get; init; } = 0.2;

    /// <summary>ε_high of the clipped ratio (a positive advantage stops at 1 + ε_high); 0: the same as --clip. DAPO's clip-higher uses 0.28.</summary>
    [Option("clip-high", "epsilon (high) of the clipped ratio (0: the same as --clip; DAPO: 0.28)", Min = 0)]
    public double ClipHigh { get; init; }

    /// <summary>Updates per batch of samples (μ; the ratio is 1 on the first, and clips from the second).</summary>
    [Option("epochs", "updates per batch of samples (μ; the ratio clips from the second)", Min = 1)]
    public int Epochs { get; init; } = 1;

    /// <summary>Most completions in one forward and backward pass (<see cref="Midtraining.PolicyGradientOptions.MicroBatch"/>; TRL's per-device batch, with gradient accumulation to the whole batch).</summary>
    [Option("micro-batch", "most completions in one forward and backward pass; their gradients add up to one update (0: all at once)", Min = 0)]
    public int MicroBatch { get; init; } = 4;

    /// <summary>How token losses are averaged (TRL's loss_type): grpo (per sequence, then over sequences), dapo (over all tokens), dr_grpo (a constant: sequences × max-new-tokens).</summary>
    [Option("loss-type", "loss aggregation: grpo (sequence mean), dapo (token mean), dr_grpo (constant normaliser)", Choices = "grpo|dapo|dr_grpo")]
    public string LossType { get; init; } = "grpo";

    /// <summary>Reward scaling of the group-relative advantages (TRL's scale_rewards): by the group's std (GRPO), the batch's, or none (Dr. GRPO).</summary>
    [Option("scale-rewards", "advantages divided by the group's std, the batch's, or none", Choices = "group|batch|none")]
    public string ScaleRewards { get; init; } = "group";

    /// <summary>DAPO's dynamic sampling: groups whose rewards all agree are dropped and more prompts are sampled until the step has its prompts' worth (or the refills run out).</summary>
    [Option("dynamic-sampling", "drop groups whose rewards all agree and sample more prompts in their place")]
    public bool DynamicSampling { get; init; }

    /// <summary>Most extra rounds of prompts one step samples under dynamic sampling.</summary>
    [Option("max-refills", "most extra rounds of prompts per step under dynamic sampling", Min = 0)]
    public int MaxRefills { get; init; } = 3;

    /// <summary>DAPO's soft overlong punishment: the last N tokens before max-new-tokens cost up to --overlong-penalty, linearly (0: off).</summary>
    [Option("overlong-buffer", "tokens before max-new-tokens over which a completion's reward falls linearly by --overlong-penalty (0: off)", Min = 0)]
    public int OverlongBuffer { get; init; }

    /// <summary>Most reward the overlong buffer takes away (at max-new-tokens).</summary>
    [Option("overlong-penalty", "reward taken at max-new-tokens by the overlong buffer", Min = 0)]
    public double OverlongPenalty { get; init; } = 1.0;

    /// <summary>Completions cut by max-new-tokens take no part in the loss (overlong filtering; they still count in their group's statistics).</summary>
    [Option("mask-truncated", "completions cut at max-new-tokens take no part in the loss")]
    public bool MaskTruncated { get; init; }

    /// <summary>Sequences generated together with continuous batching.</summary>
    [Option("slots", "sequences generated together (continuous batching)", Min = 1)]
    public int Slots { get; init; } = 64;

    /// <summary>Reward the fraction of asserts passed instead of all-or-nothing (assert-line tests only).</summary>
    [Option("partial", "reward the fraction of asserts passed instead of all-or-nothing")]
    public bool PartialCredit { get; init; }

    /// <summary>
    /// Address-space limit of a sample's test run, MiB. EvalPlus gives samples 4 GiB (capped by the
    /// machine's memory, which would make a run's settings depend on its machine; RLIMIT_AS caps
    /// reservations, not resident memory, so a fixed 4 GiB is safe where less is installed).
    /// </summary>
    [Option("sample-memory", "address-space limit of a sample's test run, MiB", Min = 16)]
    public int SampleMemory { get; init; } = 4096;

    /// <summary>Limits of a sampled completion's test run: short functions with a few asserts, so tighter in time than <c>ra3 eval</c>'s defaults.</summary>
    public SandboxLimits SampleLimits() => new() { WallTime = TimeSpan.FromSeconds(10), CpuSeconds = 5, MemoryBytes = (long)SampleMemory << 20 };

    /// <summary>Steps between held-out pass@1 measurements (and at 0 and the end).</summary>
    [Option("eval-every", "steps between held-out pass@1 measurements", Min = 1)]
    public int EvalEvery { get; init; } = 10;

    /// <summary>Samples per held-out problem for pass@1.</summary>
    [Option("eval-samples", "samples per held-out problem", Min = 1)]
    public int EvalSamples { get; init; } = 4;

    /// <summary>Held-out problems used (the first N).</summary>
    [Option("eval-limit", "held-out problems used (the first N)", Min = 1)]
    public int EvalLimit { get; init; } = 40;

    /// <summary>Seed of the held-out samples: problem i's samples are drawn from (seed + i·n, j), the same at every measurement, so the curve's points differ by the model alone.</summary>
    [Option("eval-seed", "seed of the held-out samples (fixed across measurements)")]
    public ulong EvalSeed { get; init; } = 1241;

    /// <summary>Updates with a non-finite gradient norm that are skipped before the run stops (0: stop at the first).</summary>
    [Option("skip-nonfinite", "skip up to N updates whose gradient norm is not finite (0: stop at the first)", Min = 0)]
    public int SkipNonFinite { get; init; }

    /// <summary>Steps between checkpoints.</summary>
    [Option("save-every", "steps between checkpoints", Min = 1)]
    public int SaveEvery { get; init; } = 10;

    /// <summary>Seed of prompt order and sampling.</summary>
    [Option("seed", "seed of prompt order and sampling")]
    public ulong Seed { get; init; } = 1234;

    /// <summary>Compute backend.</summary>
    [Option("backend", "compute backend (ra3 info lists them)", Value = "NAME")]
    public string Backend { get; init; } = "cpu";

    /// <summary>How the weights are stored (<see cref="WeightStorage"/>).</summary>
    [Option("dtype", WeightStorage.Help, Choices = WeightStorage.Choices)]
    public string DType { get; init; } = "auto";

    /// <summary>How the saved model is stored (<see cref="WeightStorage"/>).</summary>
    [Option("save-dtype", WeightStorage.SaveHelp, Choices = WeightStorage.Choices)]
    public string SaveDType { get; init; } = "auto";

    /// <summary>Whether training plans recompute the blocks' activations in the backward (<see cref="Pretraining.PretrainSettings.RecomputeHelp"/>).</summary>
    [Option("recompute", Pretraining.PretrainSettings.RecomputeHelp)]
    public bool Recompute { get; init; }

    /// <summary>How the ranks work together under mpirun (not part of the run's identity: a run resumes with other values or on other ranks).</summary>
    [NestedOptions("")]
    [JsonIgnore]
    public ParallelSettings Parallel { get; init; } = new();

    /// <summary>Stop after this many steps of this process (simulates a kill in tests); 0 = run to the end.</summary>
    [Option("stop-after", "stop after N steps of this process, checkpointing first (0: run to the end)", Min = 0, InConfig = false)]
    public int StopAfter { get; init; }

    /// <summary>The policy-gradient update these settings define.</summary>
    public Midtraining.PolicyGradientOptions Update() => new(
        LearningRate,
        KlCoefficient,
        ClipRange,
        ClipHigh > 0 ? ClipHigh : ClipRange,
        Aggregation: LossType switch { "dapo" => Midtraining.LossAggregation.TokenMean, "dr_grpo" => Midtraining.LossAggregation.Constant, _ => Midtraining.LossAggregation.SequenceMean },
        ConstantLength: MaxNewTokens,
        Kl: KlEstimatorName switch { "k1" => Midtraining.KlEstimator.K1, "k3" => Midtraining.KlEstimator.K3, _ => Midtraining.KlEstimator.K2 },
        MicroBatch: MicroBatch);

    /// <summary>The settings as JSON, without the fields a resume may change: the backend, the stop, recomputation (the same numbers, less memory), the saved dtype.</summary>
    public string Identity() => JsonSerializer.Serialize(this with { Backend = string.Empty, StopAfter = 0, Recompute = false, SaveDType = string.Empty });
}
