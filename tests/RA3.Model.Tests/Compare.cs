using NUnit.Framework;

namespace RA3.Model.Tests;

/// <summary>Comparisons of our float32 results with reference arrays (Hugging Face fixtures, TorchSharp float64).</summary>
internal static class Compare
{
    /// <summary>
    /// Asserts ‖ours − ref‖₂ / ‖ref‖₂ ≤ <paramref name="tolerance"/> and, elementwise,
    /// |ours − ref| ≤ tolerance · max|ref| — so one large error cannot hide in a long vector. NaN fails.
    /// </summary>
    public static void Relative(ReadOnlySpan<float> ours, ReadOnlySpan<double> reference, double tolerance, string what)
    {
        Assert.That(ours.Length, Is.EqualTo(reference.Length), $"{what}: length");
        double diff = 0, norm = 0, maxRef = 0, maxErr = 0;
        int worst = 0;
        for (int i = 0; i < ours.Length; i++)
        {
            double d = ours[i] - reference[i];
            Assert.That(double.IsFinite(ours[i]), Is.True, $"{what}[{i}] = {ours[i]}");
            diff += d * d;
            norm += reference[i] * reference[i];
            maxRef = Math.Max(maxRef, Math.Abs(reference[i]));
            if (Math.Abs(d) > maxErr)
            {
                maxErr = Math.Abs(d);
                worst = i;
            }
        }

        double rel = Math.Sqrt(diff / Math.Max(norm, 1e-300));
        Assert.That(rel, Is.LessThanOrEqualTo(tolerance), $"{what}: norm-wise relative error {rel:E3} > {tolerance:E1}");
        Assert.That(maxErr, Is.LessThanOrEqualTo(tolerance * maxRef), $"{what}: element {worst} off by {maxErr:E3} (ours {ours[worst]}, reference {reference[worst]}, max |ref| {maxRef:E3})");
    }

    /// <summary><see cref="Relative(ReadOnlySpan{float}, ReadOnlySpan{double}, double, string)"/> for a float reference.</summary>
    public static void Relative(ReadOnlySpan<float> ours, float[] reference, double tolerance, string what) =>
        Relative(ours, reference.Select(x => (double)x).ToArray(), tolerance, what);
}
