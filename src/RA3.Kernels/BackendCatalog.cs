using RA3.Kernels.Cuda;
using RA3.Kernels.Ilgpu;
using RA3.Kernels.Ops;

namespace RA3.Kernels;

/// <summary>
/// Every backend, by name: the one place a backend is registered. The command line's
/// <c>--backend</c>, the tests' per-backend fixtures and the benchmarks all read it.
/// </summary>
public static class BackendCatalog
{
    /// <summary>Every entry, the portable ones (runnable on any machine) first.</summary>
    public static IReadOnlyList<BackendEntry> All { get; } =
    [
        .. HostBackends.All,
        new("ilgpu-cpu", "ILGPU's kernels on its CPU accelerator (the GPU kernels, checked anywhere, slowly)", true, typeof(IlgpuBackend), () => IlgpuBackend.CreateCpu()),
        new("ilgpu", "ILGPU's kernels on a CUDA GPU if there is one, else on its CPU accelerator", false, typeof(IlgpuBackend), IlgpuBackend.CreatePreferred),
        new("cuda", "ra3_native's CUDA kernels on a GPU, ILGPU's for the rest", false, typeof(CudaBackend), CudaBackend.Create),
    ];

    /// <summary>Names of the backends that run on any machine: what every op and model test runs on.</summary>
    public static string[] PortableNames { get; } = [.. All.Where(e => e.Portable).Select(e => e.Name)];

    /// <summary>A new backend of that name; <see cref="ArgumentException"/> for a name not in the catalog, <see cref="InvalidOperationException"/> when this machine cannot run it (no GPU, no CUDA build, a wrong library version).</summary>
    public static Backend Create(string name) => BackendEntry.CreateNamed(All, name, "a backend");
}

/// <summary>One backend of <see cref="BackendCatalog"/>.</summary>
/// <param name="Name">What <c>--backend</c> takes.</param>
/// <param name="Description">One line for usage texts.</param>
/// <param name="Portable">Whether it runs on any machine (no GPU needed).</param>
/// <param name="Class">The class <paramref name="Create"/> instantiates: which kernel runs each op is a property of it (<see cref="Backend.KernelOf"/>), known without creating a backend.</param>
/// <param name="Create">Makes a new instance.</param>
public sealed record BackendEntry(string Name, string Description, bool Portable, Type Class, Func<Backend> Create)
{
    /// <summary>A new backend of the entry named <paramref name="name"/>; <see cref="ArgumentException"/> naming the choices (<paramref name="what"/>: "a backend") when none is.</summary>
    internal static Backend CreateNamed(IReadOnlyList<BackendEntry> entries, string name, string what) =>
        (entries.FirstOrDefault(e => e.Name == name) ?? throw new ArgumentException($"'{name}' is not {what}; the choices are {string.Join(", ", entries.Select(e => e.Name))}")).Create();
}
