using NUnit.Framework;
using RA3.Kernels.Ops;
using RA3.Testing;
using static RA3.Testing.Oracle;
using static TorchSharp.torch;
using KTensor = RA3.Kernels.Tensors.Tensor;

namespace RA3.Kernels.Tests;

/// <summary>
/// Fused causal attention on every backend against TorchSharp float64 SDPA (is_causal, or an
/// explicit sliding-window mask) and autograd: grouped-query heads, head dims 32/64/128 and odd
/// ones, several key tiles, right padding by per-sequence lengths (padded rows output 0 and pass
/// no gradient), sliding windows (within a tile, across tiles, and long enough past the diagonal
/// that whole key tiles are skipped); gradient buffers start random, so accumulation is checked.
/// </summary>
public sealed class FlashAttentionTests(string backendName) : KernelTest(backendName)
{
    [TestCase(2, 17, 4, 2, 32, false, 0)]
    [TestCase(1, 150, 2, 1, 64, true, 0)]
    [TestCase(2, 9, 3, 3, 128, true, 0)]
    [TestCase(3, 13, 6, 2, 7, true, 0)]
    [TestCase(1, 260, 2, 2, 24, false, 0)]
    [TestCase(2, 17, 4, 2, 8, true, 5)]
    [TestCase(1, 300, 2, 1, 16, false, 60)]
    [TestCase(1, 530, 1, 1, 8, true, 20)]
    public void MatchesSdpaWithGradients(int batch, int t, int hq, int hkv, int d, bool padded, int window)
    {
        float[] q = Random(batch * t * hq * d), k = Random(batch * t * hkv * d), v = Random(batch * t * hkv * d), dout = Random(batch * t * hq * d);
        float[] dq0 = Random(q.Length), dk0 = Random(k.Length), dv0 = Random(v.Length);
        int[] lengths = [.. Enumerable.Range(0, batch).Select(i => padded ? Math.Max(1, t - (3 * i) - 2) : t)];
        var mask = tensor(Enumerable.Range(0, batch * t).Select(r => r % t < lengths[r / t] ? 1.0 : 0.0).ToArray(), [batch, t, 1, 1], float64);
        var rq = T(q, [batch, t, hq, d], true);
        var rk = T(k, [batch, t, hkv, d], true);
        var rv = T(v, [batch, t, hkv, d], true);
        var kh = rk.repeat_interleave(hq / hkv, 2).transpose(1, 2);
        var vh = rv.repeat_interleave(hq / hkv, 2).transpose(1, 2);

        // transformers' sliding window: query i sees keys j with i − window < j ≤ i.
        var causal = triu(full(t, t, double.NegativeInfinity, float64), 1);
        var visible = window == 0 ? causal : causal + tril(full(t, t, double.NegativeInfinity, float64), -window);
        var scoresRef = matmul(rq.transpose(1, 2), kh.transpose(2, 3)) / Math.Sqrt(d) + visible;
        var attention = window == 0
            ? nn.functional.scaled_dot_product_attention(rq.transpose(1, 2), kh, vh, is_casual: true)
            : nn.functional.scaled_dot_product_attention(rq.transpose(1, 2), kh, vh, attn_mask: visible);
        var want = attention.transpose(1, 2) * mask;
        want.backward([T(dout, [batch, t, hq, d])]);

        KTensor kq = Up(q, batch, t, hq, d), kk = Up(k, batch, t, hkv, d), kv = Up(v, batch, t, hkv, d);
        KTensor output = Up(Random(q.Length), batch, t, hq, d), lse = Up(Random(batch * hq * t), batch, hq, t);
        KTensor? lens = padded ? Ints(lengths, batch) : null;
        B.FlashAttention(kq, kk, kv, lens, output, lse, window);
        Close(output, want, "output");
        Close(lse, scoresRef.logsumexp(-1) * mask.reshape(batch, 1, t), "lse");
        KTensor dq = Up(dq0, batch, t, hq, d), dk = Up(dk0, batch, t, hkv, d), dv = Up(dv0, batch, t, hkv, d);
        B.FlashAttentionBackward(kq, kk, kv, lens, output, lse, Up(dout, batch, t, hq, d), dq, dk, dv, window);
        CloseAccumulated(dq, dq0, rq.grad!, "dq");
        CloseAccumulated(dk, dk0, rk.grad!, "dk");
        CloseAccumulated(dv, dv0, rv.grad!, "dv");
    }

    [Test]
    public void LengthBeyondTIsNamed()
    {
        var q = Up(Random(2 * 3 * 2 * 4), 2, 3, 2, 4);
        var lens = Ints([3, 4], 2);
        var ex = Assert.Throws<ArgumentException>(() => B.FlashAttention(q, q, q, lens, Up(Random(q.Count), 2, 3, 2, 4), Up(Random(12), 2, 2, 3)));
        Assert.That(ex!.Message, Does.Contain("lengths[1] = 4"));
    }

}
