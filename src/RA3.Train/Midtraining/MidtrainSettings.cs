using System.Text.Json;

namespace RA3.Train.Midtraining;

/// <summary>Everything that defines a mid-training run (spec §3 symbols included); saved in the run folder so a resume continues the same run.</summary>
public sealed record MidtrainSettings
{
    /// <summary><c>ra3</c> (EM with rationales) or <c>ntp</c> (the same M-step budget on the raw traces).</summary>
    public string Method { get; init; } = "ra3";

    /// <summary>The starting model: a Hugging Face folder or a run folder (its final model or latest checkpoint).</summary>
    public string Init { get; init; } = "runs/pretrain/final";

    /// <summary>Traces (see <see cref="TraceSet.Load"/>).</summary>
    public string Data { get; init; } = "procedural:400";

    /// <summary>Run folder.</summary>
    public string Out { get; init; } = "runs/midtrain";

    /// <summary>Tokenizer spec (as <c>ra3 pretrain</c>).</summary>
    public string Tokenizer { get; init; } = "bytes";

    /// <summary>EM rounds (iterations).</summary>
    public int Rounds { get; init; } = 2;

    /// <summary>c, nats per rationale (the reward's and the ELBO's).</summary>
    public double ThinkCost { get; init; } = 0.05;

    /// <summary>α, the prior's persistence (0.5: neutral, c alone prices a rationale; see <see cref="ElboOptions.Alpha"/>).</summary>
    public double Alpha { get; init; } = 0.5;

    /// <summary>k, lines in a boundary's reward.</summary>
    public int Horizon { get; init; } = 1;

    /// <summary>G, rollouts per trace.</summary>
    public int Group { get; init; } = 4;

    /// <summary>latent_max_tokens (48 suits the byte tokenizer, where a token is a character).</summary>
    public int LatentMaxTokens { get; init; } = 48;

    /// <summary>max_span, most lines per abstraction (0 = no limit).</summary>
    public int MaxSpan { get; init; }

    /// <summary>Exploration share of the think/act decision (<see cref="RolloutOptions.ThinkFloor"/>).</summary>
    public double ThinkFloor { get; init; } = 0.1;

    /// <summary>E-step traces per update.</summary>
    public int TracesPerStep { get; init; } = 4;

    /// <summary>E-step passes over the training traces.</summary>
    public int EStepPasses { get; init; } = 1;

    /// <summary>E-step learning rate.</summary>
    public float EStepLearningRate { get; init; } = 5e-5f;

    /// <summary>β, the E-step's KL penalty to the round's starting policy.</summary>
    public double KlCoefficient { get; init; } = 0.05;

    /// <summary>M-step optimizer steps per round (NTP: the same).</summary>
    public int MStepSteps { get; init; } = 100;

    /// <summary>M-step sequences per step.</summary>
    public int MStepBatch { get; init; } = 8;

    /// <summary>M-step tokens per sequence.</summary>
    public int MStepSequenceLength { get; init; } = 256;

    /// <summary>M-step peak learning rate.</summary>
    public float MStepLearningRate { get; init; } = 5e-4f;

    /// <summary>Longest trace kept, in lines.</summary>
    public int MaxLines { get; init; } = 40;

    /// <summary>Bootstrapped traces syntax-checked in the sandbox each round.</summary>
    public int SyntaxSample { get; init; } = 32;

    /// <summary>Seed of traces, rollouts and data order.</summary>
    public ulong Seed { get; init; } = 1234;

    /// <summary>Compute backend.</summary>
    public string Backend { get; init; } = "cpu";

    /// <summary>The settings as JSON, without the fields a resume may change.</summary>
    public string Identity() => JsonSerializer.Serialize(this with { Backend = string.Empty });

    /// <summary>Throws on settings that cannot work.</summary>
    public void Validate()
    {
        if (Method is not ("ra3" or "ntp"))
        {
            throw new ArgumentException($"method '{Method}' is not ra3 or ntp");
        }

        if (Rounds < 1 || Group < 1 || Horizon < 1 || LatentMaxTokens < 1 || MStepSteps < 1 || MStepBatch < 1 || MStepSequenceLength < 2 || TracesPerStep < 1 || EStepPasses < 1 || MaxLines < 2)
        {
            throw new ArgumentException("rounds, G, k, latent_max_tokens, M-step steps/batch, traces per step and passes must be positive, sequence length and max lines above 1");
        }

        if (Alpha is <= 0 or >= 1 || ThinkCost < 0 || ThinkFloor is < 0 or > 1)
        {
            throw new ArgumentException($"alpha {Alpha} must lie in (0, 1), c {ThinkCost} be non-negative, the think floor {ThinkFloor} in [0, 1]");
        }
    }

    /// <summary>The E-step options these settings define.</summary>
    public EStepOptions EStep() => new(
        ThinkCost,
        Horizon,
        new RolloutOptions(Group, LatentMaxTokens, ThinkFloor: ThinkFloor),
        new PolicyGradientOptions(EStepLearningRate, KlCoefficient),
        TracesPerStep,
        EStepPasses);

    /// <summary>The ELBO options these settings define.</summary>
    public ElboOptions Elbo() => new(Alpha, ThinkCost, MaxSpan);
}
