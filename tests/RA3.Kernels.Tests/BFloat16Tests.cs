using NUnit.Framework;
using static RA3.Testing.Oracle;
using static TorchSharp.torch;
using DType = RA3.Kernels.Tensors.DType;
using KTensor = RA3.Kernels.Tensors.Tensor;

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
        Assert.That(B.HostFallbacks.GetValueOrDefault("RmsNorm"), Is.GreaterThanOrEqualTo(1), "no backend has bf16 kernels yet: the reference runs the op, and says so");
    }

    [Test]
    public void MixedPrecisionGemmTakesBFloat16WeightsWithFloat32Activations()
    {
        const int m = 9, k = 40, n = 13;
        float[] a = Random(m * k), w = Random(n * k);
        KTensor ka = Up(a, m, k), kw = Narrow(w, n, k), c = Up(new float[m * n], m, n);
        B.Gemm(ka, false, kw, true, c);
        Close(c, T(a, [m, k]).matmul(T(Widen(kw), [n, k]).t()), "f32 activations × bf16 weightsᵀ", 1e-5);
    }

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
