using NUnit.Framework;
using static RA3.Testing.Oracle;
using static TorchSharp.torch;
using DType = RA3.Kernels.Tensors.DType;
using KTensor = RA3.Kernels.Tensors.Tensor;
using TTensor = TorchSharp.torch.Tensor;

namespace RA3.Kernels.Tests;

/// <summary>
/// The mixed-precision contract on every backend: bfloat16 rounding is PyTorch's, bit for bit;
/// an op with bf16 arguments computes in f32 and rounds its bf16 outputs once; a backend without
/// bf16 kernels runs such an op on the reference tier, counted as a host fallback.
/// </summary>
public sealed class BFloat16Tests(string backendName) : KernelTest(backendName)
{
    [Test]
    public void RoundingIsPyTorchsBitForBit()
    {
        var rng = new Random(11);
        float[] special =
        [
            0f, -0f, 1f, -1f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, -float.NaN,
            float.MaxValue, float.MinValue, float.Epsilon, -float.Epsilon, 1e-40f,
            1f + (1f / 256), 1f + (3f / 256), 1f + (1f / 512), 1.00390625f, 3.0078125f, 65504f, 3.3895314e38f,
        ];
        float[] values = [.. special, .. Enumerable.Range(0, 4000).Select(_ => BitConverter.Int32BitsToSingle(rng.Next(int.MinValue, int.MaxValue)))];
        var wide = Own(B.FromArray(values, values.Length));
        var narrow = Own(B.Empty(DType.BFloat16, values.Length));
        B.Convert(wide, narrow);
        var ours = new ushort[values.Length];
        narrow.CopyTo<ushort>(ours);

        var torchBytes = tensor(values, float32).to_type(ScalarType.BFloat16).bytes.ToArray();
        var torchBits = Enumerable.Range(0, values.Length).Select(i => BitConverter.ToInt16(torchBytes, 2 * i)).ToArray();
        for (int i = 0; i < values.Length; i++)
        {
            if (float.IsNaN(values[i]))
            {
                // NaN bits differ within PyTorch itself (c10::BFloat16 writes 0x7FC0, the vectorised
                // tensor conversion 0xFFFF): the contract is a NaN, ours the canonical 0x7FC0.
                Assert.That(ours[i], Is.EqualTo((ushort)0x7FC0), "a NaN stays the canonical quiet NaN");
                Assert.That(float.IsNaN(BitConverter.UInt32BitsToSingle((uint)(ushort)torchBits[i] << 16)), Is.True);
                continue;
            }

            Assert.That(ours[i], Is.EqualTo((ushort)torchBits[i]), $"bf16 of {values[i]:R} (bits {BitConverter.SingleToInt32Bits(values[i]):X8})");
        }

        var back = Own(B.Empty(DType.Float32, values.Length));
        B.Convert(narrow, back);
        float[] widened = back.ToFloatArray();
        for (int i = 0; i < values.Length; i++)
        {
            Assert.That(BitConverter.SingleToUInt32Bits(widened[i]), Is.EqualTo((uint)ours[i] << 16), "widening is exact");
        }
    }

    [Test]
    public void AnOpOnBFloat16ComputesInFloat32AndRoundsItsOutputOnce()
    {
        const int rows = 7, c = 48;
        const float eps = 1e-6f;
        float[] x = Random(rows * c, -2, 3), w = Random(c, 0.5, 1.5);
        KTensor bx = Narrow(x, rows, c), bw = Narrow(w, c);
        var y = Own(B.Empty(DType.BFloat16, rows, c));
        KTensor rstd = Up(new float[rows], rows);
        B.RmsNorm(bx, bw, y, rstd, eps);

        // The oracle: float64 RMSNorm of the bf16 inputs (widened exactly), rounded to bf16 once.
        var rx = T(Widen(bx), [rows, c]);
        var want = (rx * rsqrt(rx.pow(2).mean([-1], keepdim: true) + eps) * T(Widen(bw), [c])).to_type(ScalarType.BFloat16).to_type(float64);
        Close(Widen(y), want, "bf16 rms norm", 4e-3);  // an f32-vs-f64 difference may flip a rounding: at most 1 bf16 ulp (2⁻⁸) on a few elements
        Close(rstd, rsqrt(rx.pow(2).mean([-1]) + eps), "f32 rstd of bf16 inputs", 1e-5);
        Assert.That(B.HostFallbacks.GetValueOrDefault("RmsNorm"), Is.GreaterThanOrEqualTo(1), "no backend has a bf16-activation norm kernel: the reference runs the op, and says so");
    }

