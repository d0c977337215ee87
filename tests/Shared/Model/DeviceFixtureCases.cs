using System.Text.Json.Nodes;
using RA3.Model.IO;
using static TorchSharp.torch;
using TTensor = TorchSharp.torch.Tensor;

namespace RA3.Testing;

/// <summary>
/// Writes the device fixtures <see cref="DeviceFixtureCheck"/> runs: the ops a GPU backend takes
/// over (GEMM in every transpose with bias and beta, the bias gradient, the norms and their fused
/// and backward forms, RoPE, SwiGLU, fused attention at head dims 64, 128 and an odd one, padded,
/// and with a sliding window, forward and backward, segment scoring forward and backward at a
/// vocabulary of several chunks, the temporal-ELBO pass with ragged lengths and a span limit),
/// inputs drawn from a seeded stream, references computed here in TorchSharp float64 (autograd for
/// the gradients). Written on a machine with TorchSharp, carried to one without it.
/// </summary>
internal static class DeviceFixtureCases
{
    /// <summary>Writes every case into <paramref name="folder"/> (created); returns how many.</summary>
    public static int Write(string folder, int seed)
    {
        Directory.CreateDirectory(folder);
        var rng = new Random(seed);
        var writer = new Writer(folder, rng);
        foreach (var (ta, tb) in new[] { (false, false), (false, true), (true, false), (true, true) })
        {
            writer.Gemm(37, 70, 45, ta, tb);
        }

        writer.Gemm(128, 256, 96, false, true);
        writer.BiasBackward(33, 29);
        writer.Norms(21, 96);
        writer.Rope(2, 9, 3, 16);
        writer.SwiGlu(300);
        writer.Attention(2, 150, 4, 2, 64, padded: true, window: 0);
        writer.Attention(1, 130, 2, 1, 128, padded: false, window: 0);
        writer.Attention(2, 40, 3, 3, 24, padded: true, window: 0);
        writer.Attention(1, 300, 2, 2, 64, padded: false, window: 48);
        writer.Segments(2, 30, 64, 4500, 5);
        writer.Elbo(3, 24, maxSpan: 0);
        writer.Elbo(2, 17, maxSpan: 4);
        return writer.Count;
    }

    private sealed class Writer(string folder, Random rng)
    {
        public int Count { get; private set; }

        public void Gemm(int m, int n, int k, bool ta, bool tb)
        {
            float[] a = Draw(m * k), b = Draw(k * n), c = Draw(m * n), bias = Draw(n);
            const float alpha = 0.75f, beta = 0.5f;
            var ra = T(a, ta ? [k, m] : [m, k]);
            var rb = T(b, tb ? [n, k] : [k, n]);
            var want = (alpha * (ta ? ra.t() : ra).matmul(tb ? rb.t() : rb)) + (beta * T(c, [m, n])) + T(bias, [n]);
            Save($"Gemm-{m}x{n}x{k}{(ta ? "-ta" : string.Empty)}{(tb ? "-tb" : string.Empty)}", "Gemm", new JsonObject { ["transA"] = ta, ["transB"] = tb, ["alpha"] = alpha, ["beta"] = beta },
                [("in.a", a, ta ? [k, m] : [m, k]), ("in.b", b, tb ? [n, k] : [k, n]), ("in.bias", bias, [n]), ("start.c", c, [m, n]), ("out.c", F(want), [m, n])]);
        }

        public void BiasBackward(int rows, int n)
        {
            float[] dOut = Draw(rows * n), start = Draw(n);
            Save($"BiasBackward-{rows}x{n}", "BiasBackward", [], [("in.dOut", dOut, [rows, n]), ("start.dBias", start, [n]), ("added.dBias", F(T(dOut, [rows, n]).sum([0])), [n])]);
        }

