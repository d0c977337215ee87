using NUnit.Framework;
using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;
using RA3.Testing;
using static RA3.Testing.Oracle;
using static TorchSharp.torch;
using KTensor = RA3.Kernels.Tensors.Tensor;
using TTensor = TorchSharp.torch.Tensor;

namespace RA3.Kernels.Tests;

/// <summary>
/// Every op, forward and backward, on every backend, against TorchSharp float64 autograd.
/// Backward ops accumulate, so gradient buffers start with random values and must end at
/// start + gradient. Sizes are odd on purpose (not multiples of the SIMD width or a tile).
/// </summary>
public sealed class OpTests(string backendName) : KernelTest(backendName)
{
    [TestCase(1, 1, 1)]
    [TestCase(7, 13, 5)]
    [TestCase(33, 65, 17)]
    [TestCase(67, 129, 300)]
    [TestCase(130, 47, 513)]
    [TestCase(16, 300, 777)]  // the skinny path's largest M, K and N off its vector and tile widths
    [TestCase(5, 1000, 64)]
    public void GemmAllTransposesWithBiasAlphaBeta(int m, int n, int k)
    {
        foreach (bool ta in new[] { false, true })
        {
            foreach (bool tb in new[] { false, true })
            {
                float[] a = Random((long)m * k), bw = Random((long)k * n), c0 = Random((long)m * n), bias = Random(n);
                var c = Up(c0, m, n);
                B.Gemm(Up(a, ta ? [k, m] : [m, k]), ta, Up(bw, tb ? [n, k] : [k, n]), tb, c, alpha: 0.7f, beta: 0.3f, bias: Up(bias, n));
                var ra = T(a, ta ? [k, m] : [m, k]);
                var rb = T(bw, tb ? [n, k] : [k, n]);
                var want = (0.7 * matmul(ta ? ra.t() : ra, tb ? rb.t() : rb)) + (0.3 * T(c0, [m, n])) + T(bias, [n]);
                var scale = (0.7 * matmul((ta ? ra.t() : ra).abs(), (tb ? rb.t() : rb).abs())) + (0.3 * T(c0, [m, n]).abs()) + T(bias, [n]).abs();
                CloseToScale(c, want, scale, $"gemm {m}x{n}x{k} transA={ta} transB={tb}");
            }
        }
    }

    [Test]
    public void GemmBatchedAndFlattenedLeadingDimensions()
    {
        const int batch = 3, m = 19, n = 23, k = 29;
        float[] a = Random(batch * m * k), bw = Random(batch * k * n);
        var c = Up(Random(batch * m * n), batch, m, n);
        B.Gemm(Up(a, batch, m, k), false, Up(bw, batch, n, k), true, c);
        Close(c, matmul(T(a, [batch, m, k]), T(bw, [batch, n, k]).transpose(1, 2)), "batched gemm");

        var flat = Up(Random(batch * m * n), batch, m, n);
        float[] w = Random(k * n);
        B.Gemm(Up(a, batch, m, k), false, Up(w, n, k), true, flat);
        Close(flat, matmul(T(a, [batch, m, k]), T(w, [n, k]).t()), "rank-3 input times a weight");
    }

