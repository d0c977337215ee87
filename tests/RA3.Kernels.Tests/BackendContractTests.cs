using NUnit.Framework;
using RA3.Kernels.Ops;

namespace RA3.Kernels.Tests;

/// <summary>
/// The backend contract: every op has a public method and a reference body; each backend says
/// which ops it accelerates, and on a device backend an op it does not accelerate still gives the
/// reference's result, through host copies that <see cref="Backend.HostFallbacks"/> counts.
/// </summary>
public sealed class BackendContractTests
{
    /// <summary>The ops the model never calls: kept in the reference tier (and the native C ABI) only.</summary>
    private static readonly string[] ReferenceOnly =
        ["Accumulate", "Attention", "AttentionBackward", "CrossEntropy", "CrossEntropyBackward", "Silu", "SiluBackward", "Softmax", "SoftmaxBackward"];

    [Test]
    public void EveryOpIsAPublicMethod()
    {
        var methods = typeof(Backend).GetMethods().Select(m => m.Name).ToHashSet();
        Assert.That(Backend.AllOps, Has.Count.GreaterThan(30));
        Assert.That(Backend.AllOps.Where(op => !methods.Contains(op)), Is.Empty, "an op's Core has no public method of the same name");
        Assert.Throws<ArgumentException>(() => BackendCatalog.Create("cpu").Accelerates("NoSuchOp"));
    }

    [TestCase("reference", new string[0])]
    [TestCase("cpu", new[] { "Gemm", "FlashAttention", "SegmentScoresBackward", "ElboForwardBackward", "Rope", "RopeBackward" })]
    [TestCase("native", new[] { "Gemm", "FlashAttention", "Softmax", "CrossEntropy", "Attention", "ElboViterbi" })]
    [TestCase("ilgpu-cpu", new[] { "Gemm", "FlashAttentionBackward", "SegmentScores", "AttentionDecode", "AdamW" })]
    public void EachBackendSaysWhatItAccelerates(string name, string[] some)
    {
        using var backend = BackendCatalog.Create(name);
        var accelerated = Backend.AllOps.Where(backend.Accelerates).ToArray();
        Assert.That(accelerated, Is.SupersetOf(some));
        if (name == "reference")
        {
            Assert.That(accelerated, Is.Empty);
        }
        else if (name != "native")
        {
            Assert.That(Backend.AllOps.Except(accelerated), Is.EquivalentTo(ReferenceOnly), "a backend that runs the model accelerates everything it calls");
        }
    }

    /// <summary>The bf16 kernels each backend declares (the mixed-precision contract): the ops a bf16 model's weights flow through, on the CPU backends.</summary>
    [TestCase("reference", new string[0])]
    [TestCase("cpu", new[] { "AddLayerNorm", "AddRmsNorm", "Convert", "Embedding", "Gemm", "LayerNorm", "LayerNormBackward", "RmsNorm", "RmsNormBackward", "SegmentScores", "SegmentScoresBackward", "Zero" })]
    [TestCase("native", new[] { "AddLayerNorm", "AddRmsNorm", "Convert", "Embedding", "Gemm", "LayerNorm", "LayerNormBackward", "RmsNorm", "RmsNormBackward", "SegmentScores", "SegmentScoresBackward", "Zero" })]
    [TestCase("ilgpu-cpu", new[] { "Convert", "Zero" })]
    public void EachBackendSaysWhichKernelsTakeBFloat16(string name, string[] ops)
    {
        using var backend = BackendCatalog.Create(name);
        Assert.That(Backend.AllOps.Where(backend.TakesBFloat16), Is.EquivalentTo(ops));
        Assert.Throws<ArgumentException>(() => backend.TakesBFloat16("NoSuchOp"));
    }

    /// <summary>
    /// The catalog's classes are what its factories make, and the kernel tests leave out exactly
    /// the runs of a kernel an earlier fixture already tests (<see cref="BackendFixturesAttribute"/>).
    /// </summary>
    [Test]
    public void KernelTestsRunEachKernelOnce()
    {
        foreach (var entry in BackendCatalog.All.Where(e => e.Portable))
        {
            using var backend = entry.Create();
            Assert.That(backend.GetType(), Is.EqualTo(entry.Class), entry.Name);
        }

        Assert.Multiple(() =>
        {
            Assert.That(BackendFixturesAttribute.AnEarlierFixtureRuns("native", ["Rope", "RopeBackward"]), Is.True, "native runs cpu's rope");
            Assert.That(BackendFixturesAttribute.AnEarlierFixtureRuns("native", ["Gemm"]), Is.False, "native has its own gemm");
            Assert.That(BackendFixturesAttribute.AnEarlierFixtureRuns("native", ["Rope", "Gemm"]), Is.False, "a test of a native op stays");
            Assert.That(BackendFixturesAttribute.AnEarlierFixtureRuns("cpu", ["Rope"]), Is.False, "cpu has its own rope");
            Assert.That(BackendFixturesAttribute.AnEarlierFixtureRuns("cpu", ["Softmax"]), Is.True, "cpu runs the reference softmax");
            Assert.That(BackendFixturesAttribute.AnEarlierFixtureRuns("ilgpu-cpu", ["Rope"]), Is.False, "ilgpu has its own rope");
            Assert.That(BackendFixturesAttribute.AnEarlierFixtureRuns("reference", ["Softmax"]), Is.False, "the reference fixture runs everything");
        });
    }

    [TestCase("cpu", 0)]
    [TestCase("ilgpu-cpu", 1)]
    public void AFallbackOnDeviceMemoryIsCountedAndCorrect(string name, int copies)
    {
        using var backend = BackendCatalog.Create(name);
        float[] x = [1f, 2f, 3f, -1f, 0f, 0.5f];
        using var input = backend.FromArray(x, 2, 3);
        using var output = backend.Empty(Tensors.DType.Float32, 2, 3);
        backend.Softmax(input, output);
        float[] y = output.ToFloatArray();
        for (int r = 0; r < 2; r++)
        {
            double z = Enumerable.Range(0, 3).Sum(j => Math.Exp(x[(r * 3) + j]));
            for (int j = 0; j < 3; j++)
            {
                Assert.That(y[(r * 3) + j], Is.EqualTo(Math.Exp(x[(r * 3) + j]) / z).Within(1e-6));
            }
        }

        Assert.That(backend.HostFallbacks.GetValueOrDefault("Softmax"), Is.EqualTo(copies));
    }
}
