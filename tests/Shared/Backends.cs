using RA3.Kernels.Cpu;
using RA3.Kernels.Ilgpu;
using RA3.Kernels.Native;
using RA3.Kernels.Ops;

namespace RA3.Testing;

/// <summary>The backends every op test runs on, by name.</summary>
internal static class Backends
{
    /// <summary>Names for NUnit's fixture arguments.</summary>
    public static readonly string[] Names = ["cpu", "native", "ilgpu-cpu"];

    /// <summary>A new backend of the given name.</summary>
    public static Backend Create(string name) => name switch
    {
        "cpu" => new CpuBackend(),
        "native" => NativeBackend.Create(),
        "ilgpu-cpu" => IlgpuBackend.CreateCpu(),
        _ => throw new ArgumentException($"unknown backend '{name}'", nameof(name)),
    };
}
