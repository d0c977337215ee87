using System.Text.Json.Serialization;
using RA3.Train.Distributed;
using RA3.Train.Midtraining;
using RA3.Train.PostTraining;
using RA3.Train.Runs;

namespace RA3.Train.Demo;

/// <summary>
/// The sizes of <c>ra3 demo</c>. Two presets: <c>default</c> (the README's main job, within 15
/// minutes on 2 cores) and <c>study</c> (<see cref="Study"/>: about an hour, the figures quoted in
/// the README and bench/RESULTS.md); any option given with a preset overrides its value.
/// </summary>
public sealed record DemoSettings
{
    /// <summary>Which size table the other options start from (<see cref="ForPreset"/>).</summary>
    [Option("preset", "size table the other options start from: default (about 15 minutes on 2 cores) or study (about an hour: more seeds, problems and RLVR)", Choices = "default|study")]
    public string Preset { get; init; } = "default";

    /// <summary>Run folder (it remembers these settings and refuses others, so cached stages always match them).</summary>
    [Option("out", "run folder (it keeps these settings and refuses others)", Value = "DIR")]
    public string Out { get; init; } = "runs/demo";

    /// <summary>Mid-training seeds compared (each: NTP and RA3 from the same pre-trained model, then evaluation and, for the first <see cref="RlvrSeeds"/>, RLVR).</summary>
    [Option("seeds", "mid-training seeds compared", Min = 1)]
    public int Seeds { get; init; } = 3;

    /// <summary>
    /// Pre-training steps of the small model (8 × 256 tokens each). Held-out pass@1 climbs steeply
    /// with them (2026-12-06, 400 problems: 900 steps on 3,000 functions 5.5 %, 1,200 on 4,000
    /// 15.7 %, 2,000 on 6,000 63 %); 1,200 starts the comparison inside the 10–40 % where neither
    /// a floor nor a ceiling hides a difference.
    /// </summary>
    [Option("pretrain-steps", "pre-training steps of the small model", Min = 1)]
    public int PretrainSteps { get; init; } = 1200;

    /// <summary>Functions in the pre-training corpus (1.1 MB; the default steps pass over it 2.2 times).</summary>
    [Option("pretrain-functions", "functions in the pre-training corpus", Min = 1)]
    public int PretrainFunctions { get; init; } = 4000;

    /// <summary>Mid-training traces (training compositions).</summary>
    [Option("traces", "mid-training traces", Min = 1)]
    public int Traces { get; init; } = 48;

    /// <summary>Held-out problems evaluated (the same for every model and seed).</summary>
    [Option("heldout", "held-out problems evaluated", Min = 1)]
    public int HeldOutProblems { get; init; } = 120;

    /// <summary>Samples per held-out problem (pass@1 and pass@5).</summary>
    [Option("samples", "samples per held-out problem", Min = 1)]
    public int Samples { get; init; } = 5;

    /// <summary>Seeds (the first ones) that also run RLVR from each of their three models.</summary>
    [Option("rlvr-seeds", "seeds that also run RLVR from each of their three models", Min = 0)]
    public int RlvrSeeds { get; init; } = 1;

    /// <summary>Held-out problems of the RLVR curves (the first N of the evaluation's — at most all of them — with its samples and seeds, so a curve's step 0 is the table's figure on them).</summary>
    [Option("curve-problems", "held-out problems of the RLVR curves (the first N of the evaluation's, at most all)", Min = 1)]
    public int CurveProblems { get; init; } = 40;

    /// <summary>Seed of the first mid-training seed (the others follow).</summary>
    [Option("seed", "seed of the first mid-training seed")]
    public ulong Seed { get; init; } = 1234;

    /// <summary>Seed of every held-out sample: problem i's samples are drawn from (eval seed + i·n, j) for every model, so the models are compared on the same random numbers.</summary>
    [Option("eval-seed", "seed of the held-out samples, the same for every model")]
    public ulong EvalSeed { get; init; } = 777;

    /// <summary>Compute backend.</summary>
    [Option("backend", "compute backend (ra3 info lists them)", Value = "NAME")]
    public string Backend { get; init; } = "cpu";

    /// <summary>How the ranks work together under mpirun, in every stage (not part of the run's identity).</summary>
    [NestedOptions("")]
    [JsonIgnore]
    public ParallelSettings Parallel { get; init; } = new();

    /// <summary>
    /// The mid-training of every seed (NTP and RA3 alike), as <c>ra3 midtrain</c>'s settings with
    /// the demo's sizes: <c>--midtrain.NAME</c> sets any of its options but those the demo sets per
    /// stage. 12 M-step steps per round (8 × 256 tokens each) are about two passes over the 48
    /// traces; 40 (eight passes) over-fitted them — held-out code CE rose from 0.123 to 0.16 for NTP.
    /// The byte-sized defaults are given as the byte tokenizer resolves them (the demo's model reads bytes).
    /// </summary>
    [NestedOptions("midtrain", Except = "method|init|data|out|tokenizer|seed|backend|zero|collective-timeout")]
    public MidtrainSettings Midtrain { get; init; } = new() { Rounds = 2, MStepSteps = 12, LatentMaxTokens = 48, MStepSequenceLength = 256, MaxLines = 40 };

    /// <summary>
    /// The RLVR from each model of the first <see cref="RlvrSeeds"/> seeds, as <c>ra3 rlvr</c>'s
    /// settings with the demo's sizes (<c>--rlvr.NAME</c>); partial credit, because small models
    /// rarely pass every assert at first and the fraction passed is the signal. Its held-out
    /// measurements use the evaluation's samples and seed (set per stage).
    /// </summary>
    [NestedOptions("rlvr", Except = "init|problems|eval-problems|out|tokenizer|eval-limit|eval-samples|eval-seed|seed|backend|stop-after|zero|collective-timeout")]
    public RlvrSettings Rlvr { get; init; } = new() { Steps = 20, PartialCredit = true, EvalEvery = 5, SaveEvery = 5 };

    /// <summary>
    /// The study: 5 seeds, 400 held-out problems, RLVR of 40 steps from every model of every seed,
    /// curves on 100 problems every 10 steps — 58 minutes on 2 cores (2026-12-06); resumable like any demo.
    /// </summary>
    public static DemoSettings Study => new()
    {
        Preset = "study",
        Out = "runs/study",
        Seeds = 5,
        HeldOutProblems = 400,
        RlvrSeeds = 5,
        CurveProblems = 100,
        Rlvr = new DemoSettings().Rlvr with { Steps = 40, EvalEvery = 10, SaveEvery = 10 },
    };

    /// <summary>The settings a preset starts from (a fresh record each call: the command line writes into it).</summary>
    public static DemoSettings ForPreset(string preset) => preset switch
    {
        "default" => new DemoSettings(),
        "study" => Study,
        _ => throw new SettingsException("preset", $"'{preset}' is not a preset (default or study)"),
    };
}