    [Test]
    public void LinearBackwardThroughGemmAndBiasBackward()
    {
        const int rows = 37, inF = 45, outF = 21;
        float[] x = Random(rows * inF), w = Random(outF * inF), bias = Random(outF), dy = Random(rows * outF);
        float[] dx0 = Random(rows * inF), dw0 = Random(outF * inF), db0 = Random(outF);
        var rx = T(x, [rows, inF], true);
        var rw = T(w, [outF, inF], true);
        var rbias = T(bias, [outF], true);
        var y = nn.functional.linear(rx, rw, rbias);
        y.backward([T(dy, [rows, outF])]);

        var kx = Up(x, rows, inF);
        var kw = Up(w, outF, inF);
        var ky = Up(Random(rows * outF), rows, outF);
        B.Gemm(kx, false, kw, true, ky, bias: Up(bias, outF));
        Close(ky, y, "linear forward");
        var kdy = Up(dy, rows, outF);
        KTensor dx = Up(dx0, rows, inF), dw = Up(dw0, outF, inF), db = Up(db0, outF);
        B.Gemm(kdy, false, kw, false, dx, beta: 1f);   // dx += dy · W
        B.Gemm(kdy, true, kx, false, dw, beta: 1f);    // dW += dyᵀ · x
        B.BiasBackward(kdy, db);
        CloseAccumulated(dx, dx0, rx.grad!, "dx");
        CloseAccumulated(dw, dw0, rw.grad!, "dW");
        CloseAccumulated(db, db0, rbias.grad!, "dbias");
    }

    [Test]
    [Checks(nameof(Backend.Add), nameof(Backend.Accumulate), nameof(Backend.Scale), nameof(Backend.Zero))]
    public void AddAccumulateScaleZero()
    {
        const int n = 1237;
        float[] x = Random(n), y = Random(n);
        var sum = Up(Random(n), n);
        B.Add(Up(x, n), Up(y, n), sum);
        Close(sum, T(x, [n]) + T(y, [n]), "add");
        B.Accumulate(sum, Up(y, n));
        Close(sum, T(x, [n]) + (2 * T(y, [n])), "accumulate");
        B.Scale(sum, -0.25f);
        Close(sum, -0.25 * (T(x, [n]) + (2 * T(y, [n]))), "scale");
        B.Zero(sum);
        Assert.That(sum.ToFloatArray(), Is.All.EqualTo(0f));
    }

    [Test]
    [Checks(nameof(Backend.Gelu), nameof(Backend.GeluBackward))]
    public void GeluTanh() => Activation(
        (k, x, y) => B.Gelu(k, y),
        (x, dy, dx) => B.GeluBackward(x, dy, dx),
        x => 0.5 * x * (1 + tanh(Math.Sqrt(2 / Math.PI) * (x + (0.044715 * x.pow(3))))));

    [Test]
    [Checks(nameof(Backend.Silu), nameof(Backend.SiluBackward))]
    public void Silu() => Activation(
        (k, x, y) => B.Silu(k, y),
        (x, dy, dx) => B.SiluBackward(x, dy, dx),
        x => x * sigmoid(x));

    [Test]
    [Checks(nameof(Backend.SwiGlu), nameof(Backend.SwiGluBackward))]
    public void SwiGlu()
    {
        const int rows = 7, cols = 301;
        float[] g = Random(rows * cols, -4, 4), u = Random(rows * cols), dy = Random(rows * cols), dg0 = Random(rows * cols), du0 = Random(rows * cols);
        var rg = T(g, [rows, cols], true);
        var ru = T(u, [rows, cols], true);
        var want = rg * sigmoid(rg) * ru;
        want.backward([T(dy, [rows, cols])]);
        KTensor kg = Up(g, rows, cols), ku = Up(u, rows, cols), y = Up(Random(rows * cols), rows, cols);
        B.SwiGlu(kg, ku, y);
        Close(y, want, "swiglu");
        KTensor dg = Up(dg0, rows, cols), du = Up(du0, rows, cols);
        B.SwiGluBackward(kg, ku, Up(dy, rows, cols), dg, du);
        CloseAccumulated(dg, dg0, rg.grad!, "dgate");
        CloseAccumulated(du, du0, ru.grad!, "dup");
    }

