using NUnit.Framework;
using NUnit.Framework.Interfaces;
using NUnit.Framework.Internal;
using RA3.Kernels;
using RA3.Kernels.Ops;
using RA3.Testing;
using KTensor = RA3.Kernels.Tensors.Tensor;

namespace RA3.Kernels.Tests;

/// <summary>
/// Base of the kernel test fixtures: one backend per fixture (<see cref="BackendCatalog.PortableNames"/>), and
/// tensors made with <see cref="Up(float[], int[])"/> / <see cref="Ints"/> freed after each test.
/// </summary>
[BackendFixtures]
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

/// <summary>The ops whose results a kernel test checks (names from <see cref="Backend.AllOps"/>).</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class ChecksAttribute(params string[] ops) : Attribute
{
    /// <summary>The ops.</summary>
    public IReadOnlyList<string> Ops { get; } = ops;
}

/// <summary>
/// One fixture per portable backend, as <c>[TestFixtureSource]</c> over <see cref="BackendCatalog.PortableNames"/>
/// builds them, less the tests that would only re-run an earlier fixture's kernels: a test marked
/// <see cref="ChecksAttribute"/> is left out of a backend's fixture when, for every op it checks,
/// an earlier portable backend runs the same kernel (<see cref="Backend.KernelOf"/>) — the native
/// backend inherits the managed CPU kernels for the ops the C ABI lacks, and a backend that does not
/// accelerate an op runs the reference body the reference fixture tests. The test is not built there
/// at all, so nothing is reported as skipped and no kernel is tested twice.
/// </summary>
[AttributeUsage(AttributeTargets.Class, Inherited = true)]
public sealed class BackendFixturesAttribute : NUnitAttribute, IFixtureBuilder2
{
    private readonly TestFixtureSourceAttribute source = new(typeof(BackendCatalog), nameof(BackendCatalog.PortableNames));

    /// <inheritdoc/>
    public IEnumerable<TestSuite> BuildFrom(ITypeInfo typeInfo) => LeaveOutRepeats(source.BuildFrom(typeInfo));

    /// <inheritdoc/>
    public IEnumerable<TestSuite> BuildFrom(ITypeInfo typeInfo, IPreFilter filter) => LeaveOutRepeats(source.BuildFrom(typeInfo, filter));

    // The source yields one suite per class whose children are the per-backend fixtures.
    private static IEnumerable<TestSuite> LeaveOutRepeats(IEnumerable<TestSuite> suites)
    {
        foreach (var suite in suites)
        {
            foreach (var fixture in suite.Tests.OfType<TestSuite>())
            {
                if (fixture.Arguments is [string name, ..])
                {
                    foreach (var test in fixture.Tests.Where(t => AnEarlierFixtureRunsItsKernels(name, t)).ToList())
                    {
                        fixture.Tests.Remove(test);
                    }
                }
            }

            yield return suite;
        }
    }

    /// <summary>Whether, for every op <paramref name="test"/> checks, a portable backend before <paramref name="name"/> in the catalog runs the same kernel.</summary>
    private static bool AnEarlierFixtureRunsItsKernels(string name, ITest test) =>
        test.Method?.GetCustomAttributes<ChecksAttribute>(false).SingleOrDefault() is { } checks && AnEarlierFixtureRuns(name, checks.Ops);

    /// <summary>Whether, for every one of <paramref name="ops"/>, a portable backend before <paramref name="name"/> in the catalog runs the same kernel.</summary>
    internal static bool AnEarlierFixtureRuns(string name, IReadOnlyList<string> ops)
    {
        var portable = BackendCatalog.All.Where(e => e.Portable).ToList();
        int index = portable.FindIndex(e => e.Name == name);
        return ops.All(op => portable.Take(index).Any(e => Backend.KernelOf(e.Class, op) == Backend.KernelOf(portable[index].Class, op)));
    }
}
