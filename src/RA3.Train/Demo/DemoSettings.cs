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

    /// <summary>EM rounds (NTP: as many M-steps).</summary>
    [Option("rounds", "EM rounds (NTP: as many M-steps)", Min = 1)]
    public int Rounds { get; init; } = 2;

    /// <summary>
    /// M-step steps per round (8 × 256 tokens each): 12 is about two passes over the 48 traces; 40
    /// (eight passes) over-fitted them — held-out code CE rose from 0.123 to 0.16 for NTP.
    /// </summary>
    [Option("mstep-steps", "M-step steps per round", Min = 1)]
    public int MStepSteps { get; init; } = 12;

    /// <summary>Held-out problems evaluated.</summary>
    [Option("heldout", "held-out problems evaluated", Min = 1)]
    public int HeldOutProblems { get; init; } = 40;

    /// <summary>Samples per held-out problem (pass@1 and pass@5).</summary>
    [Option("samples", "samples per held-out problem", Min = 1)]
    public int Samples { get; init; } = 5;

    /// <summary>RLVR steps from each initialisation.</summary>
    [Option("rlvr-steps", "RLVR steps from each model", Min = 1)]
    public int RlvrSteps { get; init; } = 6;

    /// <summary>Seeds (the first ones) that also run RLVR from each of their three models.</summary>
    [Option("rlvr-seeds", "seeds that also run RLVR", Min = 0)]
    public int RlvrSeeds { get; init; } = 1;

    /// <summary>c, cost per rationale.</summary>
    [Option("c", "cost per rationale, in nats", Min = 0)]
    public double ThinkCost { get; init; } = 0.05;

    /// <summary>k, expert lines in an E-step reward.</summary>
    [Option("k", "reward horizon, in lines", Min = 1)]
    public int Horizon { get; init; } = 1;

    /// <summary>G, rollouts per trace (E-step) and samples per prompt (RLVR).</summary>
    [Option("G", "rollouts per trace and RLVR samples per prompt", Min = 2)]
    public int Group { get; init; } = 4;

    /// <summary>Seed of the first mid-training seed (the others follow).</summary>
    [Option("seed", "seed of the first mid-training seed")]
    public ulong Seed { get; init; } = 1234;

    /// <summary>Compute backend.</summary>
    [Option("backend", "compute backend (ra3 info lists them)", Value = "NAME")]
    public string Backend { get; init; } = "cpu";
}
