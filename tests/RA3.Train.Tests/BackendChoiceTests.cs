using NUnit.Framework;
using RA3.Kernels.Native;
using RA3.Train.Cli;

namespace RA3.Train.Tests;

/// <summary><c>--backend</c>: every name creates its backend, and <c>cuda</c> without a GPU build says why as a usage error.</summary>
public sealed class BackendChoiceTests
{
    [TestCase("reference")]
    [TestCase("cpu")]
    [TestCase("native")]
    [TestCase("ilgpu-cpu")]
    [TestCase("ilgpu")]
    public void CreatesTheNamedBackend(string name)
    {
        using var backend = BackendChoice.Create(name);
        Assert.That(backend.Name, Does.StartWith(name));
    }

    [Test]
    public void CudaWorksOrSaysWhyAsAUsageError()
    {
        if (NativeBackend.CudaDevices > 0)
        {
            using var backend = BackendChoice.Create("cuda");
            Assert.That(backend.Name, Is.EqualTo("cuda"));
            return;
        }

        var error = Assert.Throws<UsageException>(() => BackendChoice.Create("cuda").Dispose())!;
        Assert.That(error.Message, Does.StartWith("--backend cuda: no CUDA backend"));
    }

    [Test]
    public void AnUnknownNameListsTheChoices()
    {
        var error = Assert.Throws<UsageException>(() => BackendChoice.Create("tpu"))!;
        Assert.That(error.Message, Does.Contain("'tpu'").And.Contain("cuda"));
    }
}
