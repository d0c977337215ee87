using RA3.Model.Generation;
using RA3.Train.Runs;

namespace RA3.Train.Generating;

/// <summary>How a model's text is sampled: the options <c>ra3 eval --model</c> and <c>ra3 generate</c> share (declared once, nested without a prefix in both).</summary>
public sealed record GenerationSettings
{
    /// <summary>Tokenizer of the model; null: the model folder's.</summary>
    [Option("tokenizer", "generation: tokenizer (default: the model folder's)", Value = "SPEC")]
    public string? Tokenizer { get; init; }

    /// <summary>Most tokens per generated completion.</summary>
    [Option("max-new-tokens", "generation: most tokens per completion", Min = 1)]
    public int MaxNewTokens { get; init; } = 256;

    /// <summary>Sampling temperature (0: greedy).</summary>
    [Option("temperature", "generation: temperature (0: greedy)", Min = 0)]
    public float Temperature { get; init; } = 0.8f;

    /// <summary>Nucleus sampling mass.</summary>
    [Option("top-p", "generation: top-p", Min = 0, MinExclusive = true, Max = 1)]
    public float TopP { get; init; } = 0.95f;

    /// <summary>Seed of the sampling.</summary>
    [Option("seed", "generation: seed")]
    public ulong Seed { get; init; } = 1;

    /// <summary>Compute backend of the generation.</summary>
    [Option("backend", "generation: compute backend (ra3 info lists them)", Value = "NAME")]
    public string Backend { get; init; } = "cpu";

    /// <summary>How the generating model's weights are stored (<see cref="WeightStorage"/>).</summary>
    [Option("dtype", "generation: " + WeightStorage.Help, Choices = WeightStorage.Choices)]
    public string DType { get; init; } = "auto";

    /// <summary>The sampling these settings describe.</summary>
    public SamplingOptions Sampling() => new() { MaxNewTokens = MaxNewTokens, Temperature = Temperature, TopP = TopP, Seed = Seed };
}
