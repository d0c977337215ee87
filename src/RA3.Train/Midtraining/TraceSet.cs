using RA3.Train.Data;
using RA3.Train.Evaluation;
using RA3.Train.Tasks;

namespace RA3.Train.Midtraining;

/// <summary>Mid-training traces: those the EM loop trains on and held-out ones for the code-token loss.</summary>
/// <param name="Train">Training traces.</param>
/// <param name="HeldOut">Held-out traces (never trained on).</param>
public sealed record TraceSet(IReadOnlyList<Trace> Train, IReadOnlyList<Trace> HeldOut)
{
    /// <summary>
    /// Reads traces from <paramref name="source"/>: <c>procedural:N</c> (N generated tasks of the
    /// training compositions, with held-out compositions for the held-out set), a problem set file
    /// given as <c>problems:PATH</c> (each problem's prompt and canonical solution), or a folder or
    /// jsonl corpus (documents split by <see cref="Trace.FromCode"/>; every tenth held out). Traces
    /// keep 2 to <paramref name="maxLines"/> lines.
    /// </summary>
    public static TraceSet Load(string source, int maxLines, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.StartsWith("procedural:", StringComparison.Ordinal))
        {
            int n = int.TryParse(source["procedural:".Length..], out int count) && count > 0 ? count : throw new ArgumentException($"'{source}': procedural:N needs a positive N");
            return new TraceSet(
                Keep(ProceduralTasks.Generate(n, heldOut: false, seed).Select(t => Trace.FromCode(t.TaskId, t.Code)), maxLines),
                Keep(ProceduralTasks.Generate(Math.Max(n / 10, 8), heldOut: true, seed + 1).Select(t => Trace.FromCode(t.TaskId, t.Code)), maxLines));
        }

        IEnumerable<Trace> all;
        if (source.StartsWith("problems:", StringComparison.Ordinal))
        {
            var set = ProblemSetLoader.Load(source["problems:".Length..]);
            all = set.Problems.Where(p => p.CanonicalSolution is not null).Select(p => Trace.FromCode(
                p.TaskId, p.Mode == CompletionMode.ContinuesPrompt ? p.Prompt + p.CanonicalSolution : p.CanonicalSolution!));
        }
        else
        {
            all = Corpus.Read(source).Select((text, i) => Trace.FromCode($"{Path.GetFileName(source)}#{i}", text));
        }

        var kept = Keep(all, maxLines);
        return new TraceSet([.. kept.Where((_, i) => i % 10 != 9)], [.. kept.Where((_, i) => i % 10 == 9)]);
    }

    /// <summary>The traces of at most <paramref name="maxLines"/> lines, in the same order.</summary>
    public TraceSet Within(int maxLines) => new([.. Train.Where(t => t.Count <= maxLines)], [.. HeldOut.Where(t => t.Count <= maxLines)]);

    private static List<Trace> Keep(IEnumerable<Trace> traces, int maxLines) =>
        [.. traces.Where(t => t.Count >= 2 && t.Count <= maxLines && t.Lines.Any(l => l.Trim().Length > 0))];
}
