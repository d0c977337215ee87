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
    /// <paramref name="n"/> completions of each problem (one batched generation per problem), the
    /// i-th problem's samples seeded from <paramref name="sampling"/>'s seed + (<paramref name="firstIndex"/> + i)·n
    /// (<see cref="GenerateOne"/>): a rank given a share of a list starting at
    /// <paramref name="firstIndex"/> draws what one process generating the whole list draws.
    /// <paramref name="cancel"/> is checked between problems.
    /// </summary>
    public static List<(Problem Problem, GeneratedSequence Sample, int[] Context)> Generate(Generator generator, TextTokenizer tokenizer, IReadOnlyList<Problem> problems, int n, SamplingOptions sampling, Action<int>? progress = null, CancellationToken cancel = default, int firstIndex = 0)
    {
        ArgumentNullException.ThrowIfNull(problems);
        var samples = new List<(Problem, GeneratedSequence, int[])>(problems.Count * n);
        for (int i = 0; i < problems.Count; i++)
        {
            cancel.ThrowIfCancellationRequested();
            var (ids, generated) = GenerateOne(generator, tokenizer, problems[i], firstIndex + i, n, sampling);
            samples.AddRange(generated.Select(g => (problems[i], g, ids)));
            progress?.Invoke(samples.Count);
        }

        return samples;
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
