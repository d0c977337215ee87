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
/// Causal attention forward + backward at B4 H8 D64, T 256 and 1024: the fused (flash) kernels
/// of the managed and native backends, the native library's plain kernel (probabilities kept), and TorchSharp's scaled_dot_product_attention with autograd.
/// </summary>
public class AttentionBench
{
    private const int B = 4, H = 8, D = 64;
    private Backend? backend;
    private KTensor? q, k, v, o, aux, dout, dq, dk, dv;
    private Tensor? tq, tk, tv, tdout;

    /// <summary>Sequence length.</summary>
    [Params(256, 1024)]
    public int T { get; set; } = 256;

    /// <summary>flash-cpu, flash-native, plain-native, or torch.</summary>
    [Params("flash-cpu", "flash-native", "plain-native", "torch")]
    public string Impl { get; set; } = "flash-cpu";

    /// <summary>FLOPs counted as performance.md does: 4·B·H·T²·D/2 forward, 3.5× that forward+backward.</summary>
    public static double Flops(int t) => 3.5 * 4.0 * B * H * t * t * D / 2;

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(2);
        float[] Rand() => [.. Enumerable.Range(0, B * T * H * D).Select(_ => (float)(rng.NextDouble() - 0.5))];
        if (Impl == "torch")
        {
            tq = tensor(Rand(), [B, H, T, D], float32).requires_grad_(true);
            tk = tensor(Rand(), [B, H, T, D], float32).requires_grad_(true);
            tv = tensor(Rand(), [B, H, T, D], float32).requires_grad_(true);
            tdout = tensor(Rand(), [B, H, T, D], float32);
            return;
        }

        backend = BackendCatalog.Create(Impl[(Impl.IndexOf('-') + 1)..]);
        KTensor Make(float[]? data) => data is null ? backend.Empty(DType.Float32, B, T, H, D) : backend.FromArray(data, B, T, H, D);
        (q, k, v, dout) = (Make(Rand()), Make(Rand()), Make(Rand()), Make(Rand()));
        (o, dq, dk, dv) = (Make(null), Make(null), Make(null), Make(null));
        aux = Impl == "plain-native" ? backend.Empty(DType.Float32, B, H, T, T) : backend.Empty(DType.Float32, B, H, T);
    }

    [Benchmark]
    public void ForwardBackward()
    {
        if (backend is null)
        {
            tq!.grad?.zero_();
            tk!.grad?.zero_();
            tv!.grad?.zero_();
            using var y = nn.functional.scaled_dot_product_attention(tq!, tk!, tv!, is_casual: true);
            y.backward([tdout!]);
            return;
        }

        if (Impl == "plain-native")
        {
            backend.Attention(q!, k!, v!, o!, aux!);
            backend.AttentionBackward(q!, k!, v!, aux!, dout!, dq!, dk!, dv!);
            return;
        }

        backend.FlashAttention(q!, k!, v!, null, o!, aux!);
        backend.FlashAttentionBackward(q!, k!, v!, null, o!, aux!, dout!, dq!, dk!, dv!);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { q, k, v, o, aux, dout, dq, dk, dv })
        {
            t?.Dispose();
        }

        backend?.Dispose();
        foreach (var t in new[] { tq, tk, tv, tdout })
        {
            t?.Dispose();
        }
    }
}
