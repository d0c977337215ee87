using RA3.Train.Generating;
using RA3.Train.Runs;

namespace RA3.Train.Evaluation;

/// <summary>What <c>ra3 eval</c> scores: the problems, the completions (given, canonical, or generated), the sandbox's limits.</summary>
public sealed record EvalSettings
{
    /// <summary>The problem set.</summary>
    [Option("problems", "HumanEval (.jsonl[.gz]), HumanEval+ / MBPP+ (EvalPlus), mbpp.jsonl, sanitized-mbpp.json, or a jsonl of {task_id, prompt, tests}", Value = "FILE", Required = true)]
    public string? Problems { get; init; }

    /// <summary>Completions: a jsonl of {task_id, completion} (or solution), or <c>canonical</c>; exactly one of this and <see cref="Model"/>.</summary>
    [Option("samples", "completions: jsonl of {\"task_id\", \"completion\"} (\"solution\" for whole programs); 'canonical' scores the problems' own solutions", Value = "FILE")]
    public string? Samples { get; init; }

    /// <summary>A model whose completions are generated, kept in <c>&lt;out&gt;.samples.jsonl</c> and scored.</summary>
    [Option("model", "generate -n completions per problem with this model (kept in <out>.samples.jsonl), then score them", Value = "DIR")]
    public string? Model { get; init; }

    /// <summary>Completions generated per problem.</summary>
    [Option("n", "completions per problem with --model (also -n)", Min = 1)]
    public int N { get; init; } = 1;

    /// <summary>The k of pass@k, comma-separated.</summary>
    [Option("k", "pass@k to report, comma-separated (also -k)", Value = "LIST")]
    public string K { get; init; } = "1";

    /// <summary>JSON summary written: pass@k per test variant, outcome counts, throughput.</summary>
    [Option("out", "JSON summary: pass@k per test variant, outcome counts, throughput", Value = "FILE")]
    public string? Out { get; init; }

    /// <summary>Per-sample outcomes written; null: beside the summary, else beside the samples.</summary>
    [Option("outcomes", "per-sample outcomes, jsonl (default: <out, else samples>.outcomes.jsonl)", Value = "FILE")]
    public string? Outcomes { get; init; }

    /// <summary>One MBPP split.</summary>
    [Option("split", "keep one MBPP split", Choices = "prompt|test|validation|train")]
    public string? Split { get; init; }

    /// <summary>Also run mbpp.jsonl's challenge_test_list.</summary>
    [Option("challenge", "also run mbpp.jsonl's challenge_test_list")]
    public bool Challenge { get; init; }

    /// <summary>The first N problems only (0: all).</summary>
    [Option("limit", "the first N problems only (0: all)", Min = 0)]
    public int Limit { get; init; }

    /// <summary>Sandbox workers (0: one per core).</summary>
    [Option("workers", "sandbox workers (0: one per core)", Min = 0)]
    public int Workers { get; init; }

    /// <summary>Wall-clock seconds per program (the CPU limit is two seconds less, at least one).</summary>
    [Option("timeout", "wall-clock seconds per program", Min = 0, MinExclusive = true)]
    public float Timeout { get; init; } = 20f;

    /// <summary>
    /// Address-space limit per program, MiB: as EvalPlus gives samples, min(4 GiB, this machine's
    /// memory) — 1 GiB made canonical solutions such as MBPP+'s Mbpp/255 run out of memory.
    /// </summary>
    [Option("memory", "address-space limit per program, MiB (default: min(4 GiB, this machine's memory))", Min = 16)]
    public int Memory { get; init; } = (int)Math.Min(4096, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes >> 20);

    /// <summary>Stop at the first malformed problem or sample instead of warning.</summary>
    [Option("strict", "stop at the first malformed problem or sample")]
    public bool Strict { get; init; }

    /// <summary>How completions are generated with <see cref="Model"/> (options shared with <c>ra3 generate</c>).</summary>
    [NestedOptions("")]
    public GenerationSettings Generation { get; init; } = new();
}
