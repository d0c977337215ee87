using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Filters;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using RA3.Bench;
using RA3.Kernels;

// `variant [OP [N]]`: the numbered kernel variants of one op, checked against the reference and timed (Variants.cs).
if (args.FirstOrDefault() == "variant")
{
    return Variants.Run(args[1..]);
}

// `device-fixtures --out DIR [--seed N]`: the op tests' cases with TorchSharp float64 references as
// files, for the GPU machine where TorchSharp does not travel (bench/gpu/README.md).
if (args.FirstOrDefault() == "device-fixtures")
{
    string folder = args.SkipWhile(a => a != "--out").Skip(1).FirstOrDefault() ?? throw new ArgumentException("device-fixtures --out DIR");
    int seed = args.SkipWhile(a => a != "--seed").Skip(1).FirstOrDefault() is { } s ? int.Parse(s, System.Globalization.CultureInfo.InvariantCulture) : 20261205;
    TorchSharp.torch.set_default_dtype(TorchSharp.torch.float64);
    Console.WriteLine($"{RA3.Testing.DeviceFixtureCases.Write(folder, seed)} device fixtures in {folder}");
    return 0;
}

// One run, every comparison side by side: our backends and TorchSharp on the same machine, in
// the same process, then a table of GFLOP/s, the ratio to TorchSharp and the fraction of the
// measured FMA peak. In-process so that the native libraries resolve as in the tests.
// TorchSharp loads first: its OpenMP runtime and ra3_native's each read OMP_WAIT_POLICY once, at
// load, and ra3_native's loader sets it to passive when unset (NativeLibraryLoader), which
// TorchSharp's parallel regions must not inherit here: each library runs as it would alone.
TorchSharp.torch.set_num_threads(Environment.ProcessorCount);
foreach (string line in BackendInfo.Describe())
{
    Console.WriteLine(line);
}

var job = Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithWarmupCount(3).WithIterationCount(args.Contains("--quick") ? 3 : 10);
var config = ManualConfig.Create(DefaultConfig.Instance).AddJob(job).WithOptions(ConfigOptions.DisableOptimizationsValidator);

// --impl A,B: only the cases whose Impl is one of these (e.g. --only RealModelStep --impl cpu,native,torch,
// whose six cases at tens of seconds a step take half an hour on 2 cores).
if (args.SkipWhile(a => a != "--impl").Skip(1).FirstOrDefault() is { } impls)
{
    string[] chosen = impls.Split(',');
    config = config.AddFilter(new SimpleFilter(c => c.Parameters.Items.All(p => p.Name != "Impl" || chosen.Contains(p.Value?.ToString()))));
}
// --kernels: GEMM, attention, segment scoring and the ELBO pass; --model: training step,
// generation and tokenizer throughput; --ra3: attention, segment scoring and the ELBO pass; default: all.
// --only NAME runs one benchmark class (e.g. --only Attention) after the FMA peak and the copy bandwidth.
string? only = args.SkipWhile(a => a != "--only").Skip(1).FirstOrDefault();
bool ra3Only = args.Contains("--ra3");
bool kernels = !args.Contains("--model"), models = !args.Contains("--kernels") && !ra3Only;
var summaries = new List<BenchmarkDotNet.Reports.Summary> { BenchmarkRunner.Run<FmaPeakBench>(config), BenchmarkRunner.Run<CopyBandwidthBench>(config) };
if (only is not null)
{
    var type = typeof(FmaPeakBench).Assembly.GetType($"RA3.Bench.{only}Bench") ?? throw new ArgumentException($"no benchmark RA3.Bench.{only}Bench");
    summaries.Add(BenchmarkRunner.Run(type, config));
    kernels = models = false;
}

if (kernels)
{
    if (!ra3Only)
    {
        summaries.Add(BenchmarkRunner.Run<GemmBench>(config));
    }

    summaries.Add(BenchmarkRunner.Run<AttentionBench>(config));
    summaries.Add(BenchmarkRunner.Run<SegmentScoreBench>(config));
    summaries.Add(BenchmarkRunner.Run<ElboBench>(config));
}

if (models)
{
    summaries.Add(BenchmarkRunner.Run<TrainStepBench>(config));
    summaries.Add(BenchmarkRunner.Run<GenerationBench>(config));
    summaries.Add(BenchmarkRunner.Run<TokenizerBench>(config));
}

Console.WriteLine(RatioTable.Markdown(summaries));
return 0;
