namespace RA3.Train.Evaluation;

/// <summary>Whether a completion continues the problem's prompt or is a whole program.</summary>
public enum CompletionMode
{
    /// <summary>HumanEval style: the program is prompt + completion (the prompt holds the signature and docstring).</summary>
    ContinuesPrompt,

    /// <summary>MBPP style: the completion is the whole solution program.</summary>
    WholeProgram,
}

/// <summary>
/// EvalPlus tests: argument lists (JSON text) for the entry point; the expected outputs come from
/// running the canonical solution on them (in the sandbox), compared exactly or within Atol.
/// </summary>
public sealed record InputTests(string EntryPoint, string BaseInputsJson, string PlusInputsJson, double Atol, int BaseCount, int PlusCount);

/// <summary>
/// One benchmark problem in a common form. The program that checks a completion is
/// <see cref="Preamble"/> + (prompt, when the completion continues it) + completion + <see cref="Tests"/>;
/// EvalPlus problems check with <see cref="Inputs"/> instead (see <see cref="TestPrograms"/>).
/// </summary>
public sealed record Problem(
    string TaskId,
    string Prompt,
    CompletionMode Mode,
    string? CanonicalSolution,
    string Preamble,
    string Tests,
    InputTests? Inputs,
    string Format,
    string? Split)
{
    /// <summary>Extra asserts run only when asked (the original MBPP's <c>challenge_test_list</c>); empty for other formats.</summary>
    public string ChallengeTests { get; init; } = string.Empty;
}