    [TestCase(true)]
    [TestCase(false)]
    [Checks(nameof(Backend.LayerNorm), nameof(Backend.LayerNormBackward))]
    public void LayerNorm(bool withBias)
    {
        const int rows = 13, c = 77;
        float[] x = Random(rows * c, -2, 3), w = Random(c), bias = Random(c), dy = Random(rows * c);
        float[] dx0 = Random(rows * c), dw0 = Random(c), db0 = Random(c);
        var rx = T(x, [rows, c], true);
        var rw = T(w, [c], true);
        var rb = T(bias, [c], true);
        var want = nn.functional.layer_norm(rx, [c], rw, withBias ? rb : null, 1e-5);
        want.backward([T(dy, [rows, c])]);

        KTensor kx = Up(x, rows, c), kw = Up(w, c), y = Up(Random(rows * c), rows, c), mean = Up(Random(rows), rows), rstd = Up(Random(rows), rows);
        B.LayerNorm(kx, kw, withBias ? Up(bias, c) : null, y, mean, rstd, 1e-5f);
        Close(y, want, "layernorm");
        KTensor dx = Up(dx0, rows, c), dw = Up(dw0, c), db = Up(db0, c);
        B.LayerNormBackward(kx, kw, mean, rstd, Up(dy, rows, c), dx, dw, withBias ? db : null);
        CloseAccumulated(dx, dx0, rx.grad!, "dx");
        CloseAccumulated(dw, dw0, rw.grad!, "dweight");
        if (withBias)
        {
            CloseAccumulated(db, db0, rb.grad!, "dbias");
        }
    }

    [Test]
    [Checks(nameof(Backend.RmsNorm), nameof(Backend.RmsNormBackward))]
    public void RmsNorm()
    {
        const int rows = 11, c = 93;
        const float eps = 1e-6f;
        float[] x = Random(rows * c, -2, 3), w = Random(c), dy = Random(rows * c), dx0 = Random(rows * c), dw0 = Random(c);
        var rx = T(x, [rows, c], true);
        var rw = T(w, [c], true);
        var want = rx * rsqrt(rx.pow(2).mean([-1], keepdim: true) + eps) * rw;
        want.backward([T(dy, [rows, c])]);
        KTensor kx = Up(x, rows, c), kw = Up(w, c), y = Up(Random(rows * c), rows, c), rstd = Up(Random(rows), rows);
        B.RmsNorm(kx, kw, y, rstd, eps);
        Close(y, want, "rmsnorm");
        KTensor dx = Up(dx0, rows, c), dw = Up(dw0, c);
        B.RmsNormBackward(kx, kw, rstd, Up(dy, rows, c), dx, dw);
        CloseAccumulated(dx, dx0, rx.grad!, "dx");
        CloseAccumulated(dw, dw0, rw.grad!, "dweight");
    }

    [TestCase(false, true)]
    [TestCase(false, false)]
    [TestCase(true, false)]
    [Checks(nameof(Backend.AddRmsNorm), nameof(Backend.AddLayerNorm))]
    public void AddNormIsTheResidualAddThenTheNorm(bool rms, bool withBias)
    {
        const int rows = 9, c = 71;
        const float eps = 1e-5f;
        float[] a = Random(rows * c, -2, 3), d = Random(rows * c), w = Random(c), bias = Random(c);
        var sum = T(a, [rows, c]) + T(d, [rows, c]);
        var want = rms
            ? sum * rsqrt(sum.pow(2).mean([-1], keepdim: true) + eps) * T(w, [c])
            : nn.functional.layer_norm(sum, [c], T(w, [c]), withBias ? T(bias, [c]) : null, eps);
        var wantRstd = rms ? rsqrt(sum.pow(2).mean([-1]) + eps) : rsqrt(sum.var([-1], unbiased: false) + eps);
        KTensor ka = Up(a, rows, c), kd = Up(d, rows, c), kw = Up(w, c), ksum = Up(Random(rows * c), rows, c), y = Up(Random(rows * c), rows, c);
        KTensor mean = Up(Random(rows), rows), rstd = Up(Random(rows), rows);
        if (rms)
        {
            B.AddRmsNorm(ka, kd, kw, ksum, y, rstd, eps);
        }
        else
        {
            B.AddLayerNorm(ka, kd, kw, withBias ? Up(bias, c) : null, ksum, y, mean, rstd, eps);
            Close(mean, sum.mean([-1]), "mean");
        }

        Close(ksum, sum, "sum");
        Close(y, want, "norm of the sum");
        Close(rstd, wantRstd, "rstd");
        var ex = Assert.Throws<ArgumentException>(() => B.AddRmsNorm(ka, Up(Random(c), 1, c), kw, ksum, y, rstd, eps))!;
        Assert.That(ex.Message, Does.Contain($"[{rows}, {c}]").And.Contain($"[1, {c}]"));
    }

