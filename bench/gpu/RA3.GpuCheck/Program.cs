using System.Diagnostics;
using RA3.Kernels.Cpu;
using RA3.Kernels.Cuda;
using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;
using RA3.Model;
using RA3.Model.Config;
using RA3.Model.Optim;
using KTensor = RA3.Kernels.Tensors.Tensor;

// The CUDA backend against the managed CPU backend (the reference) on fresh random inputs: each
// op it takes over from ILGPU, then a few training steps of a small Llama through the same model
// code, then training-step throughput of GPT-2 124M on the GPU. Exit code 1 when a check fails.
// Error = ||gpu - cpu|| / ||cpu||; bf16 paths (attention, segment scoring) get bf16 tolerances.
//   RA3.GpuCheck [--seed N] [--out FILE.json]   (FILE gets bench/gpu/table.py's result lines)
var inv = System.Globalization.CultureInfo.InvariantCulture;
string? Arg(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();
var seed = Arg("--seed") is { } s0 ? int.Parse(s0, inv) : Environment.TickCount;
var results = new List<string>();
var rng = new Rng((ulong)seed);
using var gpu = CudaBackend.Create();
using var cpu = new CpuBackend();
Console.WriteLine($"CudaBackend on {gpu.AcceleratorName}, seed {seed}");
int failures = 0;

float[] Random(int count, float scale = 1f) => [.. Enumerable.Range(0, count).Select(_ => (float)rng.NextGaussian() * scale)];

void Report(string name, float[] got, float[] want, double tolerance)
{
    double num = 0, den = 0;
    for (int i = 0; i < want.Length; i++)
    {
        num += (got[i] - (double)want[i]) * (got[i] - (double)want[i]);
        den += want[i] * (double)want[i];
    }

    double error = Math.Sqrt(num / Math.Max(den, 1e-300));
    bool pass = error <= tolerance && !double.IsNaN(error);
    failures += pass ? 0 : 1;
    Console.WriteLine($"check {name,-50} rel.err {error:E3}  (tol {tolerance:E0})  {(pass ? "ok" : "FAIL")}");
    results.Add(string.Create(inv, $"{{\"kind\":\"check\",\"name\":\"cuda backend: {name}\",\"error\":{(double.IsFinite(error) ? error : 1e30):E4},\"tolerance\":{tolerance:E1},\"pass\":{(pass ? "true" : "false")}}}"));
}

// Runs body on both backends with the same host inputs; returns each backend's outputs.
(float[][] Gpu, float[][] Cpu) Both(float[][] inputs, int[][] shapes, int[][] ints, int[][] intShapes, Func<Backend, KTensor[], KTensor[], float[][]> body)
{
    float[][] Run(Backend b)
    {
        var f = inputs.Select((x, i) => b.FromArray(x, shapes[i])).ToArray();
        var n = ints.Select((x, i) => b.FromArray(x, intShapes[i])).ToArray();
        try
        {
            return body(b, f, n);
        }
        finally
        {
            foreach (var t in f.Concat(n))
            {
                t.Dispose();
            }
        }
    }

    return (Run(gpu), Run(cpu));
}

float[] Read(KTensor t) => t.ToFloatArray();

// GEMM (TF32 tensor cores) with bias, both transposes.
{
    const int m = 300, n = 200, k = 96;
    var r = Both([Random(m * k), Random(k * n), Random(n), Random(m * n)], [[k, m], [n, k], [n], [m, n]], [], [], (b, f, _) =>
    {
        b.Gemm(f[0], true, f[1], true, f[3], alpha: 0.5f, beta: 1f, bias: f[2]);
        b.BiasBackward(f[3], f[2]);
        return [Read(f[3]), Read(f[2])];
    });
    Report("gemm tf32 + bias, A^T B^T", r.Gpu[0], r.Cpu[0], 2e-3);
    Report("bias backward (column sums)", r.Gpu[1], r.Cpu[1], 2e-3);
}

// LayerNorm and RMSNorm forward and backward (a warp per row).
{
    const int rows = 1000, cols = 768;
    var r = Both([Random(rows * cols), Random(cols), Random(cols), Random(rows * cols), Random(rows * cols, 0.1f), Random(cols, 0.1f), Random(cols, 0.1f)], [[rows, cols], [cols], [cols], [rows, cols], [rows, cols], [cols], [cols]], [], [], (b, f, _) =>
    {
        using var y = b.Empty(DType.Float32, rows, cols);
        using var mean = b.Empty(DType.Float32, rows);
        using var rstd = b.Empty(DType.Float32, rows);
        b.LayerNorm(f[0], f[1], f[2], y, mean, rstd);
        b.LayerNormBackward(f[0], f[1], mean, rstd, f[3], f[4], f[5], f[6]);
        float[] ln = Read(y), dx = Read(f[4]), dw = Read(f[5]), db = Read(f[6]);
        using var y2 = b.Empty(DType.Float32, rows, cols);
        b.RmsNorm(f[0], f[1], y2, rstd);
        b.RmsNormBackward(f[0], f[1], rstd, f[3], f[4], f[5]);
        return [ln, dx, dw, db, Read(y2), Read(f[4]), Read(f[5])];
    });
    Report("layernorm y", r.Gpu[0], r.Cpu[0], 1e-5);
    Report("layernorm dx", r.Gpu[1], r.Cpu[1], 1e-5);
    Report("layernorm dweight", r.Gpu[2], r.Cpu[2], 1e-5);
    Report("layernorm dbias", r.Gpu[3], r.Cpu[3], 1e-5);
    Report("rmsnorm y", r.Gpu[4], r.Cpu[4], 1e-5);
    Report("rmsnorm dx (after the layernorm's)", r.Gpu[5], r.Cpu[5], 1e-5);
    Report("rmsnorm dweight (after the layernorm's)", r.Gpu[6], r.Cpu[6], 1e-5);
}

// Fused attention forward and backward (bf16 tensor cores), GQA and right padding.
foreach (int d in new[] { 64, 128 })
{
    const int batch = 2, t = 200, hq = 4, hkv = 2;
    int nq = batch * t * hq * d, nk = batch * t * hkv * d;
    var r = Both(
        [Random(nq), Random(nk), Random(nk), Random(nq), Random(nq, 0.1f), Random(nk, 0.1f), Random(nk, 0.1f)],
        [[batch, t, hq, d], [batch, t, hkv, d], [batch, t, hkv, d], [batch, t, hq, d], [batch, t, hq, d], [batch, t, hkv, d], [batch, t, hkv, d]],
        [[t, 151]],
        [[batch]],
        (b, f, n) =>
        {
            using var output = b.Empty(DType.Float32, batch, t, hq, d);
            using var lse = b.Empty(DType.Float32, batch, hq, t);
            b.FlashAttention(f[0], f[1], f[2], n[0], output, lse);
            b.FlashAttentionBackward(f[0], f[1], f[2], n[0], output, lse, f[3], f[4], f[5], f[6]);
            return [Read(output), Read(lse), Read(f[4]), Read(f[5]), Read(f[6])];
        });
    string tag = $" D{d} B{batch} T{t} Hq{hq} Hkv{hkv}";
    Report("attention out" + tag, r.Gpu[0], r.Cpu[0], 1e-2);
    Report("attention lse" + tag, r.Gpu[1], r.Cpu[1], 1e-3);
    Report("attention dq" + tag, r.Gpu[2], r.Cpu[2], 2e-2);
    Report("attention dk" + tag, r.Gpu[3], r.Cpu[3], 2e-2);
    Report("attention dv" + tag, r.Gpu[4], r.Cpu[4], 2e-2);
}

// Latent segment scoring forward and backward (bf16 products).
{
    const int n = 3, l = 200, d = 64, v = 1000, lines = 20;
    int[] targets = [.. Enumerable.Range(0, n * l).Select(_ => rng.NextInt(v))];
    int[] lineIds = [.. Enumerable.Range(0, n * l).Select(_ => rng.NextInt(lines + 1) - 1)];
    var r = Both([Random(n * l * d), Random(v * d, 0.5f), Random(n * lines), Random(n * l * d, 0.1f), Random(v * d, 0.1f)], [[n, l, d], [v, d], [n, lines], [n, l, d], [v, d]], [targets, lineIds], [[n, l], [n, l]], (b, f, i) =>
    {
        using var scores = b.Empty(DType.Float32, n, lines);
        using var lse = b.Empty(DType.Float32, n, l);
        b.SegmentScores(f[0], f[1], i[0], i[1], scores, lse);
        b.SegmentScoresBackward(f[0], f[1], i[0], i[1], lse, f[2], f[3], f[4]);
        return [Read(scores), Read(lse), Read(f[3]), Read(f[4])];
    });
    Report("segment scores", r.Gpu[0], r.Cpu[0], 1e-3);
    Report("segment lse", r.Gpu[1], r.Cpu[1], 1e-3);
    Report("segment dh", r.Gpu[2], r.Cpu[2], 1e-2);
    Report("segment dw", r.Gpu[3], r.Cpu[3], 1e-2);
}

// Temporal-ELBO forward-backward (f32).
{
    const int batch = 4, t = 300;
    float[] seg = [.. Enumerable.Range(0, batch * (t + 1) * t).Select(_ => -0.05f - (float)rng.NextDouble() * 3f)];
    float[] pt = [.. Enumerable.Range(0, batch * t).Select(_ => -1f - (float)rng.NextDouble() * 3f)];
    var r = Both([seg, pt], [[batch, t + 1, t], [batch, t]], [[t, 1, 173, 299]], [[batch]], (b, f, i) =>
    {
        using var logZ = b.Empty(DType.Float32, batch);
        using var post = b.Empty(DType.Float32, batch, t);
        using var marg = b.Empty(DType.Float32, batch, t + 1, t);
        b.ElboForwardBackward(f[0], f[1], MathF.Log(0.9f), i[0], 16, logZ, post, marg);
        return [Read(logZ), Read(post), Read(marg)];
    });
    Report("elbo log_z", r.Gpu[0], r.Cpu[0], 1e-5);
    Report("elbo think posterior", r.Gpu[1], r.Cpu[1], 1e-4);
    Report("elbo line marginals", r.Gpu[2], r.Cpu[2], 1e-4);
}

// A small Llama (head dim 64, so attention takes the tensor-core path) trained for a few steps on
// both backends from the same weights and batches: the losses must follow each other.
{
    var config = ModelConfig.Llama(vocab: 512, hidden: 128, layers: 2, heads: 2, kvHeads: 1, intermediate: 344, maxPositions: 128);
    const int batch = 4, t = 128, steps = 5;
    int[][] batches = [.. Enumerable.Range(0, steps).Select(_ => Enumerable.Range(0, batch * t).Select(_ => rng.NextInt(config.VocabSize)).ToArray())];
    double[] Train(Backend b)
    {
        using var model = new Transformer(b, config, trainable: true);
        model.InitializeRandom(5);
        using var plan = model.Plan(batch, t, PassKind.Train);
        using var optimizer = new AdamWOptimizer(model, weightDecay: 0.1f);
        var losses = new double[steps];
        for (int s = 0; s < steps; s++)
        {
            plan.SetBatch(batches[s]);
            b.Zero(model.Gradients!.Buffer);
            losses[s] = model.Forward(plan);
            model.Backward(plan);
            optimizer.Step(3e-3f, s + 1);
        }

        return losses;
    }

    double[] g = Train(gpu), c = Train(cpu);
    Console.WriteLine($"llama 2x128 losses gpu [{string.Join(", ", g.Select(x => x.ToString("F4", System.Globalization.CultureInfo.InvariantCulture)))}] cpu [{string.Join(", ", c.Select(x => x.ToString("F4", System.Globalization.CultureInfo.InvariantCulture)))}]");
    Report("llama training losses, 5 steps", [.. g.Select(x => (float)x)], [.. c.Select(x => (float)x)], 2e-3);
}

// GPT-2 124M training-step throughput on the GPU (forward, backward, AdamW), B 8 x T 1024.
{
    var config = ModelConfig.Gpt2(vocab: 50257, hidden: 768, layers: 12, heads: 12, maxPositions: 1024);
    const int batch = 16, t = 1024, steps = 4;
    using var model = new Transformer(gpu, config, trainable: true);
    model.InitializeRandom(7);
    using var plan = model.Plan(batch, t, PassKind.Train);
    using var optimizer = new AdamWOptimizer(model, weightDecay: 0.1f);
    plan.SetBatch([.. Enumerable.Range(0, batch * t).Select(_ => rng.NextInt(config.VocabSize))]);
    var clock = new Stopwatch();
    double forward = 0, backward = 0, update = 0;
    for (int s = 0; s <= steps; s++)
    {
        gpu.Synchronize();
        clock.Restart();
        gpu.Zero(model.Gradients!.Buffer);
        model.Forward(plan);
        gpu.Synchronize();
        double f = clock.Elapsed.TotalSeconds;
        model.Backward(plan);
        gpu.Synchronize();
        double fb = clock.Elapsed.TotalSeconds;
        optimizer.Step(1e-4f, s + 1);
        gpu.Synchronize();
        if (s > 0)  // step 0 warms up (kernel compilation, cuBLASLt plans, pool growth)
        {
            forward += f / steps;
            backward += (fb - f) / steps;
            update += (clock.Elapsed.TotalSeconds - fb) / steps;
        }
    }

    double seconds = forward + backward + update;
    Console.WriteLine($"time  gpt2-124M train step B{batch} T{t} (f32 weights, TF32 GEMMs, bf16 attention)   {seconds * 1e3:F1} ms  {batch * t / seconds:F0} tokens/s  (forward {forward * 1e3:F1} ms, backward {backward * 1e3:F1} ms, AdamW {update * 1e3:F1} ms)");
    results.Add(string.Create(inv, $"{{\"kind\":\"time\",\"impl\":\"ra3\",\"name\":\"gpt2-124M train step B{batch} T{t}\",\"ms\":{seconds * 1e3:F3},\"tflops\":0,\"extra_mb\":-1,\"tokens_per_s\":{batch * t / seconds:F0}}}"));
}

Console.WriteLine($"gpu checks: {failures} failed");
if (Arg("--out") is { } outPath)
{
    File.WriteAllText(outPath, $"{{\"device\":\"{gpu.AcceleratorName}\",\"results\":[\n{string.Join(",\n", results)}\n]}}\n");
}

return failures == 0 ? 0 : 1;
