using NUnit.Framework;
using RA3.Kernels.Ops;
using RA3.Testing;
using static RA3.Testing.Oracle;
using static TorchSharp.torch;
using KTensor = RA3.Kernels.Tensors.Tensor;
using TTensor = TorchSharp.torch.Tensor;

namespace RA3.Kernels.Tests;

/// <summary>
/// The temporal-ELBO forward-backward and Viterbi on every backend: hand-computed T = 1 and 2,
/// brute force over all 2^T think/act assignments up to T = 10 and, with K candidates per
/// boundary, over all (K + 1)^T assignments (log Z, best score, best segmentation, marginals), and the same recursion written with TorchSharp float64 ops whose autograd
/// gradients must equal our marginals — with ragged lengths, span limits and −∞ entries.
/// </summary>
public sealed class ElboTests(string backendName) : KernelTest(backendName)
{
    [Test]
    public void OneLineByHand()
    {
        // seg [1, 2, 1]: line 1 without a rationale (j = 0) or after thinking at boundary 1 (j = 1).
        var r = Run([-1.5f, -0.25f], [-2f], priorAct: -0.1f, [1], t: 1, maxSpan: 0);
        double act = -0.1 - 1.5, think = -2 - 0.25, z = LogAdd(act, think);
        Assert.That(r.LogZ[0], Is.EqualTo(z).Within(1e-6));
        Assert.That(r.Think[0], Is.EqualTo(Math.Exp(think - z)).Within(1e-6));
        Assert.That(r.Marginals, Is.EqualTo(new[] { Math.Exp(act - z), Math.Exp(think - z) }).Within(1e-6));
        Assert.That(r.Best[0], Is.EqualTo(Math.Max(act, think)).Within(1e-6));
        Assert.That(r.Abstraction, Is.EqualTo(new[] { act > think ? 0 : 1 }));
    }

    [Test]
    public void TwoLinesByHand()
    {
        // seg[j, t] for j = 0..2, t = 0..1 (row-major [3, 2]); seg[2, 0] is never read.
        float[] seg = [-1f, -2f, -0.5f, -0.7f, 99f, -0.1f];
        float[] pt = [-3f, -1f];
        const float pa = -0.2f;
        double aa = pa - 1 + pa - 2, at = pa - 1 + pt[1] - 0.1, ta = pt[0] - 0.5 + pa - 0.7, tt = pt[0] - 0.5 + pt[1] - 0.1;
        double z = LogAdd(LogAdd(aa, at), LogAdd(ta, tt));
        var r = Run(seg, pt, pa, [2], t: 2, maxSpan: 0);
        Assert.That(r.LogZ[0], Is.EqualTo(z).Within(1e-5));
        Assert.That(r.Think, Is.EqualTo(new[] { Math.Exp(LogAdd(ta, tt) - z), Math.Exp(LogAdd(at, tt) - z) }).Within(1e-5));
        double best = new[] { aa, at, ta, tt }.Max();
        Assert.That(r.Best[0], Is.EqualTo(best).Within(1e-5));
        Assert.That(r.Abstraction, Is.EqualTo(best == at ? new[] { 0, 2 } : best == tt ? new[] { 1, 2 } : best == ta ? new[] { 1, 1 } : new[] { 0, 0 }));

        // With max span 1 every rationale covers one line, so "think then act" is impossible.
        var limited = Run(seg, pt, pa, [2], t: 2, maxSpan: 1);
        Assert.That(limited.LogZ[0], Is.EqualTo(LogAdd(LogAdd(aa, at), tt)).Within(1e-5));
    }

    [TestCase(10, 0)]
    [TestCase(9, 3)]
    [TestCase(7, 1)]
    public void LogZAndViterbiEqualBruteForceOverAllAssignments(int t, int maxSpan)
    {
        const int batch = 4;
        int[] lengths = [t, Math.Max(1, t - 3), 1, Math.Max(1, t - 1)];
        float[] seg = Random(batch * (t + 1) * t, -3, 0), pt = Random(batch * t, -4, -1);
        MaskSome(seg);
        Array.Fill(seg, float.NegativeInfinity, 2 * t, t);  // trace 0: a boundary whose rationale no line survives, as CandidateScorer writes
        var r = Run(seg, pt, -0.3f, lengths, t, maxSpan);
        int table = (t + 1) * t;
        for (int i = 0; i < batch; i++)
        {
            var (z, best, path, marginals, think) = BruteForce(seg.AsSpan(i * table, table), pt.AsSpan(i * t, t), -0.3, lengths[i], t, maxSpan);
            // Probabilities, exact but for float32 rounding; all zero for an impossible trace, as documented.
            Assert.That(r.Marginals.AsSpan(i * table, table).ToArray(), Is.EqualTo(marginals).Within(2e-5), $"line marginals of trace {i}");
            Assert.That(r.Think.AsSpan(i * t, t).ToArray(), Is.EqualTo(think).Within(2e-5), $"think posteriors of trace {i}");
            if (double.IsNegativeInfinity(z))
            {
                // Every assignment is impossible (masked lines under a span limit): log Z and the best score are −∞.
                Assert.That(r.LogZ[i], Is.EqualTo(double.NegativeInfinity), $"log Z of impossible trace {i}");
                Assert.That(r.Best[i], Is.EqualTo(double.NegativeInfinity), $"best score of impossible trace {i}");
                continue;
            }

            Assert.That(r.LogZ[i], Is.EqualTo(z).Within(1e-4 * Math.Max(1, Math.Abs(z))), $"log Z of trace {i}");
            Assert.That(r.Best[i], Is.EqualTo(best).Within(1e-4 * Math.Max(1, Math.Abs(best))), $"best score of trace {i}");
            Assert.That(r.Abstraction.AsSpan(i * t, t).ToArray(), Is.EqualTo(path), $"segmentation of trace {i}");
        }
    }

