using NUnit.Framework;
using RA3.Kernels;
using RA3.Kernels.Ops;
using RA3.Testing;

namespace RA3.Model.Tests;

/// <summary>Base of the test fixtures that run once per backend (<see cref="BackendCatalog.PortableNames"/>): one backend per fixture.</summary>
[TestFixtureSource(typeof(BackendCatalog), nameof(BackendCatalog.PortableNames))]
public abstract class BackendTest(string backendName) : IDisposable
{
    /// <summary>The fixture's backend.</summary>
    protected Backend Backend { get; private set; } = null!;

    [OneTimeSetUp]
    public void Open() => Backend = BackendCatalog.Create(backendName);

    [OneTimeTearDown]
    public void Dispose()
    {
        Backend?.Dispose();
        GC.SuppressFinalize(this);
    }
}
