using RA3.Kernels.Distributed;
using RA3.Train.Runs;

namespace RA3.Train.Distributed;

/// <summary>
/// How the ranks of a data-parallel run (started by mpirun) work together: the options every
/// training command shares, declared once and nested without a prefix into each command's
/// settings (<c>--zero</c>, <c>--collective-timeout</c>). Neither changes what a run computes,
/// so neither is part of a run's identity: a run may resume with other values, or on another
/// number of ranks.
/// </summary>
public sealed record ParallelSettings
{
    /// <summary>ZeRO stage: 1 shards the optimizer state (AdamW's moments and a bf16 model's master weights) over the ranks; 0 keeps all of it on every rank.</summary>
    [Option("zero", "ZeRO stage under mpirun: 1 divides the optimizer state (AdamW moments, bf16 master weights) among the ranks, each updating its share and all-gathering the weights; 0: every rank keeps all of it", Min = 0, Max = 1)]
    public int Zero { get; init; }

    /// <summary>Seconds a rank waits for the others in one collective before the job ends with an error.</summary>
    [Option("collective-timeout", "under mpirun: seconds a rank waits for the others in one collective before the job ends with an error (a dead or hung rank); longer than rank 0's slowest checkpoint write", Min = 1)]
    public double CollectiveTimeout { get; init; } = Communicator.DefaultTimeout.TotalSeconds;
}