    // countFrom < 0: random positions; else every sequence counts from it (the training case,
    // where the CPU kernel computes each position's angles once into a table).
    [TestCase(2, 9, 3, 6, 10000f, -1)]
    [TestCase(1, 5, 2, 34, 500000f, -1)]
    [TestCase(4, 7, 3, 8, 10000f, 0)]
    [TestCase(3, 5, 2, 12, 10000f, 290)]
    [Checks(nameof(Backend.Rope), nameof(Backend.RopeBackward))]
    public void RopeRotateHalf(int batch, int t, int heads, int d, float theta, int countFrom)
    {
        float[] x = Random(batch * t * heads * d), dy = Random(batch * t * heads * d), dx0 = Random(batch * t * heads * d);
        int[] pos = countFrom < 0 ? RandomInts(batch * t, 0, 300) : [.. Enumerable.Range(0, batch * t).Select(i => countFrom + (i % t))];
        var rx = T(x, [batch, t, heads, d], true);
        float[] inv = [.. Enumerable.Range(0, d / 2).Select(i => (float)Math.Pow(theta, -2.0 * i / d))];
        var invFreq = T(inv, [d / 2]);                                              // [D/2]
        var angle = Ids(pos, [batch, t]).to_type(float64).unsqueeze(-1) * invFreq;   // [B, T, D/2]
        var cos = cat([angle.cos(), angle.cos()], -1).unsqueeze(2);                  // [B, T, 1, D]
        var sin = cat([angle.sin(), angle.sin()], -1).unsqueeze(2);
        var rotated = cat([-rx[.., .., .., (d / 2)..], rx[.., .., .., ..(d / 2)]], -1);
        var want = (rx * cos) + (rotated * sin);
        want.backward([T(dy, [batch, t, heads, d])]);

        var kpos = Ints(pos, batch, t);
        var y = Up(Random(x.Length), batch, t, heads, d);
        var kinv = Up(inv, d / 2);
        B.Rope(Up(x, batch, t, heads, d), kpos, kinv, y);
        Close(y, want, "rope");
        var dx = Up(dx0, batch, t, heads, d);
        B.RopeBackward(Up(dy, batch, t, heads, d), kpos, kinv, dx);
        CloseAccumulated(dx, dx0, rx.grad!, "rope backward");
    }

    [TestCase(9, 37)]
    [TestCase(3, 1000)]
    [Checks(nameof(Backend.Softmax), nameof(Backend.SoftmaxBackward))]
    public void Softmax(int rows, int c)
    {
        float[] x = Random(rows * c, -5, 5), dy = Random(rows * c), dx0 = Random(rows * c);
        var rx = T(x, [rows, c], true);
        var want = softmax(rx, -1);
        want.backward([T(dy, [rows, c])]);
        var y = Up(Random(rows * c), rows, c);
        B.Softmax(Up(x, rows, c), y);
        Close(y, want, "softmax");
        var dx = Up(dx0, rows, c);
        B.SoftmaxBackward(y, Up(dy, rows, c), dx);
        CloseAccumulated(dx, dx0, rx.grad!, "softmax backward");
    }

