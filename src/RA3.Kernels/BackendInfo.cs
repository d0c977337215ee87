using System.Runtime.Intrinsics;
using RA3.Kernels.Cpu;
using RA3.Kernels.Ilgpu;
using RA3.Kernels.Native;

namespace RA3.Kernels;

/// <summary>What compute this process can use: one line per backend, for <c>ra3 info</c> and benchmark headers.</summary>
public static class BackendInfo
{
    /// <summary>Lines describing the CPU, native and ILGPU backends (a backend that fails to load says why).</summary>
    public static IEnumerable<string> Describe()
    {
        yield return $"backends: {string.Join(", ", BackendCatalog.All.Select(e => e.Name))} (--backend NAME; the portable ones run anywhere)";
        yield return $"cpu:    {CpuInfo.Describe()}";
        string isa = Vector512.IsHardwareAccelerated ? "AVX-512" : Vector256.IsHardwareAccelerated ? "AVX2" : "scalar";
        yield return $"        managed SIMD {isa}, {Simd.Width} floats per vector, GEMM micro-kernel {GemmKernel.Variant}, {WorkerPool.Threads} threads";
        yield return Try("native", () =>
            $"ra3_native {NativeBackend.LibraryVersion} (ABI {NativeBackend.LibraryAbi}) at {NativeLibraryLoader.LoadedFrom}, {NativeBackend.LibraryThreads} threads, {NativeBackend.CudaDevices} CUDA device(s), GEMM blocking kc{GemmKernel.Tuning.KC} mc{GemmKernel.Tuning.MC} nc{GemmKernel.Tuning.NC} (the tuning's) on the build's register tile, bf16 GEMM on {(NativeBackend.BFloat16DotProducts ? "AVX512-BF16 dot products" : "widened f32 FMAs (no AVX512-BF16)")}");
        yield return Try("ilgpu", () => string.Join("; ", IlgpuBackend.ListDevices()));
    }

    private static string Try(string name, Func<string> describe)
    {
        try
        {
            return $"{name + ":",-7} {describe()}";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException or InvalidOperationException or NotSupportedException)
        {
            return $"{name + ":",-7} unavailable: {e.Message}";
        }
    }
}
