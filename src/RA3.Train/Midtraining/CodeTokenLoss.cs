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
    /// <summary>Measures <paramref name="documents"/> (traces with the rationales inserted in them, or none).</summary>
    public static TokenLoss Measure(Transformer model, TextTokenizer tokenizer, IEnumerable<(Trace Trace, IReadOnlyDictionary<int, string>? Rationales)> documents)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(documents);
        var layouts = documents.Select(d => (d.Trace, Tokens: LineTokens.Of(tokenizer, d.Trace, d.Rationales))).ToList();
        foreach (var (trace, tokens) in layouts)
        {
            model.Config.CheckPositions(tokens.Ids.Length, $"trace {trace.Id}");
        }

        var logProbs = Scorer.SequenceLogProbs(model, [.. layouts.Select(l => l.Tokens.Ids)]);
        double code = 0, rationale = 0;
        long codeTokens = 0, rationaleTokens = 0;
        for (int i = 0; i < layouts.Count; i++)
        {
            var sums = LineTokens.Sum(logProbs[i], layouts[i].Tokens.Owner, layouts[i].Trace.Count);
            code -= sums.Lines.Sum();
            codeTokens += sums.CodeTokens;
            rationale -= sums.Rationale;
            rationaleTokens += sums.RationaleTokens;
        }

        return new TokenLoss(codeTokens > 0 ? code / codeTokens : double.NaN, codeTokens, rationaleTokens > 0 ? rationale / rationaleTokens : double.NaN, rationaleTokens);
    }
}