    [TestCase(2, 17, 4, 4, 16)]
    [TestCase(1, 33, 6, 2, 24)]
    [TestCase(3, 5, 2, 1, 7)]
    [Checks(nameof(Backend.Attention), nameof(Backend.AttentionBackward))]
    public void CausalAttentionWithGroupedQueryHeads(int batch, int t, int hq, int hkv, int d)
    {
        float[] q = Random(batch * t * hq * d), k = Random(batch * t * hkv * d), v = Random(batch * t * hkv * d), dout = Random(batch * t * hq * d);
        float[] dq0 = Random(q.Length), dk0 = Random(k.Length), dv0 = Random(v.Length);
        var rq = T(q, [batch, t, hq, d], true);
        var rk = T(k, [batch, t, hkv, d], true);
        var rv = T(v, [batch, t, hkv, d], true);
        var kh = rk.repeat_interleave(hq / hkv, 2);
        var vh = rv.repeat_interleave(hq / hkv, 2);
        var want = nn.functional.scaled_dot_product_attention(rq.transpose(1, 2), kh.transpose(1, 2), vh.transpose(1, 2), is_casual: true).transpose(1, 2);
        want.backward([T(dout, [batch, t, hq, d])]);

        KTensor kq = Up(q, batch, t, hq, d), kk = Up(k, batch, t, hkv, d), kv = Up(v, batch, t, hkv, d);
        KTensor output = Up(Random(q.Length), batch, t, hq, d), probs = Up(Random(batch * hq * t * t), batch, hq, t, t);
        B.Attention(kq, kk, kv, output, probs);
        Close(output, want, "attention");
        KTensor dq = Up(dq0, batch, t, hq, d), dk = Up(dk0, batch, t, hkv, d), dv = Up(dv0, batch, t, hkv, d);
        B.AttentionBackward(kq, kk, kv, probs, Up(dout, batch, t, hq, d), dq, dk, dv);
        CloseAccumulated(dq, dq0, rq.grad!, "dq");
        CloseAccumulated(dk, dk0, rk.grad!, "dk");
        CloseAccumulated(dv, dv0, rv.grad!, "dv");
    }

    [TestCase(3, 4, 2, 16, 9, 0)]
    [TestCase(2, 6, 6, 7, 5, 0)]
    [TestCase(4, 4, 2, 8, 12, 3)]
    [Checks(nameof(Backend.AttentionDecode))]
    public void DecodeAttentionAppendsAndAttendsPerSequenceLength(int batch, int hq, int hkv, int d, int capacity, int window)
    {
        int[] lengths = RandomInts(batch, 0, capacity);
        float[] q = Random(batch * hq * d), kNew = Random(batch * hkv * d), vNew = Random(batch * hkv * d);
        float[] kc = Random(batch * capacity * hkv * d), vc = Random(batch * capacity * hkv * d);
        KTensor kCache = Up(kc, batch, capacity, hkv, d), vCache = Up(vc, batch, capacity, hkv, d), output = Up(Random(q.Length), batch, hq, d);
        var lens = Ints(lengths, batch);
        B.AttentionDecode(Up(q, batch, hq, d), Up(kNew, batch, hkv, d), Up(vNew, batch, hkv, d), kCache, vCache, lens, output, window);

        var rk = T(kc, [batch, capacity, hkv, d]);
        var rv = T(vc, [batch, capacity, hkv, d]);
        var wantOut = zeros(batch, hq, d, dtype: float64);
        for (int i = 0; i < batch; i++)
        {
            int n = lengths[i];
            rk[i, n] = T(kNew, [batch, hkv, d])[i];
            rv[i, n] = T(vNew, [batch, hkv, d])[i];
            int first = window == 0 ? 0 : Math.Max(0, n + 1 - window);  // a sliding window sees the last `window` positions
            var keys = rk[i, first..(n + 1)].repeat_interleave(hq / hkv, 1).transpose(0, 1);
            var values = rv[i, first..(n + 1)].repeat_interleave(hq / hkv, 1).transpose(0, 1);
            var query = T(q, [batch, hq, 1, d])[i];
            wantOut[i] = nn.functional.scaled_dot_product_attention(query, keys, values).squeeze(1);
        }

        Close(kCache, rk, "k cache after append");
        Close(vCache, rv, "v cache after append");
        Close(output, wantOut, "decode attention");

        lens.CopyFrom<int>([.. lengths.Select(_ => capacity)]);
        var ex = Assert.Throws<ArgumentException>(() => B.AttentionDecode(Up(q, batch, hq, d), Up(kNew, batch, hkv, d), Up(vNew, batch, hkv, d), kCache, vCache, lens, output));
        Assert.That(ex!.Message, Does.Contain("lengths"));
    }

