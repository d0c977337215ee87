namespace RA3.Kernels.Cpu;

/// <summary>
/// The processor this process runs on, as Linux describes it: its model name, the instruction-set
/// flags the kernels care about and its cache sizes — what a benchmark table or a bug report must
/// name, since the kernels' speed follows them (the same vector width is twice as fast on one
/// AVX-512 core as on a double-pumped one).
/// </summary>
public static class CpuInfo
{
    private static readonly string[] KernelFlags = ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile"];

    /// <summary>The model name with its family and model numbers (<c>/proc/cpuinfo</c>; a VM may show only the brand), or "unknown" off Linux.</summary>
    public static string Model { get; } = $"{Field("model name") ?? "unknown"}{(Field("cpu family") is { } family ? $" (family {family}, model {Field("model")})" : string.Empty)}";

    /// <summary>The kernel-relevant instruction-set flags the processor has, in a fixed order.</summary>
    public static IReadOnlyList<string> Flags { get; } = [.. (Field("flags")?.Split(' ') ?? []).Intersect(KernelFlags).OrderBy(f => Array.IndexOf(KernelFlags, f))];

    /// <summary>Cache sizes of one core's view, e.g. "L1d 32K, L2 512K, L3 32768K" (empty off Linux).</summary>
    public static string Caches { get; } = ReadCaches();

    /// <summary>One line: model, flags, caches.</summary>
    public static string Describe() => $"{Model}; {(Flags.Count > 0 ? string.Join(' ', Flags) : "no AVX")}; {Caches}";

    private static string? Field(string name)
    {
        try
        {
            // "key<tabs>: value"; the key must match whole ("model" is not "model name").
            return File.ReadLines("/proc/cpuinfo").Select(l => l.Split(':', 2)).FirstOrDefault(kv => kv.Length == 2 && kv[0].Trim() == name)?[1].Trim();
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string ReadCaches()
    {
        const string root = "/sys/devices/system/cpu/cpu0/cache";
        if (!Directory.Exists(root))
        {
            return string.Empty;
        }

        var parts = new List<string>();
        foreach (string index in Directory.GetDirectories(root, "index*").Order(StringComparer.Ordinal))
        {
            string Read(string file) => File.Exists(Path.Combine(index, file)) ? File.ReadAllText(Path.Combine(index, file)).Trim() : string.Empty;
            string type = Read("type");
            if (type == "Instruction")
            {
                continue;
            }

            parts.Add($"L{Read("level")}{(type == "Data" ? "d" : string.Empty)} {Read("size")}");
        }

        return string.Join(", ", parts);
    }
}
