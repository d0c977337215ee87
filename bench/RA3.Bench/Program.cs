using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using RA3.Bench;
using RA3.Kernels;

// One run, every comparison side by side: our backends and TorchSharp on the same machine, in
// the same process, then a table of GFLOP/s, the ratio to TorchSharp and the fraction of the
// measured FMA peak. In-process so that the native libraries resolve as in the tests.
foreach (string line in BackendInfo.Describe())
{
    Console.WriteLine(line);
}

TorchSharp.torch.set_num_threads(Environment.ProcessorCount);
var job = Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithWarmupCount(3).WithIterationCount(args.Contains("--quick") ? 3 : 10);
var config = ManualConfig.Create(DefaultConfig.Instance).AddJob(job).WithOptions(ConfigOptions.DisableOptimizationsValidator);
// --kernels: GEMM and attention only; --model: training step and generation only; default: all.
bool kernels = !args.Contains("--model"), models = !args.Contains("--kernels");
var summaries = new List<BenchmarkDotNet.Reports.Summary> { BenchmarkRunner.Run<FmaPeakBench>(config) };
if (kernels)
{
    summaries.Add(BenchmarkRunner.Run<GemmBench>(config));
    summaries.Add(BenchmarkRunner.Run<AttentionBench>(config));
}

if (models)
{
    summaries.Add(BenchmarkRunner.Run<TrainStepBench>(config));
    summaries.Add(BenchmarkRunner.Run<GenerationBench>(config));
}

Console.WriteLine(RatioTable.Markdown(summaries));
