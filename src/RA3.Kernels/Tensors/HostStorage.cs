using System.Runtime.InteropServices;

namespace RA3.Kernels.Tensors;

/// <summary>
/// 64-byte-aligned, zero-initialised unmanaged host memory: what the managed CPU backend computes
/// on and what the native backend hands to <c>ra3_native</c> without a copy.
/// </summary>
public sealed unsafe class HostStorage : TensorStorage
{
    private const nuint Alignment = 64;
    private void* pointer;

    /// <summary>Allocates <paramref name="byteLength"/> zeroed bytes.</summary>
    public HostStorage(long byteLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(byteLength);
        ByteLength = byteLength;
        pointer = NativeMemory.AlignedAlloc((nuint)Math.Max(byteLength, 1), Alignment);
        NativeMemory.Clear(pointer, (nuint)byteLength);
        GC.AddMemoryPressure(Math.Max(byteLength, 1));
    }

    /// <summary>Frees the memory if the owner forgot to.</summary>
    ~HostStorage() => Free();

    /// <inheritdoc/>
    public override long ByteLength { get; }

    /// <summary>Address of the first byte.</summary>
    public void* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            return pointer;
        }
    }

    /// <inheritdoc/>
    protected override void Free()
    {
        if (pointer != null)
        {
            NativeMemory.AlignedFree(pointer);
            pointer = null;
            GC.RemoveMemoryPressure(Math.Max(ByteLength, 1));
        }
    }
}
