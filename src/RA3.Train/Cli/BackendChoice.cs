using RA3.Kernels.Cpu;
using RA3.Kernels.Ilgpu;
using RA3.Kernels.Native;
using RA3.Kernels.Ops;

namespace RA3.Train.Cli;

/// <summary>Creates the compute backend a command asks for with <c>--backend</c>.</summary>
public static class BackendChoice
{
    /// <summary>The accepted names.</summary>
    public const string Names = "cpu (managed SIMD), native (ra3_native C++), ilgpu (CUDA GPU if present, else ILGPU's CPU accelerator)";

    /// <summary>A new backend of that name.</summary>
    public static Backend Create(string name) => name switch
    {
        "cpu" => new CpuBackend(),
        "native" => NativeBackend.Create(),
        "ilgpu" => IlgpuBackend.CreatePreferred(),
        _ => throw new UsageException($"--backend: '{name}' is not one of {Names}"),
    };
}
