using RA3.Train.Runs;

namespace RA3.Train.Initialization;

/// <summary>What <c>ra3 init</c> writes: a randomly initialised Hugging Face folder of a given shape.</summary>
public sealed record InitSettings
{
    /// <summary>A config.json, or a model folder holding one: the shape and family of the model.</summary>
    [Option("model-config", "config.json of the model's shape (a Hugging Face config, or a folder with one)", Value = "FILE", Required = true)]
    public string? Config { get; init; }

    /// <summary>Folder written (config.json, the safetensors, the tokenizer when given).</summary>
    [Option("out", "model folder written", Value = "DIR", Required = true)]
    public string? Out { get; init; }

    /// <summary>How the weights are stored; auto: the config's torch_dtype (bfloat16 or float32).</summary>
    [Option("dtype", "weights stored as: auto (the config's torch_dtype) | f32 | bf16", Choices = WeightStorage.Choices)]
    public string DType { get; init; } = "auto";

    /// <summary>A tokenizer.json (or a folder with one) copied beside the weights, with its tokenizer_config.json when there is one.</summary>
    [Option("tokenizer", "tokenizer.json, or a folder with one, copied into the model folder", Value = "SPEC")]
    public string? Tokenizer { get; init; }

    /// <summary>Seed of the initialisation.</summary>
    [Option("seed", "seed of the initialisation")]
    public ulong Seed { get; init; } = 1;
}
