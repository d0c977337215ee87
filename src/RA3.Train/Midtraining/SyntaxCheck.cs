using System.Text;
using RA3.Train.Sandbox;

namespace RA3.Train.Midtraining;

/// <summary>
/// Whether bootstrapped traces are still valid Python (spec §3: every trace with rationales
/// inserted must parse): <c>ast.parse</c> of each text, run in the sandbox like any model-written code.
/// </summary>
public static class SyntaxCheck
{
    /// <summary>For each text, whether it parses; with the fraction that does.</summary>
    public static async Task<(bool[] Valid, double Rate)> ParseAsync(SandboxPool pool, IReadOnlyList<string> texts)
    {
        ArgumentNullException.ThrowIfNull(pool);
        if (texts.Count == 0)
        {
            return ([], 1.0);
        }

        var programs = texts.Select(t => $"import ast, base64\nast.parse(base64.b64decode('{Convert.ToBase64String(Encoding.UTF8.GetBytes(t))}').decode('utf-8'))\n").ToList();
        var results = await pool.RunAllAsync(programs).ConfigureAwait(false);
        bool[] valid = [.. results.Select(r => r.Outcome == RunOutcome.Passed)];
        return (valid, valid.Count(v => v) / (double)valid.Length);
    }
}
