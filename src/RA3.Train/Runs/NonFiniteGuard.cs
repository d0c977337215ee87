using System.Globalization;
using System.Text.Json.Nodes;

namespace RA3.Train.Runs;

/// <summary>
/// A training run's stop at divergence: a step whose loss or gradient norm is not finite is caught
/// where it appears and its update is not applied. Up to <c>allowed</c> such steps are skipped
/// (said in the log, as large-scale trainers do); the next one ends the run with a
/// <see cref="DivergenceException"/> naming the step, the value and the last good checkpoint.
/// </summary>
/// <param name="allowed">Non-finite steps that may be skipped (<c>--skip-nonfinite</c>); 0 stops at the first.</param>
/// <param name="lastCheckpoint">Where the run's last good checkpoint is, asked when the run stops (null: it has none).</param>
/// <param name="log">Where a skipped step is reported.</param>
public sealed class NonFiniteGuard(int allowed, Func<string?> lastCheckpoint, TextWriter log)
{
    /// <summary>Steps skipped so far.</summary>
    public int Skipped { get; private set; }

    /// <summary>
    /// Whether the update of <paramref name="step"/> may be applied: true when its loss and
    /// gradient norm are finite; false when it is skipped within the allowance; otherwise throws.
    /// </summary>
    public bool Admit(int step, double loss, double gradNorm)
    {
        if (double.IsFinite(loss) && double.IsFinite(gradNorm))
        {
            return true;
        }

        string what = !double.IsFinite(loss) ? $"the loss is {Text(loss)}" : $"the gradient norm is {Text(gradNorm)}";
        if (Skipped < allowed)
        {
            Skipped++;
            log.WriteLine($"step {step}: {what}; the update was skipped ({Skipped} of the {allowed} --skip-nonfinite allows)");
            return false;
        }

        string checkpoint = lastCheckpoint() is { } c ? $"the last good checkpoint is {c} (resume from it, e.g. with a lower learning rate)" : "the run has no checkpoint yet";
        throw new DivergenceException(step, $"step {step}: {what}; the update was not applied and the run stops: {checkpoint}{(allowed > 0 ? $"; {Skipped} steps were skipped before" : "; --skip-nonfinite N skips up to N such steps")}");
    }

    /// <summary>A metrics value JSON can carry: the number, or null when it is not finite (JSON has no NaN or infinity).</summary>
    public static JsonNode? Metric(double value) => double.IsFinite(value) ? JsonValue.Create(value) : null;

    private static string Text(double x) => x.ToString(CultureInfo.InvariantCulture);
}

/// <summary>A training run that stopped at a non-finite loss or gradient norm.</summary>
/// <param name="step">The step where it appeared.</param>
/// <param name="message">One line: the step, the value, the last good checkpoint.</param>
public sealed class DivergenceException(int step, string message) : Exception(message)
{
    /// <summary>The step where the run diverged.</summary>
    public int Step { get; } = step;
}
