using RA3.Model;
using RA3.Model.Tokenizers;
using RA3.Train.Scoring;

namespace RA3.Train.Midtraining;

/// <summary>
/// Scores a trace's candidate rationales with the model (spec §4–5 inputs): seg[j, t] = log π(line
/// t+1 | the trace's earlier lines, with rationale j inserted before line j as the only one), one
/// forward pass per candidate sequence j = 0 (none) .. T. Each line (newline included) and each
/// comment line is tokenized on its own and the pieces concatenated, so token boundaries are line
/// boundaries; a fixed prefix (a newline) comes first so that line 1's first token is predicted
/// too. A boundary without a candidate (null) gets seg = −∞ (think impossible there).
/// </summary>
public static class CandidateScorer
{
    /// <summary>The context every candidate sequence starts with.</summary>
    public const string Prefix = "\n";

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

        int[] prefix = tokenizer.Encode(Prefix);
        int[][] lines = [.. trace.Lines.Select(l => tokenizer.Encode(l + "\n"))];
        var seg = new float[(n + 1) * n];
        var rationaleLogProbs = new float[n];
        Array.Fill(seg, float.NegativeInfinity);
        Array.Fill(rationaleLogProbs, float.NegativeInfinity);
        for (int j = 0; j <= n; j++)
        {
            if (j > 0 && rationales[j - 1] is null)
            {
                continue;
            }

            // The sequence: prefix, lines 1..j−1, the comment (j ≥ 1), lines j..T; owner[p] = line of token p (0-based), −1 prefix, −2 comment.
            int[] comment = j > 0 ? tokenizer.Encode($"{trace.IndentBefore(j)}# {Trace.CommentText(rationales[j - 1]!)}\n") : [];
            var ids = new List<int>(prefix);
            var owner = new List<int>(Enumerable.Repeat(-1, prefix.Length));
            for (int t = 0; t < n; t++)
            {
                if (t == j - 1)
                {
                    ids.AddRange(comment);
                    owner.AddRange(Enumerable.Repeat(-2, comment.Length));
                }

                ids.AddRange(lines[t]);
                owner.AddRange(Enumerable.Repeat(t, lines[t].Length));
            }

            var scores = Scorer.Score(model, [.. ids], 1, ids.Count, keepLogits: false);
            var lineSums = new double[n];
            double commentSum = 0;
            for (int p = 1; p < ids.Count; p++)
            {
                double lp = scores.LogProbs[p - 1];  // log p(ids[p] | ids[..p))
                if (owner[p] >= 0)
                {
                    lineSums[owner[p]] += lp;
                }
                else if (owner[p] == -2)
                {
                    commentSum += lp;
                }
            }

            for (int t = Math.Max(0, j - 1); t < n; t++)
            {
                seg[(j * n) + t] = (float)lineSums[t];
            }

            if (j > 0)
            {
                rationaleLogProbs[j - 1] = (float)commentSum;
            }
        }

        return new ScoredTrace(seg, rationaleLogProbs, n);
    }
}