    /// <summary>
    /// Every mix of float32 and bfloat16 storage for a, b, c and the bias, with every transpose and
    /// beta ≠ 0 (a bf16 C is read widened too), against float64 on the widened inputs; a bf16 C is
    /// compared after the same single rounding. A backend that declares a bf16 GEMM runs it without
    /// a host fallback.
    /// </summary>
    /// <remarks>
    /// K = 800 spans several K slices of every blocking the CPU GEMM tunes to (KC ≤ 384): a bf16 C
    /// must still be rounded once, after the last slice, so each element is the single rounding of
    /// the f32 result — at most one bf16 ulp from the float64 one, and that on a few elements only.
    /// </remarks>
    [TestCase(40)]
    [TestCase(800)]
    public void GemmTakesEveryMixOfBFloat16Operands(int k)
    {
        const int m = 9, n = 37;
        const float alpha = 0.75f, beta = 0.5f;
        foreach (int mix in Enumerable.Range(0, 16))
        {
            foreach ((bool ta, bool tb) in new[] { (false, false), (false, true), (true, false), (true, true) })
            {
                bool a16 = (mix & 1) != 0, b16 = (mix & 2) != 0, c16 = (mix & 4) != 0, bias16 = (mix & 8) != 0;
                string what = $"a {(a16 ? "bf16" : "f32")}{(ta ? "ᵀ" : string.Empty)}, b {(b16 ? "bf16" : "f32")}{(tb ? "ᵀ" : string.Empty)}, c {(c16 ? "bf16" : "f32")}, bias {(bias16 ? "bf16" : "f32")}";
                KTensor ka = Stored(Random(m * k), a16, ta ? [k, m] : [m, k]), kb = Stored(Random(k * n), b16, tb ? [n, k] : [k, n]);
                KTensor kc = Stored(Random(m * n), c16, m, n), kbias = Stored(Random(n), bias16, n);
                var ra = T(Widen(ka), ta ? [k, m] : [m, k]);
                var rb = T(Widen(kb), tb ? [n, k] : [k, n]);
                var want = (alpha * (ta ? ra.t() : ra).matmul(tb ? rb.t() : rb)) + (beta * T(Widen(kc), [m, n])) + T(Widen(kbias), [n]);
                long before = B.HostFallbacks.GetValueOrDefault("Gemm");
                B.Gemm(ka, ta, kb, tb, kc, alpha, beta, kbias);
                if (c16)
                {
                    RoundedOnce(Widen(kc), want, what);
                }
                else
                {
                    Close(kc, want, what);
                }

                if (B.TakesBFloat16("Gemm"))
                {
                    Assert.That(B.HostFallbacks.GetValueOrDefault("Gemm"), Is.EqualTo(before), $"{what}: the backend declares a bf16 GEMM, so none of it runs on the reference");
                }
            }
        }
    }

    [Test]
    public void EmbeddingReadsABFloat16Table()
    {
        const int v = 50, c = 37, n = 23;
        var table = Narrow(Random(v * c), v, c);
        int[] ids = RandomInts(n, 0, v);
        var output = Up(new float[n * c], n, c);
        B.Embedding(Ints(ids, n), table, output);
        float[] rows = Widen(table), got = output.ToFloatArray();
        for (int i = 0; i < n; i++)
        {
            Assert.That(got.AsSpan(i * c, c).ToArray(), Is.EqualTo(rows.AsSpan(ids[i] * c, c).ToArray()), $"row {i} is table row {ids[i]}, widened exactly");
        }

        AssertNoFallback("Embedding");
    }

