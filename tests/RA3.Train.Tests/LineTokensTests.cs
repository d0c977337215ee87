using NUnit.Framework;
using RA3.Model.Tokenizers;
using RA3.Train.Midtraining;

namespace RA3.Train.Tests;

/// <summary>
/// <see cref="LineTokens"/>' own arithmetic on hand-made cases: log-probabilities summed by owner
/// (code lines, rationale tokens, nothing for the context or the first token, which no position
/// predicts), and a decision point found exactly at the generation front but not past it. The
/// layout against real tokenizers is <see cref="BpeLineAlignmentTests"/>'.
/// </summary>
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
    }
}
