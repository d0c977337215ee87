using System.Diagnostics.CodeAnalysis;
using RA3.Kernels.Tensors;

namespace RA3.Kernels.Ops;

/// <summary>
/// The ops interface the model calls, and the memory those ops run on. Three implementations
/// share it: the managed SIMD CPU backend, the ILGPU backend (CPU accelerator in tests, CUDA on a
/// GPU) and the native backend (<c>ra3_native</c> through P/Invoke).
/// </summary>
/// <remarks>
/// <para>Public methods check arguments once, here, so every backend rejects the same bad input
/// with the same <see cref="ArgumentException"/> naming the shapes; the protected <c>...Core</c>
/// methods do the work.</para>
/// <para>Backward methods accumulate into their gradient outputs (<c>dx += ...</c>), as llm.c does;
/// callers zero gradients once per step with <see cref="Zero"/>.</para>
/// </remarks>
[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.NonPublicMethods)]
public abstract partial class Backend : IDisposable
{
    /// <summary>Short name: <c>cpu</c>, <c>ilgpu-cpu</c>, <c>ilgpu-cuda</c>, <c>native</c>.</summary>
    public abstract string Name { get; }

    /// <summary>A zero-filled tensor owned by the caller.</summary>
    public Tensor Empty(DType dtype, params int[] shape)
    {
        var s = new Shape(shape);
        return new Tensor(this, Allocate(s.Count * dtype.SizeInBytes()), dtype, s, 0, ownsStorage: true);
    }

    /// <summary>
    /// A zero-filled buffer of <paramref name="count"/> elements in one contiguous block, for named
    /// views (a model's parameters, an activation plan). A dimension is an int, so past 2^31
    /// elements (a 7B model's weights, a large plan) it is shaped [rows, 2^20] and may hold a few
    /// more elements than asked; views take long offsets either way.
    /// </summary>
    public Tensor Buffer(DType dtype, long count)
    {
        const int row = 1 << 20;
        long n = Math.Max(count, 1);
        return n <= int.MaxValue ? Empty(dtype, (int)n) : Empty(dtype, checked((int)((n + row - 1) / row)), row);
    }

    /// <summary>A float32 tensor holding a copy of <paramref name="data"/>.</summary>
    public Tensor FromArray(ReadOnlySpan<float> data, params int[] shape)
    {
        var t = Empty(DType.Float32, shape);
        t.CopyFrom(data);
        return t;
    }

    /// <summary>An int32 tensor holding a copy of <paramref name="data"/>.</summary>
    public Tensor FromArray(ReadOnlySpan<int> data, params int[] shape)
    {
        var t = Empty(DType.Int32, shape);
        t.CopyFrom(data);
        return t;
    }

    private Tensor? workspace;

    /// <summary>Frees backend resources (accelerators, scratch buffers).</summary>
    public void Dispose()
    {
        workspace?.Dispose();
        workspace = null;
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>
    /// The backend's reusable float workspace, at least <paramref name="floats"/> long (grown on
    /// demand, contents undefined): composite ops carve their scratch from it, because fresh memory
    /// costs a page fault per page on first touch — on these VMs more than the op itself.
    /// One op uses it at a time (a backend serves one thread of calls).
    /// </summary>
    private protected Tensor Workspace(long floats)
    {
        if (workspace is null || workspace.Count < floats)
        {
            workspace?.Dispose();
            workspace = Empty(DType.Float32, checked((int)Math.Max(floats, 1)));
        }

        return workspace;
    }

    /// <summary>Releases resources; <paramref name="disposing"/> is false from a finaliser.</summary>
    protected virtual void Dispose(bool disposing)
    {
    }

    /// <summary>
    /// Checks that <paramref name="t"/> is a tensor of this backend holding <paramref name="dtype"/>;
    /// a float argument (the default) may be float32 or bfloat16 storage (the mixed-precision contract).
    /// </summary>
    private void Own(Tensor t, string name, DType dtype = DType.Float32)
    {
        ArgumentNullException.ThrowIfNull(t, name);
        if (dtype == DType.Float32 && t.DType == DType.BFloat16)
        {
            dtype = DType.BFloat16;
        }

        ShapeCheck.Type(t, dtype, name);
        if (!ReferenceEquals(t.Backend, this))
        {
            throw new ArgumentException($"{name} {t.Shape} lives on backend '{t.Backend.Name}', not '{Name}'", name);
        }
    }
}
