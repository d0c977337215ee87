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
}