        public void Norms(int rows, int c)
        {
            const float eps = 1e-5f;
            float[] x = Symmetric(rows * c, 2), a = Draw(rows * c), w = Draw(c, 0.5, 1.5), bias = Draw(c), dy = Draw(rows * c);
            float[] b = [.. x.Select((xi, i) => xi - a[i])];
            var settings = new JsonObject { ["eps"] = eps };
            foreach (bool rms in new[] { true, false })
            {
                var rx = T(x, [rows, c], grad: true);
                var rw = T(w, [c], grad: true);
                var rbias = T(bias, [c], grad: true);
                var centred = rms ? rx : rx - rx.mean([-1], keepdim: true);
                var rstd = rsqrt(centred.pow(2).mean([-1]) + eps);
                var y = (centred * rstd.unsqueeze(-1) * rw) + (rms ? zeros(c, dtype: float64) : rbias);
                string name = rms ? "RmsNorm" : "LayerNorm";
                var common = new List<(string, float[], int[])> { ("in.x", x, [rows, c]), ("in.weight", w, [c]), ("out.y", F(y), [rows, c]), ("out.rstd", F(rstd), [rows]) };
                var fused = new List<(string, float[], int[])> { ("in.a", a, [rows, c]), ("in.b", b, [rows, c]), ("in.weight", w, [c]), ("out.sum", x, [rows, c]), ("out.y", F(y), [rows, c]), ("out.rstd", F(rstd), [rows]) };
                if (!rms)
                {
                    common.Add(("in.bias", bias, [c]));
                    common.Add(("out.mean", F(rx.mean([-1])), [rows]));
                    fused.Add(("in.bias", bias, [c]));
                    fused.Add(("out.mean", F(rx.mean([-1])), [rows]));
                }

                Save($"{name}-{rows}x{c}", name, settings, common);
                Save($"Add{name}-{rows}x{c}", "Add" + name, settings, fused);

                y.backward([T(dy, [rows, c])]);
                var backward = new List<(string, float[], int[])>
                {
                    ("in.x", x, [rows, c]), ("in.weight", w, [c]), ("in.rstd", F(rstd), [rows]), ("in.dy", dy, [rows, c]),
                    ("start.dx", Draw(rows * c), [rows, c]), ("added.dx", F(rx.grad!), [rows, c]),
                    ("start.dWeight", Draw(c), [c]), ("added.dWeight", F(rw.grad!), [c]),
                };
                if (!rms)
                {
                    backward.Add(("in.mean", F(rx.mean([-1])), [rows]));
                    backward.Add(("start.dBias", Draw(c), [c]));
                    backward.Add(("added.dBias", F(rbias.grad!), [c]));
                }

                Save($"{name}Backward-{rows}x{c}", name + "Backward", [], backward);
            }
        }

        public void Rope(int batch, int t, int heads, int d)
        {
            float[] x = Draw(batch * t * heads * d);
            int[] positions = [.. Enumerable.Range(0, batch * t).Select(_ => rng.Next(0, 500))];
            float[] invFreq = [.. Enumerable.Range(0, d / 2).Select(i => (float)Math.Pow(10000, -2.0 * i / d))];
            var rx = T(x, [batch, t, heads, d]);
            var angle = tensor(positions.Select(p => (double)p).ToArray(), [batch, t, 1, 1], float64) * T(invFreq, [1, 1, 1, d / 2]);
            var cos = cat([angle.cos(), angle.cos()], -1);
            var sin = cat([angle.sin(), angle.sin()], -1);
            var rotated = cat([-rx[.., .., .., (d / 2)..], rx[.., .., .., ..(d / 2)]], -1);
            Save($"Rope-{batch}x{t}x{heads}x{d}", "Rope", [], [("in.x", x, [batch, t, heads, d]), ("in.invFreq", invFreq, [d / 2]), ("out.y", F((rx * cos) + (rotated * sin)), [batch, t, heads, d])], [("int.positions", positions, [batch, t])]);
        }

        public void SwiGlu(int n)
        {
            float[] gate = Symmetric(n, 3), up = Draw(n);
            var g = T(gate, [n]);
            Save($"SwiGlu-{n}", "SwiGlu", [], [("in.gate", gate, [n]), ("in.up", up, [n]), ("out.y", F(g * sigmoid(g) * T(up, [n])), [n])]);
        }

