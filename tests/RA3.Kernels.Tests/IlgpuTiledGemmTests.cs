using NUnit.Framework;
using RA3.Kernels.Ilgpu;
using RA3.Testing;
using static RA3.Testing.Oracle;
using static TorchSharp.torch;

namespace RA3.Kernels.Tests;

/// <summary>
/// The shared-memory tiled GEMM a GPU runs, on the CPU accelerator configured with 256-thread
/// groups (the default CPU backend uses the barrier-free kernel, which <see cref="OpTests"/> covers).
/// </summary>
public sealed class IlgpuTiledGemmTests
{
    [TestCase(1, 1, 1)]
    [TestCase(17, 33, 20)]
    [TestCase(40, 9, 35)]
    public void TiledGemmAllTransposesWithBiasAlphaBeta(int m, int n, int k)
    {
        using var b = IlgpuBackend.CreateCpu(tiledGemm: true);
        foreach (bool ta in new[] { false, true })
        {
            foreach (bool tb in new[] { false, true })
            {
                float[] a = Random((long)m * k), bw = Random((long)k * n), c0 = Random((long)m * n), bias = Random(n);
                using var c = b.FromArray(c0, m, n);
                using var ka = b.FromArray(a, ta ? [k, m] : [m, k]);
                using var kb = b.FromArray(bw, tb ? [n, k] : [k, n]);
                using var kbias = b.FromArray(bias, n);
                b.Gemm(ka, ta, kb, tb, c, alpha: 0.7f, beta: 0.3f, bias: kbias);
                var ra = T(a, ta ? [k, m] : [m, k]);
                var rb = T(bw, tb ? [n, k] : [k, n]);
                var want = (0.7 * matmul(ta ? ra.t() : ra, tb ? rb.t() : rb)) + (0.3 * T(c0, [m, n])) + T(bias, [n]);

                // Relative to the sum of absolute terms, as OpTests does: a 1x1 result whose terms
                // nearly cancel has a tiny norm but no smaller rounding (a plain relative check failed ~0.4 % of runs).
                var scale = (0.7 * matmul((ta ? ra.t() : ra).abs(), (tb ? rb.t() : rb).abs())) + (0.3 * T(c0, [m, n]).abs()) + T(bias, [n]).abs();
                CloseToScale(c, want, scale, $"tiled gemm {m}x{n}x{k} transA={ta} transB={tb}");
            }
        }
    }

    /// <summary>
    /// The batched path (grid z = batch matrix): a wrong batch offset into A, B or C, or a z range
    /// that stops early, leaves some batch matrix wrong. The shapes are not multiples of the tile.
    /// </summary>
    [TestCase(3, 17, 33, 20)]
    [TestCase(4, 1, 19, 7)]
    public void TiledGemmBatchedAllTransposes(int batch, int m, int n, int k)
    {
        using var b = IlgpuBackend.CreateCpu(tiledGemm: true);
        foreach (bool ta in new[] { false, true })
        {
            foreach (bool tb in new[] { false, true })
            {
                float[] a = Random((long)batch * m * k), bw = Random((long)batch * k * n), c0 = Random((long)batch * m * n);
                int[] aShape = ta ? [batch, k, m] : [batch, m, k], bShape = tb ? [batch, n, k] : [batch, k, n];
                using var c = b.FromArray(c0, batch, m, n);
                using var ka = b.FromArray(a, aShape);
                using var kb = b.FromArray(bw, bShape);
                b.Gemm(ka, ta, kb, tb, c, alpha: 0.7f, beta: 0.3f);
                var ra = T(a, aShape);
                var rb = T(bw, bShape);
                var opA = ta ? ra.transpose(1, 2) : ra;
                var opB = tb ? rb.transpose(1, 2) : rb;
                var want = (0.7 * matmul(opA, opB)) + (0.3 * T(c0, [batch, m, n]));
                var scale = (0.7 * matmul(opA.abs(), opB.abs())) + (0.3 * T(c0, [batch, m, n]).abs());
                CloseToScale(c, want, scale, $"batched tiled gemm {batch}x{m}x{n}x{k} transA={ta} transB={tb}");
            }
        }
    }
}