    [TestCase(3, 4, 2, 16, 12, 0)]
    [TestCase(2, 6, 6, 7, 9, 0)]
    [TestCase(4, 4, 2, 8, 14, 3)]
    [Checks(nameof(Backend.AttentionCached))]
    public void CachedAttentionAppendsChunksAndAttendsCausallyOverTheCache(int slots, int hq, int hkv, int d, int capacity, int window)
    {
        // Each slot holds `filled` cached positions and gets a chunk of new rows after them (one of
        // them none, one a single decode row); the rows come interleaved, with two padding rows.
        int[] filled = RandomInts(slots, 0, capacity / 2), chunk = [.. Enumerable.Range(0, slots).Select(b => b == 0 ? 1 : b == 1 ? 0 : 1 + RandomInts(1, 0, capacity - filled[b] - 1)[0])];
        var rows = new List<(int Slot, int Position)>();
        for (int i = 0; i < chunk.Max(); i++)
        {
            for (int b = slots - 1; b >= 0; b--)
            {
                if (i < chunk[b])
                {
                    rows.Add((b, filled[b] + i));
                }
            }

            if (i == 0)
            {
                rows.Add((-1, 0));
            }
        }

        rows.Add((-1, capacity - 1));
        int n = rows.Count;
        float[] q = Random(n * hq * d), kNew = Random(n * hkv * d), vNew = Random(n * hkv * d);
        float[] kc = Random(slots * capacity * hkv * d), vc = Random(slots * capacity * hkv * d);
        KTensor kCache = Up(kc, slots, capacity, hkv, d), vCache = Up(vc, slots, capacity, hkv, d), output = Up(Random(q.Length), n, hq, d);
        B.AttentionCached(Up(q, n, hq, d), Up(kNew, n, hkv, d), Up(vNew, n, hkv, d), kCache, vCache, Ints([.. rows.Select(r => r.Slot)], n), Ints([.. rows.Select(r => r.Position)], n), output, window);

        var rk = T(kc, [slots, capacity, hkv, d]);
        var rv = T(vc, [slots, capacity, hkv, d]);
        for (int r = 0; r < n; r++)
        {
            if (rows[r].Slot >= 0)
            {
                rk[rows[r].Slot, rows[r].Position] = T(kNew, [n, hkv, d])[r];
                rv[rows[r].Slot, rows[r].Position] = T(vNew, [n, hkv, d])[r];
            }
        }

        var wantOut = zeros(n, hq, d, dtype: float64);
        for (int r = 0; r < n; r++)
        {
            var (b, at) = rows[r];
            if (b < 0)
            {
                continue;  // a padding row's output is 0
            }

            int first = window == 0 ? 0 : Math.Max(0, at + 1 - window);
            var keys = rk[b, first..(at + 1)].repeat_interleave(hq / hkv, 1).transpose(0, 1);
            var values = rv[b, first..(at + 1)].repeat_interleave(hq / hkv, 1).transpose(0, 1);
            wantOut[r] = nn.functional.scaled_dot_product_attention(T(q, [n, hq, 1, d])[r], keys, values).squeeze(1);
        }

        Close(kCache, rk, "k cache after the rows were written");
        Close(vCache, rv, "v cache after the rows were written");
        Close(output, wantOut, "cached attention");

        var ex = Assert.Throws<ArgumentException>(() => B.AttentionCached(Up(q[..(hq * d)], 1, hq, d), Up(kNew[..(hkv * d)], 1, hkv, d), Up(vNew[..(hkv * d)], 1, hkv, d), kCache, vCache, Ints([slots], 1), Ints([0], 1), Up(new float[hq * d], 1, hq, d)));
        Assert.That(ex!.Message, Does.Contain("slots"));
    }

