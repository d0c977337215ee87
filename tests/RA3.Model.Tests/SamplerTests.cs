using NUnit.Framework;
using RA3.Model.Generation;

namespace RA3.Model.Tests;

/// <summary>
/// The sampler's choices against their definitions, by counting many draws: the top-p nucleus is
/// the smallest set of most likely tokens whose mass reaches p, top-k keeps k, temperature scales
/// log-probabilities, −∞ is never drawn, ties go the same way every time, NaN is refused.
/// </summary>
public sealed class SamplerTests
{
    private const int Draws = 20_000;

    // Frequencies of Draws draws; binomial standard deviation at p = 0.5 is 0.0035, so 0.02 is over 5 of them.
    private static double[] Frequencies(float[] logits, SamplingOptions o, ulong seed = 7)
    {
        var sampler = new Sampler(logits.Length);
        var rng = new Rng(seed);
        var counts = new double[logits.Length];
        for (int i = 0; i < Draws; i++)
        {
            counts[sampler.Next(logits, o, rng)]++;
        }

        return [.. counts.Select(c => c / Draws)];
    }

    private static float[] LogitsOf(params double[] probs) => [.. probs.Select(p => (float)Math.Log(p))];

    [Test]
    public void TopPKeepsTheSmallestSetReachingP()
    {
        float[] logits = LogitsOf(0.2, 0.5, 0.3);  // most likely: 1, 2, 0
        Assert.That(Frequencies(logits, new SamplingOptions { Temperature = 1f, TopP = 0.75f }), Is.EqualTo(new[] { 0, 0.5 / 0.8, 0.3 / 0.8 }).Within(0.02), "0.5 < 0.75 ≤ 0.8: tokens 1 and 2");
        Assert.That(Frequencies(logits, new SamplingOptions { Temperature = 1f, TopP = 0.45f }), Is.EqualTo(new[] { 0.0, 1.0, 0.0 }), "the most likely token alone reaches 0.45");
        Assert.That(Frequencies(logits, new SamplingOptions { Temperature = 1f, TopP = 0.85f }), Is.EqualTo(new[] { 0.2, 0.5, 0.3 }).Within(0.02), "0.85 needs all three");
    }

    [Test]
    public void TopPStopsAtTheFirstTokenThatReachesPExactly()
    {
        // Masses 1/2, 1/4, 1/4 are exact in binary: the cumulative mass equals p = 0.5 at the first
        // token, so the nucleus is that token alone (transformers keeps the smallest set whose mass
        // reaches p); stopping only above p, or scanning on past the first set that reaches it, draws the others.
        float[] logits = LogitsOf(0.25, 0.5, 0.25);
        Assert.That(Frequencies(logits, new SamplingOptions { Temperature = 1f, TopP = 0.5f }), Is.EqualTo(new[] { 0.0, 1.0, 0.0 }));
        var two = Frequencies(logits, new SamplingOptions { Temperature = 1f, TopP = 0.75f });
        Assert.That(two[1], Is.EqualTo(2 / 3.0).Within(0.02), "0.75 = 1/2 + 1/4 exactly: the most likely token and one of the tied ones");
        Assert.That(Math.Min(two[0], two[2]), Is.Zero, "the other tied token is outside the nucleus");
    }

    [Test]
    public void LargeLogitsSampleAsTheirDifferencesSay()
    {
        // Softmax depends only on differences: logits near ±1000 (past exp's float range) must give
        // the distribution of the same logits near 0, not infinities or NaN.
        float[] near0 = LogitsOf(0.2, 0.5, 0.3);
        foreach (float shift in new[] { 1000f, -1000f })
        {
            float[] shifted = [.. near0.Select(l => l + shift)];
            Assert.That(Frequencies(shifted, new SamplingOptions { Temperature = 0.7f }), Is.EqualTo(Frequencies(near0, new SamplingOptions { Temperature = 0.7f })).Within(0.02), $"shift {shift}");
        }
    }

    [Test]
    public void TopKAndTemperature()
    {
        float[] logits = LogitsOf(0.1, 0.6, 0.3);
        Assert.That(Frequencies(logits, new SamplingOptions { Temperature = 1f, TopK = 2 }), Is.EqualTo(new[] { 0, 0.6 / 0.9, 0.3 / 0.9 }).Within(0.02));
        // Temperature 2: p ∝ p₀^(1/2).
        double[] soft = [Math.Sqrt(0.1), Math.Sqrt(0.6), Math.Sqrt(0.3)];
        Assert.That(Frequencies(logits, new SamplingOptions { Temperature = 2f }), Is.EqualTo(soft.Select(x => x / soft.Sum())).Within(0.02));
        Assert.That(Frequencies(logits, new SamplingOptions { Temperature = 0f }), Is.EqualTo(new[] { 0.0, 1.0, 0.0 }), "temperature 0 is greedy");
    }

    [Test]
    public void NegativeInfinityIsNeverDrawnAndTiesAreStable()
    {
        float[] logits = [0f, float.NegativeInfinity, 0f, float.NegativeInfinity];
        Assert.That(Frequencies(logits, new SamplingOptions { Temperature = 1f }), Is.EqualTo(new[] { 0.5, 0, 0.5, 0 }).Within(0.02));
        float[] tied = [1f, 3f, 3f, 3f, 2f];
        Assert.That(Sampler.ArgMax(tied), Is.EqualTo(1), "the first largest, as torch.argmax");
        var once = Frequencies(tied, new SamplingOptions { Temperature = 1f, TopK = 1 });
        Assert.That(once.Count(f => f == 1.0), Is.EqualTo(1), "top-1 among tied tokens picks one of them, and always the same");
        Assert.That(Array.IndexOf(once, 1.0), Is.AnyOf(1, 2, 3));
        Assert.That(Frequencies(tied, new SamplingOptions { Temperature = 1f, TopK = 1 }, seed: 99), Is.EqualTo(once), "whatever the seed");
    }

    [Test]
    public void NaNOrNoPossibleTokenIsRefused()
    {
        var sampler = new Sampler(3);
        var ex = Assert.Throws<InvalidOperationException>(() => sampler.Next([0f, float.NaN, 1f], new SamplingOptions { Temperature = 1f }, new Rng(1)))!;
        Assert.That(ex.Message, Does.Contain("NaN (token id 1)"));
        Assert.Throws<InvalidOperationException>(() => sampler.Next([0f, float.NaN, 1f], new SamplingOptions(), new Rng(1)), "greedy too");
        Assert.That(() => sampler.Next([float.NegativeInfinity, float.NegativeInfinity, float.NegativeInfinity], new SamplingOptions { Temperature = 1f }, new Rng(1)), Throws.InvalidOperationException.With.Message.Contains("-inf"));
    }
}
