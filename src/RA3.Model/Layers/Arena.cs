using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;

namespace RA3.Model.Layers;

/// <summary>
/// Carves named views out of one contiguous buffer. A plan is built twice with the same code:
/// first on a measuring arena (no buffer; <see cref="Take"/> only counts), then on an arena
/// holding a buffer of the measured size — so sizes and views can never disagree.
/// </summary>
internal sealed class Arena
{
    private readonly Tensor? buffer;

    private Arena(Tensor? buffer) => this.buffer = buffer;

    /// <summary>Elements handed out so far (64-byte aligned).</summary>
    public long Used { get; private set; }

    /// <summary>Whether this arena only measures.</summary>
    public bool Measuring => buffer is null;

    /// <summary>A counting arena.</summary>
    public static Arena Measure() => new(null);

    /// <summary>An arena over a zeroed buffer of <paramref name="count"/> elements (<see cref="Backend.Buffer"/>: past 2^31 elements, as a GPT-2 124M plan at B16 T1024 needs, still one block).</summary>
    public static Arena Allocate(Backend backend, DType dtype, long count) => new(backend.Buffer(dtype, count));

    /// <summary>The buffer (null when measuring), owned by the plan that asked for it.</summary>
    public Tensor? Buffer => buffer;

    /// <summary>The next view of <paramref name="shape"/>; null while measuring.</summary>
    public Tensor Take(params int[] shape)
    {
        long n = shape.Aggregate(1L, (a, d) => a * d);
        var view = buffer?.View(Used, shape);
        Used += (n + Parameters.Alignment - 1) / Parameters.Alignment * Parameters.Alignment;
        return view!;
    }
}
