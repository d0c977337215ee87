using System.Text.Json;
using System.Text.Json.Serialization;
using RA3.Train.Distributed;
using RA3.Train.Runs;

namespace RA3.Train.Pretraining;

/// <summary>Everything that defines a pre-training run; saved in its checkpoints so a resume continues the same run.</summary>
public sealed record PretrainSettings
{
    /// <summary>Corpus: a folder of source files or a jsonl file; null = the Python standard-library functions.</summary>
    [Option("data", "folder of source files, or jsonl with a \"text\" or \"content\" field (default: the Python standard library's functions)", Value = "PATH")]
    public string? Data { get; init; }

    /// <summary>Run folder: checkpoints, metrics.jsonl, final model.</summary>
    [Option("out", "run folder (checkpoints/, metrics.jsonl, final/)", Value = "DIR")]
    public string Out { get; init; } = "runs/pretrain";

    /// <summary>Tokenizer spec (<c>bytes</c>, <c>gpt2</c>, a tokenizer.json or a folder with one).</summary>
    [Option("tokenizer", "bytes | gpt2 | tokenizer.json | folder with one", Value = "SPEC")]
    public string Tokenizer { get; init; } = "bytes";

    /// <summary>Model family of a fresh model: <c>llama</c> or <c>gpt2</c>.</summary>
    [Option("family", "family of a fresh model", Choices = "llama|gpt2")]
    public string Family { get; init; } = "llama";

    /// <summary>Start from this Hugging Face folder's weights instead of a fresh model.</summary>
    [Option("init", "start from a Hugging Face model folder instead", Value = "DIR")]
    public string? Init { get; init; }

    /// <summary>Width C.</summary>
    [Option("hidden", "width C", Min = 1)]
    public int Hidden { get; init; } = 384;

    /// <summary>Blocks L.</summary>
    [Option("layers", "blocks", Min = 1)]
    public int Layers { get; init; } = 6;

    /// <summary>Query heads.</summary>
    [Option("heads", "query heads", Min = 1)]
    public int Heads { get; init; } = 6;

    /// <summary>Key/value heads (Llama family).</summary>
    [Option("kv-heads", "key/value heads (llama)", Min = 1)]
    public int KvHeads { get; init; } = 2;

    /// <summary>MLP width (Llama family; GPT-2 uses 4C).</summary>
    [Option("intermediate", "MLP width (llama; gpt2 uses 4C)", Min = 1)]
    public int Intermediate { get; init; } = 1024;

    /// <summary>Tokens per sequence T.</summary>
    [Option("seq-len", "tokens per sequence", Min = 2)]
    public int SequenceLength { get; init; } = 256;

    /// <summary>Sequences per micro-batch B.</summary>
    [Option("batch", "sequences per micro-batch", Min = 1)]
    public int BatchSize { get; init; } = 8;

    /// <summary>Micro-batches per optimizer step.</summary>
    [Option("accum", "micro-batches per step", Min = 1)]
    public int Accumulation { get; init; } = 1;

    /// <summary>Optimizer steps.</summary>
    [Option("steps", "optimizer steps", Min = 1)]
    public int Steps { get; init; } = 300;

    /// <summary>Peak learning rate.</summary>
    [Option("lr", "peak learning rate", Min = 0, MinExclusive = true)]
    public float LearningRate { get; init; } = 2e-3f;

    /// <summary>Floor of the cosine as a fraction of the peak.</summary>
    [Option("min-lr-ratio", "cosine floor as a fraction of the peak", Min = 0, Max = 1)]
    public float MinLearningRateRatio { get; init; } = 0.1f;

    /// <summary>Warmup steps.</summary>
    [Option("warmup", "warmup steps", Min = 0)]
    public int Warmup { get; init; } = 30;

    /// <summary>AdamW decoupled weight decay (matrices only).</summary>
    [Option("weight-decay", "AdamW decoupled weight decay", Min = 0)]
    public float WeightDecay { get; init; } = 0.1f;

    /// <summary>Also decay norms, biases and embeddings.</summary>
    [Option("decay-all", "weight decay on norms, biases and embeddings too (default: matrices only)")]
    public bool DecayAll { get; init; }

    /// <summary>Gradient-norm clip.</summary>
    [Option("clip", "gradient-norm clip (0: no clipping)", Min = 0)]
    public float Clip { get; init; } = 1f;

    /// <summary>Steps with a non-finite loss or gradient norm that are skipped before the run stops (0: stop at the first).</summary>
    [Option("skip-nonfinite", "skip up to N steps whose loss or gradient norm is not finite (0: stop at the first)", Min = 0)]
    public int SkipNonFinite { get; init; }

    /// <summary>Steps between validation passes.</summary>
    [Option("eval-every", "steps between validation passes", Min = 1)]
    public int EvalEvery { get; init; } = 50;

    /// <summary>Validation sequences per pass (at most).</summary>
    [Option("eval-sequences", "validation sequences per pass (at most)", Min = 1)]
    public int EvalSequences { get; init; } = 32;

    /// <summary>Steps between checkpoints.</summary>
    [Option("save-every", "steps between checkpoints", Min = 1)]
    public int SaveEvery { get; init; } = 100;

    /// <summary>Checkpoints kept.</summary>
    [Option("keep", "checkpoints kept", Min = 1)]
    public int Keep { get; init; } = 2;

    /// <summary>Seed of initialisation and data order.</summary>
    [Option("seed", "seed of initialisation and data order")]
    public ulong Seed { get; init; } = 1234;

    /// <summary>Compute backend name.</summary>
    [Option("backend", "compute backend (ra3 info lists them)", Value = "NAME")]
    public string Backend { get; init; } = "cpu";

    /// <summary>How the weights are stored (<see cref="WeightStorage"/>).</summary>
    [Option("dtype", WeightStorage.Help, Choices = WeightStorage.Choices)]
    public string DType { get; init; } = "auto";

    /// <summary>How the saved model is stored (<see cref="WeightStorage"/>).</summary>
    [Option("save-dtype", WeightStorage.SaveHelp, Choices = WeightStorage.Choices)]
    public string SaveDType { get; init; } = "auto";

    /// <summary>How the ranks work together under mpirun (not part of the run's identity: a run resumes with other values or on other ranks).</summary>
    [NestedOptions("")]
    [JsonIgnore]
    public ParallelSettings Parallel { get; init; } = new();

    /// <summary>Help line of <c>--recompute</c>, which the commands that train share.</summary>
    public const string RecomputeHelp = "keep only the residual stream between blocks and recompute each block in the backward: one block's activations instead of all (long sequences, large models), one more forward of the blocks";

    /// <summary>Whether training plans recompute the blocks' activations in the backward.</summary>
    [Option("recompute", RecomputeHelp)]
    public bool Recompute { get; init; }

    /// <summary>Stop after this many steps of this process (simulates a kill in tests); 0 = run to the end.</summary>
    [Option("stop-after", "stop after N steps of this process, checkpointing first (0: run to the end)", Min = 0, InConfig = false)]
    public int StopAfter { get; init; }

    /// <summary>The settings as JSON, without the fields a resume may change: the stop, the backend, recomputation (the same numbers, less memory), the saved dtype, how many checkpoints are kept.</summary>
    public string Identity() => JsonSerializer.Serialize(this with { StopAfter = 0, Backend = string.Empty, Recompute = false, SaveDType = string.Empty, Keep = 0 });
}
