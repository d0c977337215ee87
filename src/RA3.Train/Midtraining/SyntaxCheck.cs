using System.Text;
using RA3.Train.Sandbox;

namespace RA3.Train.Midtraining;

/// <summary>What inserting a trace's rationales did to its program.</summary>
public enum ProgramCheck
{
    /// <summary>It parses to the same syntax tree as the bare trace: the comments changed nothing else.</summary>
    Same,

    /// <summary>It parses, to another tree (a comment landed inside a string, say): the program changed.</summary>
    Changed,

    /// <summary>The bare trace parses and the bootstrapped one does not.</summary>
    Unparsable,

    /// <summary>The bare trace does not parse itself (a fragment): nothing to compare with.</summary>
    Unchecked,
}

/// <summary>
/// Whether bootstrapped traces are still the program they were (spec §3: inserting rationales must
/// not change the code): <c>ast.parse</c> of each bootstrapped text and of its bare trace, their
/// <c>ast.dump</c>s compared, run in the sandbox like any model-written code.
/// </summary>
public static class SyntaxCheck
{
    private const string Marker = "@@ra3-check ";

    /// <summary>For each (bare, bootstrapped) pair, what the rationales did.</summary>
    public static async Task<ProgramCheck[]> CompareAsync(SandboxPool pool, IReadOnlyList<(string Bare, string Bootstrapped)> pairs)
    {
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentNullException.ThrowIfNull(pairs);
        if (pairs.Count == 0)
        {
            return [];
        }

        var programs = pairs.Select(p => $"""
            import ast, base64
            def tree(b64):
                try:
                    return ast.dump(ast.parse(base64.b64decode(b64).decode('utf-8')))
                except SyntaxError:
                    return None
            bare, boot = tree('{Encode(p.Bare)}'), tree('{Encode(p.Bootstrapped)}')
            print('{Marker}' + ('unchecked' if bare is None else 'unparsable' if boot is None else 'same' if bare == boot else 'changed'))

            """).ToList();
        var results = await pool.RunAllAsync(programs).ConfigureAwait(false);
        return [.. results.Select((r, i) =>
        {
            string? line = r.Stdout.Split('\n').FirstOrDefault(l => l.StartsWith(Marker, StringComparison.Ordinal));
            return line?[Marker.Length..].Trim() switch
            {
                "same" => ProgramCheck.Same,
                "changed" => ProgramCheck.Changed,
                "unparsable" => ProgramCheck.Unparsable,
                "unchecked" => ProgramCheck.Unchecked,
                _ => throw new InvalidOperationException($"the program check of trace {i} did not finish in the sandbox ({r.OutcomeName}: {r.Message})"),
            };
        })];
    }

    private static string Encode(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));
}