        public void Attention(int batch, int t, int hq, int hkv, int d, bool padded, int window)
        {
            float[] q = Draw(batch * t * hq * d), k = Draw(batch * t * hkv * d), v = Draw(batch * t * hkv * d), dout = Draw(batch * t * hq * d);
            int[] lengths = [.. Enumerable.Range(0, batch).Select(i => padded ? Math.Max(1, t - (7 * i) - 3) : t)];
            var rq = T(q, [batch, t, hq, d], grad: true);
            var rk = T(k, [batch, t, hkv, d], grad: true);
            var rv = T(v, [batch, t, hkv, d], grad: true);
            var keys = rk.repeat_interleave(hq / hkv, 2).transpose(1, 2);
            var values = rv.repeat_interleave(hq / hkv, 2).transpose(1, 2);
            var causal = triu(full(t, t, double.NegativeInfinity, float64), 1);
            var visible = window == 0 ? causal : causal + tril(full(t, t, double.NegativeInfinity, float64), -window);
            var scores = (matmul(rq.transpose(1, 2), keys.transpose(2, 3)) / Math.Sqrt(d)) + visible;
            var rows = tensor(Enumerable.Range(0, batch * t).Select(r => r % t < lengths[r / t] ? 1.0 : 0.0).ToArray(), [batch, t], float64);
            var output = matmul(scores.softmax(-1), values).transpose(1, 2) * rows.reshape(batch, t, 1, 1);
            var lse = scores.logsumexp(-1) * rows.reshape(batch, 1, t);
            string name = $"{batch}x{t}-h{hq}-kv{hkv}-d{d}{(padded ? "-padded" : string.Empty)}{(window > 0 ? $"-window{window}" : string.Empty)}";
            var settings = new JsonObject { ["window"] = window };
            (string, int[], int[])[] ints = padded ? [("int.lengths", lengths, [batch])] : [];
            Save("FlashAttention-" + name, "FlashAttention", settings, [("in.q", q, [batch, t, hq, d]), ("in.k", k, [batch, t, hkv, d]), ("in.v", v, [batch, t, hkv, d]), ("out.output", F(output), [batch, t, hq, d]), ("out.lse", F(lse), [batch, hq, t])], ints);
            output.backward([T(dout, [batch, t, hq, d])]);
            Save("FlashAttentionBackward-" + name, "FlashAttentionBackward", settings,
                [
                    ("in.q", q, [batch, t, hq, d]), ("in.k", k, [batch, t, hkv, d]), ("in.v", v, [batch, t, hkv, d]),
                    ("in.output", F(output), [batch, t, hq, d]), ("in.lse", F(lse), [batch, hq, t]), ("in.dOutput", dout, [batch, t, hq, d]),
                    ("start.dq", Draw(q.Length), [batch, t, hq, d]), ("added.dq", F(rq.grad!), [batch, t, hq, d]),
                    ("start.dk", Draw(k.Length), [batch, t, hkv, d]), ("added.dk", F(rk.grad!), [batch, t, hkv, d]),
                    ("start.dv", Draw(v.Length), [batch, t, hkv, d]), ("added.dv", F(rv.grad!), [batch, t, hkv, d]),
                ],
                ints);
        }

