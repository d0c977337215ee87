using System.Globalization;
using System.Reflection;
using System.Text;

namespace RA3.Train.Evaluation;

/// <summary>The Python programs that check a completion of a <see cref="Problem"/> (run in the sandbox).</summary>
public static class TestPrograms
{
    private static readonly Lazy<string> Harness = new(() =>
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("RA3.Train.Evaluation.inputs_harness.py") ?? throw new InvalidOperationException("inputs_harness.py is not embedded in ra3");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    /// <summary>The solution part of a program: (prompt +) completion, after the problem's preamble.</summary>
    public static string Solution(Problem problem, string completion) =>
        problem.Preamble + (problem.Mode == CompletionMode.ContinuesPrompt ? problem.Prompt : string.Empty) + completion;

    /// <summary>The program that checks <paramref name="completion"/> with the problem's asserts (and its challenge asserts when asked; not for EvalPlus problems).</summary>
    public static string WithTests(Problem problem, string completion, bool challenge = false) =>
        Solution(problem, completion) + "\n" + problem.Tests + (challenge ? problem.ChallengeTests : string.Empty);

    /// <summary>The program that prints the canonical solution's outputs on the base and plus inputs (EvalPlus problems).</summary>
    public static string ExpectedOutputs(Problem problem)
    {
        var inputs = problem.Inputs ?? throw new ArgumentException($"{problem.TaskId} has no input tests", nameof(problem));
        string canonical = problem.CanonicalSolution ?? throw new ArgumentException($"{problem.TaskId} has no canonical solution", nameof(problem));
        return $"{Solution(problem, canonical)}\n\n{Harness.Value}\n_ra3_expect({Quote(problem.Format)}, {Quote(problem.TaskId)}, {Quote(inputs.EntryPoint)}, {Quote(B64(inputs.BaseInputsJson))}, {Quote(B64(inputs.PlusInputsJson))})\n";
    }

    /// <summary>The program that checks <paramref name="completion"/> on the base (or the plus) inputs against the expected outputs (base64 pickles from <see cref="ExpectedOutputs"/>).</summary>
    public static string WithInputs(Problem problem, string completion, bool plus, string expectedBase64)
    {
        var inputs = problem.Inputs ?? throw new ArgumentException($"{problem.TaskId} has no input tests", nameof(problem));
        string json = plus ? inputs.PlusInputsJson : inputs.BaseInputsJson;
        return $"{Solution(problem, completion)}\n\n{Harness.Value}\n_ra3_check({Quote(problem.Format)}, {Quote(problem.TaskId)}, {Quote(inputs.EntryPoint)}, {Quote(B64(json))}, {Quote(expectedBase64)}, {inputs.Atol.ToString("R", CultureInfo.InvariantCulture)})\n";
    }

    /// <summary>Reads the base and plus outputs that <see cref="ExpectedOutputs"/> printed; null when a part is missing.</summary>
    public static (string Base, string Plus)? ParseExpected(string stdout)
    {
        string? Find(string name)
        {
            string marker = "\n@@ra3-expected " + name + " ";
            int at = stdout.LastIndexOf(marker, StringComparison.Ordinal);
            if (at < 0)
            {
                return null;
            }

            int start = at + marker.Length, end = stdout.IndexOf('\n', start);
            return stdout[start..(end < 0 ? stdout.Length : end)];
        }

        return Find("base") is { } b && Find("plus") is { } p ? (b, p) : null;
    }

    private static string B64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    private static string Quote(string s) => "'" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "\\'", StringComparison.Ordinal) + "'";
}
