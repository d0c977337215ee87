using NUnit.Framework;
using RA3.Kernels.Ops;
using static RA3.Testing.Oracle;
using KTensor = RA3.Kernels.Tensors.Tensor;

namespace RA3.Kernels.Tests;

/// <summary>
/// <see cref="Backend.SampleTokens"/> on every backend: each draw against an independent oracle that
/// sorts the vocabulary (top-k and top-p as prefixes of the tokens ordered by tempered logit, ties
/// by index), the log-probabilities against a float64 log-softmax, and the distribution of many draws
/// against the definitions (the top-p nucleus is the smallest set reaching p, exactly at p
/// included; temperature scales; −∞ and banned ids are never drawn; ties go to the lower index).
/// </summary>
public sealed class SamplingTests(string backendName) : KernelTest(backendName)
{
    [TestCase(0.7f, 1f, 0)]
    [TestCase(1.3f, 0.9f, 0)]
    [TestCase(1f, 0.95f, 40)]
    [TestCase(0.5f, 1f, 7)]
    [TestCase(0f, 1f, 0)]
    [Checks(nameof(Backend.SampleTokens))]
    public void EachDrawIsTheSortingOraclesDraw(float temperature, float topP, int topK)
    {
        const int rows = 48, v = 301, probesPerRow = 2;
        float[] logits = Random(rows * v, -4, 4), uniforms = Random(rows, 0, 1);
        int[] banned = [.. Enumerable.Range(0, v).Select(i => i % 37 == 5 ? 1 : 0)];
        for (int r = 0; r < rows; r += 5)
        {
            logits[(r * v) + 11] = float.NegativeInfinity;
            logits[(r * v) + 12] = 9f;  // a peaked row: a small nucleus
        }

        int[] probes = [.. Enumerable.Range(0, rows * probesPerRow).Select(i => i % 3 == 0 ? -1 : (i * 17) % v)];
        var (tokens, logProbs, sampleLogProbs, probeLogProbs, entropies) = Sample(logits, uniforms, rows, v, temperature, topP, topK, banned, probes, probesPerRow);
        int ambiguous = 0;
        for (int r = 0; r < rows; r++)
        {
            var row = logits.AsSpan(r * v, v);
            double lse = LogSumExp(row);
            var want = Oracle(row, uniforms[r], temperature, topP, topK, banned, out bool nearBoundary, out double wantSampleLogProb);
            Assert.That(logProbs[r], Is.EqualTo(row[tokens[r]] - lse).Within(1e-5), $"row {r}: log softmax of the drawn token");
            double entropy = 0;
            foreach (float x in row)
            {
                entropy -= x > float.NegativeInfinity ? Math.Exp(x - lse) * (x - lse) : 0;
            }

            Assert.That(entropies[r], Is.EqualTo(entropy).Within(1e-4), $"row {r}: entropy of the model's distribution");
            for (int i = 0; i < probesPerRow; i++)
            {
                int probe = probes[(r * probesPerRow) + i];
                Assert.That(probeLogProbs[(r * probesPerRow) + i], Is.EqualTo(probe < 0 ? 0 : row[probe] - lse).Within(1e-5), $"row {r}: probe {probe}");
            }

            if (nearBoundary)
            {
                ambiguous++;  // u · mass or p · total within rounding of a boundary: float and double may differ here
                continue;
            }

            Assert.That(tokens[r], Is.EqualTo(want), $"row {r}: the oracle's token");
            Assert.That(sampleLogProbs[r], Is.EqualTo(wantSampleLogProb).Within(1e-5), $"row {r}: the behaviour log-probability");
        }

        Assert.That(ambiguous, Is.LessThanOrEqualTo(1), "rows too close to a boundary to compare");
    }

