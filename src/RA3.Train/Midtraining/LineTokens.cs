using RA3.Model.Tokenizers;

namespace RA3.Train.Midtraining;

/// <summary>
/// The token sequence of a trace with rationales, as every part of mid-training sees it: the
/// context a document has in the M-step's packed corpus (<see cref="Lead"/>), then the document —
/// the code with its rationale comment lines, rendered — in its canonical whole-document encoding
/// (<see cref="TextTokenizer.EncodeDocument"/>, the M-step's and evaluation's), so these are the
/// M-step's tokens of the same bootstrapped document. Lines own tokens by where the tokens
/// start: a token belongs to the line its first character is in, so a BPE token that straddles a
/// line boundary (GPT-2's "\n" merged with the next line's indentation, Qwen's ")\n") is its first
/// line's, and a line whose characters all sit in such a token owns none. That rule keeps the one
/// canonical encoding (no re-cutting at line boundaries, whose concatenation would differ from it)
/// and gives every token exactly one owner: its 0-based line, <see cref="PrefixOwner"/> (context and
/// template tokens) or <see cref="RationaleOwner"/> (comment lines). Scoring candidates, measuring
/// code-token loss, the E-step's rollouts and the M-step corpus all use this one layout.
/// </summary>
/// <param name="Ids">Token ids, <see cref="Lead"/> first.</param>
/// <param name="Owner">Per token: 0-based code line, <see cref="PrefixOwner"/> or <see cref="RationaleOwner"/>.</param>
/// <param name="Starts">Per token: the index in <see cref="Layout"/>'s text of its first character (−1 for context and template tokens).</param>
/// <param name="Layout">The rendered document.</param>
public sealed record LineTokens(int[] Ids, int[] Owner, int[] Starts, RenderedTrace Layout)
{
    /// <summary>Owner of the context's and the template's tokens.</summary>
    public const int PrefixOwner = -1;

    /// <summary>Owner of rationale (comment-line) tokens.</summary>
    public const int RationaleOwner = -2;

    /// <summary>
    /// The context before a document, so that its first token is predicted too: what precedes it in
    /// the M-step's packed corpus — nothing when the template opens documents (BOS is then the
    /// document's first token), else the end-of-text separator; a newline for a vocabulary with
    /// neither.
    /// </summary>
    public static int[] Lead(TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return tokenizer.SequencePrefix.Count > 0 ? [] : tokenizer.EndOfText is int eot ? [eot] : tokenizer.Encode("\n", addSpecialTokens: false);
    }

    /// <summary>Tokenizes <paramref name="trace"/> with <paramref name="rationales"/> (1-based boundary → text) inserted as comment lines.</summary>
    public static LineTokens Of(TextTokenizer tokenizer, Trace trace, IReadOnlyDictionary<int, string>? rationales = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(trace);
        var layout = trace.Layout(rationales);
        var doc = tokenizer.EncodeDocument(layout.Text);
        int[] lead = Lead(tokenizer);
        int n = lead.Length + doc.Ids.Length;
        var ids = new int[n];
        var owner = new int[n];
        var starts = new int[n];
        lead.CopyTo(ids, 0);
        doc.Ids.CopyTo(ids, lead.Length);
        owner.AsSpan(0, lead.Length).Fill(PrefixOwner);
        starts.AsSpan(0, lead.Length).Fill(-1);
        int line = 0;
        for (int k = 0; k < doc.Ids.Length; k++)
        {
            int start = doc.Starts[k], p = lead.Length + k;
            starts[p] = start;
            if (start < 0)
            {
                owner[p] = PrefixOwner;
                continue;
            }

            while (line + 1 < layout.Starts.Length && layout.Starts[line + 1] <= start)
            {
                line++;  // tokens come in text order, so the line only moves forward
            }

            owner[p] = layout.Lines[line] > 0 ? layout.Lines[line] - 1 : RationaleOwner;
        }

        return new LineTokens(ids, owner, starts, layout);
    }

    /// <summary>The rationale text a think branch is encoded with to find its decision token (only the stub's tokens are used).</summary>
    private const string Probe = "x";

    /// <summary>
    /// Where a comment before line <paramref name="t"/> (1-based) would be decided in
    /// <paramref name="document"/> — the canonical encoding of <paramref name="trace"/> with the
    /// rationales <paramref name="chosen"/> so far, acting from t on — at or after token
    /// <paramref name="from"/>: the first token where it and the same document with a comment
    /// before line t differ. The boundary is a decision only when that token of the comment is the
    /// one that writes its "#" and the stub "indent#" ends on a token boundary: then the choice is
    /// between opening a comment and writing the line's code — not, as before a blank line, between
    /// an indentation token and a newline — and the line must allow a rationale at all
    /// (<see cref="Trace.RationaleAllowed"/>). Null where t is no decision.
    /// </summary>
    public static DecisionPoint? Decision(TextTokenizer tokenizer, Trace trace, IReadOnlyDictionary<int, string> chosen, int t, LineTokens document, int from)
    {
        ArgumentNullException.ThrowIfNull(trace);
        ArgumentNullException.ThrowIfNull(document);
        if (!trace.RationaleAllowed(t))
        {
            return null;
        }

        var think = Of(tokenizer, trace, new Dictionary<int, string>(chosen) { [t] = Probe });
        int d = document.Ids.AsSpan().CommonPrefixLength(think.Ids);

        // The stub "indent#" ends at a token boundary of the think branch, right after the decision token.
        int commentStart = think.Layout.Starts[Array.IndexOf(think.Layout.Lines, -t)];
        int end = commentStart + trace.IndentBefore(t).Length + 1;
        bool decidable = d >= from && d < document.Ids.Length && d + 1 < think.Ids.Length
            && think.Starts[d] < end && think.Starts[d + 1] == end;
        return decidable ? new DecisionPoint(d, think) : null;
    }

    /// <summary>
    /// Every decision of <paramref name="trace"/> written with <paramref name="rationales"/>: for each
    /// boundary without a rationale where a comment could start (<see cref="Decision"/>), the index
    /// in this encoding of the line's token that acting writes and the token that would open the
    /// comment there. What a line's likelihood is conditioned on when a comment could have started before it.
    /// </summary>
    public static IReadOnlyList<(int Boundary, int Index, int ThinkToken)> Decisions(TextTokenizer tokenizer, Trace trace, IReadOnlyDictionary<int, string>? rationales, LineTokens document)
    {
        ArgumentNullException.ThrowIfNull(trace);
        var chosen = rationales ?? new Dictionary<int, string>();
        var points = new List<(int, int, int)>();
        for (int t = 1; t <= trace.Count; t++)
        {
            if (!chosen.ContainsKey(t) && Decision(tokenizer, trace, chosen, t, document, 0) is { } point)
            {
                points.Add((t, point.Index, point.Thinking.Ids[point.Index]));
            }
        }

        return points;
    }

    /// <summary>
    /// Sums <paramref name="logProbs"/> (per token p ≥ 1: log p(token p | before), as
    /// <see cref="Model.Scoring.Scorer.SequenceLogProbs(RA3.Model.Transformer, IReadOnlyList{int[]}, int)"/> gives them) by <paramref name="owner"/>: per line
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

/// <summary>A decision point: the index of the first token where acting and thinking differ, and the think branch's encoding (its token there opens the comment).</summary>
/// <param name="Index">Index of the decision token in both encodings.</param>
/// <param name="Thinking">The document with a comment before the boundary (a probe rationale).</param>
public sealed record DecisionPoint(int Index, LineTokens Thinking);
