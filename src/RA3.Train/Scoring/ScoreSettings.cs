using RA3.Train.Runs;

namespace RA3.Train.Scoring;

/// <summary>What <c>ra3 score</c> scores, with which model, and where the scores go.</summary>
public sealed record ScoreSettings
{
    /// <summary>Hugging Face model folder, checkpoint folder, or run folder (its latest checkpoint).</summary>
    [Option("model", "Hugging Face model folder, checkpoint folder, or run folder (latest checkpoint)", Value = "DIR", Required = true)]
    public string? Model { get; init; }

    /// <summary>Text to tokenize (exactly one of this and <see cref="Ids"/>).</summary>
    [Option("text", "text to tokenize (with the model folder's tokenizer.json, or --tokenizer)", Value = "FILE")]
    public string? Text { get; init; }

    /// <summary>safetensors with an int64 tensor input_ids [B, T] (exactly one of this and <see cref="Text"/>).</summary>
    [Option("ids", "safetensors with an int64 tensor input_ids [B, T]", Value = "FILE")]
    public string? Ids { get; init; }

    /// <summary>Tokenizer of <see cref="Text"/>; null: the model folder's.</summary>
    [Option("tokenizer", "bytes | gpt2 | tokenizer.json | folder with one", Value = "SPEC")]
    public string? Tokenizer { get; init; }

    /// <summary>safetensors written; null: the input's path + <c>.scores.safetensors</c>.</summary>
    [Option("out", "safetensors written: logprobs [B, T-1], input_ids, and logits with --logits (default: <input>.scores.safetensors)", Value = "FILE")]
    public string? Out { get; init; }

    /// <summary>Also write the logits [B, T, V].</summary>
    [Option("logits", "also write logits [B, T, V]")]
    public bool Logits { get; init; }

    /// <summary>Compute backend.</summary>
    [Option("backend", "compute backend (ra3 info lists them)", Value = "NAME")]
    public string Backend { get; init; } = "cpu";

    /// <summary>How the weights are stored (<see cref="WeightStorage"/>).</summary>
    [Option("dtype", WeightStorage.Help, Choices = WeightStorage.Choices)]
    public string DType { get; init; } = "auto";

    /// <summary>Throws <see cref="SettingsException"/> unless exactly one input is given.</summary>
    public void CheckInput()
    {
        if ((Text is null) == (Ids is null))
        {
            throw new SettingsException("text", "give exactly one of --text and --ids");
        }
    }
}