    /// <summary>A bf16 model's norms: float32 activations, bf16 weight and bias; forward, fused add + norm and backward against float64.</summary>
    [Test]
    public void NormsTakeBFloat16WeightsWithFloat32Activations()
    {
        const int rows = 11, c = 45;
        const float eps = 1e-5f;
        float[] x = Random(rows * c, -2, 2), dy = Random(rows * c), d0 = Random(rows * c), dw0 = Random(c), db0 = Random(c);
        KTensor w = Narrow(Random(c, 0.5, 1.5), c), bias = Narrow(Random(c), c);
        var rw = T(Widen(w), [c]);
        var rb = T(Widen(bias), [c]);

        foreach (bool rms in new[] { true, false })
        {
            string what = $"{B.Name}: {(rms ? "rms norm" : "layer norm")}";
            var rx = T(x, [rows, c], requiresGrad: true);
            var centred = rms ? rx : rx - rx.mean([-1], keepdim: true);
            var want = centred * rsqrt(centred.pow(2).mean([-1], keepdim: true) + eps) * rw;
            if (!rms)
            {
                want += rb;
            }

            KTensor kx = Up(x, rows, c), y = Up(new float[rows * c], rows, c), mean = Up(new float[rows], rows), rstd = Up(new float[rows], rows);
            if (rms)
            {
                B.RmsNorm(kx, w, y, rstd, eps);
            }
            else
            {
                B.LayerNorm(kx, w, bias, y, mean, rstd, eps);
            }

            Close(y, want, what);

            // The fused residual add + norm: x = a + b.
            float[] a = Random(rows * c);
            float[] b = [.. x.Select((xi, i) => xi - a[i])];
            KTensor sum = Up(new float[rows * c], rows, c), y2 = Up(new float[rows * c], rows, c);
            if (rms)
            {
                B.AddRmsNorm(Up(a, rows, c), Up(b, rows, c), w, sum, y2, rstd, eps);
            }
            else
            {
                B.AddLayerNorm(Up(a, rows, c), Up(b, rows, c), w, bias, sum, y2, mean, rstd, eps);
            }

            Close(y2, want, $"add + {what}");

            // Backward: bf16 weight, f32 gradients accumulated.
            want.backward([T(dy, [rows, c])]);
            KTensor dx = Up(d0, rows, c), dw = Up(dw0, c), db = Up(db0, c);
            if (rms)
            {
                B.RmsNormBackward(kx, w, rstd, Up(dy, rows, c), dx, dw);
            }
            else
            {
                B.LayerNormBackward(kx, w, mean, rstd, Up(dy, rows, c), dx, dw, db);
                CloseAccumulated(db, db0, T(dy, [rows, c]).sum([0]), $"{what} dbias");
            }

            CloseAccumulated(dx, d0, rx.grad!, $"{what} dx");
            var normalised = centred * rsqrt(centred.pow(2).mean([-1], keepdim: true) + eps);
            CloseAccumulated(dw, dw0, (normalised * T(dy, [rows, c])).sum([0]), $"{what} dweight");
        }

        foreach (var op in new[] { "RmsNorm", "LayerNorm", "AddRmsNorm", "AddLayerNorm", "RmsNormBackward", "LayerNormBackward" })
        {
            AssertNoFallback(op);
        }
    }

