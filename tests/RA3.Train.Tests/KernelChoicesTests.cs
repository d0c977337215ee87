using NUnit.Framework;
using RA3.Kernels.Cpu;
using RA3.Train.Runs;

namespace RA3.Train.Tests;

/// <summary>
/// A run records the GEMM tuning it computes with and takes it again on resume: a new run writes
/// the process's; a recorded one replaces the process's and says so; a damaged record is one line
/// naming the file.
/// </summary>
[NonParallelizable]
public sealed class KernelChoicesTests
{
    private string dir = null!;
    private GemmTuning saved = null!;

    [SetUp]
    public void Make()
    {
        dir = Path.Combine(Path.GetTempPath(), $"ra3-kernels-{Guid.NewGuid():N}");
        saved = GemmKernel.Tuning;
    }

    [TearDown]
    public void Clean()
    {
        GemmKernel.Tuning = saved;
        if (Directory.Exists(dir))
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void ARunRecordsItsTuningAndTakesItAgainOnResume()
    {
        var log = new List<string>();
        KernelChoices.Pin(dir, log.Add);
        Assert.That(File.ReadAllText(Path.Combine(dir, KernelChoices.FileName)), Is.EqualTo($"gemm {saved}\n"));
        Assert.That(log, Is.Empty);

        // The machine's tuning changes (a new measurement, another processor): the run keeps its own.
        var other = saved with { KC = saved.KC == 128 ? 192 : 128, MC = 48 };
        GemmKernel.Tuning = other;
        KernelChoices.Pin(dir, log.Add);
        Assert.That(GemmKernel.Tuning, Is.EqualTo(saved));
        Assert.That(log.Single(), Does.Contain($"GEMM tuning {saved}, as recorded in").And.Contain($"this machine's own: {other}"));
    }

    [Test]
    public void ADamagedRecordIsNamed()
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, KernelChoices.FileName), "gemm avx2-6x16 kc256\n");
        var e = Assert.Throws<InvalidDataException>(() => KernelChoices.Pin(dir, _ => { }));
        Assert.That(e!.Message, Does.StartWith(Path.Combine(dir, KernelChoices.FileName)).And.Contain("kc, mc, nc"));
    }
}
