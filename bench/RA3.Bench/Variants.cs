using System.Diagnostics;
using System.Globalization;
using RA3.Kernels;
using RA3.Kernels.Ops;
using DType = RA3.Kernels.Tensors.DType;
using KTensor = RA3.Kernels.Tensors.Tensor;

namespace RA3.Bench;

/// <summary>
/// Kernel variants as llm.c's <c>dev/cuda</c> keeps them: each op's implementations numbered,
/// each with a line on what it changes, run on the same random inputs, checked against variant 1
/// (the reference tier) and timed side by side in one process.
/// <c>dotnet run --project bench/RA3.Bench -c Release -- variant [OP [N]]</c>: no OP lists them,
/// OP alone runs all of its variants, OP N one of them (still checked against the reference).
/// </summary>
internal static class Variants
{
    private static readonly Op[] Ops =
    [
        new("gemm", "512 x 512 x 512", 2.0 * 512 * 512 * 512, Gemm,
        [
            new(1, "reference", "scalar triple loop, sums in double (ReferenceKernels.Gemm)"),
            new(2, "cpu", "packed panels and a register-tiled SIMD micro-kernel on all cores"),
            new(3, "native", "the same packing in C++ (-O3 -march=native, OpenMP)"),
            new(4, "ilgpu-cpu", "ILGPU's one-thread-per-output kernel on its CPU accelerator"),
        ]),
        new("attention", "flash fwd+bwd B2 H4 T256 D64", 3.5 * 4.0 * 2 * 4 * 256 * 256 * 64 / 2, Attention,
        [
            new(1, "reference", "per query row: scores, softmax, weighted values; backward from the recomputed row"),
            new(2, "cpu", "FlashAttention-2 tiles: 256x256 score tiles from the batched GEMM, online softmax row kernel"),
            new(3, "native", "per (batch, head) fused C++ loop with single-threaded GEMM tiles on gathered panels"),
            new(4, "ilgpu-cpu", "variant 2's tile driver on ILGPU's kernels (CPU accelerator)"),
        ]),
        new("segment", "scores fwd+bwd N2 L256 d128 V4096", 4.0 * 2 * 2 * 256 * 128 * 4096, Segment,
        [
            new(1, "reference", "full logits row by row, log-sum-exp, gather, sum by line"),
            new(2, "cpu", "256-row blocks x 2048-word vocabulary chunks on the GEMM, running (max, sum, target)"),
            new(3, "native", "the same chunking fused in one C++ pass"),
            new(4, "ilgpu-cpu", "variant 2's chunk driver on ILGPU's kernels"),
        ]),
        new("elbo", "forward-backward B8 T128", 8.0 * 129 * 128 * 6, Elbo,
        [
            new(1, "reference", "forward and backward tables in double over all live states"),
            new(2, "cpu", "seg transposed to rows, only live states, row offsets in double, vector exp/log"),
            new(3, "native", "the same scan in C++, one trace per OpenMP task"),
            new(4, "ilgpu-cpu", "one trace per ILGPU thread"),
        ]),
    ];

    /// <summary>Runs the command line's <c>variant</c> arguments; returns the exit code.</summary>
    public static int Run(string[] args)
    {
        if (args.Length == 0)
        {
            foreach (var op in Ops)
            {
                Console.WriteLine($"{op.Name} ({op.Shape}):");
                foreach (var v in op.Implementations)
                {
                    Console.WriteLine($"  {v.Number}  {v.Backend,-10} {v.What}");
                }
            }

            return 0;
        }

        var chosen = Ops.FirstOrDefault(o => o.Name == args[0]);
        if (chosen is null)
        {
            Console.Error.WriteLine($"variant: no op '{args[0]}'; the ops are {string.Join(", ", Ops.Select(o => o.Name))}");
            return 2;
        }

        var numbers = args.Length > 1 ? [int.Parse(args[1], CultureInfo.InvariantCulture)] : chosen.Implementations.Select(v => v.Number).ToArray();
        if (numbers.Any(n => chosen.Implementations.All(v => v.Number != n)))
        {
            Console.Error.WriteLine($"variant: {chosen.Name} has variants {string.Join(", ", chosen.Implementations.Select(v => v.Number))}");
            return 2;
        }

        float[] expected = Measure(chosen, chosen.Implementations[0], time: false).Output;
        Console.WriteLine($"{chosen.Name}, {chosen.Shape}; error = max |x − reference| / max |reference| over every output");
        Console.WriteLine();
        Console.WriteLine("| variant | backend | what it changes | max rel. error | median ms | GFLOP/s | × variant 1 |");
        Console.WriteLine("|---:|---|---|---:|---:|---:|---:|");
        double? first = null;
        bool ok = true;
        foreach (int n in numbers)
        {
            var v = chosen.Implementations.First(x => x.Number == n);
            var (output, ms) = Measure(chosen, v, time: true);
            double error = RelativeError(output, expected);
            ok &= error <= 1e-3;
            first ??= n == 1 ? ms : null;
            string ratio = first is double f ? (f / ms).ToString("0.0", CultureInfo.InvariantCulture) : "-";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {n} | {v.Backend} | {v.What} | {error:0.0e+0} | {ms:0.00} | {chosen.Flops / (ms * 1e6):0.0} | {ratio} |"));
        }

        return ok ? 0 : 1;
    }