        public void Segments(int n, int l, int d, int v, int lines)
        {
            float[] h = Draw(n * l * d), w = Symmetric(v * d, 0.5), dScores = Draw(n * lines);
            int[] targets = [.. Enumerable.Range(0, n * l).Select(_ => rng.Next(0, v))];
            int[] lineIds = [.. Enumerable.Range(0, n * l).Select(i => i % l == 0 ? -1 : Math.Min(lines - 1, (i % l) / 6))];
            var rh = T(h, [n, l, d], grad: true);
            var rw = T(w, [v, d], grad: true);
            var logp = rh.matmul(rw.t()).log_softmax(-1);
            var picked = logp.gather(-1, tensor(targets.Select(x => (long)x).ToArray(), [n, l, 1], int64)).squeeze(-1);
            var onehot = zeros(n, l, lines, dtype: float64);
            for (int i = 0; i < n * l; i++)
            {
                if (lineIds[i] >= 0)
                {
                    onehot[i / l, i % l, lineIds[i]] = tensor(1.0);
                }
            }

            var scores = (picked.unsqueeze(-1) * onehot).sum([1]);
            var lse = rh.matmul(rw.t()).logsumexp(-1);
            (string, int[], int[])[] ints = [("int.targets", targets, [n, l]), ("int.lineIds", lineIds, [n, l])];
            string name = $"{n}x{l}-d{d}-v{v}";
            Save("SegmentScores-" + name, "SegmentScores", [], [("in.h", h, [n, l, d]), ("in.w", w, [v, d]), ("out.scores", F(scores), [n, lines]), ("out.lse", F(lse), [n, l])], ints);
            scores.backward([T(dScores, [n, lines])]);
            Save("SegmentScoresBackward-" + name, "SegmentScoresBackward", [],
                [
                    ("in.h", h, [n, l, d]), ("in.w", w, [v, d]), ("in.lse", F(lse), [n, l]), ("in.dScores", dScores, [n, lines]),
                    ("start.dH", Draw(h.Length), [n, l, d]), ("added.dH", F(rh.grad!), [n, l, d]),
                    ("start.dW", Symmetric(w.Length, 0.1), [v, d]), ("added.dW", F(rw.grad!), [v, d]),
                ],
                ints);
        }

        public void Elbo(int batch, int t, int maxSpan)
        {
            float[] seg = Draw(batch * (t + 1) * t, -4, 0), pt = Draw(batch * t, -5, -1);
            int[] lengths = [.. Enumerable.Range(0, batch).Select(i => i == 0 ? t : rng.Next(1, t + 1))];
            const float priorAct = -0.05f;
            var logZ = new float[batch];
            var think = new float[batch * t];
            var marginals = new float[batch * (t + 1) * t];
            for (int i = 0; i < batch; i++)
            {
                var rs = T(seg[(i * (t + 1) * t)..((i + 1) * (t + 1) * t)], [t + 1, t], grad: true);
                var rp = T(pt[(i * t)..((i + 1) * t)], [t], grad: true);
                var z = ElboOracle.LogZ(rs, rp, priorAct, lengths[i], t, maxSpan);
                z.backward();
                logZ[i] = (float)z.item<double>();
                F(rp.grad!).CopyTo(think, i * t);
                F(rs.grad!).CopyTo(marginals, i * (t + 1) * t);
            }

            Save($"ElboForwardBackward-{batch}x{t}-span{maxSpan}", "ElboForwardBackward", new JsonObject { ["priorAct"] = priorAct, ["maxSpan"] = maxSpan },
                [("in.seg", seg, [batch, t + 1, t]), ("in.priorThink", pt, [batch, t]), ("out.logZ", logZ, [batch]), ("out.thinkPosterior", think, [batch, t]), ("out.lineMarginals", marginals, [batch, t + 1, t])],
                [("int.lengths", lengths, [batch])]);
        }

        private void Save(string name, string op, JsonObject settings, IEnumerable<(string Name, float[] Data, int[] Shape)> floats, IEnumerable<(string Name, int[] Data, int[] Shape)>? ints = null)
        {
            var entries = floats.Select(f => SafeTensorsWriter.Floats(f.Name, f.Data, f.Shape)).ToList();
            entries.AddRange((ints ?? []).Select(i => SafeTensorsWriter.Int64s(i.Name, i.Data, i.Shape)));
            SafeTensorsWriter.Write(Path.Combine(folder, name + ".safetensors"), entries, new Dictionary<string, string> { ["op"] = op, ["settings"] = settings.ToJsonString() });
            Count++;
        }

        private float[] Draw(int count, double lo = -1, double hi = 1) => [.. Enumerable.Range(0, count).Select(_ => (float)(lo + ((hi - lo) * rng.NextDouble())))];

        private float[] Symmetric(int count, double scale) => Draw(count, -scale, scale);

        private static TTensor T(float[] data, int[] shape, bool grad = false)
        {
            var t = tensor(Array.ConvertAll(data, x => (double)x), Array.ConvertAll(shape, x => (long)x), float64);
            return grad ? t.requires_grad_(true) : t;
        }

        private static float[] F(TTensor t) => [.. t.detach().contiguous().to_type(float64).data<double>().ToArray().Select(x => (float)x)];
    }
}
