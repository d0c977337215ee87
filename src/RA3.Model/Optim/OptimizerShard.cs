using RA3.Kernels.Distributed;

namespace RA3.Model.Optim;

/// <summary>
/// Elements [Begin, Begin + Count) of one parameter tensor, lying inside an
/// <see cref="OptimizerShard"/>: where AdamW runs tensor by tensor (weight decay is per tensor).
/// </summary>
/// <param name="Spec">The tensor.</param>
/// <param name="First">First element, counted from the tensor's start.</param>
/// <param name="Count">Elements.</param>
public readonly record struct ShardPiece(ParameterSpec Spec, long First, int Count)
{
    /// <summary>The piece's elements in the flat parameter buffer.</summary>
    public ElementRange Flat => new(Spec.Offset + First, Spec.Offset + First + Count);
}

/// <summary>
/// The part of a model's flat parameter layout whose optimizer state one rank keeps and updates:
/// the whole layout in one process, or — sharded as ZeRO stage 1 does — 1/N of it on each of N
/// ranks, in contiguous ranges whose boundaries fall on 64-element blocks (so every piece's
/// vector loops split where they would anyway, and AdamW's arithmetic is the unsharded one).
/// </summary>
public sealed class OptimizerShard
{
    /// <summary>Boundaries fall on multiples of this many elements.</summary>
    public const int Alignment = 64;

    private OptimizerShard(ElementRange[] all, int rank, IReadOnlyList<ParameterSpec> specs)
    {
        All = all;
        Range = all[rank];
        var pieces = new List<ShardPiece>();
        foreach (var spec in specs)
        {
            var part = new ElementRange(spec.Offset, spec.Offset + spec.Count).Intersect(Range);
            if (part.Count > 0)
            {
                pieces.Add(new ShardPiece(spec, part.Begin - spec.Offset, checked((int)part.Count)));
            }
        }

        Pieces = pieces;
    }

    /// <summary>This rank's elements of the flat buffer.</summary>
    public ElementRange Range { get; }

    /// <summary>Every rank's range, in rank order (what the all-gather of the updated weights sends).</summary>
    public IReadOnlyList<ElementRange> All { get; }

    /// <summary>The tensors, or parts of them, inside <see cref="Range"/>, in layout order.</summary>
    public IReadOnlyList<ShardPiece> Pieces { get; }

    /// <summary>Whether the state is divided over several ranks.</summary>
    public bool IsSharded => All.Count > 1;

    /// <summary>The whole layout of <paramref name="store"/>, for one process.</summary>
    public static OptimizerShard Whole(ParameterStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        return new([new ElementRange(0, store.Buffer.Count)], 0, store.Specs);
    }

    /// <summary>Rank <paramref name="rank"/>'s share of <paramref name="store"/>'s layout among <paramref name="ranks"/>.</summary>
    public static OptimizerShard Of(ParameterStore store, int rank, int ranks)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, ranks);
        return new(ElementRange.Split(store.Buffer.Count, ranks, Alignment), rank, store.Specs);
    }

    /// <summary>The part of <paramref name="spec"/> that rank <paramref name="rank"/> holds (possibly empty).</summary>
    public ElementRange PartOf(ParameterSpec spec, int rank)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return new ElementRange(spec.Offset, spec.Offset + spec.Count).Intersect(All[rank]);
    }
}
