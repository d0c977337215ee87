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
/// The temporal-ELBO forward-backward at B = 64 traces of T = 256 lines: our kernels (managed,
/// native) against the recursion written plainly with TorchSharp ops (a loop over lines,
/// vectorised over traces and abstractions, autograd for the backward — as performance.md's
/// PyTorch peer). "copy" is a memory copy of the bytes the pass must touch, the bandwidth limit.
/// </summary>
public class ElboBench
{
    /// <summary>Traces and lines.</summary>
    public const int B = 64, T = 256;

    private Backend? backend;
    private KTensor? seg, pt, lengths, logZ, post, marg;
    private Tensor? tseg, tpt;
    private byte[]? copyFrom, copyTo;

    /// <summary>cpu, native, torch or copy.</summary>
    [Params("cpu", "native", "torch", "copy")]
    public string Impl { get; set; } = "cpu";

    /// <summary>Bytes the pass must touch once: seg read and marginals written ([B, T+1, T] floats each), priors and posteriors.</summary>
    public static double Bytes => (2.0 * B * (T + 1) * T * 4) + (2.0 * B * T * 4);

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(6);
        float[] segData = [.. Enumerable.Range(0, B * (T + 1) * T).Select(_ => (float)(-3 * rng.NextDouble()))];
        float[] ptData = [.. Enumerable.Range(0, B * T).Select(_ => (float)(-2 - rng.NextDouble()))];
        switch (Impl)
        {
            case "torch":
                tseg = tensor(segData, [B, T + 1, T], float32).requires_grad_(true);
                tpt = tensor(ptData, [B, T], float32).requires_grad_(true);
                return;
            case "copy":
                copyFrom = new byte[(int)Bytes];
                copyTo = new byte[(int)Bytes];
                return;
        }

        backend = BackendCatalog.Create(Impl);
        seg = backend.FromArray(segData, B, T + 1, T);
        pt = backend.FromArray(ptData, B, T);
        lengths = backend.FromArray(Enumerable.Repeat(T, B).ToArray(), B);
        logZ = backend.Empty(DType.Float32, B);
        post = backend.Empty(DType.Float32, B, T);
        marg = backend.Empty(DType.Float32, B, T + 1, T);
    }

    [Benchmark]
    public void ForwardBackward()
    {
        switch (Impl)
        {
            case "torch":
                TorchPass();
                return;
            case "copy":
                copyFrom.AsSpan().CopyTo(copyTo);
                return;
        }

        backend!.ElboForwardBackward(seg!, pt!, -0.05f, lengths!, 0, logZ!, post!, marg!);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { seg, pt, lengths, logZ, post, marg })
        {
            t?.Dispose();
        }

        backend?.Dispose();
        tseg?.Dispose();
        tpt?.Dispose();
    }

    /// <summary>The spec's recursion, batched over traces: F [B, T+1] per line, out of place so autograd gives the marginals.</summary>
    private void TorchPass()
    {
        tseg!.grad?.zero_();
        tpt!.grad?.zero_();
        using var scope = NewDisposeScope();
        const float pa = -0.05f;
        var negInf = full(B, T + 1, float.NegativeInfinity, float32);
        var j = arange(T + 1, int64).unsqueeze(0);
        var f = cat([full(B, 1, pa, float32), tpt![.., ..1], full(B, T - 1, float.NegativeInfinity, float32)], 1);
        for (int line = 1; line < T; line++)
        {
            var emitted = where(j.le(line), f + tseg![.., .., line - 1], negInf);
            var stay = where(j.le(line), emitted + pa, negInf);
            var think = emitted[.., ..(line + 1)].logsumexp(1, keepdim: true) + tpt[.., line..(line + 1)];
            f = cat([stay[.., ..(line + 1)], think, stay[.., (line + 2)..]], 1);
        }

        (f + tseg![.., .., T - 1]).logsumexp(1).sum().backward();
    }
}
