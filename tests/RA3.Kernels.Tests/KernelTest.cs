using NUnit.Framework;
using RA3.Kernels;
using RA3.Kernels.Ops;
using RA3.Testing;
using KTensor = RA3.Kernels.Tensors.Tensor;

namespace RA3.Kernels.Tests;

/// <summary>
/// Base of the kernel test fixtures: one backend per fixture (<see cref="BackendCatalog.PortableNames"/>), and
/// tensors made with <see cref="Up(float[], int[])"/> / <see cref="Ints"/> freed after each test.
/// </summary>
[TestFixtureSource(typeof(BackendCatalog), nameof(BackendCatalog.PortableNames))]
public abstract class KernelTest(string backendName) : IDisposable
{
    private readonly List<KTensor> owned = [];

    /// <summary>The fixture's backend.</summary>
    protected Backend B { get; private set; } = null!;

    // Every op checks its index tensors on every backend here, devices included (through a copy):
    // the model leaves that off and checks ids where it builds them (GradientTests).
    [OneTimeSetUp]
    public void Open()
    {
        B = BackendCatalog.Create(backendName);
        B.CheckDeviceIndices = true;
    }

    [OneTimeTearDown]
    public void Dispose()
    {
        B?.Dispose();
        GC.SuppressFinalize(this);
    }

    [TearDown]
    public void FreeTensors()
    {
        owned.ForEach(t => t.Dispose());
        owned.Clear();
    }

    /// <summary>A float tensor on the backend holding <paramref name="data"/>, freed after the test.</summary>
    protected KTensor Up(float[] data, params int[] shape) => Keep(B.FromArray(data, shape));

    /// <summary>An int32 tensor on the backend holding <paramref name="data"/>, freed after the test.</summary>
    protected KTensor Ints(int[] data, params int[] shape) => Keep(B.FromArray(data, shape));

    private KTensor Keep(KTensor t)
    {
        owned.Add(t);
        return t;
    }
}