    [Test]
    public void AnImpossibleTraceHasZeroPosteriors()
    {
        // Line 2 is impossible under every abstraction, so no assignment has any probability.
        const int t = 3;
        float[] seg = Random(2 * (t + 1) * t, -3, 0), pt = Random(2 * t, -4, -1);
        for (int j = 0; j <= t; j++)
        {
            seg[(j * t) + 1] = float.NegativeInfinity;
        }

        var r = Run(seg, pt, -0.3f, [t, t], t, maxSpan: 0);
        Assert.That(r.LogZ[0], Is.EqualTo(double.NegativeInfinity));
        Assert.That(r.Best[0], Is.EqualTo(double.NegativeInfinity));
        Assert.That(r.Marginals.Take((t + 1) * t), Is.All.EqualTo(0.0), "no mass, and no NaN, in an impossible trace's marginals");
        Assert.That(r.Think.Take(t), Is.All.EqualTo(0.0));
        Assert.That(r.LogZ[1], Is.GreaterThan(double.NegativeInfinity), "the other trace is untouched");
        Assert.That(r.Marginals.Skip((t + 1) * t).Sum(), Is.EqualTo(t).Within(1e-5), "each of its lines is under exactly one abstraction");
    }

    [TestCase(37, 0)]
    [TestCase(29, 5)]
    [TestCase(512, 16)]
    public void MarginalsAndThinkPosteriorsAreTheAutogradGradientsOfLogZ(int t, int maxSpan)
    {
        const int batch = 3;
        int[] lengths = [t, t / 2, 1];
        float[] seg = Random(batch * (t + 1) * t, -4, 0), pt = Random(batch * t, -5, -1);
        MaskSome(seg);
        for (int i = 0; i < batch; i++)
        {
            // Keep "never think" possible, so log Z is finite and its gradient defined.
            Array.Fill(seg, -1f, i * (t + 1) * t, t);
        }

        const float pa = -0.05f;
        var r = Run(seg, pt, pa, lengths, t, maxSpan);
        for (int i = 0; i < batch; i++)
        {
            var rs = T(seg[(i * (t + 1) * t)..((i + 1) * (t + 1) * t)], [t + 1, t], requiresGrad: true);
            var rp = T(pt[(i * t)..((i + 1) * t)], [t], requiresGrad: true);
            var z = ElboOracle.LogZ(rs, rp, pa, lengths[i], t, maxSpan);
            z.backward();
            // The kernels keep F and B per line relative to their maxima (offsets in double); without
            // that, float32 cancellation in exp(F + B − log Z) cost 2e-3 at T = 512.
            const double tolerance = 1e-5;
            Close(r.LogZ[i], z.item<double>(), $"log Z {i}", 1e-5);
            Close(Array.ConvertAll(r.Marginals[(i * (t + 1) * t)..((i + 1) * (t + 1) * t)], x => (float)x), rs.grad!, $"line marginals {i}", tolerance);
            Close(Array.ConvertAll(r.Think[(i * t)..((i + 1) * t)], x => (float)x), rp.grad!, $"think posterior {i}", tolerance);
        }
    }

