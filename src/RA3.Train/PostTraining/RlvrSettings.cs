using System.Text.Json;

namespace RA3.Train.PostTraining;

/// <summary>Everything that defines an RLVR run (spec §6); saved in its checkpoints so a resume continues the same run.</summary>
public sealed record RlvrSettings
{
    /// <summary>Starting (and KL reference) model: a Hugging Face folder or a run folder.</summary>
    public string Init { get; init; } = "runs/midtrain/final";

    /// <summary>Training problems (any format <c>ra3 eval</c> reads, with asserts: MBPP, the plain jsonl, procedural tasks).</summary>
    public string Problems { get; init; } = "runs/tasks/train.jsonl";

    /// <summary>Held-out problems for pass@1 (null: none).</summary>
    public string? EvalProblems { get; init; }

    /// <summary>Run folder.</summary>
    public string Out { get; init; } = "runs/rlvr";

    /// <summary>Tokenizer spec.</summary>
    public string Tokenizer { get; init; } = "bytes";

    /// <summary>Updates.</summary>
    public int Steps { get; init; } = 40;

    /// <summary>Prompts per update.</summary>
    public int PromptsPerStep { get; init; } = 4;

    /// <summary>G, samples per prompt.</summary>
    public int Group { get; init; } = 4;

    /// <summary>Sampling temperature of the rollouts.</summary>
    public float Temperature { get; init; } = 1f;

    /// <summary>Most tokens per completion (320 fits the procedural family's longest solution in bytes).</summary>
    public int MaxNewTokens { get; init; } = 320;

    /// <summary>AdamW step size.</summary>
    public float LearningRate { get; init; } = 5e-5f;

    /// <summary>β, KL to the initial model.</summary>
    public double KlCoefficient { get; init; } = 0.02;

    /// <summary>ε of the clipped ratio.</summary>
    public double ClipRange { get; init; } = 0.2;

    /// <summary>Updates per batch of samples (μ; the ratio is 1 on the first).</summary>
    public int Epochs { get; init; } = 1;

    /// <summary>Reward the fraction of asserts passed instead of all-or-nothing (assert-line tests only).</summary>
    public bool PartialCredit { get; init; }

    /// <summary>Steps between held-out pass@1 measurements (and at 0 and the end).</summary>
    public int EvalEvery { get; init; } = 10;

    /// <summary>Samples per held-out problem for pass@1.</summary>
    public int EvalSamples { get; init; } = 4;

    /// <summary>Held-out problems used (the first N).</summary>
    public int EvalLimit { get; init; } = 40;

    /// <summary>Steps between checkpoints.</summary>
    public int SaveEvery { get; init; } = 10;

    /// <summary>Seed of prompt order and sampling.</summary>
    public ulong Seed { get; init; } = 1234;

    /// <summary>Compute backend.</summary>
    public string Backend { get; init; } = "cpu";

    /// <summary>Stop after this many steps of this process (simulates a kill in tests); 0 = run to the end.</summary>
    public int StopAfter { get; init; }

    /// <summary>The settings as JSON, without the fields a resume may change.</summary>
    public string Identity() => JsonSerializer.Serialize(this with { Backend = string.Empty, StopAfter = 0 });

    /// <summary>Throws on settings that cannot work.</summary>
    public void Validate()
    {
        if (Steps < 1 || PromptsPerStep < 1 || Group < 2 || MaxNewTokens < 1 || Epochs < 1 || EvalEvery < 1 || EvalSamples < 1 || EvalLimit < 1 || SaveEvery < 1 || LearningRate <= 0)
        {
            throw new ArgumentException("steps, prompts per step, new tokens, epochs, eval and save intervals and the learning rate must be positive; G at least 2 (a group needs a baseline)");
        }
    }
}
