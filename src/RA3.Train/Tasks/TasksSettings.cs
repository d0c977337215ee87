using RA3.Train.Runs;

namespace RA3.Train.Tasks;

/// <summary>What <c>ra3 tasks</c> writes: sizes of the procedural family's training, held-out and pre-training sets.</summary>
public sealed record TasksSettings
{
    /// <summary>Folder of train.jsonl, heldout.jsonl and pretrain.jsonl.</summary>
    [Option("out", "folder written", Value = "DIR")]
    public string Out { get; init; } = "runs/tasks";

    /// <summary>Training-composition tasks.</summary>
    [Option("train", "tasks of the training compositions", Min = 0)]
    public int Train { get; init; } = 2000;

    /// <summary>Held-out-composition tasks.</summary>
    [Option("heldout", "tasks of the held-out compositions", Min = 0)]
    public int HeldOut { get; init; } = 100;

    /// <summary>Pre-training functions (training compositions, every other one with plan comments).</summary>
    [Option("pretrain", "pre-training functions", Min = 0)]
    public int Pretrain { get; init; } = 4000;

    /// <summary>Seed of the three sets (seed, seed + 1, seed + 2).</summary>
    [Option("seed", "seed of the sets")]
    public ulong Seed { get; init; } = 1234;
}
