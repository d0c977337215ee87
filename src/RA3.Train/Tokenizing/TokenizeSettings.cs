using RA3.Train.Runs;

namespace RA3.Train.Tokenizing;

/// <summary>What <c>ra3 tokenize</c> reads, with which tokenizer, and what it writes.</summary>
public sealed record TokenizeSettings
{
    /// <summary>Tokenizer spec.</summary>
    [Option("tokenizer", "bytes | gpt2 | tokenizer.json | folder with one", Value = "SPEC", Required = true)]
    public string? Tokenizer { get; init; }

    /// <summary>Input: a jsonl of {"text"} lines (with --shards also a folder of source files).</summary>
    [Option("in", "input: jsonl with a \"text\" per line (--shards: also a folder of source files)", Value = "FILE", Required = true)]
    public string? In { get; init; }

    /// <summary>jsonl written: one {"ids"} line per input line, in order.</summary>
    [Option("out", "jsonl written: {\"ids\": [...]} per input line, in order", Value = "FILE")]
    public string? Out { get; init; }

    /// <summary>With <see cref="Out"/>: the post-processor's special tokens around each text (BOS for Llama 2).</summary>
    [Option("add-special-tokens", "with --out: the template's special tokens around each text (Hugging Face's add_special_tokens)")]
    public bool AddSpecialTokens { get; init; }

    /// <summary>Token-shard folder written (for ra3 pretrain --data and the M-step): the canonical document encoding, memory-mapped when read.</summary>
    [Option("shards", "token-shard folder written (ra3 pretrain --data DIR reads it memory-mapped)", Value = "DIR")]
    public string? Shards { get; init; }

    /// <summary>Tokens per shard file, about.</summary>
    [Option("shard-tokens", "tokens per shard file, about", Min = 1)]
    public long ShardTokens { get; init; } = 100_000_000;

    /// <summary>Throws <see cref="SettingsException"/> unless exactly one output is given.</summary>
    public void CheckOutput()
    {
        if ((Out is null) == (Shards is null))
        {
            throw new SettingsException("out", "give exactly one of --out and --shards");
        }

        if (AddSpecialTokens && Shards is not null)
        {
            throw new SettingsException("add-special-tokens", "only with --out: shards hold the canonical document encoding, whose template tokens are fixed");
        }
    }
}