    /// <summary>A bf16 model's head: segment scores and their backward with a bf16 unembedding, float32 hidden states and gradients.</summary>
    [Test]
    public void SegmentScoresTakeABFloat16Head()
    {
        const int n = 2, l = 9, d = 24, v = 2100, lines = 4;
        float[] h = Random(n * l * d), dScores = Random(n * lines), dh0 = Random(n * l * d), dw0 = Random(v * d, -0.1, 0.1);
        int[] targets = RandomInts(n * l, 0, v), lineIds = [.. Enumerable.Range(0, n * l).Select(i => (i % l) / 3 - (i % l == 0 ? 1 : 0))];
        var w = Narrow(Random(v * d, -0.5, 0.5), v, d);
        KTensor kh = Up(h, n, l, d), kt = Ints(targets, n, l), kl = Ints(lineIds, n, l);
        KTensor scores = Up(new float[n * lines], n, lines), lse = Up(new float[n * l], n, l);
        B.SegmentScores(kh, w, kt, kl, scores, lse);

        var rh = T(h, [n, l, d], requiresGrad: true);
        var logp = rh.matmul(T(Widen(w), [v, d]).t()).log_softmax(-1).gather(-1, Ids(targets, [n, l]).unsqueeze(-1)).squeeze(-1);
        var mask = T([.. lineIds.Select(i => i < 0 ? 0f : 1f)], [n, l]);
        var onehot = zeros(n, l, lines, dtype: float64);
        for (int i = 0; i < n * l; i++)
        {
            if (lineIds[i] >= 0)
            {
                onehot[i / l, i % l, lineIds[i]] = tensor(1.0);
            }
        }

        var want = ((logp * mask).unsqueeze(-1) * onehot).sum([1]);
        Close(scores, want, "segment scores with a bf16 head");

        KTensor dH = Up(dh0, n, l, d), dW = Up(dw0, v, d);
        B.SegmentScoresBackward(kh, w, kt, kl, lse, Up(dScores, n, lines), dH, dW);
        want.backward([T(dScores, [n, lines])]);
        CloseAccumulated(dH, dh0, rh.grad!, "dH through a bf16 head");
        var rw = T(Widen(w), [v, d], requiresGrad: true);
        var logp2 = T(h, [n, l, d]).matmul(rw.t()).log_softmax(-1).gather(-1, Ids(targets, [n, l]).unsqueeze(-1)).squeeze(-1);
        ((logp2 * mask).unsqueeze(-1) * onehot).sum([1]).backward([T(dScores, [n, lines])]);
        CloseAccumulated(dW, dw0, rw.grad!, "dW (f32) of a bf16 head");
        AssertNoFallback("SegmentScores");
        AssertNoFallback("SegmentScoresBackward");
    }

    // A bf16 result rounded once from f32: each element within one bf16 ulp of the float64 result
    // rounded to bf16 (an f32-vs-f64 difference may flip a rounding), and at most 2% of them off at
    // all. Rounding every K slice's partial sum instead puts about half of them an ulp or more off.
    private static void RoundedOnce(float[] ours, TTensor want, string what)
    {
        float[] rounded = want.to_type(ScalarType.BFloat16).to_type(ScalarType.Float32).data<float>().ToArray();
        Assert.That(ours, Has.Length.EqualTo(rounded.Length), $"{what}: element count");
        int off = 0;
        for (int i = 0; i < ours.Length; i++)
        {
            int ulps = Math.Abs((BitConverter.SingleToInt32Bits(ours[i]) >> 16) - (BitConverter.SingleToInt32Bits(rounded[i]) >> 16));
            Assert.That(ulps, Is.LessThanOrEqualTo(1), $"{what}: element {i} is {ours[i]}, {ulps} bf16 ulps from {rounded[i]}");
            off += ulps;
        }

        Assert.That(off, Is.LessThanOrEqualTo(ours.Length / 50), $"{what}: {off} of {ours.Length} elements an ulp off the single rounding");
    }

    // A backend that declares a bf16 kernel for op ran it itself in this test: the reference was not called.
    private void AssertNoFallback(string op)
    {
        if (B.TakesBFloat16(op))
        {
            Assert.That(B.HostFallbacks.GetValueOrDefault(op), Is.EqualTo(fallbacksAtStart.GetValueOrDefault(op)), $"{op}: declared bf16, yet it ran on the reference");
        }
    }

    private Dictionary<string, long> fallbacksAtStart = [];

    [SetUp]
    public void CountFallbacks() => fallbacksAtStart = new(B.HostFallbacks);

    private KTensor Stored(float[] data, bool bf16, params int[] shape) => bf16 ? Narrow(data, shape) : Up(data, shape);

    private KTensor Narrow(float[] data, params int[] shape)
    {
        var t = Own(B.Empty(DType.BFloat16, shape));
        B.Convert(Up(data, shape), t);
        return t;
    }

    private float[] Widen(KTensor t)
    {
        using var f = B.Empty(DType.Float32, [.. Enumerable.Range(0, t.Shape.Rank).Select(i => t.Shape[i])]);
        B.Convert(t, f);
        return f.ToFloatArray();
    }

    private KTensor Own(KTensor t)
    {
        owned.Add(t);
        return t;
    }

    private readonly List<KTensor> owned = [];

    [TearDown]
    public void FreeOwned()
    {
        owned.ForEach(t => t.Dispose());
        owned.Clear();
    }
}
