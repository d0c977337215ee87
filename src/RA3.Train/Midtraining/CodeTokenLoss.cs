using RA3.Model.Scoring;
using RA3.Model.Tokenizers;
using RA3.Model;

namespace RA3.Train.Midtraining;

/// <summary>Mean next-token cross-entropy (nats) over code tokens and over rationale tokens, with their counts.</summary>
public sealed record TokenLoss(double Code, long CodeTokens, double Rationale, long RationaleTokens);

/// <summary>
/// The figure RA3 is compared with NTP on (spec §3): cross-entropy of the code tokens of traces,
/// reported apart from the rationale tokens, in the <see cref="LineTokens"/> layout.
/// </summary>
public static class CodeTokenLoss
{
    /// <summary>Measures <paramref name="documents"/> (traces with the rationales inserted in them, or none), all together.</summary>
    public static TokenLoss Measure(Transformer model, TextTokenizer tokenizer, IEnumerable<(Trace Trace, IReadOnlyDictionary<int, string>? Rationales)> documents)
    {
        var each = PerDocument(model, tokenizer, [.. documents]);
        long codeTokens = each.Sum(x => x.CodeTokens), rationaleTokens = each.Sum(x => x.RationaleTokens);
        double code = each.Where(x => x.CodeTokens > 0).Sum(x => x.Code * x.CodeTokens), rationale = each.Where(x => x.RationaleTokens > 0).Sum(x => x.Rationale * x.RationaleTokens);
        return new TokenLoss(codeTokens > 0 ? code / codeTokens : double.NaN, codeTokens, rationaleTokens > 0 ? rationale / rationaleTokens : double.NaN, rationaleTokens);
    }

    /// <summary>The same figures per document (what a paired comparison of two models over documents needs).</summary>
    public static TokenLoss[] PerDocument(Transformer model, TextTokenizer tokenizer, IReadOnlyList<(Trace Trace, IReadOnlyDictionary<int, string>? Rationales)> documents)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(documents);
        var layouts = documents.Select(d => (d.Trace, Tokens: LineTokens.Of(tokenizer, d.Trace, d.Rationales))).ToList();
        foreach (var (trace, tokens) in layouts)
        {
            model.Config.CheckPositions(tokens.Ids.Length, $"trace {trace.Id}");
        }

        var logProbs = Scorer.SequenceLogProbs(model, [.. layouts.Select(l => l.Tokens.Ids)]);
        return [.. layouts.Select((l, i) =>
        {
            var sums = LineTokens.Sum(logProbs[i], l.Tokens.Owner, l.Trace.Count);
            return new TokenLoss(sums.CodeTokens > 0 ? -sums.Lines.Sum() / sums.CodeTokens : double.NaN, sums.CodeTokens, sums.RationaleTokens > 0 ? -sums.Rationale / sums.RationaleTokens : double.NaN, sums.RationaleTokens);
        })];
    }
}
