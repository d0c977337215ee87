using System.Text.Json;

namespace RA3.Train.Pretraining;

/// <summary>Everything that defines a pre-training run; saved in its checkpoints so a resume continues the same run.</summary>
public sealed record PretrainSettings
{
    /// <summary>Corpus: a folder of source files or a jsonl file; null = the Python standard-library functions.</summary>
    public string? Data { get; init; }

    /// <summary>Run folder: checkpoints, metrics.jsonl, final model.</summary>
    public string Out { get; init; } = "runs/pretrain";

    /// <summary>Tokenizer spec (<c>bytes</c>, <c>gpt2</c>, a tokenizer.json or a folder with one).</summary>
    public string Tokenizer { get; init; } = "bytes";

    /// <summary>Model family of a fresh model: <c>llama</c> or <c>gpt2</c>.</summary>
    public string Family { get; init; } = "llama";

    /// <summary>Start from this Hugging Face folder's weights instead of a fresh model.</summary>
    public string? Init { get; init; }

    /// <summary>Width C.</summary>
    public int Hidden { get; init; } = 384;

    /// <summary>Blocks L.</summary>
    public int Layers { get; init; } = 6;

    /// <summary>Query heads.</summary>
    public int Heads { get; init; } = 6;

    /// <summary>Key/value heads (Llama family).</summary>
    public int KvHeads { get; init; } = 2;

    /// <summary>MLP width (Llama family; GPT-2 uses 4C).</summary>
    public int Intermediate { get; init; } = 1024;

    /// <summary>Tokens per sequence T.</summary>
    public int SequenceLength { get; init; } = 256;

    /// <summary>Sequences per micro-batch B.</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>Micro-batches per optimizer step.</summary>
    public int Accumulation { get; init; } = 1;

    /// <summary>Optimizer steps.</summary>
    public int Steps { get; init; } = 300;

    /// <summary>Peak learning rate.</summary>
    public float LearningRate { get; init; } = 2e-3f;

    /// <summary>Floor of the cosine as a fraction of the peak.</summary>
    public float MinLearningRateRatio { get; init; } = 0.1f;

    /// <summary>Warmup steps.</summary>
    public int Warmup { get; init; } = 30;

    /// <summary>AdamW decoupled weight decay (matrices only).</summary>
    public float WeightDecay { get; init; } = 0.1f;

    /// <summary>Also decay norms, biases and embeddings.</summary>
    public bool DecayAll { get; init; }

    /// <summary>Gradient-norm clip.</summary>
    public float Clip { get; init; } = 1f;

    /// <summary>Steps between validation passes.</summary>
    public int EvalEvery { get; init; } = 50;

    /// <summary>Validation sequences per pass (at most).</summary>
    public int EvalSequences { get; init; } = 32;

    /// <summary>Steps between checkpoints.</summary>
    public int SaveEvery { get; init; } = 100;

    /// <summary>Checkpoints kept.</summary>
    public int Keep { get; init; } = 2;

    /// <summary>Seed of initialisation and data order.</summary>
    public ulong Seed { get; init; } = 1234;

    /// <summary>Compute backend name.</summary>
    public string Backend { get; init; } = "cpu";

    /// <summary>Stop after this many steps of this process (simulates a kill in tests); 0 = run to the end.</summary>
    public int StopAfter { get; init; }

    /// <summary>The settings as JSON, without the fields that may differ between a run and its resume.</summary>
    public string Identity() => JsonSerializer.Serialize(this with { StopAfter = 0, Backend = string.Empty });
}
