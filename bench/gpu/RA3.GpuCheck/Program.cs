using System.Diagnostics;
using RA3.Kernels.Cpu;
using RA3.Kernels.Cuda;
using RA3.Kernels.Ops;
using RA3.Model;
using RA3.Model.Config;
using RA3.Model.Optim;
using RA3.Testing;

// The CUDA backend against float64 references: the op tests' device fixtures (each op it takes
// over, at the tolerance of its path), then a few training steps of a small Llama through the same
// model code against the CPU backend, then training-step throughput of GPT-2 124M on the GPU.
// Exit code 1 when a check fails. Error = ||ours - reference|| / ||reference||.
//   RA3.GpuCheck --fixtures DIR [--seed N] [--out FILE.json]   (FILE gets bench/gpu/table.py's result lines)
var inv = System.Globalization.CultureInfo.InvariantCulture;
string? Arg(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();
var seed = Arg("--seed") is { } s0 ? int.Parse(s0, inv) : Environment.TickCount;
var results = new List<string>();
var rng = new Rng((ulong)seed);
using var gpu = CudaBackend.Create();
using var cpu = new CpuBackend();
Console.WriteLine($"CudaBackend on {gpu.AcceleratorName}, seed {seed}");
int failures = 0;

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


// The op tests' cases with float64 references (tests/Shared/Model/DeviceFixtureCases.cs, written on
// a machine with TorchSharp: bench/gpu/README.md), on the CUDA backend, at the tolerances of the
// paths it takes: TF32 GEMMs, bf16 tensor-core attention (head dims 64 and 128, no window) and
// segment scoring; f32 elsewhere (norms, the ELBO, and ILGPU's kernels for the rest).
string fixtures = Arg("--fixtures") ?? Environment.GetEnvironmentVariable("RA3_DEVICE_FIXTURES") ?? throw new ArgumentException("--fixtures DIR: the device fixtures (bench/gpu/README.md says how to write and carry them)");
double Tolerance(string op, string name) => op switch
{
    "Gemm" or "BiasBackward" => 2e-3,
    "FlashAttention" or "FlashAttentionBackward" when (name.Contains("-d64", StringComparison.Ordinal) || name.Contains("-d128", StringComparison.Ordinal)) && !name.Contains("window", StringComparison.Ordinal) => 2e-2,
    "SegmentScores" or "SegmentScoresBackward" => 1e-2,
    _ => 1e-4,
};
foreach (var r in DeviceFixtureCheck.Run(gpu, fixtures, Tolerance))
{
    failures += r.Pass ? 0 : 1;
    Console.WriteLine(DeviceFixtureCheck.Lines([r]).Single());
    results.Add(string.Create(inv, $"{{\"kind\":\"check\",\"name\":\"cuda backend: {r.Case} {r.Output}\",\"error\":{(double.IsFinite(r.Error) ? r.Error : 1e30):E4},\"tolerance\":{r.Tolerance:E1},\"pass\":{(r.Pass ? "true" : "false")}}}"));
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
