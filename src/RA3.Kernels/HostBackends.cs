using RA3.Kernels.Cpu;
using RA3.Kernels.Native;
using RA3.Kernels.Ops;
using RA3.Kernels.Reference;

namespace RA3.Kernels;

/// <summary>
/// The backends that compute on host memory without ILGPU: the first entries of
/// <see cref="BackendCatalog.All"/>, kept apart so that code compiled ahead of time (the engine's
/// C API, built with NativeAOT, which cannot compile ILGPU's run-time code generation) can choose
/// a backend by name without reaching the GPU backends' factories.
/// </summary>
public static class HostBackends
{
    /// <summary>reference, cpu and native, in <see cref="BackendCatalog"/>'s order.</summary>
    public static IReadOnlyList<BackendEntry> All { get; } =
    [
        new("reference", "plain scalar reference kernels on host memory (slow: the definition every kernel is tested against)", true, typeof(ReferenceBackend), () => new ReferenceBackend()),
        new("cpu", "managed SIMD kernels on all cores", true, typeof(CpuBackend), () => new CpuBackend()),
        new("native", "ra3_native's C++ kernels, the C ABI a native host embeds", true, typeof(NativeBackend), NativeBackend.Create),
    ];

    /// <summary>A new host backend of that name; <see cref="ArgumentException"/> naming the host backends for any other name.</summary>
    public static Backend Create(string name) => BackendEntry.CreateNamed(All, name, "a host backend");
}
