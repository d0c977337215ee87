using System.Text.Json;
using System.Text.Json.Serialization;
using RA3.Model.Inference;
using RA3.Train.Distributed;
using RA3.Train.Runs;

namespace RA3.Train.Midtraining;

/// <summary>Everything that defines a mid-training run (spec §3 symbols included); saved in the run folder so a resume continues the same run.</summary>
public sealed record MidtrainSettings
{
    /// <summary><c>ra3</c> (EM with rationales) or <c>ntp</c> (the same M-step budget on the raw traces).</summary>
    [Option("method", "ra3 (EM with rationales) or ntp (the same M-step budget on the raw traces)", Choices = "ra3|ntp")]
    public string Method { get; init; } = "ra3";

    /// <summary>The starting model: a Hugging Face folder or a run folder (its final model or latest checkpoint).</summary>
    [Option("init", "starting model: Hugging Face folder or run folder", Value = "DIR")]
    public string Init { get; init; } = "runs/pretrain/final";

    /// <summary>Traces (see <see cref="TraceSet.Load"/>).</summary>
    [Option("data", "traces: procedural:N | problems:FILE | folder | jsonl", Value = "SPEC")]
    public string Data { get; init; } = "procedural:400";

    /// <summary>Run folder.</summary>
    [Option("out", "run folder", Value = "DIR")]
    public string Out { get; init; } = "runs/midtrain";

    /// <summary>Tokenizer spec (as <c>ra3 pretrain</c>).</summary>
    [Option("tokenizer", "bytes | gpt2 | tokenizer.json | folder", Value = "SPEC")]
    public string Tokenizer { get; init; } = "bytes";

    /// <summary>EM rounds (iterations).</summary>
    [Option("rounds", "EM iterations", Min = 1)]
    public int Rounds { get; init; } = 2;

    /// <summary>c, nats per rationale (the reward's and the ELBO's).</summary>
    [Option("c", "cost per rationale, in nats", Min = 0)]
    public double ThinkCost { get; init; } = 0.05;

    /// <summary>α, the prior's persistence (0.5: neutral, c alone prices a rationale; see <see cref="ElboOptions.Alpha"/>).</summary>
    [Option("alpha", "prior persistence", Min = 0, MinExclusive = true, Max = 1, MaxExclusive = true)]
    public double Alpha { get; init; } = 0.5;

    /// <summary>k, lines in a boundary's reward; 0: the return over the abstraction's span (to the next think).</summary>
    [Option("k", "reward horizon, in lines (0: the abstraction's span, up to the next think)", Min = 0)]
    public int Horizon { get; init; } = 1;

    /// <summary>K, candidate rationales per boundary kept for the temporal-ELBO inference (the E-step's best by reward).</summary>
    [Option("candidates", "K, candidate rationales per boundary the inference chooses among", Min = 1)]
    public int Candidates { get; init; } = 1;

    /// <summary>Whether a rationale's own log-probability enters its prior and its reward (then lines keep the comment-or-not choice in their likelihood; without it they are taken given it).</summary>
    [Option("rationale-logprob", "a rationale's own log-probability enters its prior and its reward")]
    public bool RationaleLogProb { get; init; }

    /// <summary>G, rollouts per trace.</summary>
    [Option("G", "rollouts per trace", Min = 1)]
    public int Group { get; init; } = 4;

    /// <summary>latent_max_tokens; 0: 48 bytes of text in the run's tokens (<see cref="ByteScaledDefaults"/>).</summary>
    [Option("latent-max-tokens", "most tokens per rationale (0: 48 bytes' worth of the tokenizer's tokens)", Min = 0)]
    public int LatentMaxTokens { get; init; }

    /// <summary>max_span, most lines per abstraction (0 = no limit).</summary>
    [Option("max-span", "most lines per abstraction (0: no limit)", Min = 0)]
    public int MaxSpan { get; init; }

    /// <summary>Exploration share of the think/act decision (<see cref="RolloutOptions.ThinkFloor"/>).</summary>
    [Option("think-floor", "exploration share of think/act decisions (the update weighs each by p/q)", Min = 0, Max = 1)]
    public double ThinkFloor { get; init; } = 0.1;

    /// <summary>Sampling temperature of rationale tokens.</summary>
    [Option("rationale-temperature", "sampling temperature of rationale tokens", Min = 0, MinExclusive = true)]
    public float RationaleTemperature { get; init; } = 1f;

    /// <summary>Nucleus of rationale tokens.</summary>
    [Option("rationale-top-p", "nucleus (top-p) of rationale tokens", Min = 0, MinExclusive = true, Max = 1)]
    public float RationaleTopP { get; init; } = 0.95f;

    /// <summary>The E-step advantage's baseline (<see cref="EStepBaseline"/>).</summary>
    [Option("baseline", "E-step baseline: group (mean r_t of the G rollouts) or elbo (the ELBO posterior's expected r_t)", Choices = "group|elbo")]
    public string Baseline { get; init; } = "group";