    [TestCase(6, 3, 0)]
    [TestCase(6, 2, 2)]
    [TestCase(5, 4, 1)]
    [TestCase(7, 1, 0)]
    public void KCandidatesPerBoundaryEqualBruteForceOverAllAssignments(int t, int k, int maxSpan)
    {
        // Every assignment of act or think-with-candidate-c at each line, (K + 1)^T of them, enumerated.
        const int batch = 4;
        int[] lengths = [t, Math.Max(1, t - 2), 1, Math.Max(1, t - 1)];
        int table = ((t * k) + 1) * t;
        float[] seg = Random(batch * table, -3, 0), pt = Random(batch * t * k, -4, -1);
        MaskSome(seg);
        Array.Fill(seg, float.NegativeInfinity, (1 + k) * t, t);  // trace 0: one candidate of boundary 2 no line survives
        var r = Run(seg, pt, -0.3f, lengths, t, maxSpan, k);
        for (int i = 0; i < batch; i++)
        {
            var (z, best, path, marginals, think) = BruteForce(seg.AsSpan(i * table, table), pt.AsSpan(i * t * k, t * k), -0.3, lengths[i], t, maxSpan, k);
            Assert.That(r.Marginals.AsSpan(i * table, table).ToArray(), Is.EqualTo(marginals).Within(2e-5), $"line marginals of trace {i}");
            Assert.That(r.Think.AsSpan(i * t * k, t * k).ToArray(), Is.EqualTo(think).Within(2e-5), $"think posteriors of trace {i}");
            if (double.IsNegativeInfinity(z))
            {
                Assert.That(r.LogZ[i], Is.EqualTo(double.NegativeInfinity), $"log Z of impossible trace {i}");
                continue;
            }

            Assert.That(r.LogZ[i], Is.EqualTo(z).Within(1e-4 * Math.Max(1, Math.Abs(z))), $"log Z of trace {i}");
            Assert.That(r.Best[i], Is.EqualTo(best).Within(1e-4 * Math.Max(1, Math.Abs(best))), $"best score of trace {i}");
            Assert.That(r.Abstraction.AsSpan(i * t, t).ToArray(), Is.EqualTo(path), $"segmentation of trace {i}");
        }
    }

    [Test]
    public void OneCandidateInTheKLayoutIsTheOneCandidateLayout()
    {
        const int t = 9;
        int[] lengths = [t, 4];
        float[] seg = Random(2 * (t + 1) * t, -3, 0), pt = Random(2 * t, -4, -1);
        var one = Run(seg, pt, -0.2f, lengths, t, 3);
        var k1 = Run(seg, pt, -0.2f, lengths, t, 3, k: 1);
        Assert.That(k1.LogZ, Is.EqualTo(one.LogZ));
        Assert.That(k1.Marginals, Is.EqualTo(one.Marginals));
        Assert.That(k1.Think, Is.EqualTo(one.Think));
        Assert.That(k1.Abstraction, Is.EqualTo(one.Abstraction));
    }

    [TestCase(23, 3, 0)]
    [TestCase(40, 4, 6)]
    public void KCandidateMarginalsAreTheAutogradGradientsOfLogZ(int t, int k, int maxSpan)
    {
        const int batch = 2;
        int[] lengths = [t, t / 2];
        int table = ((t * k) + 1) * t;
        float[] seg = Random(batch * table, -4, 0), pt = Random(batch * t * k, -5, -1);
        MaskSome(seg);
        for (int i = 0; i < batch; i++)
        {
            Array.Fill(seg, -1f, i * table, t);  // "never think" stays possible: log Z finite
        }

        const float pa = -0.05f;
        var r = Run(seg, pt, pa, lengths, t, maxSpan, k);
        for (int i = 0; i < batch; i++)
        {
            var rs = T(seg[(i * table)..((i + 1) * table)], [(t * k) + 1, t], requiresGrad: true);
            var rp = T(pt[(i * t * k)..((i + 1) * t * k)], [t, k], requiresGrad: true);
            var z = ElboOracle.LogZ(rs, rp, pa, lengths[i], t, k, maxSpan);
            z.backward();
            Close(r.LogZ[i], z.item<double>(), $"log Z {i}", 1e-5);
            Close(Array.ConvertAll(r.Marginals[(i * table)..((i + 1) * table)], x => (float)x), rs.grad!, $"line marginals {i}", 1e-5);
            Close(Array.ConvertAll(r.Think[(i * t * k)..((i + 1) * t * k)], x => (float)x), rp.grad!, $"think posterior {i}", 1e-5);
        }
    }

    [Test]
    public void ASegTableOfTheWrongCandidateCountIsNamed()
    {
        var ex = Assert.Throws<ArgumentException>(() => B.ElboForwardBackward(Up(new float[2 * 7 * 3], 2, 7, 3), Up(new float[2 * 3 * 3], 2, 3, 3), 0f, Ints([3, 3], 2), 0, Up(new float[2], 2), Up(new float[18], 2, 3, 3), Up(new float[42], 2, 7, 3)));
        Assert.That(ex!.Message, Does.Contain("[B, 1 + T·K, T] = [2, 10, 3]"));
    }

