using System.Globalization;

namespace RA3.Train.Sandbox;

/// <summary>
/// What this process holds of the kernel's per-process resources, read from <c>/proc/self</c>:
/// the figures a leak in the sandbox (or anything else that starts processes) would grow.
/// </summary>
/// <param name="Descriptors">Open file descriptors (entries of <c>/proc/self/fd</c>).</param>
/// <param name="Threads">Threads (<c>Threads:</c> of <c>/proc/self/status</c>).</param>
/// <param name="ResidentBytes">Resident set size (<c>VmRSS:</c> of <c>/proc/self/status</c>).</param>
public readonly record struct ProcessResources(int Descriptors, int Threads, long ResidentBytes)
{
    /// <summary>Reads the figures now.</summary>
    public static ProcessResources Sample()
    {
        int threads = 0;
        long rss = 0;
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("Threads:", StringComparison.Ordinal))
            {
                threads = int.Parse(line.AsSpan("Threads:".Length).Trim(), CultureInfo.InvariantCulture);
            }
            else if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                // "VmRSS:	   123456 kB"
                var value = line.AsSpan("VmRSS:".Length).Trim();
                rss = long.Parse(value[..value.IndexOf(' ')], CultureInfo.InvariantCulture) << 10;
            }
        }

        return new ProcessResources(Directory.GetFileSystemEntries("/proc/self/fd").Length, threads, rss);
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Descriptors} descriptors, {Threads} threads, {ResidentBytes / (1 << 20)} MiB resident";
}