    /// <summary>Whether E-step advantages are divided by their standard deviation pooled over a trace's boundaries and rollouts.</summary>
    [Option("advantage-scale", "E-step advantages divided by their pooled std (std) or not (none)", Choices = "std|none")]
    public string AdvantageScale { get; init; } = "std";

    /// <summary>μ, E-step updates per batch of rollouts.</summary>
    [Option("estep-epochs", "E-step updates per batch of rollouts (μ; the ratio clips from the second)", Min = 1)]
    public int EStepEpochs { get; init; } = 1;

    /// <summary>ε of the E-step's clipped ratio.</summary>
    [Option("estep-clip", "epsilon of the E-step's clipped ratio", Min = 0)]
    public double EStepClip { get; init; } = 0.2;

    /// <summary>Most rollouts in one E-step forward and backward pass (<see cref="PolicyGradientOptions.MicroBatch"/>).</summary>
    [Option("estep-micro-batch", "most rollouts in one E-step forward and backward pass; their gradients add up to one update (0: all at once)", Min = 0)]
    public int EStepMicroBatch { get; init; } = 4;

    /// <summary>E-step traces per update.</summary>
    [Option("traces-per-step", "E-step traces per update", Min = 1)]
    public int TracesPerStep { get; init; } = 4;

    /// <summary>E-step passes over the training traces.</summary>
    [Option("estep-passes", "E-step passes over the traces", Min = 1)]
    public int EStepPasses { get; init; } = 1;

    /// <summary>E-step updates between the E-step's own checkpoints (a kill loses at most this many).</summary>
    [Option("estep-save-every", "E-step updates between its checkpoints", Min = 1)]
    public int EStepSaveEvery { get; init; } = 10;

    /// <summary>E-step learning rate.</summary>
    [Option("estep-lr", "E-step learning rate", Min = 0)]
    public float EStepLearningRate { get; init; } = 5e-5f;

    /// <summary>β, the E-step's KL penalty to the round's starting policy.</summary>
    [Option("kl", "E-step KL penalty to the round's starting policy", Min = 0)]
    public double KlCoefficient { get; init; } = 0.05;

    /// <summary>M-step optimizer steps per round (NTP: the same).</summary>
    [Option("mstep-steps", "M-step optimizer steps per round", Min = 1)]
    public int MStepSteps { get; init; } = 100;

    /// <summary>M-step sequences per step.</summary>
    [Option("mstep-batch", "M-step sequences per step", Min = 1)]
    public int MStepBatch { get; init; } = 8;

    /// <summary>M-step tokens per sequence; 0: 256 bytes of text in the run's tokens (<see cref="ByteScaledDefaults"/>).</summary>
    [Option("mstep-seq-len", "M-step tokens per sequence (0: 256 bytes' worth of the tokenizer's tokens)", Min = 0)]
    public int MStepSequenceLength { get; init; }

    /// <summary>M-step peak learning rate.</summary>
    [Option("mstep-lr", "M-step peak learning rate", Min = 0, MinExclusive = true)]
    public float MStepLearningRate { get; init; } = 5e-4f;

    /// <summary>Longest trace kept, in lines; 0: 40 lines of the byte tokenizer's text, scaled to the run's tokens (<see cref="ByteScaledDefaults"/>).</summary>
    [Option("max-lines", "longest trace kept, in lines (0: as many tokens as 40 lines of bytes)", Min = 0)]
    public int MaxLines { get; init; }

    /// <summary>Seed of traces, rollouts and data order.</summary>
    [Option("seed", "seed of traces, rollouts and data order")]
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

    /// <summary>The settings as JSON, without the fields a resume may change: the backend, how often the E-step checkpoints, recomputation (the same numbers, less memory), the saved dtype.</summary>
    public string Identity() => JsonSerializer.Serialize(this with { Backend = string.Empty, EStepSaveEvery = 0, Recompute = false, SaveDType = string.Empty });

    /// <summary>The E-step options these settings define.</summary>
    public EStepOptions EStep() => new(
        ThinkCost,
        Horizon,
        new RolloutOptions(Group, LatentMaxTokens, RationaleTemperature, RationaleTopP, ThinkFloor),
        new PolicyGradientOptions(EStepLearningRate, KlCoefficient, EStepClip, EStepClip, MicroBatch: EStepMicroBatch),
        TracesPerStep,
        EStepPasses,
        NormaliseAdvantages: AdvantageScale == "std",
        Baseline: Baseline == "elbo" ? EStepBaseline.Elbo : EStepBaseline.Group,
        Epochs: EStepEpochs,
        Candidates: Candidates,
        Elbo: Elbo());

    /// <summary>The ELBO options these settings define.</summary>
    public ElboOptions Elbo() => new(Alpha, ThinkCost, MaxSpan, RationaleLogProb);
}
