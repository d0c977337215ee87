using System.Globalization;
using System.Text;
using BenchmarkDotNet.Reports;

namespace RA3.Bench;

/// <summary>Turns the run's summaries into the RESULTS.md table: GFLOP/s, ratio to TorchSharp, fraction of FMA peak.</summary>
public static class RatioTable
{
    /// <summary>A markdown table of every benchmark case of <paramref name="summaries"/>.</summary>
    public static string Markdown(IEnumerable<Summary> summaries)
    {
        var rows = summaries.SelectMany(s => s.Reports)
            .Where(r => r.ResultStatistics is not null)
            .Select(r => (Case: r.BenchmarkCase, Ns: r.ResultStatistics!.Median))
            .ToList();
        double peak = rows.Where(r => r.Case.Descriptor.Type == typeof(FmaPeakBench)).Select(r => FmaPeakBench.Flops / r.Ns).FirstOrDefault();
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Measured FMA peak: {peak:F1} GFLOP/s");
        sb.AppendLine();
        sb.AppendLine("| benchmark | shape | impl | median ms | GFLOP/s | × TorchSharp | of FMA peak |");
        sb.AppendLine("|---|---|---|---:|---:|---:|---:|");
        foreach (var group in rows.Where(r => r.Case.Descriptor.Type != typeof(FmaPeakBench)).GroupBy(r => (r.Case.Descriptor.Type.Name, Shape(r.Case))))
        {
            double torchNs = group.Where(r => Impl(r.Case) == "torch").Select(r => r.Ns).FirstOrDefault();
            foreach (var (c, ns) in group)
            {
                double flops = c.Descriptor.Type == typeof(GemmBench) ? GemmBench.Flops(Shape(c)) : AttentionBench.Flops;
                double gflops = flops / ns;
                string ratio = torchNs > 0 ? (torchNs / ns).ToString("F2", CultureInfo.InvariantCulture) : "-";
                sb.AppendLine(CultureInfo.InvariantCulture, $"| {group.Key.Name.Replace("Bench", string.Empty, StringComparison.Ordinal)} | {group.Key.Item2} | {Impl(c)} | {ns / 1e6:F2} | {gflops:F1} | {ratio} | {(peak > 0 ? gflops / peak : 0):P0} |");
            }
        }

        return sb.ToString();
    }

    private static string Impl(BenchmarkDotNet.Running.BenchmarkCase c) => c.Parameters["Impl"]?.ToString() ?? "?";

    private static string Shape(BenchmarkDotNet.Running.BenchmarkCase c) =>
        c.Parameters.Items.Any(p => p.Name == "Shape") ? c.Parameters["Shape"]!.ToString()! : "B4 H8 T256 D64";
}
