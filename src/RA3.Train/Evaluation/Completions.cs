using RA3.Model.Generation;
using RA3.Model.Tokenizers;

namespace RA3.Train.Evaluation;

/// <summary>How a model is asked for a completion of a <see cref="Problem"/>: the context it continues and the strings that end it.</summary>
public static class Completions
{
    /// <summary>The text the model continues: the prompt (HumanEval style), or the task in a docstring (MBPP style).</summary>
    public static string Context(Problem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        return problem.Mode == CompletionMode.ContinuesPrompt ? problem.Preamble + problem.Prompt : $"\"\"\"\n{problem.Prompt}\n\"\"\"\n";
    }

    /// <summary>Strings after which the completion has left the function (the Codex paper's stop sequences).</summary>
    public static IReadOnlyList<string> StopStrings(Problem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        return problem.Mode == CompletionMode.ContinuesPrompt ? ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\nassert "] : ["\nassert ", "\nif __name__", "\n\"\"\""];
    }

    /// <summary>
    /// <paramref name="n"/> completions of each problem, all generated together with continuous
    /// batching in <paramref name="slots"/> slots (a finished completion's slot takes the next one),
    /// each drawn from the stream <see cref="GenerateOne"/> gives it — the i-th problem's j-th sample
    /// from (seed + (<paramref name="firstIndex"/> + i)·n, j) — so a sample depends on its problem's
    /// place in the list, not on the batch, and a rank given a share of a list starting at
    /// <paramref name="firstIndex"/> draws what one process generating the whole list draws.
    /// </summary>
    public static List<(Problem Problem, GeneratedSequence Sample, int[] Context)> GenerateBatched(Generator generator, TextTokenizer tokenizer, IReadOnlyList<Problem> problems, int n, SamplingOptions sampling, int slots, bool entropies = false, CancellationToken cancel = default, int firstIndex = 0)
    {
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(problems);
        ArgumentNullException.ThrowIfNull(sampling);
        var contexts = problems.Select(p => tokenizer.EncodePrompt(Context(p))).ToArray();
        var requests = problems.SelectMany((p, i) => Enumerable.Range(0, n).Select(j => new GenerationRequest(contexts[i], sampling.Seed + (ulong)((firstIndex + i) * n), j, StopStrings(p)))).ToList();
        var samples = generator.GenerateAll(requests, sampling, slots, entropies: entropies, cancel: cancel);
        return [.. samples.Select((g, k) => (problems[k / n], g, contexts[k / n]))];
    }

    /// <summary>The <paramref name="n"/> completions of the problem at <paramref name="index"/> of its set, seeded from <paramref name="sampling"/>'s seed + index·n: the same whether or not the problems before it were generated in this process.</summary>
    public static (int[] Context, IReadOnlyList<GeneratedSequence> Samples) GenerateOne(Generator generator, TextTokenizer tokenizer, Problem problem, int index, int n, SamplingOptions sampling)
    {
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(sampling);
        int[] ids = tokenizer.EncodePrompt(Context(problem));
        var options = sampling with { StopStrings = StopStrings(problem), Seed = sampling.Seed + (ulong)(index * n) };
        return (ids, generator.Generate([.. Enumerable.Repeat(ids, n)], options));
    }
}