    private static (float[] Output, double Ms) Measure(Op op, Variant v, bool time)
    {
        using var backend = BackendCatalog.Create(v.Backend);
        using var inputs = new Inputs(backend);
        var (run, outputs) = op.Prepare(backend, inputs);
        run();
        float[] output = [.. outputs.SelectMany(t => t.ToFloatArray())];
        for (int i = 0; time && v.Backend != "reference" && i < 3; i++)
        {
            run();  // warm-up: JIT tiers, first-touch pages, workspaces
        }

        double ms = double.NaN;
        if (time)
        {
            var times = new double[v.Backend == "reference" ? 3 : 9];
            for (int i = 0; i < times.Length; i++)
            {
                var clock = Stopwatch.StartNew();
                run();
                _ = outputs[0].ToFloatArray();  // waits for a device backend's queue
                times[i] = clock.Elapsed.TotalMilliseconds;
            }

            Array.Sort(times);
            ms = times[times.Length / 2];
        }

        return (output, ms);
    }

    private static double RelativeError(float[] x, float[] reference)
    {
        double scale = reference.Max(r => Math.Abs((double)r)), worst = 0;
        for (int i = 0; i < x.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs((double)x[i] - reference[i]));
        }

        return worst / Math.Max(scale, 1e-30);
    }

    private static float[] Random(int n, int seed, double scale = 1)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() - 0.5) * 2 * scale))];
    }

    // Each Prepare makes its inputs from fixed seeds and returns the op (accumulating outputs are
    // zeroed first, so every run computes the same values) and the tensors it writes.
    private static (Action Run, KTensor[] Outputs) Gemm(Backend b, Inputs t)
    {
        const int n = 512;
        var (a, w, c) = (t.Up(Random(n * n, 1), n, n), t.Up(Random(n * n, 2), n, n), t.Zeros(n, n));
        return (() => b.Gemm(a, false, w, false, c), [c]);
    }

    private static (Action Run, KTensor[] Outputs) Attention(Backend b, Inputs t)
    {
        const int batch = 2, time = 256, heads = 4, d = 64;
        int count = batch * time * heads * d;
        var (q, k, v, dout) = (t.Up(Random(count, 1), batch, time, heads, d), t.Up(Random(count, 2), batch, time, heads, d), t.Up(Random(count, 3), batch, time, heads, d), t.Up(Random(count, 4), batch, time, heads, d));
        var (o, lse, dq, dk, dv) = (t.Zeros(batch, time, heads, d), t.Zeros(batch, heads, time), t.Zeros(batch, time, heads, d), t.Zeros(batch, time, heads, d), t.Zeros(batch, time, heads, d));
        return (
            () =>
            {
                b.Zero(dq);
                b.Zero(dk);
                b.Zero(dv);
                b.FlashAttention(q, k, v, null, o, lse);
                b.FlashAttentionBackward(q, k, v, null, o, lse, dout, dq, dk, dv);
            },
            [o, lse, dq, dk, dv]);
    }

    private static (Action Run, KTensor[] Outputs) Segment(Backend b, Inputs t)
    {
        const int n = 2, l = 256, d = 128, vocab = 4096, lineTokens = 16, lines = l / lineTokens;
        var rng = new Random(5);
        var (h, w) = (t.Up(Random(n * l * d, 6), n, l, d), t.Up(Random(vocab * d, 7, 0.1), vocab, d));
        var targets = t.Ints([.. Enumerable.Range(0, n * l).Select(_ => rng.Next(vocab))], n, l);
        var lineIds = t.Ints([.. Enumerable.Range(0, n * l).Select(r => r % l / lineTokens)], n, l);
        var dScores = t.Up(Random(n * lines, 8), n, lines);
        var (scores, lse, dh, dw) = (t.Zeros(n, lines), t.Zeros(n, l), t.Zeros(n, l, d), t.Zeros(vocab, d));
        return (
            () =>
            {
                b.Zero(dh);
                b.Zero(dw);
                b.SegmentScores(h, w, targets, lineIds, scores, lse);
                b.SegmentScoresBackward(h, w, targets, lineIds, lse, dScores, dh, dw);
            },
            [scores, lse, dh, dw]);
    }

    private static (Action Run, KTensor[] Outputs) Elbo(Backend b, Inputs t)
    {
        const int batch = 8, lines = 128;
        var seg = t.Up([.. Random(batch * (lines + 1) * lines, 9).Select(x => -3f + x)], batch, lines + 1, lines);
        var prior = t.Up([.. Random(batch * lines, 10).Select(x => -2.5f + (0.5f * x))], batch, lines);
        var lengths = t.Ints([.. Enumerable.Range(0, batch).Select(i => lines - (i * 7))], batch);
        var (logZ, posterior, marginals) = (t.Zeros(batch), t.Zeros(batch, lines), t.Zeros(batch, lines + 1, lines));
        return (() => b.ElboForwardBackward(seg, prior, MathF.Log(0.5f), lengths, 0, logZ, posterior, marginals), [logZ, posterior, marginals]);
    }

    private sealed record Variant(int Number, string Backend, string What);

    private sealed record Op(string Name, string Shape, double Flops, Func<Backend, Inputs, (Action Run, KTensor[] Outputs)> Prepare, Variant[] Implementations);

    /// <summary>The tensors of one measurement, freed with it.</summary>
    private sealed class Inputs(Backend backend) : IDisposable
    {
        private readonly List<KTensor> owned = [];

        public KTensor Up(float[] data, params int[] shape) => Keep(backend.FromArray(data, shape));

        public KTensor Ints(int[] data, params int[] shape) => Keep(backend.FromArray(data, shape));

        public KTensor Zeros(params int[] shape) => Keep(backend.Empty(DType.Float32, shape));

        public void Dispose() => owned.ForEach(t => t.Dispose());

        private KTensor Keep(KTensor t)
        {
            owned.Add(t);
            return t;
        }
    }
}
