using RA3.Model.Inference;
using RA3.Model.Scoring;
using RA3.Model.Tokenizers;
using RA3.Model;

namespace RA3.Train.Midtraining;

/// <summary>
/// Scores a trace's candidate rationales with the model (spec §4–5 inputs): seg[j, t] = log π(line
/// t+1 | the trace's earlier lines, with rationale j inserted before line j as the only one), one
/// forward pass per candidate sequence j = 0 (none) .. T, in the <see cref="LineTokens"/> layout.
/// A boundary without a candidate (null) gets seg = −∞ (think impossible there).
/// </summary>
public static class CandidateScorer
{
    /// <summary>seg [T+1, T] and the rationales' own log-probabilities [T] (−∞ where none).</summary>
    public static ScoredTrace Score(Transformer model, TextTokenizer tokenizer, Trace trace, IReadOnlyList<string?> rationales)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(trace);
        int n = trace.Count;
        if (rationales.Count != n)
        {
            throw new ArgumentException($"trace {trace.Id} has {n} lines (boundaries) but {rationales.Count} candidate rationales were given");
        }

        var seg = new float[(n + 1) * n];
        var rationaleLogProbs = new float[n];
        Array.Fill(seg, float.NegativeInfinity);
        Array.Fill(rationaleLogProbs, float.NegativeInfinity);
        var candidates = Enumerable.Range(0, n + 1).Where(j => j == 0 || rationales[j - 1] is not null).ToList();
        var layouts = candidates.Select(j => LineTokens.Of(tokenizer, trace, j > 0 ? new Dictionary<int, string> { [j] = rationales[j - 1]! } : null)).ToList();
        var logProbs = Scorer.SequenceLogProbs(model, [.. layouts.Select(l => l.Ids)]);  // all candidates of the trace in padded batches
        for (int c = 0; c < candidates.Count; c++)
        {
            int j = candidates[c];
            var sums = LineTokens.Sum(logProbs[c], layouts[c].Owner, n);
            for (int t = Math.Max(0, j - 1); t < n; t++)
            {
                seg[(j * n) + t] = (float)sums.Lines[t];
            }

            if (j > 0)
            {
                rationaleLogProbs[j - 1] = (float)sums.Rationale;
            }
        }

        return new ScoredTrace(seg, rationaleLogProbs, n);
    }
}