    [Test]
    [Checks(nameof(Backend.SampleTokens))]
    public void TopPKeepsTheSmallestSetReachingPAndStopsWhereItReachesItExactly()
    {
        float[] logits = LogitsOf(0.2, 0.5, 0.3);  // most likely: 1, 2, 0
        Assert.That(Frequencies(logits, 1f, 0.75f, 0), Is.EqualTo(new[] { 0, 0.5 / 0.8, 0.3 / 0.8 }).Within(0.02), "0.5 < 0.75 ≤ 0.8: tokens 1 and 2");
        Assert.That(Frequencies(logits, 1f, 0.45f, 0), Is.EqualTo(new[] { 0.0, 1.0, 0.0 }), "the most likely token alone reaches 0.45");
        Assert.That(Frequencies(logits, 1f, 0.85f, 0), Is.EqualTo(new[] { 0.2, 0.5, 0.3 }).Within(0.02), "0.85 needs all three");

        // Masses 1/2, 1/4, 1/4: the cumulative mass equals p = 0.5 at the first token, so the nucleus
        // is that token alone; at 0.75 the most likely token and the lower-indexed of the tied ones.
        float[] exact = LogitsOf(0.25, 0.5, 0.25);
        Assert.That(Frequencies(exact, 1f, 0.5f, 0), Is.EqualTo(new[] { 0.0, 1.0, 0.0 }));
        Assert.That(Frequencies(exact, 1f, 0.75f, 0), Is.EqualTo(new[] { 1 / 3.0, 2 / 3.0, 0 }).Within(0.02), "ties at the boundary join in index order");
    }

    [Test]
    [Checks(nameof(Backend.SampleTokens))]
    public void TopKTemperatureLargeLogitsAndGreedy()
    {
        float[] logits = LogitsOf(0.1, 0.6, 0.3);
        Assert.That(Frequencies(logits, 1f, 1f, 2), Is.EqualTo(new[] { 0, 0.6 / 0.9, 0.3 / 0.9 }).Within(0.02));
        double[] soft = [Math.Sqrt(0.1), Math.Sqrt(0.6), Math.Sqrt(0.3)];
        Assert.That(Frequencies(logits, 2f, 1f, 0), Is.EqualTo(soft.Select(x => x / soft.Sum())).Within(0.02), "temperature 2: p ∝ p₀^(1/2)");
        Assert.That(Frequencies(logits, 0f, 1f, 0), Is.EqualTo(new[] { 0.0, 1.0, 0.0 }), "temperature 0 is greedy");
        foreach (float shift in new[] { 1000f, -1000f })
        {
            Assert.That(Frequencies([.. logits.Select(l => l + shift)], 0.7f, 1f, 0), Is.EqualTo(Frequencies(logits, 0.7f, 1f, 0)).Within(0.02), $"softmax depends on differences only (shift {shift})");
        }
    }

    [Test]
    [Checks(nameof(Backend.SampleTokens))]
    public void NegativeInfinityAndBannedIdsAreNeverDrawnAndTiesGoToTheLowerIndex()
    {
        float[] logits = [0f, float.NegativeInfinity, 0f, float.NegativeInfinity, 0f];
        Assert.That(Frequencies(logits, 1f, 1f, 0, banned: [0, 0, 0, 0, 1]), Is.EqualTo(new[] { 0.5, 0, 0.5, 0, 0 }).Within(0.02));
        float[] tied = [1f, 3f, 3f, 3f, 2f];
        Assert.That(Frequencies(tied, 1f, 1f, 1), Is.EqualTo(new[] { 0.0, 1, 0, 0, 0 }), "top-1 among tied tokens: the first");
        Assert.That(Frequencies(tied, 0f, 1f, 0), Is.EqualTo(new[] { 0.0, 1, 0, 0, 0 }), "greedy: the first largest, as torch.argmax");
    }

    [Test]
    [Checks(nameof(Backend.SampleTokens))]
    public void ARowWithNaNOrNothingToDrawGetsMinusOne()
    {
        float[] logits = [0f, float.NaN, 1f, float.NegativeInfinity, float.NegativeInfinity, float.NegativeInfinity, 0f, 1f, 2f];
        var (tokens, logProbs, _, _, _) = Sample(logits, [0.5f, 0.5f, 0.5f], 3, 3, 1f, 1f, 0, null, null, 0);
        Assert.That(tokens, Is.EqualTo(new[] { -1, -1, tokens[2] }));
        Assert.That(tokens[2], Is.InRange(0, 2));
        Assert.That(float.IsNaN(logProbs[0]) && float.IsNaN(logProbs[1]), "no log-probability either");
        Assert.That(Sample(logits, [0.5f, 0.5f, 0.5f], 3, 3, 0f, 1f, 0, null, null, 0).Tokens, Is.EqualTo(new[] { -1, -1, 2 }), "greedy too");
    }

    private static float[] LogitsOf(params double[] probs) => [.. probs.Select(p => (float)Math.Log(p))];

