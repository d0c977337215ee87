using NUnit.Framework;
using RA3.Kernels.Ops;
using static TorchSharp.torch;
using KTensor = RA3.Kernels.Tensors.Tensor;
using TTensor = TorchSharp.torch.Tensor;

namespace RA3.Testing;

/// <summary>
/// The independent reference: TorchSharp in float64 on the CPU. Inputs are drawn from the test's
/// seeded stream (<see cref="TestSeed"/>: fixed, printed, replayable), never zeros; results are compared
/// by norm-wise relative error ‖ours − ref‖ / ‖ref‖, and NaN or ∞ never passes.
/// </summary>
internal static class Oracle
{
    /// <summary>Tolerance for float32 results against the float64 reference.</summary>
    public const double Tolerance = 1e-5;

    static Oracle()
    {
        try
        {
            set_default_dtype(float64);
        }
        catch (Exception e)
        {
            throw new InvalidOperationException(
                "TorchSharp could not load libtorch/libLibTorchSharp (the oracle of every kernel test). The build patches " +
                "libLibTorchSharp.so with tools/elf_weak_version.py; check that python3 ran and that the TorchSharp-cpu package restored. Cause: " + e,
                e);
        }
    }

    /// <summary>Uniform values in [lo, hi) from the test's random source.</summary>
    public static float[] Random(long count, double lo = -1.0, double hi = 1.0)
    {
        var r = TestSeed.Random;
        var data = new float[count];
        for (long i = 0; i < count; i++)
        {
            data[i] = (float)(lo + ((hi - lo) * r.NextDouble()));
        }

        return data;
    }

    /// <summary>Random ints in [lo, hi).</summary>
    public static int[] RandomInts(long count, int lo, int hi)
    {
        var r = TestSeed.Random;
        var data = new int[count];
        for (long i = 0; i < count; i++)
        {
            data[i] = r.Next(lo, hi);
        }

        return data;
    }

    /// <summary>A float64 reference tensor holding <paramref name="data"/>.</summary>
    public static TTensor T(float[] data, int[] shape, bool requiresGrad = false)
    {
        var t = tensor(Array.ConvertAll(data, x => (double)x), Array.ConvertAll(shape, x => (long)x), float64);
        return requiresGrad ? t.requires_grad_(true) : t;
    }

    /// <summary>An int64 reference tensor holding <paramref name="data"/>.</summary>
    public static TTensor Ids(int[] data, int[] shape)
    {
        return tensor(Array.ConvertAll(data, x => (long)x), Array.ConvertAll(shape, x => (long)x), int64);
    }

    /// <summary>Asserts that <paramref name="ours"/> matches <paramref name="reference"/> within <paramref name="tolerance"/>.</summary>
    public static void Close(KTensor ours, TTensor reference, string what, double tolerance = Tolerance) =>
        Close(ours.ToFloatArray(), reference, what, tolerance);

    /// <summary>
    /// Asserts ‖ours − reference‖ / ‖scale‖ below <paramref name="tolerance"/>, for a result that can
    /// cancel: <paramref name="scale"/> is the same sum with every term taken absolutely, the quantity
    /// floating-point error is proportional to (a 1×1 product whose terms nearly cancel has a tiny
    /// ‖reference‖ but no larger error).
    /// </summary>
    public static void CloseToScale(KTensor ours, TTensor reference, TTensor scale, string what, double tolerance = Tolerance)
    {
        double[] got = Array.ConvertAll(ours.ToFloatArray(), x => (double)x);
        double[] want = reference.detach().contiguous().to_type(float64).data<double>().ToArray();
        double[] size = scale.detach().contiguous().to_type(float64).data<double>().ToArray();
        Assert.That(got, Has.Length.EqualTo(want.Length), $"{what}: element count");
        double num = got.Zip(want, (a, b) => (a - b) * (a - b)).Sum(), den = size.Sum(x => x * x);
        double rel = Math.Sqrt(num / Math.Max(den, 1e-300));
        Assert.That(rel, Is.LessThan(tolerance), $"{what}: error {rel:E2} relative to the sum of absolute terms (‖scale‖ = {Math.Sqrt(den):E3})");
    }

    /// <summary>
    /// Asserts that an accumulating kernel added <paramref name="gradient"/> to the buffer that held
    /// <paramref name="start"/>: ‖(ours − start) − gradient‖ below <paramref name="tolerance"/>·‖gradient‖
    /// plus 2⁻²⁴·‖ours‖, the rounding of storing the sum in float32 that no kernel avoids. Comparing
    /// ours with start + gradient instead would let the start dominate both norms: with a U(−1, 1)
    /// start and a small gradient, a gradient wrong by 1e-3 of itself passed.
    /// </summary>
    public static void CloseAccumulated(KTensor ours, float[] start, TTensor gradient, string what, double tolerance = Tolerance)
    {
        float[] got = ours.ToFloatArray();
        double[] want = gradient.detach().contiguous().to_type(float64).data<double>().ToArray();
        Assert.That(got, Has.Length.EqualTo(want.Length), $"{what}: element count");
        Assert.That(start, Has.Length.EqualTo(want.Length), $"{what}: start element count");
        double num = 0, den = 0, stored = 0;
        for (int i = 0; i < want.Length; i++)
        {
            double d = (got[i] - (double)start[i]) - want[i];
            num += d * d;
            den += want[i] * want[i];
            stored += (double)got[i] * got[i];
        }

        double error = Math.Sqrt(num), bound = (tolerance * Math.Sqrt(den)) + (Math.Sqrt(stored) / (1 << 24));
        Assert.That(double.IsFinite(error), Is.True, $"{what}: non-finite error (NaN or ∞ in the result)");
        Assert.That(error, Is.LessThan(bound), $"{what}: ‖added − gradient‖ = {error:E2}, relative {error / Math.Max(Math.Sqrt(den), 1e-300):E2} (bound {bound:E2}, ‖gradient‖ = {Math.Sqrt(den):G4})");
    }

    /// <summary>Asserts that <paramref name="ours"/> matches <paramref name="reference"/> within <paramref name="tolerance"/>.</summary>
    public static void Close(float[] ours, TTensor reference, string what, double tolerance = Tolerance)
    {
        double[] want = reference.detach().contiguous().to_type(float64).data<double>().ToArray();
        Assert.That(ours, Has.Length.EqualTo(want.Length), $"{what}: element count");
        double num = 0, den = 0;
        for (int i = 0; i < want.Length; i++)
        {
            double d = ours[i] - want[i];
            num += d * d;
            den += want[i] * want[i];
        }

        double rel = Math.Sqrt(num / Math.Max(den, 1e-300));
        Assert.That(double.IsFinite(rel), Is.True, $"{what}: non-finite error (NaN or ∞ in the result)");
        Assert.That(rel, Is.LessThan(tolerance), $"{what}: relative error {rel:E2} (‖ref‖ = {Math.Sqrt(den):G4})");
    }

    /// <summary>Asserts that <paramref name="ours"/> matches a scalar reference.</summary>
    public static void Close(double ours, double reference, string what, double tolerance = Tolerance)
    {
        Assert.That(double.IsFinite(ours), Is.True, $"{what}: non-finite");
        Assert.That(Math.Abs(ours - reference) / Math.Max(Math.Abs(reference), 1e-300), Is.LessThan(tolerance), $"{what}: {ours} vs {reference}");
    }
}
