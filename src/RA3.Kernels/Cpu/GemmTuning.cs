using System.Diagnostics;
using System.Globalization;
using System.Runtime.Intrinsics;

namespace RA3.Kernels.Cpu;

/// <summary>The packed GEMM's register tile (micro-kernel): rows × columns of C kept in vector registers.</summary>
public enum GemmTile
{
    /// <summary>8 × 32 on 16 zmm accumulators (AVX-512).</summary>
    Avx512x8x32,

    /// <summary>6 × 16 on 12 ymm accumulators (AVX2 + FMA).</summary>
    Avx2x6x16,
}

/// <summary>
/// How the packed GEMM runs on this processor: its register tile and its blocking — KC (the K
/// slice: an MR × KC panel of A and a KC × NR panel of B should stay in L1), MC (rows per task: an
/// MC × KC block of A in L2) and NC (columns per packed block of B: KC × NC in L2/L3). The best
/// choice follows the processor's measured behaviour, not its name (AVX-512 at half width on a
/// double-pumped core is no faster than AVX2), so <see cref="ForThisProcessor"/> measures the
/// candidates once and caches the winner per processor; a training run records the tuning it ran
/// with and reuses it on resume (KC sets the order of each element's sum, so only the same KC
/// resumes bit for bit).
/// </summary>
/// <param name="Tile">The micro-kernel.</param>
/// <param name="KC">Depth of a K slice.</param>
/// <param name="MC">Rows of A per task (a multiple of 24: both tiles' row counts divide it).</param>
/// <param name="NC">Columns of B per packed block.</param>
public sealed record GemmTuning(GemmTile Tile, int KC, int MC, int NC)
{
    /// <summary>The environment variable that forces a tuning (its text form) or <c>default</c> (the untuned choice); unset, the cached measurement.</summary>
    public const string EnvironmentVariable = "RA3_GEMM_TUNING";

    /// <summary>Whether the processor runs AVX-512 (for the 8 × 32 tile).</summary>
    public static bool Avx512 { get; } = Vector512.IsHardwareAccelerated && Vector512<float>.Count == 16;

    /// <summary>Whether the processor runs 256-bit FMAs (for the 6 × 16 tile).</summary>
    public static bool Avx2 { get; } = Vector256.IsHardwareAccelerated && (System.Runtime.Intrinsics.X86.Fma.IsSupported || System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported);

    /// <summary>The untuned choice: the widest tile the processor runs, KC 256, MC 96, NC 3072.</summary>
    public static GemmTuning Default { get; } = new(Avx512 ? GemmTile.Avx512x8x32 : GemmTile.Avx2x6x16, 256, 96, 3072);

    /// <summary>Rows of the register tile.</summary>
    public int MR => Tile == GemmTile.Avx512x8x32 ? 8 : 6;

    /// <summary>Columns of the register tile.</summary>
    public int NR => Tile == GemmTile.Avx512x8x32 ? 32 : 16;

    /// <summary>Whether this processor runs the tile.</summary>
    public bool Runs => Tile == GemmTile.Avx512x8x32 ? Avx512 : Avx2;

    /// <summary>The candidates measured: every tile this processor runs, and blockings around the default.</summary>
    public static IReadOnlyList<GemmTile> Tiles { get; } = [.. Enum.GetValues<GemmTile>().Where(t => new GemmTuning(t, 256, 96, 3072).Runs)];

    /// <summary>The text form, e.g. <c>avx2-6x16 kc256 mc96 nc3072</c> (what <see cref="Parse"/> reads and runs record).</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{(Tile == GemmTile.Avx512x8x32 ? "avx512-8x32" : "avx2-6x16")} kc{KC} mc{MC} nc{NC}");

    /// <summary>Reads <see cref="ToString"/>'s form; throws <see cref="FormatException"/> naming what is wrong.</summary>
    public static GemmTuning Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string[] parts = text.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        int Number(string part, string prefix) =>
            part.StartsWith(prefix, StringComparison.Ordinal) && int.TryParse(part[prefix.Length..], NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0
                ? n
                : throw new FormatException($"GEMM tuning '{text}': expected '{prefix}N' with N > 0, got '{part}' (form: avx2-6x16 kc256 mc96 nc3072)");
        if (parts.Length != 4)
        {
            throw new FormatException($"GEMM tuning '{text}': expected a tile and kc, mc, nc (form: avx2-6x16 kc256 mc96 nc3072)");
        }

        var tile = parts[0] switch
        {
            "avx512-8x32" => GemmTile.Avx512x8x32,
            "avx2-6x16" => GemmTile.Avx2x6x16,
            _ => throw new FormatException($"GEMM tuning '{text}': tile '{parts[0]}' is not avx512-8x32 or avx2-6x16"),
        };
        int mc = Number(parts[2], "mc");
        return mc % 24 == 0 ? new GemmTuning(tile, Number(parts[1], "kc"), mc, Number(parts[3], "nc")) : throw new FormatException($"GEMM tuning '{text}': mc {mc} is not a multiple of 24");
    }

