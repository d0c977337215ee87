using NUnit.Framework;
using RA3.Kernels.Ops;
using RA3.Testing;

namespace RA3.Model.Tests;

/// <summary>Base of the test fixtures that run once per backend (<see cref="Backends.Names"/>): one backend per fixture.</summary>
[TestFixtureSource(typeof(Backends), nameof(Backends.Names))]
public abstract class BackendTest(string backendName) : IDisposable
{
    /// <summary>The fixture's backend.</summary>
    protected Backend Backend { get; private set; } = null!;

    [OneTimeSetUp]
    public void Open() => Backend = Backends.Create(backendName);

    [OneTimeTearDown]
    public void Dispose()
    {
        Backend?.Dispose();
        GC.SuppressFinalize(this);
    }
}
