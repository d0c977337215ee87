using BenchmarkDotNet.Attributes;
using RA3.Kernels;
using RA3.Kernels.Cpu;
using RA3.Kernels.Native;
using RA3.Kernels.Ops;
using static TorchSharp.torch;
using KTensor = RA3.Kernels.Tensors.Tensor;

namespace RA3.Bench;

/// <summary>
/// Latent segment scoring forward + backward at N·L = 4096 tokens (8 × 512, lines of 16 tokens),
/// d = 512, V = 32000 and 50257: our chunked kernels (managed, native) against TorchSharp done
/// plainly (matmul, log_softmax, gather, index_add per line, autograd).
/// </summary>
public class SegmentScoreBench
{
    /// <summary>Sequences, tokens per sequence, width, tokens per line.</summary>
    public const int N = 8, L = 512, D = 512, LineTokens = 16;

    private Backend? backend;
    private KTensor? h, w, targets, lineIds, scores, lse, dScores, dh, dw;
    private Tensor? th, tw, tTargets, tIndex, tdScores;

    /// <summary>Vocabulary size.</summary>
    [Params(32000, 50257)]
    public int V { get; set; } = 32000;

    /// <summary>cpu, native or torch.</summary>
    [Params("cpu", "native", "torch")]
    public string Impl { get; set; } = "cpu";

    /// <summary>FLOPs: the forward GEMM 2·N·L·d·V, the backward's recomputation and two GEMMs: 4× that.</summary>
    public static double Flops(int v) => 4.0 * 2 * N * L * D * v;

    /// <summary>Extra memory beyond inputs and outputs, in MiB: ours a 256 × 2048 logits chunk and a 3-float state per token; TorchSharp's the [N·L, V] logits, log-softmax and their two gradients.</summary>
    public static (double Ours, double Torch) ExtraMemoryMiB(int v) => ((256.0 * 2048 * 4) + (N * L * 3 * 4), 4.0 * N * L * v * 4) switch { var (a, b) => (a / (1 << 20), b / (1 << 20)) };

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(4);
        float[] Rand(int n, double s) => [.. Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() - 0.5) * s))];
        int[] ys = [.. Enumerable.Range(0, N * L).Select(_ => rng.Next(V))];
        int[] lines = [.. Enumerable.Range(0, N * L).Select(r => r % L / LineTokens)];
        const int m = L / LineTokens;
        if (Impl == "torch")
        {
            th = tensor(Rand(N * L * D, 1), [N * L, D], float32).requires_grad_(true);
            tw = tensor(Rand(V * D, 0.1), [V, D], float32).requires_grad_(true);
            tTargets = tensor(ys.Select(y => (long)y).ToArray(), [N * L, 1], int64);
            tIndex = tensor(Enumerable.Range(0, N * L).Select(r => (long)((r / L * m) + lines[r])).ToArray(), int64);
            tdScores = tensor(Rand(N * m, 1), [N * m], float32);
            return;
        }

        backend = BackendCatalog.Create(Impl);
        h = backend.FromArray(Rand(N * L * D, 1), N, L, D);
        w = backend.FromArray(Rand(V * D, 0.1), V, D);
        targets = backend.FromArray(ys, N, L);
        lineIds = backend.FromArray(lines, N, L);
        scores = backend.Empty(RA3.Kernels.Tensors.DType.Float32, N, m);
        lse = backend.Empty(RA3.Kernels.Tensors.DType.Float32, N, L);
        dScores = backend.FromArray(Rand(N * m, 1), N, m);
        dh = backend.Empty(RA3.Kernels.Tensors.DType.Float32, N, L, D);
        dw = backend.Empty(RA3.Kernels.Tensors.DType.Float32, V, D);
    }

    [Benchmark]
    public void ForwardBackward()
    {
        if (backend is null)
        {
            th!.grad?.zero_();
            tw!.grad?.zero_();
            using var scope = NewDisposeScope();
            var logp = nn.functional.log_softmax(th!.matmul(tw!.t()), -1).gather(-1, tTargets!).squeeze(-1);
            var sums = zeros(tdScores!.shape[0], float32).index_add(0, tIndex!, logp, 1.0);
            sums.backward([tdScores!]);
            return;
        }

        backend.SegmentScores(h!, w!, targets!, lineIds!, scores!, lse!);
        backend.SegmentScoresBackward(h!, w!, targets!, lineIds!, lse!, dScores!, dh!, dw!);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { h, w, targets, lineIds, scores, lse, dScores, dh, dw })
        {
            t?.Dispose();
        }

        backend?.Dispose();
        foreach (var t in new[] { th, tw, tTargets, tIndex, tdScores })
        {
            t?.Dispose();
        }
    }
}