    [Test]
    [Checks(nameof(Backend.CopyColumns))]
    public void CopyColumnsSplitsAndPacks()
    {
        float[] src = Random(5 * 12), dst0 = Random(5 * 7);
        var dst = Up(dst0, 5, 7);
        B.CopyColumns(Up(src, 5, 12), 4, dst, 2, 5);
        var want = T(dst0, [5, 7]);
        want[.., 2..7] = T(src, [5, 12])[.., 4..9];
        Close(dst, want, "copy columns");
        Assert.Throws<ArgumentException>(() => B.CopyColumns(Up(src, 5, 12), 8, dst, 0, 5));
    }

    [Test]
    [Checks(nameof(Backend.Embedding), nameof(Backend.EmbeddingBackward))]
    public void EmbeddingWithRepeatedIds()
    {
        const int vocab = 23, c = 71, n = 41;
        int[] ids = RandomInts(n, 0, vocab);
        ids[5] = ids[9] = ids[30];
        float[] table = Random(vocab * c), dy = Random(n * c), dt0 = Random(vocab * c);
        var rt = T(table, [vocab, c], true);
        var want = rt.index_select(0, Ids(ids, [n]));
        want.backward([T(dy, [n, c])]);
        var kids = Ints(ids, n);
        var y = Up(Random(n * c), n, c);
        B.Embedding(kids, Up(table, vocab, c), y);
        Close(y, want, "embedding");
        var dt = Up(dt0, vocab, c);
        B.EmbeddingBackward(kids, Up(dy, n, c), dt);
        CloseAccumulated(dt, dt0, rt.grad!, "embedding backward");
    }

    [TestCase(13, 97)]
    [TestCase(4, 5003)]
    [Checks(nameof(Backend.CrossEntropy), nameof(Backend.CrossEntropyBackward))]
    public void CrossEntropyWithPadding(int rows, int vocab)
    {
        int[] targets = RandomInts(rows, 0, vocab);
        targets[rows / 2] = -1;
        float[] logits = Random(rows * vocab, -6, 6), dl = Random(rows), dx0 = Random(rows * vocab);
        var rl = T(logits, [rows, vocab], true);
        var want = nn.functional.cross_entropy(rl, Ids(targets, [rows]), ignore_index: -1, reduction: nn.Reduction.None);
        want.backward([T(dl, [rows])]);
        var kt = Ints(targets, rows);
        var kl = Up(logits, rows, vocab);
        var losses = Up(Random(rows), rows);
        B.CrossEntropy(kl, kt, losses);
        Close(losses, want, "cross-entropy");
        var dx = Up(dx0, rows, vocab);
        B.CrossEntropyBackward(kl, kt, Up(dl, rows), dx);
        CloseAccumulated(dx, dx0, rl.grad!, "cross-entropy backward");
    }