    [Test]
    public void BadLengthsNameTheTrace()
    {
        var ex = Assert.Throws<ArgumentException>(() => Run(new float[2 * 3 * 2], new float[4], 0f, [2, 3], t: 2, maxSpan: 0));
        Assert.That(ex!.Message, Does.Contain("lengths[1] = 3"));
    }

    private static double LogAdd(double a, double c) => Math.Max(a, c) + Math.Log(Math.Exp(a - Math.Max(a, c)) + Math.Exp(c - Math.Max(a, c)));

    /// <summary>Sets about one entry in twelve to −∞ (a rationale that makes a line impossible).</summary>
    private static void MaskSome(float[] seg)
    {
        int[] picks = RandomInts(seg.Length / 12, 0, seg.Length);
        foreach (int p in picks)
        {
            seg[p] = float.NegativeInfinity;
        }
    }

    /// <summary>
    /// Enumerates every assignment of a trace — act, or think with one of the K candidates, at each
    /// line — : log-sum-exp, max, the arg max's abstraction per line (0, or 1 + (j − 1)·K + c), and the
    /// posterior marginals [1 + T·K, T] (P(line under s)) and think posteriors [T, K] summed over the
    /// assignments (zero for an impossible trace).
    /// </summary>
    private static (double Z, double Best, int[] Path, double[] Marginals, double[] Think) BruteForce(ReadOnlySpan<float> seg, ReadOnlySpan<float> pt, double pa, int n, int t, int maxSpan, int k = 1)
    {
        double m = double.NegativeInfinity;
        var weights = new List<(double W, int[] Path, int[] Choice)>();
        int count = (int)Math.Pow(k + 1, n);
        for (int code = 0; code < count; code++)
        {
            var path = new int[t];
            var choice = new int[n];
            Array.Fill(path, -1);
            double w = 0;
            int s = 0;
            for (int line = 0, rest = code; line < n && w > double.NegativeInfinity; line++, rest /= k + 1)
            {
                choice[line] = rest % (k + 1);  // 0 = act, c + 1 = think with candidate c
                s = choice[line] > 0 ? 1 + (line * k) + choice[line] - 1 : s;
                int j = s == 0 ? 0 : 1 + ((s - 1) / k);
                if (j >= 1 && maxSpan > 0 && line + 1 - j >= maxSpan)
                {
                    w = double.NegativeInfinity;
                    break;
                }

                w += (choice[line] > 0 ? pt[(line * k) + choice[line] - 1] : pa) + seg[(s * t) + line];
                path[line] = s;
            }

            weights.Add((w, path, choice));
            m = Math.Max(m, w);
        }

        double[] marginals = new double[((t * k) + 1) * t], thinks = new double[t * k];
        if (double.IsNegativeInfinity(m))
        {
            return (m, m, [], marginals, thinks);
        }

        double z = m + Math.Log(weights.Sum(x => Math.Exp(x.W - m)));
        foreach (var (w, path, choice) in weights.Where(x => x.W > double.NegativeInfinity))
        {
            double p = Math.Exp(w - z);
            for (int line = 0; line < n; line++)
            {
                marginals[(path[line] * t) + line] += p;
                if (choice[line] > 0)
                {
                    thinks[(line * k) + choice[line] - 1] += p;
                }
            }
        }

        var best = weights.MaxBy(x => x.W);
        return (z, best.W, best.Path, marginals, thinks);
    }

    /// <summary>Runs the backend's forward-backward and Viterbi on a batch of traces (outputs start as noise, so each must be written).</summary>
    private (double[] LogZ, double[] Think, double[] Marginals, double[] Best, int[] Abstraction) Run(float[] seg, float[] pt, float priorAct, int[] lengths, int t, int maxSpan, int k = 0)
    {
        // k = 0: one candidate per boundary in the [B, T] layout of priorThink; k ≥ 1: the [B, T, K] layout.
        int batch = lengths.Length;
        var ks = Up(seg, batch, (t * Math.Max(k, 1)) + 1, t);
        var kp = k == 0 ? Up(pt, batch, t) : Up(pt, batch, t, k);
        var kl = Ints(lengths, batch);
        KTensor z = Up(Random(batch), batch), post = k == 0 ? Up(Random(batch * t), batch, t) : Up(Random(batch * t * k), batch, t, k), marg = Up(Random(seg.Length), batch, (t * Math.Max(k, 1)) + 1, t), best = Up(Random(batch), batch);
        var path = Ints(new int[batch * t], batch, t);
        B.ElboForwardBackward(ks, kp, priorAct, kl, maxSpan, z, post, marg);
        B.ElboViterbi(ks, kp, priorAct, kl, maxSpan, best, path);
        static double[] D(KTensor x) => [.. x.ToFloatArray().Select(v => (double)v)];
        return (D(z), D(post), D(marg), D(best), path.ToInt32Array());
    }
}