    // Frequencies of 12,000 draws (rows of the same logits, uniforms evenly spread and shuffled):
    // the binomial standard deviation at p = 0.5 is 0.0046, so 0.02 is over four of them.
    private double[] Frequencies(float[] logits, float temperature, float topP, int topK, int[]? banned = null)
    {
        const int rows = 12_000;
        int v = logits.Length;
        float[] all = [.. Enumerable.Range(0, rows).SelectMany(_ => logits)];
        float[] uniforms = [.. Enumerable.Range(0, rows).Select(i => (i + 0.5f) / rows)];
        var tokens = Sample(all, uniforms, rows, v, temperature, topP, topK, banned, null, 0).Tokens;
        var counts = new double[v];
        foreach (int t in tokens)
        {
            counts[t]++;
        }

        return [.. counts.Select(c => c / rows)];
    }

    private (int[] Tokens, float[] LogProbs, float[] SampleLogProbs, float[] ProbeLogProbs, float[] Entropies) Sample(float[] logits, float[] uniforms, int rows, int v, float temperature, float topP, int topK, int[]? banned, int[]? probes, int p)
    {
        KTensor tokens = Ints(new int[rows], rows), logProbs = Up(new float[rows], rows), sampleLogProbs = Up(new float[rows], rows), entropies = Up(new float[rows], rows);
        KTensor? probeT = probes is null ? null : Ints(probes, rows, p), probeOut = probes is null ? null : Up(new float[rows * p], rows, p);
        B.SampleTokens(Up(logits, rows, v), Up(uniforms, rows), temperature, topP, topK, banned is null ? null : Ints(banned, v), probeT, tokens, logProbs, sampleLogProbs, probeOut, entropies);
        return (tokens.ToInt32Array(), logProbs.ToFloatArray(), sampleLogProbs.ToFloatArray(), probeOut?.ToFloatArray() ?? [], entropies.ToFloatArray());
    }

    /// <summary>
    /// The draw by sorting: allowed tokens by tempered logit (ties by index), top-k and top-p as
    /// prefixes, then the kept set walked in index order; <paramref name="nearBoundary"/> when a
    /// boundary lies within 1e-6 (relative) of the decision, where float and double may part.
    /// </summary>
    private static int Oracle(ReadOnlySpan<float> logits, float u, float temperature, float topP, int topK, int[] banned, out bool nearBoundary, out double sampleLogProb)
    {
        float[] row = logits.ToArray();
        var allowed = Enumerable.Range(0, row.Length).Where(i => banned[i] == 0 && row[i] > float.NegativeInfinity).ToList();
        nearBoundary = false;
        sampleLogProb = 0;
        if (temperature == 0f)
        {
            return allowed.OrderByDescending(i => row[i]).ThenBy(i => i).First();
        }

        double[] z = [.. Enumerable.Range(0, row.Length).Select(i => (double)(row[i] / temperature))];
        double max = allowed.Max(i => z[i]);
        var order = allowed.OrderByDescending(i => z[i]).ThenBy(i => i).ToList();
        if (topK > 0 && topK < order.Count)
        {
            order = order.Take(topK).ToList();
        }

        double total = order.Sum(i => Math.Exp(z[i] - max));
        if (topP < 1f)
        {
            double cumulative = 0;
            int keep = order.Count;
            for (int n = 0; n < order.Count; n++)
            {
                cumulative += Math.Exp(z[order[n]] - max);
                if (cumulative >= topP * total)
                {
                    keep = n + 1;
                    nearBoundary |= Math.Abs(cumulative - (topP * total)) < 1e-6 * total || Math.Abs(cumulative - Math.Exp(z[order[n]] - max) - (topP * total)) < 1e-6 * total;
                    break;
                }
            }

            order = order.Take(keep).ToList();
        }

        var kept = order.Order().ToList();
        double mass = kept.Sum(i => Math.Exp(z[i] - max)), target = u * mass, acc = 0;
        foreach (int i in kept)
        {
            acc += Math.Exp(z[i] - max);
            nearBoundary |= Math.Abs(acc - target) < 1e-6 * mass;
            if (acc > target)
            {
                sampleLogProb = z[i] - max - Math.Log(mass);
                return i;
            }
        }

        sampleLogProb = z[kept[^1]] - max - Math.Log(mass);
        return kept[^1];
    }

    private static double LogSumExp(ReadOnlySpan<float> row)
    {
        double max = double.NegativeInfinity;
        foreach (float x in row)
        {
            max = Math.Max(max, x);
        }

        double sum = 0;
        foreach (float x in row)
        {
            sum += Math.Exp(x - max);
        }

        return max + Math.Log(sum);
    }
}