    [Test]
    [Checks(nameof(Backend.AdamW))]
    public void AdamWMatchesTorchOverThreeSteps()
    {
        const int n = 1031;
        var settings = new AdamWSettings(LearningRate: 1e-2f, Beta1: 0.9f, Beta2: 0.95f, Epsilon: 1e-8f, WeightDecay: 0.1f);
        float[] p = Random(n);
        var rp = new TorchSharp.Modules.Parameter(T(p, [n]));
        var opt = optim.AdamW([rp], lr: settings.LearningRate, beta1: settings.Beta1, beta2: settings.Beta2, eps: settings.Epsilon, weight_decay: settings.WeightDecay);
        KTensor kp = Up(p, n), m = Up(new float[n], n), v = Up(new float[n], n);
        for (int step = 1; step <= 3; step++)
        {
            float[] g = Random(n), before = kp.ToFloatArray();
            var referenceBefore = rp.detach().clone();
            opt.zero_grad();
            (rp * T(g, [n])).sum().backward(); // ∂/∂p = g
            opt.step();
            B.AdamW(kp, Up(g, n), m, v, settings, step);

            // The step's update itself (about 1 % of ‖p‖), not the parameters it lands on.
            CloseAccumulated(kp, before, rp.detach() - referenceBefore, $"adamw update of step {step}");
        }

        Close(kp, rp, "adamw parameters after 3 steps");
    }

    [Test]
    public void GradientNormAndClipping()
    {
        const int n = 40_123;
        float[] g = Random(n, -3, 3);
        var kg = Up(g, n);
        double want = T(g, [n]).norm().item<double>();
        Close(B.SumOfSquares(kg), want * want, "sum of squares");
        double before = B.ClipGradNorm(kg, maxNorm: want / 4);
        Close(before, want, "norm before clipping");
        Close(Math.Sqrt(B.SumOfSquares(kg)), want / 4, "norm after clipping", 1e-4);
    }

    [Test]
    public void ShapeMismatchesNameTheShapes()
    {
        var a = Up(Random(6), 2, 3);
        var w = Up(Random(8), 4, 2);
        var c = Up(Random(8), 2, 4);
        var ex = Assert.Throws<ArgumentException>(() => B.Gemm(a, false, w, false, c));
        Assert.That(ex!.Message, Does.Contain("[2, 3]").And.Contain("[4, 2]"));

        var x = Up(Random(10), 2, 5);
        var ex2 = Assert.Throws<ArgumentException>(() => B.LayerNorm(x, Up(Random(4), 4), null, Up(Random(10), 2, 5), Up(Random(2), 2), Up(Random(2), 2)));
        Assert.That(ex2!.Message, Does.Contain("[5]").And.Contain("[4]"));

        var q = Up(Random(2 * 3 * 3 * 4), 2, 3, 3, 4);
        var k = Up(Random(2 * 3 * 2 * 4), 2, 3, 2, 4);
        var ex3 = Assert.Throws<ArgumentException>(() => B.Attention(q, k, k, Up(Random(q.Count), 2, 3, 3, 4), Up(Random(2 * 3 * 9), 2, 3, 3, 3)));
        Assert.That(ex3!.Message, Does.Contain("[2, 3, 3, 4]").And.Contain("[2, 3, 2, 4]"));

        var targets = Ints([0, 7], 2);
        var ex4 = Assert.Throws<ArgumentException>(() => B.CrossEntropy(Up(Random(10), 2, 5), targets, Up(Random(2), 2)));
        Assert.That(ex4!.Message, Does.Contain("7"));
    }

    private void Activation(Action<KTensor, float[], KTensor> forward, Action<KTensor, KTensor, KTensor> backward, Func<TTensor, TTensor> reference)
    {
        const int rows = 5, cols = 203;
        float[] x = Random(rows * cols, -5, 5), dy = Random(rows * cols), dx0 = Random(rows * cols);
        var rx = T(x, [rows, cols], true);
        var want = reference(rx);
        want.backward([T(dy, [rows, cols])]);
        var kx = Up(x, rows, cols);
        var y = Up(Random(rows * cols), rows, cols);
        forward(kx, x, y);
        Close(y, want, "forward");
        var dx = Up(dx0, rows, cols);
        backward(kx, Up(dy, rows, cols), dx);
        CloseAccumulated(dx, dx0, rx.grad!, "backward");
    }

}
