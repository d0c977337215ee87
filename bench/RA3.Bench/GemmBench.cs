using BenchmarkDotNet.Attributes;
using RA3.Kernels;
using RA3.Kernels.Cpu;
using RA3.Kernels.Native;
using RA3.Kernels.Ops;
using static TorchSharp.torch;
using DType = RA3.Kernels.Tensors.DType;
using KTensor = RA3.Kernels.Tensors.Tensor;

namespace RA3.Bench;

/// <summary>
/// C[M, N] = A[M, K] · B[K, N] on each backend and in TorchSharp (libtorch's CPU BLAS): float32,
/// and with A and B stored as bfloat16 (a bf16 model's GEMMs; C stays f32) on our backends beside
/// the f32 ones, so the bf16 / f32 ratio is a same-run ratio (the 4096×4864×896 shape is a
/// Qwen2.5-0.5B MLP projection at 4096 tokens).
/// </summary>
public class GemmBench
{
    private Backend? backend;
    private KTensor? a, b, c;
    private Tensor? ta, tb;

    /// <summary>M×N×K.</summary>
    [Params("512x512x512", "1024x1024x1024", "4096x3072x768", "4096x4864x896")]
    public string Shape { get; set; } = "512x512x512";

    /// <summary>cpu (managed), native (ra3_native) or torch, in f32; cpu-bf16 and native-bf16 with A and B stored as bf16.</summary>
    [Params("cpu", "native", "torch", "cpu-bf16", "native-bf16")]
    public string Impl { get; set; } = "cpu";

    /// <summary>FLOPs of one product: 2·M·N·K.</summary>
    public static double Flops(string shape)
    {
        var (m, n, k) = Parse(shape);
        return 2.0 * m * n * k;
    }

    [GlobalSetup]
    public void Setup()
    {
        var (m, n, k) = Parse(Shape);
        var rng = new Random(1);
        float[] Rand(long count) => Enumerable.Range(0, (int)count).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        if (Impl == "torch")
        {
            ta = tensor(Rand((long)m * k), [m, k], float32);
            tb = tensor(Rand((long)k * n), [k, n], float32);
            return;
        }

        backend = BackendCatalog.Create(Impl.Replace("-bf16", string.Empty, StringComparison.Ordinal));
        var storage = Impl.EndsWith("-bf16", StringComparison.Ordinal) ? DType.BFloat16 : DType.Float32;
        a = backend.Empty(storage, m, k);
        b = backend.Empty(storage, k, n);
        a.CopyFromFloats(Rand((long)m * k));
        b.CopyFromFloats(Rand((long)k * n));
        c = backend.Empty(DType.Float32, m, n);
    }

    [Benchmark]
    public void Gemm()
    {
        if (backend is null)
        {
            using var r = matmul(ta!, tb!);
        }
        else
        {
            backend.Gemm(a!, false, b!, false, c!);
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        a?.Dispose();
        b?.Dispose();
        c?.Dispose();
        backend?.Dispose();
        ta?.Dispose();
        tb?.Dispose();
    }

    private static (int M, int N, int K) Parse(string shape)
    {
        int[] d = shape.Split('x').Select(int.Parse).ToArray();
        return (d[0], d[1], d[2]);
    }
}
