using System.Buffers;
using System.Runtime.InteropServices;
using RA3.Kernels.Ops;

namespace RA3.Kernels.Tensors;

/// <summary>
/// A dense, row-major view of <see cref="Shape"/> elements of one <see cref="DType"/>, starting
/// <see cref="Offset"/> elements into a <see cref="TensorStorage"/> that lives on one
/// <see cref="Backend"/>. A tensor made by <see cref="Backend.Empty(DType, int[])"/> owns its
/// storage and frees it on <see cref="Dispose"/>; a <see cref="View"/> borrows it.
/// </summary>
public sealed class Tensor : IDisposable
{
    private readonly bool ownsStorage;

    internal Tensor(Backend backend, TensorStorage storage, DType dtype, Shape shape, long offset, bool ownsStorage)
    {
        Backend = backend;
        Storage = storage;
        DType = dtype;
        Shape = shape;
        Offset = offset;
        this.ownsStorage = ownsStorage;
    }

    /// <summary>The backend whose memory holds the data and whose ops accept this tensor.</summary>
    public Backend Backend { get; }

    /// <summary>The memory block this tensor views.</summary>
    public TensorStorage Storage { get; }

    /// <summary>Element type.</summary>
    public DType DType { get; }

    /// <summary>Dimensions.</summary>
    public Shape Shape { get; }

    /// <summary>Offset of the first element, in elements, from the start of the storage.</summary>
    public long Offset { get; }

    /// <summary>Number of elements.</summary>
    public long Count => Shape.Count;

    /// <summary>
    /// A tensor of <paramref name="shape"/> that shares this one's memory, starting
    /// <paramref name="offset"/> elements into it (the named views of a parameter buffer).
    /// </summary>
    public Tensor View(long offset, params int[] shape)
    {
        var s = new Shape(shape);
        if (offset < 0 || offset + s.Count > Count)
        {
            throw new ArgumentException($"view {s} at offset {offset} does not fit in a tensor of shape {Shape}");
        }

        return new Tensor(Backend, Storage, DType, s, Offset + offset, ownsStorage: false);
    }

    /// <summary>The same elements seen with another shape of equal element count.</summary>
    public Tensor Reshape(params int[] shape)
    {
        var s = new Shape(shape);
        if (s.Count != Count)
        {
            throw new ArgumentException($"cannot reshape {Shape} ({Count} elements) to {s} ({s.Count} elements)");
        }

        return new Tensor(Backend, Storage, DType, s, Offset, ownsStorage: false);
    }

    /// <summary>Copies <paramref name="data"/> into the tensor (lengths must match; a byte span holds the stored bytes).</summary>
    public void CopyFrom<T>(ReadOnlySpan<T> data)
        where T : unmanaged
    {
        CheckTransfer<T>(data.Length);
        Backend.Write(this, MemoryMarshal.AsBytes(data));
    }

    /// <summary>Copies the tensor's elements into <paramref name="destination"/> (lengths must match; a byte span receives the stored bytes).</summary>
    public void CopyTo<T>(Span<T> destination)
        where T : unmanaged
    {
        CheckTransfer<T>(destination.Length);
        Backend.Read(this, MemoryMarshal.AsBytes(destination));
    }

    /// <summary>The elements as a new float array (bfloat16 storage widened, exactly).</summary>
    public float[] ToFloatArray()
    {
        var result = new float[Count];
        if (DType == DType.BFloat16)
        {
            var stored = new ushort[Count];
            CopyTo<ushort>(stored);
            BFloat16.Widen(stored, result);
            return result;
        }

        CopyTo<float>(result);
        return result;
    }

    /// <summary>Copies <paramref name="values"/> into a float tensor of either storage type: bfloat16 rounds each value to nearest even, as every op's bf16 output does.</summary>
    public void CopyFromFloats(ReadOnlySpan<float> values)
    {
        if (DType == DType.BFloat16)
        {
            var rounded = ArrayPool<ushort>.Shared.Rent(values.Length);  // pooled: callers write large tensors a chunk at a time
            try
            {
                BFloat16.Round(values, rounded.AsSpan(0, values.Length));
                CopyFrom<ushort>(rounded.AsSpan(0, values.Length));
            }
            finally
            {
                ArrayPool<ushort>.Shared.Return(rounded);
            }

            return;
        }

        CopyFrom(values);
    }

    /// <summary>The elements as a new int array.</summary>
    public int[] ToInt32Array()
    {
        var result = new int[Count];
        CopyTo<int>(result);
        return result;
    }

    /// <summary>Frees the storage if this tensor owns it; views do nothing.</summary>
    public void Dispose()
    {
        if (ownsStorage)
        {
            Storage.Dispose();
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"Tensor({DType}, {Shape}, {Backend.Name})";

    // T is the element type, or byte for the raw stored bytes (bf16 bit patterns read from a file).
    private unsafe void CheckTransfer<T>(int length)
        where T : unmanaged
    {
        if (typeof(T) == typeof(byte) ? length != Count * DType.SizeInBytes() : sizeof(T) != DType.SizeInBytes() || length != Count)
        {
            throw new ArgumentException(
                $"cannot copy {length} elements of {typeof(T).Name} to or from a {DType} tensor of shape {Shape} ({Count} elements)");
        }
    }
}
