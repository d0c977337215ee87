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
/// brute force over all 2^T think/act assignments up to T = 10 (log Z, best score, best
/// segmentation), and the same recursion written with TorchSharp float64 ops whose autograd
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
    /// Enumerates every think/act assignment of a trace: log-sum-exp, max, the arg max's abstraction
    /// per line, and the posterior marginals [T+1, T] (P(line under j)) and think posteriors [T]
    /// summed over the assignments (zero for an impossible trace).
    /// </summary>
    private static (double Z, double Best, int[] Path, double[] Marginals, double[] Think) BruteForce(ReadOnlySpan<float> seg, ReadOnlySpan<float> pt, double pa, int n, int t, int maxSpan)
    {
        double m = double.NegativeInfinity;
        var weights = new List<(double W, int[] Path, int Mask)>();
        for (int mask = 0; mask < 1 << n; mask++)
        {
            var path = new int[t];
            Array.Fill(path, -1);
            double w = 0;
            int j = 0;
            for (int line = 0; line < n && w > double.NegativeInfinity; line++)
            {
                bool think = (mask >> line & 1) == 1;
                j = think ? line + 1 : j;
                if (j >= 1 && maxSpan > 0 && line + 1 - j >= maxSpan)
                {
                    w = double.NegativeInfinity;
                    break;
                }

                w += (think ? pt[line] : pa) + seg[(j * t) + line];
                path[line] = j;
            }

            weights.Add((w, path, mask));
            m = Math.Max(m, w);
        }

        double[] marginals = new double[(t + 1) * t], thinks = new double[t];
        if (double.IsNegativeInfinity(m))
        {
            return (m, m, [], marginals, thinks);
        }

        double z = m + Math.Log(weights.Sum(x => Math.Exp(x.W - m)));
        foreach (var (w, path, mask) in weights.Where(x => x.W > double.NegativeInfinity))
        {
            double p = Math.Exp(w - z);
            for (int line = 0; line < n; line++)
            {
                marginals[(path[line] * t) + line] += p;
                thinks[line] += (mask >> line & 1) * p;
            }
        }

        var best = weights.MaxBy(x => x.W);
        return (z, best.W, best.Path, marginals, thinks);
    }

    /// <summary>Runs the backend's forward-backward and Viterbi on a batch of traces (outputs start as noise, so each must be written).</summary>
    private (double[] LogZ, double[] Think, double[] Marginals, double[] Best, int[] Abstraction) Run(float[] seg, float[] pt, float priorAct, int[] lengths, int t, int maxSpan)
    {
        int batch = lengths.Length;
        var ks = Up(seg, batch, t + 1, t);
        var kp = Up(pt, batch, t);
        var kl = Ints(lengths, batch);
        KTensor z = Up(Random(batch), batch), post = Up(Random(batch * t), batch, t), marg = Up(Random(seg.Length), batch, t + 1, t), best = Up(Random(batch), batch);
        var path = Ints(new int[batch * t], batch, t);
        B.ElboForwardBackward(ks, kp, priorAct, kl, maxSpan, z, post, marg);
        B.ElboViterbi(ks, kp, priorAct, kl, maxSpan, best, path);
        static double[] D(KTensor x) => [.. x.ToFloatArray().Select(v => (double)v)];
        return (D(z), D(post), D(marg), D(best), path.ToInt32Array());
    }
}