    /// <summary>The tuning known without measuring: the environment's (<see cref="EnvironmentVariable"/>), else this processor's cached measurement, else <see cref="Default"/>.</summary>
    public static GemmTuning Cached() => Forced() ?? Read(CachePath()) ?? Default;

    /// <summary>
    /// The tuning for this processor: the environment's (<see cref="EnvironmentVariable"/>) if set,
    /// else the cached measurement, else a measurement now (about a second), cached for the next
    /// process — the first process to write the cache wins, so concurrent processes agree.
    /// </summary>
    public static GemmTuning ForThisProcessor()
    {
        if (Forced() is { } forced)
        {
            return forced;
        }

        string cache = CachePath();
        if (Read(cache) is { } cached)
        {
            return cached;
        }

        var measured = Measure();
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(cache)!);
            using var file = new FileStream(cache, FileMode.CreateNew, FileAccess.Write);
            using var writer = new StreamWriter(file);
            writer.WriteLine(measured.ToString());
        }
        catch (IOException)
        {
            // Another process wrote it first (or the cache is not writable): take what is there.
        }

        return Read(cache) ?? measured;
    }

    /// <summary>
    /// Measures the candidates by coordinate descent from <see cref="Default"/> — the tile, then KC,
    /// MC and NC — each by the median of five runs of two products the model's GEMMs resemble
    /// (768 × 2048 × 768, a square projection at 768 tokens; 256 × 3072 × 1024, a wide MLP at few rows).
    /// </summary>
    public static GemmTuning Measure()
    {
        var best = Default;
        double bestTime = Time(best);
        void Try(GemmTuning candidate)
        {
            if (!candidate.Runs || candidate == best)
            {
                return;
            }

            double time = Time(candidate);
            if (time < bestTime)
            {
                (best, bestTime) = (candidate, time);
            }
        }

        foreach (var tile in Tiles)
        {
            Try(best with { Tile = tile });
        }

        foreach (int kc in new[] { 128, 192, 256, 384 })
        {
            Try(best with { KC = kc });
        }

        foreach (int mc in new[] { 48, 96, 144, 192 })
        {
            Try(best with { MC = mc });
        }

        foreach (int nc in new[] { 1536, 3072, 6144 })
        {
            Try(best with { NC = nc });
        }

        return best;
    }

    // Median seconds of five runs of the two probe products under tuning t.
    private static unsafe double Time(GemmTuning t)
    {
        (int M, int N, int K)[] shapes = [(768, 2048, 768), (256, 3072, 1024)];
        using var kernel = new GemmKernel(t);
        double total = 0;
        foreach (var (m, n, k) in shapes)
        {
            float* a = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)((long)m * k * 4), 64);
            float* b = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)((long)k * n * 4), 64);
            float* c = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)((long)m * n * 4), 64);
            try
            {
                new Span<float>(a, m * k).Fill(0.5f);
                new Span<float>(b, k * n).Fill(0.25f);
                var args = new Ops.GemmArgs(1, m, n, k, false, false, 1f, 0f, 0, 0, 0);
                var times = new double[5];
                kernel.Run(args, a, b, c, null);
                for (int i = 0; i < times.Length; i++)
                {
                    long start = Stopwatch.GetTimestamp();
                    kernel.Run(args, a, b, c, null);
                    times[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
                }

                Array.Sort(times);
                total += times[2];
            }
            finally
            {
                System.Runtime.InteropServices.NativeMemory.AlignedFree(a);
                System.Runtime.InteropServices.NativeMemory.AlignedFree(b);
                System.Runtime.InteropServices.NativeMemory.AlignedFree(c);
            }
        }

        return total;
    }

    private static GemmTuning? Forced() => Environment.GetEnvironmentVariable(EnvironmentVariable) switch
    {
        null or "" => null,
        "default" => Default,
        var text => Parse(text),
    };

    // The cache file of this processor: the measurement is its (not of the thread count, which a
    // process may choose: every process on the processor must agree on the tuning).
    private static string CachePath()
    {
        string root = Environment.GetEnvironmentVariable("RA3_CACHE_HOME")
            ?? Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "ra3");
        ulong hash = 14695981039346656037UL;
        foreach (char ch in $"{CpuInfo.Describe()}|{Environment.ProcessorCount}|{Environment.Version}")
        {
            hash = (hash ^ ch) * 1099511628211UL;
        }

        return Path.Combine(root, string.Create(CultureInfo.InvariantCulture, $"gemm-tuning-{hash:x16}.txt"));
    }

    private static GemmTuning? Read(string path)
    {
        try
        {
            var tuning = Parse(File.ReadAllText(path));
            return tuning.Runs ? tuning : null;
        }
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
