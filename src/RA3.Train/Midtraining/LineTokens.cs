using RA3.Model.Tokenizers;

namespace RA3.Train.Midtraining;

/// <summary>
/// The token sequence of a trace with rationales, as every part of mid-training sees it: a fixed
/// prefix (a newline, so line 1's first token is predicted too), then each line (newline included)
/// and each rationale comment line tokenized on its own and concatenated — so token boundaries are
/// line boundaries — with the owner of every token: its 0-based line, <see cref="PrefixOwner"/> or
/// <see cref="RationaleOwner"/>. Scoring candidates, measuring code-token loss and building the
/// M-step corpus all use this one layout.
/// </summary>
public sealed record LineTokens(int[] Ids, int[] Owner)
{
    /// <summary>The context every sequence starts with.</summary>
    public const string Prefix = "\n";

    /// <summary>Owner of the prefix's tokens.</summary>
    public const int PrefixOwner = -1;

    /// <summary>Owner of rationale (comment-line) tokens.</summary>
    public const int RationaleOwner = -2;

    /// <summary>Tokenizes <paramref name="trace"/> with <paramref name="rationales"/> (1-based boundary → text) inserted as comment lines.</summary>
    public static LineTokens Of(TextTokenizer tokenizer, Trace trace, IReadOnlyDictionary<int, string>? rationales = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(trace);
        var ids = new List<int>(tokenizer.Encode(Prefix));
        var owner = new List<int>(Enumerable.Repeat(PrefixOwner, ids.Count));
        for (int t = 1; t <= trace.Count; t++)
        {
            if (rationales is not null && rationales.TryGetValue(t, out string? rationale))
            {
                int[] comment = tokenizer.Encode(trace.CommentLine(t, rationale));
                ids.AddRange(comment);
                owner.AddRange(Enumerable.Repeat(RationaleOwner, comment.Length));
            }

            int[] line = tokenizer.Encode(trace.Lines[t - 1] + "\n");
            ids.AddRange(line);
            owner.AddRange(Enumerable.Repeat(t - 1, line.Length));
        }

        return new LineTokens([.. ids], [.. owner]);
    }

    /// <summary>
    /// Sums <paramref name="logProbs"/> (per token p ≥ 1: log p(token p | before), as
    /// <see cref="Model.Scoring.Scorer.SequenceLogProbs"/> gives them) by <paramref name="owner"/>: per line
    /// (0 .. <paramref name="lines"/> − 1) and over rationale tokens, with the token counts of each kind.
    /// </summary>
    public static OwnerSums Sum(ReadOnlySpan<float> logProbs, ReadOnlySpan<int> owner, int lines)
    {
        var sums = new double[lines];
        double rationale = 0;
        long code = 0, rationaleTokens = 0;
        for (int p = 1; p < owner.Length; p++)
        {
            if (owner[p] >= 0)
            {
                sums[owner[p]] += logProbs[p];
                code++;
            }
            else if (owner[p] == RationaleOwner)
            {
                rationale += logProbs[p];
                rationaleTokens++;
            }
        }

        return new OwnerSums(sums, code, rationale, rationaleTokens);
    }
}

/// <summary>Log-probabilities summed by owner: per line, and over rationale tokens, with the token counts.</summary>
/// <param name="Lines">Per line: the sum over its tokens.</param>
/// <param name="CodeTokens">Tokens owned by lines.</param>
/// <param name="Rationale">Sum over rationale tokens.</param>
/// <param name="RationaleTokens">Rationale tokens.</param>
public sealed record OwnerSums(double[] Lines, long CodeTokens, double Rationale, long RationaleTokens);
