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
