using RA3.Train.Runs;

namespace RA3.Train.Generating;

/// <summary>What <c>ra3 generate</c> continues, with which model, and how.</summary>
public sealed record GenerateSettings
{
    /// <summary>Hugging Face model folder, checkpoint folder, or run folder (its latest checkpoint).</summary>
    [Option("model", "Hugging Face model folder, checkpoint folder, or run folder (latest checkpoint)", Value = "DIR", Required = true)]
    public string? Model { get; init; }

    /// <summary>One prompt (exactly one of this and <see cref="Prompts"/>).</summary>
    [Option("prompt", "the text to continue", Value = "TEXT")]
    public string? Prompt { get; init; }

    /// <summary>A jsonl of prompts, each continued in turn.</summary>
    [Option("prompts", "jsonl of {\"prompt\": ...} (or \"text\") lines, each continued in turn", Value = "FILE")]
    public string? Prompts { get; init; }

    /// <summary>jsonl of the completions, besides the streamed text.</summary>
    [Option("out", "also write {prompt, completion, finish_reason, new_tokens} lines here", Value = "FILE")]
    public string? Out { get; init; }

    /// <summary>Sampling (the options <c>ra3 eval</c> generates with).</summary>
    [NestedOptions("")]
    public GenerationSettings Generation { get; init; } = new();

    /// <summary>Throws <see cref="SettingsException"/> unless exactly one input is given.</summary>
    public void CheckInput()
    {
        if ((Prompt is null) == (Prompts is null))
        {
            throw new SettingsException("prompt", "give exactly one of --prompt and --prompts");
        }
    }
}
