namespace RA3.Kernels.Tensors;

/// <summary>An immutable list of dimension sizes, printed as <c>[2, 3, 4]</c>.</summary>
public sealed class Shape : IEquatable<Shape>
{
    private readonly int[] dims;

    /// <summary>Creates a shape; every dimension must be non-negative.</summary>
    public Shape(params int[] dims)
    {
        ArgumentNullException.ThrowIfNull(dims);
        foreach (int d in dims)
        {
            if (d < 0)
            {
                throw new ArgumentException($"dimension sizes must be non-negative, got [{string.Join(", ", dims)}]", nameof(dims));
            }
        }

        this.dims = (int[])dims.Clone();
        long n = 1;
        foreach (int d in dims)
        {
            n *= d;
        }

        Count = n;
    }

    /// <summary>Number of dimensions.</summary>
    public int Rank => dims.Length;

    /// <summary>Total number of elements.</summary>
    public long Count { get; }

    /// <summary>Size of dimension <paramref name="i"/>; negative indices count from the end.</summary>
    public int this[int i] => dims[i < 0 ? dims.Length + i : i];

    /// <summary>The dimensions as a read-only span.</summary>
    public ReadOnlySpan<int> Dims => dims;

    /// <summary>Product of all dimensions but the last (the "rows" of a row-wise op).</summary>
    public long Rows => Rank == 0 ? 1 : (this[-1] == 0 ? 0 : Count / this[-1]);

    /// <inheritdoc/>
    public bool Equals(Shape? other) => other is not null && dims.AsSpan().SequenceEqual(other.dims);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as Shape);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var h = default(HashCode);
        foreach (int d in dims)
        {
            h.Add(d);
        }

        return h.ToHashCode();
    }

    /// <inheritdoc/>
    public override string ToString() => $"[{string.Join(", ", dims)}]";
}
