using System.Globalization;
using System.Text;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace RA3.Bench;

/// <summary>
/// Turns the run's summaries into the RESULTS.md tables: kernels in GFLOP/s with the ratio to
/// TorchSharp and the fraction of the measured FMA peak; model steps in tokens/s with the ratio
/// to TorchSharp where it has a peer; tokenizers in MB/s with the ratio to Microsoft.ML.Tokenizers.
/// </summary>
public static class RatioTable
{
    /// <summary>Markdown tables of every benchmark case of <paramref name="summaries"/>.</summary>
    public static string Markdown(IEnumerable<Summary> summaries)
    {
        var rows = summaries.SelectMany(s => s.Reports)
            .Where(r => r.ResultStatistics is not null)
            .Select(r => (Case: r.BenchmarkCase, Ns: r.ResultStatistics!.Median))
            .ToList();
        double peak = rows.Where(r => r.Case.Descriptor.Type == typeof(FmaPeakBench)).Select(r => FmaPeakBench.Flops / r.Ns).FirstOrDefault();
        double copyGBs = rows.Where(r => r.Case.Descriptor.Type == typeof(CopyBandwidthBench)).Select(r => CopyBandwidthBench.Traffic / r.Ns).FirstOrDefault();
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"{RA3.Kernels.Cpu.CpuInfo.Describe()}; {Environment.ProcessorCount} cores, managed GEMM {RA3.Kernels.Cpu.GemmKernel.Variant}, {RA3.Kernels.Cpu.Simd.Width} floats per vector");
        sb.AppendLine(CultureInfo.InvariantCulture, $"Measured FMA peak: {peak:F1} GFLOP/s; copy bandwidth: {copyGBs:F1} GB/s (read + write)");
        var kernels = rows.Where(r => r.Case.Descriptor.Type == typeof(GemmBench) || r.Case.Descriptor.Type == typeof(AttentionBench) || r.Case.Descriptor.Type == typeof(SegmentScoreBench)).ToList();
        if (kernels.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("| benchmark | shape | impl | median ms | GFLOP/s | × TorchSharp | of FMA peak |");
            sb.AppendLine("|---|---|---|---:|---:|---:|---:|");
            foreach (var group in kernels.GroupBy(r => (r.Case.Descriptor.Type.Name, Shape(r.Case))))
            {
                double torchNs = TorchNs(group);
                foreach (var (c, ns) in group)
                {
                    double gflops = KernelFlops(c) / ns;
                    sb.AppendLine(CultureInfo.InvariantCulture, $"| {Name(c)} | {group.Key.Item2} | {Impl(c)} | {ns / 1e6:F2} | {gflops:F1} | {Ratio(torchNs, ns)} | {(peak > 0 ? gflops / peak : 0):P0} |");
                }
            }
        }

        var elbo = rows.Where(r => r.Case.Descriptor.Type == typeof(ElboBench)).ToList();
        if (elbo.Count > 0)
        {
            double copyNs = elbo.Where(r => Impl(r.Case) == "copy").Select(r => r.Ns).FirstOrDefault(), torchNs = TorchNs(elbo);
            sb.AppendLine();
            sb.AppendLine(CultureInfo.InvariantCulture, $"ELBO forward-backward, B {ElboBench.B} T {ElboBench.T}: {ElboBench.Bytes / 1e6:F1} MB touched; copy = a memcpy of those bytes (the bandwidth limit).");
            sb.AppendLine();
            sb.AppendLine("| impl | median ms | GB/s | of copy bandwidth | × TorchSharp |");
            sb.AppendLine("|---|---:|---:|---:|---:|");
            foreach (var (c, ns) in elbo)
            {
                double gbs = ElboBench.Bytes / ns;
                sb.AppendLine(CultureInfo.InvariantCulture, $"| {Impl(c)} | {ns / 1e6:F3} | {gbs:F1} | {(copyNs > 0 ? copyNs / ns : 0):P1} | {Ratio(torchNs, ns)} |");
            }
        }

