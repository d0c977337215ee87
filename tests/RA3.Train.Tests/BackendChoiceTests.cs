using NUnit.Framework;
using RA3.Kernels.Native;
using RA3.Train.Runs;

namespace RA3.Train.Tests;

/// <summary><c>--backend</c>: every name creates its backend, and <c>cuda</c> without a GPU build says why as an error of that setting.</summary>
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
    public void CudaWorksOrSaysWhyAsAnErrorOfTheSetting()
    {
        if (NativeBackend.CudaDevices > 0)
        {
            using var backend = BackendChoice.Create("cuda");
            Assert.That(backend.Name, Is.EqualTo("cuda"));
            return;
        }

        var error = Assert.Throws<SettingsException>(() => BackendChoice.Create("cuda").Dispose())!;
        Assert.That(error.Option, Is.EqualTo("backend"));
        Assert.That(error.Message, Does.StartWith("no CUDA backend"));
    }

    [Test]
    public void AnUnknownNameListsTheChoices()
    {
        var error = Assert.Throws<SettingsException>(() => BackendChoice.Create("tpu"))!;
        Assert.That(error.Option, Is.EqualTo("backend"));
        Assert.That(error.Message, Does.Contain("'tpu'").And.Contain("cuda"));
    }
}
