using RA3.Kernels.Cpu;
using RA3.Kernels.Cuda;
using RA3.Kernels.Ilgpu;
using RA3.Kernels.Native;
using RA3.Kernels.Ops;

namespace RA3.Train.Cli;

/// <summary>Creates the compute backend a command asks for with <c>--backend</c>.</summary>
public static class BackendChoice
{
    /// <summary>The accepted names.</summary>
    public const string Names = "cpu (managed SIMD), native (ra3_native C++), cuda (ra3_native's CUDA kernels on a GPU, ILGPU for the rest), ilgpu (CUDA GPU if present, else ILGPU's CPU accelerator)";

    /// <summary>A new backend of that name.</summary>
    public static Backend Create(string name) => name switch
    {
        "cpu" => new CpuBackend(),
        "native" => NativeBackend.Create(),
        "cuda" => CreateCuda(),
        "ilgpu" => IlgpuBackend.CreatePreferred(),
        _ => throw new UsageException($"--backend: '{name}' is not one of {Names}"),
    };

    // A machine without the CUDA build or a GPU is a usage problem of this command line, said as such.
    private static CudaBackend CreateCuda()
    {
        try
        {
            return CudaBackend.Create();
        }
        catch (InvalidOperationException e)
        {
            throw new UsageException($"--backend cuda: {e.Message}");
        }
    }
}
