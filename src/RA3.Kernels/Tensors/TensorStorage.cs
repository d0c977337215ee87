namespace RA3.Kernels.Tensors;

/// <summary>
/// A block of memory owned by one backend. Tensors are (offset, shape) views of a storage, so
/// the parameters or activations of a whole model can live in one allocation with named views.
/// </summary>
public abstract class TensorStorage : IDisposable
{
    /// <summary>Size of the block in bytes.</summary>
    public abstract long ByteLength { get; }

    /// <summary>Whether <see cref="Dispose()"/> has run.</summary>
    public bool IsDisposed { get; private set; }

    /// <summary>Frees the memory.</summary>
    public void Dispose()
    {
        if (!IsDisposed)
        {
            IsDisposed = true;
            Free();
            GC.SuppressFinalize(this);
        }
    }

    /// <summary>Releases the memory exactly once.</summary>
    protected abstract void Free();
}
