namespace RA3.Model.Generation;

/// <summary>How <see cref="Generator"/> picks tokens and when it stops.</summary>
public sealed record SamplingOptions
{
    /// <summary>New tokens per sequence at most.</summary>
    public int MaxNewTokens { get; init; } = 128;

    /// <summary>Softmax temperature; 0 means greedy (arg max).</summary>
    public float Temperature { get; init; }

    /// <summary>Keep only the k most likely tokens (0 = all).</summary>
    public int TopK { get; init; }

    /// <summary>Nucleus sampling: keep the smallest set of tokens whose probability reaches p (1 = all).</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Strings that end a sequence; the text is cut before them (needs a tokenizer).</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>Token ids that end a sequence (kept as the last token), besides the model's EOS ids.</summary>
    public IReadOnlyList<int> StopTokens { get; init; } = [];

    /// <summary>Whether the model's end-of-sequence ids stop a sequence.</summary>
    public bool StopAtEos { get; init; } = true;

    /// <summary>Seed of the sampling; sequence i of a call draws from its own stream (seed, i), so results do not depend on batch composition.</summary>
    public ulong Seed { get; init; }

    /// <summary>Throws on settings that cannot work.</summary>
    public void Validate()
    {
        if (MaxNewTokens < 0 || Temperature < 0 || TopK < 0 || TopP is <= 0 or > 1)
        {
            throw new ArgumentException($"invalid sampling options: max new tokens {MaxNewTokens}, temperature {Temperature}, top-k {TopK}, top-p {TopP}");
        }
    }
}

/// <summary>One generated continuation.</summary>
/// <param name="Tokens">The new tokens (without the prompt; cut at a stop string).</param>
/// <param name="Text">Their decoded text (cut before a stop string; an end-of-sequence token is not text), when a tokenizer was given.</param>
/// <param name="FinishReason"><c>length</c>, <c>eos</c>, <c>stop_token</c> or <c>stop_string</c>.</param>
/// <param name="Entropies">Per new token, the entropy (nats) of the model's distribution it was drawn from, when asked for.</param>
public sealed record GeneratedSequence(int[] Tokens, string? Text, string FinishReason, float[]? Entropies = null);

/// <summary>Timing of one <see cref="Generator.Generate"/> call.</summary>
/// <param name="PromptTokens">Prompt tokens processed by the prefill.</param>
/// <param name="NewTokens">Tokens generated (all sequences).</param>
/// <param name="PrefillSeconds">Wall time of the prefill.</param>
/// <param name="DecodeSeconds">Wall time of the decode steps, sampling included.</param>
public sealed record GenerationStats(long PromptTokens, long NewTokens, double PrefillSeconds, double DecodeSeconds)
{
    /// <summary>Generated tokens per second of decoding.</summary>
    public double DecodeTokensPerSecond => NewTokens / Math.Max(DecodeSeconds, 1e-9);
}
