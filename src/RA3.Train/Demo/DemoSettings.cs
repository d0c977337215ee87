using System.Text.Json.Serialization;
using RA3.Train.Distributed;
using RA3.Train.Midtraining;
using RA3.Train.PostTraining;
using RA3.Train.Runs;

namespace RA3.Train.Demo;

/// <summary>The sizes of <c>ra3 demo</c>: the defaults fit 15 minutes on 2 cores.</summary>
public sealed record DemoSettings
{
    /// <summary>Run folder (it remembers these settings and refuses others, so cached stages always match them).</summary>
    [Option("out", "run folder (it keeps these settings and refuses others)", Value = "DIR")]
    public string Out { get; init; } = "runs/demo";

    /// <summary>Mid-training seeds compared (each: NTP and RA3 from the same pre-trained model, then evaluation and RLVR).</summary>
    [Option("seeds", "mid-training seeds compared", Min = 1)]
    public int Seeds { get; init; } = 2;

    /// <summary>Pre-training steps of the small model (8 × 256 tokens each).</summary>
    [Option("pretrain-steps", "pre-training steps of the small model", Min = 1)]
    public int PretrainSteps { get; init; } = 900;

    /// <summary>Functions in the pre-training corpus.</summary>
    [Option("pretrain-functions", "functions in the pre-training corpus", Min = 1)]
    public int PretrainFunctions { get; init; } = 3000;

    /// <summary>Mid-training traces (training compositions).</summary>
    [Option("traces", "mid-training traces", Min = 1)]
    public int Traces { get; init; } = 48;

    /// <summary>Held-out problems evaluated.</summary>
    [Option("heldout", "held-out problems evaluated", Min = 1)]
    public int HeldOutProblems { get; init; } = 40;

    /// <summary>Samples per held-out problem (pass@1 and pass@5).</summary>
    [Option("samples", "samples per held-out problem", Min = 1)]
    public int Samples { get; init; } = 5;

    /// <summary>Seeds (the first ones) that also run RLVR from each of their three models.</summary>
    [Option("rlvr-seeds", "seeds that also run RLVR", Min = 0)]
    public int RlvrSeeds { get; init; } = 1;

    /// <summary>Seed of the first mid-training seed (the others follow).</summary>
    [Option("seed", "seed of the first mid-training seed")]
    public ulong Seed { get; init; } = 1234;

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
    /// rarely pass every assert at first and the fraction passed is the signal.
    /// </summary>
    [NestedOptions("rlvr", Except = "init|problems|eval-problems|out|tokenizer|eval-limit|seed|backend|stop-after|zero|collective-timeout")]
    public RlvrSettings Rlvr { get; init; } = new() { Steps = 6, PartialCredit = true, EvalSamples = 2, EvalEvery = 3, SaveEvery = 3 };
}
