using RA3.Model.Inference;
using RA3.Model.Scoring;
using RA3.Model.Tokenizers;
using RA3.Model;

namespace RA3.Train.Midtraining;

/// <summary>A trace's candidates scored two ways from the same forward passes (spec §4–5 inputs).</summary>
/// <param name="DecisionFree">seg with each line's likelihood taken given "no comment here" where one could have started before it (the reward's convention; the rationale's own log-probability left out of the prior).</param>
/// <param name="Joint">seg with the model's own line log-likelihoods (the comment-or-not choice included), for the prior that includes the rationale's own log-probability and for the marginal-likelihood bound.</param>
/// <param name="Tokens">Tokens the model ran to score them (every candidate sequence's, padding left out).</param>
public sealed record CandidateScores(ScoredTrace DecisionFree, ScoredTrace Joint, long Tokens);

/// <summary>
/// Scores a trace's candidate rationales with the model: seg[s, t] = log π(line t+1 | the trace's
/// earlier lines, with candidate s the only rationale, inserted before its line), one forward pass
/// per candidate sequence — none, and candidate k of each boundary j — in the <see cref="LineTokens"/>
/// layout, K per boundary (a boundary with fewer gets rows of −∞: think impossible there), and each
/// candidate's own log-probability (its comment line's tokens).
/// </summary>
public static class CandidateScorer
{
    /// <summary>Scores <paramref name="candidates"/> (per boundary, its candidates in order) with K = the most of any boundary, at least 1.</summary>
    public static CandidateScores Score(Transformer model, TextTokenizer tokenizer, Trace trace, IReadOnlyList<IReadOnlyList<string>> candidates)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(trace);
        ArgumentNullException.ThrowIfNull(candidates);
        int n = trace.Count;
        if (candidates.Count != n)
        {
            throw new ArgumentException($"trace {trace.Id} has {n} lines (boundaries) but candidates for {candidates.Count} were given");
        }

        int k = Math.Max(1, candidates.Max(c => c.Count)), states = (n * k) + 1;
        var free = new float[states * n];
        var joint = new float[states * n];
        var rationaleLogProbs = new float[n * k];
        Array.Fill(free, float.NegativeInfinity);
        Array.Fill(joint, float.NegativeInfinity);
        Array.Fill(rationaleLogProbs, float.NegativeInfinity);

        // Abstraction 0 (no rationale) and every (boundary j, candidate c) as one sequence each.
        var scored = new List<(int State, int Boundary, LineTokens Tokens, IReadOnlyList<(int Boundary, int Index, int ThinkToken)> Decisions)>();
        for (int j = 0; j <= n; j++)
        {
            for (int c = 0; c < (j == 0 ? 1 : candidates[j - 1].Count); c++)
            {
                var rationales = j == 0 ? null : new Dictionary<int, string> { [j] = candidates[j - 1][c] };
                var tokens = LineTokens.Of(tokenizer, trace, rationales);
                scored.Add((j == 0 ? 0 : 1 + ((j - 1) * k) + c, j, tokens, LineTokens.Decisions(tokenizer, trace, rationales, tokens)));
            }
        }

        var alternatives = scored.Select(x =>
        {
            var alt = new int[x.Tokens.Ids.Length];
            Array.Fill(alt, -1);
            foreach (var d in x.Decisions)
            {
                alt[d.Index] = d.ThinkToken;
            }

            return alt;
        }).ToList();
        var (logProbs, thinkLogProbs) = Scorer.SequenceLogProbs(model, [.. scored.Select(x => x.Tokens.Ids)], alternatives);  // all candidates of the trace in padded batches
        for (int i = 0; i < scored.Count; i++)
        {
            var (state, j, tokens, decisions) = scored[i];
            var sums = LineTokens.Sum(logProbs[i], tokens.Owner, n);
            var conditioned = (double[])sums.Lines.Clone();
            foreach (var d in decisions)
            {
                if (tokens.Owner[d.Index] >= 0)
                {
                    conditioned[tokens.Owner[d.Index]] -= Rewards.Log1MinusExp(thinkLogProbs[i][d.Index]);
                }
            }

            for (int t = Math.Max(0, j - 1); t < n; t++)
            {
                free[(state * n) + t] = (float)conditioned[t];
                joint[(state * n) + t] = (float)sums.Lines[t];
            }

            if (j > 0)
            {
                rationaleLogProbs[state - 1] = (float)sums.Rationale;
            }
        }

        return new CandidateScores(new ScoredTrace(free, rationaleLogProbs, n, k), new ScoredTrace(joint, rationaleLogProbs, n, k), scored.Sum(x => (long)x.Tokens.Ids.Length));
    }
}
