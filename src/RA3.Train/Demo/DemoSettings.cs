namespace RA3.Train.Demo;

/// <summary>The sizes of <c>ra3 demo</c>: the defaults fit 15 minutes on 2 cores.</summary>
public sealed record DemoSettings
{
    /// <summary>Run folder (it remembers these settings and refuses others, so cached stages always match them).</summary>
    public string Out { get; init; } = "runs/demo";

    /// <summary>Mid-training seeds compared (each: NTP and RA3 from the same pre-trained model, then evaluation and RLVR).</summary>
    public int Seeds { get; init; } = 2;

    /// <summary>Pre-training steps of the small model (8 × 256 tokens each).</summary>
    public int PretrainSteps { get; init; } = 900;

    /// <summary>Functions in the pre-training corpus.</summary>
    public int PretrainFunctions { get; init; } = 3000;

    /// <summary>Mid-training traces (training compositions).</summary>
    public int Traces { get; init; } = 48;

    /// <summary>EM rounds (NTP: as many M-steps).</summary>
    public int Rounds { get; init; } = 2;

    /// <summary>
    /// M-step steps per round (8 × 256 tokens each): 12 is about two passes over the 48 traces; 40
    /// (eight passes) over-fitted them — held-out code CE rose from 0.123 to 0.16 for NTP.
    /// </summary>
    public int MStepSteps { get; init; } = 12;

    /// <summary>Held-out problems evaluated.</summary>
    public int HeldOutProblems { get; init; } = 40;

    /// <summary>Samples per held-out problem (pass@1 and pass@5).</summary>
    public int Samples { get; init; } = 5;

    /// <summary>RLVR steps from each initialisation.</summary>
    public int RlvrSteps { get; init; } = 6;

    /// <summary>Seeds (the first ones) that also run RLVR from each of their three models.</summary>
    public int RlvrSeeds { get; init; } = 1;

    /// <summary>c, cost per rationale.</summary>
    public double ThinkCost { get; init; } = 0.05;

    /// <summary>k, expert lines in an E-step reward.</summary>
    public int Horizon { get; init; } = 1;

    /// <summary>G, rollouts per trace (E-step) and samples per prompt (RLVR).</summary>
    public int Group { get; init; } = 4;

    /// <summary>Seed of the first mid-training seed (the others follow).</summary>
    public ulong Seed { get; init; } = 1234;

    /// <summary>Compute backend.</summary>
    public string Backend { get; init; } = "cpu";
}
