using NUnit.Framework;
using RA3.Kernels.Cpu;
using static RA3.Testing.Oracle;
using static TorchSharp.torch;

namespace RA3.Kernels.Tests;

/// <summary>
/// The packed GEMM's tuning: every tile and blocking this processor runs computes every transpose
/// against float64; tunings with the same K slice give the same bits (the tile, MC and NC do not
/// change the order of an element's sum — what lets a run record only its tuning to resume bit for
/// bit); the text form round-trips and a bad one names its part; the per-processor cache keeps the
/// first measurement written.
/// </summary>
[NonParallelizable]
public sealed class GemmTuningTests
{
    private GemmTuning saved = null!;

    [SetUp]
    public void Save() => saved = GemmKernel.Tuning;

    [TearDown]
    public void Restore() => GemmKernel.Tuning = saved;

    public static IEnumerable<GemmTuning> Candidates() =>
        from tile in GemmTuning.Tiles
        from kc in new[] { 128, 192, 256, 384 }
        from mc in new[] { 48, 96 }
        from nc in new[] { 96, 3072 }
        select new GemmTuning(tile, kc, mc, nc);

    [Test]
    public void EveryTuningComputesEveryTranspose()
    {
        const int m = 70, n = 200, k = 500;  // more than one K slice, column block and row block
        using var backend = new CpuBackend();
        float[] a = Random(m * k), b = Random(k * n), c0 = Random(m * n), bias = Random(n);
        foreach (var tuning in Candidates())
        {
            GemmKernel.Tuning = tuning;
            foreach (var (ta, tb) in new[] { (false, false), (false, true), (true, false), (true, true) })
            {
                using var ka = backend.FromArray(a, ta ? [k, m] : [m, k]);
                using var kb = backend.FromArray(b, tb ? [n, k] : [k, n]);
                using var kc = backend.FromArray(c0, m, n);
                using var kbias = backend.FromArray(bias, n);
                backend.Gemm(ka, ta, kb, tb, kc, 0.5f, 0.25f, kbias);
                var ra = T(a, ta ? [k, m] : [m, k]);
                var rb = T(b, tb ? [n, k] : [k, n]);
                Close(kc, (0.5 * (ta ? ra.t() : ra).matmul(tb ? rb.t() : rb)) + (0.25 * T(c0, [m, n])) + T(bias, [n]), $"{tuning}, transA {ta}, transB {tb}");
            }
        }
    }

    [Test]
    public void TuningsWithTheSameKSliceGiveTheSameBits()
    {
        const int m = 64, n = 150, k = 600;
        using var backend = new CpuBackend();
        float[] a = Random(m * k), b = Random(k * n);
        foreach (var group in Candidates().GroupBy(t => t.KC))
        {
            float[]? first = null;
            foreach (var tuning in group)
            {
                GemmKernel.Tuning = tuning;
                using var ka = backend.FromArray(a, m, k);
                using var kb = backend.FromArray(b, k, n);
                using var kc = backend.Empty(Tensors.DType.Float32, m, n);
                backend.Gemm(ka, false, kb, false, kc);
                float[] got = kc.ToFloatArray();
                first ??= got;
                Assert.That(got, Is.EqualTo(first), $"{tuning} against {group.First()}");
            }
        }
    }

    [Test]
    public void TheTextFormRoundTripsAndABadOneNamesItsPart()
    {
        foreach (var tuning in Candidates())
        {
            Assert.That(GemmTuning.Parse(tuning.ToString()), Is.EqualTo(tuning));
        }

        Assert.That(() => GemmTuning.Parse("avx2-6x16 kc256 mc96"), Throws.TypeOf<FormatException>().With.Message.Contains("a tile and kc, mc, nc"));
        Assert.That(() => GemmTuning.Parse("sse-4x8 kc256 mc96 nc3072"), Throws.TypeOf<FormatException>().With.Message.Contains("tile 'sse-4x8'"));
        Assert.That(() => GemmTuning.Parse("avx2-6x16 kc0 mc96 nc3072"), Throws.TypeOf<FormatException>().With.Message.Contains("'kc0'"));
        Assert.That(() => GemmTuning.Parse("avx2-6x16 kc256 mc100 nc3072"), Throws.TypeOf<FormatException>().With.Message.Contains("multiple of 24"));
    }

    [Test]
    public void TheCacheKeepsTheFirstMeasurementWritten()
    {
        string cache = Path.Combine(Path.GetTempPath(), $"ra3-tuning-{Guid.NewGuid():N}");
        string? before = Environment.GetEnvironmentVariable("RA3_CACHE_HOME"), forced = Environment.GetEnvironmentVariable(GemmTuning.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable("RA3_CACHE_HOME", cache);
            Environment.SetEnvironmentVariable(GemmTuning.EnvironmentVariable, null);
            Assert.That(GemmTuning.Cached(), Is.EqualTo(GemmTuning.Default), "nothing measured yet: the default");
            var measured = GemmTuning.ForThisProcessor();
            Assert.That(measured.Runs, Is.True);
            string file = Directory.GetFiles(cache).Single();
            Assert.That(GemmTuning.Parse(File.ReadAllText(file)), Is.EqualTo(measured));

            // Another process's measurement written first is the one every later process takes.
            var other = new GemmTuning(GemmTuning.Tiles[0], 192, 48, 1536);
            File.WriteAllText(file, other + "\n");
            Assert.That(GemmTuning.ForThisProcessor(), Is.EqualTo(other));
            Assert.That(GemmTuning.Cached(), Is.EqualTo(other));

            Environment.SetEnvironmentVariable(GemmTuning.EnvironmentVariable, "default");
            Assert.That(GemmTuning.ForThisProcessor(), Is.EqualTo(GemmTuning.Default), "the environment overrides the cache");
        }
        finally
        {
            Environment.SetEnvironmentVariable("RA3_CACHE_HOME", before);
            Environment.SetEnvironmentVariable(GemmTuning.EnvironmentVariable, forced);
            if (Directory.Exists(cache))
            {
                Directory.Delete(cache, recursive: true);
            }
        }
    }
}