        var models = rows.Where(r => r.Case.Descriptor.Type == typeof(TrainStepBench) || r.Case.Descriptor.Type == typeof(GenerationBench) || r.Case.Descriptor.Type == typeof(RealModelStepBench)).ToList();
        if (models.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("| benchmark | model | impl | median ms | tokens/s | × TorchSharp |");
            sb.AppendLine("|---|---|---|---:|---:|---:|");
            foreach (var group in models.GroupBy(r => (r.Case.Descriptor.Type.Name, Shape(r.Case))))
            {
                double torchNs = TorchNs(group);
                foreach (var (c, ns) in group)
                {
                    double tokens = c.Descriptor.Type == typeof(TrainStepBench) ? TrainStepBench.Tokens : c.Descriptor.Type == typeof(RealModelStepBench) ? RealModelStepBench.Tokens : GenerationBench.Tokens;
                    string peakShare = c.Descriptor.Type == typeof(RealModelStepBench) && peak > 0 ? $" ({RealModelStepBench.Flops / ns / peak:P0} of FMA peak)" : string.Empty;
                    sb.AppendLine(CultureInfo.InvariantCulture, $"| {Name(c)} | {group.Key.Item2} | {Impl(c)} | {ns / 1e6:F1} | {tokens / (ns / 1e9):N0}{peakShare} | {Ratio(torchNs, ns)} |");
                }
            }
        }

        var tokenizers = rows.Where(r => r.Case.Descriptor.Type == typeof(TokenizerBench)).ToList();
        if (tokenizers.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine(CultureInfo.InvariantCulture, $"Tokenizer throughput: HumanEval's 164 prompts + solutions ({TokenizerBench.Bytes / 1e3:F0} kB), encoded one text at a time.");
            sb.AppendLine();
            sb.AppendLine("| tokenizer | impl | median ms | MB/s | × Microsoft.ML.Tokenizers |");
            sb.AppendLine("|---|---|---:|---:|---:|");
            foreach (var group in tokenizers.GroupBy(r => r.Case.Parameters["Case"]!.ToString()!.Split('/')[0]))
            {
                double mlNs = group.Where(r => r.Case.Parameters["Case"]!.ToString()!.EndsWith("/ml", StringComparison.Ordinal)).Select(r => r.Ns).FirstOrDefault();
                foreach (var (c, ns) in group)
                {
                    sb.AppendLine(CultureInfo.InvariantCulture, $"| {group.Key} | {c.Parameters["Case"]!.ToString()!.Split('/')[1]} | {ns / 1e6:F2} | {TokenizerBench.Bytes / (ns / 1e3):F1} | {(mlNs > 0 ? (mlNs / ns).ToString("F2", CultureInfo.InvariantCulture) : "-")} |");
                }
            }
        }

        return sb.ToString();
    }

    private static double KernelFlops(BenchmarkCase c) =>
        c.Descriptor.Type == typeof(GemmBench) ? GemmBench.Flops(Shape(c))
        : c.Descriptor.Type == typeof(AttentionBench) ? AttentionBench.Flops((int)c.Parameters["T"]!)
        : SegmentScoreBench.Flops((int)c.Parameters["V"]!);

    private static double TorchNs(IEnumerable<(BenchmarkCase Case, double Ns)> group) => group.Where(r => Impl(r.Case) == "torch").Select(r => r.Ns).FirstOrDefault();

    private static string Ratio(double torchNs, double ns) => torchNs > 0 ? (torchNs / ns).ToString("F2", CultureInfo.InvariantCulture) : "-";

    private static string Name(BenchmarkCase c) => c.Descriptor.Type.Name.Replace("Bench", string.Empty, StringComparison.Ordinal);

    private static string Impl(BenchmarkCase c) => c.Parameters["Impl"]?.ToString() ?? "?";

    private static string Shape(BenchmarkCase c) =>
        c.Parameters.Items.Any(p => p.Name == "Shape") ? c.Parameters["Shape"]!.ToString()!
        : c.Parameters.Items.Any(p => p.Name == "Family") ? c.Parameters["Family"]!.ToString()!
        : c.Descriptor.Type == typeof(AttentionBench) ? $"B4 H8 T{c.Parameters["T"]} D64"
        : c.Descriptor.Type == typeof(SegmentScoreBench) ? $"4096 tok, d 512, V {c.Parameters["V"]}"
        : c.Descriptor.Type == typeof(RealModelStepBench) ? $"Qwen2.5-0.5B shape, B{RealModelStepBench.B} T{RealModelStepBench.T}"
        : "llama";
}
