using NUnit.Framework;
using RA3.Model.Tokenizers;
using RA3.Train.Midtraining;

namespace RA3.Train.Tests;

/// <summary>
/// <see cref="LineTokens"/>' own arithmetic on hand-made cases: the lead before a document (the
/// corpus separator, a newline, or nothing before a template's own opening), log-probabilities summed by owner
/// (code lines, rationale tokens, nothing for the context or the first token, which no position
/// predicts), and a decision point found exactly at the generation front but not past it. The
/// layout against real tokenizers is <see cref="BpeLineAlignmentTests"/>'.
/// </summary>
[Order(2)]  // before the end-to-end fixtures: its hand-computed checks fail a defect in seconds, where mutation testing stops a run
public sealed class LineTokensTests
{
    [Test]
    public void SumsAddLogProbabilitiesByOwnerAndCountTokensOfEachKind()
    {
        const int P = LineTokens.PrefixOwner, R = LineTokens.RationaleOwner;
        int[] owner = [0, P, 0, R, 0, 1, R, R, 1];
        float[] logProbs = [99f, -0.5f, -1f, -2f, -3f, -4f, -5f, -6f, -7f];  // token 0 has no prediction: its 99 is never read

        var sums = LineTokens.Sum(logProbs, owner, lines: 3);

        Assert.That(sums.Lines, Is.EqualTo(new[] { -1.0 - 3.0, -4.0 - 7.0, 0.0 }));
        Assert.That(sums.CodeTokens, Is.EqualTo(4));
        Assert.That(sums.Rationale, Is.EqualTo(-2.0 - 5.0 - 6.0));
        Assert.That(sums.RationaleTokens, Is.EqualTo(3));
    }

    [Test]
    public void TheLeadIsTheCorpusSeparatorAndOpensEveryLayout()
    {
        var bytes = new ByteTokenizer();
        Assert.That(LineTokens.Lead(bytes), Is.EqualTo(new[] { bytes.EndOfText!.Value }), "end-of-text separates documents in the packed corpus");
        Assert.That(LineTokens.Lead(new TokenizerVariant(bytes, bytes.SpecialIds, endOfText: null, prefix: [])), Is.EqualTo(bytes.Encode("\n", addSpecialTokens: false)), "with neither, a newline");
        Assert.That(LineTokens.Lead(new TokenizerVariant(bytes, bytes.SpecialIds, endOfText: null, prefix: [], suffix: [255])), Is.EqualTo(bytes.Encode("\n", addSpecialTokens: false)), "the newline alone, without the template's closing tokens");
        Assert.That(LineTokens.Lead(new TokenizerVariant(bytes, bytes.SpecialIds, bytes.EndOfText, prefix: [255])), Is.Empty, "a template that opens documents leads itself");

        var trace = Trace.FromCode("t", "x = 1\ny = x\n");
        var layout = LineTokens.Of(bytes, trace);
        int lead = LineTokens.Lead(bytes).Length;
        Assert.That(layout.Ids[..lead], Is.EqualTo(LineTokens.Lead(bytes)));
        Assert.That(layout.Owner[..lead], Is.All.EqualTo(LineTokens.PrefixOwner));
        Assert.That(layout.Starts[..lead], Is.All.EqualTo(-1));
        Assert.That(layout.Owner[lead..], Is.EqualTo(Enumerable.Repeat(0, 6).Concat(Enumerable.Repeat(1, 6))), "then each line's bytes, its newline included");
    }

    [Test]
    public void ADecisionIsFoundAtTheGenerationFrontAndNotPastIt()
    {
        var tokenizer = new ByteTokenizer();
        var trace = Trace.FromCode("t", "def f(x):\n    y = x\n    return y\n");
        var none = new Dictionary<int, string>();
        var document = LineTokens.Of(tokenizer, trace, none);

        var point = LineTokens.Decision(tokenizer, trace, none, 2, document, from: 0);
        Assert.That(point, Is.Not.Null, "line 2 is a decision between '#' and its code");
        Assert.That(tokenizer.Decode([point!.Thinking.Ids[point.Index]]), Is.EqualTo("#"));
        Assert.That(tokenizer.Decode([document.Ids[point.Index]]), Is.EqualTo("y"), "acting writes the line's first code token");

        Assert.That(LineTokens.Decision(tokenizer, trace, none, 2, document, from: point.Index)?.Index, Is.EqualTo(point.Index), "a decision exactly at the front is still ahead");
        Assert.That(LineTokens.Decision(tokenizer, trace, none, 2, document, from: point.Index + 1), Is.Null, "a decision behind the front is past");
        Assert.That(() => LineTokens.Decision(tokenizer, null!, none, 2, document, 0), Throws.ArgumentNullException);
        Assert.That(() => LineTokens.Decision(tokenizer, trace, none, 2, null!, 0), Throws.ArgumentNullException);
        Assert.That(() => LineTokens.Lead(null!), Throws.ArgumentNullException);
        Assert.That(() => LineTokens.Decisions(tokenizer, null!, none, document), Throws.ArgumentNullException);
    }
}
