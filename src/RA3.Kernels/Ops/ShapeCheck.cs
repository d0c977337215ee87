using RA3.Kernels.Tensors;

namespace RA3.Kernels.Ops;

/// <summary>Argument checks shared by every backend: errors name the argument and its shape.</summary>
internal static class ShapeCheck
{
    public static void Float(Tensor t, string name) => Type(t, DType.Float32, name);

    public static void Int(Tensor t, string name) => Type(t, DType.Int32, name);

    public static void Type(Tensor t, DType dtype, string name)
    {
        ArgumentNullException.ThrowIfNull(t, name);
        if (t.DType != dtype)
        {
            throw new ArgumentException($"{name} must be {dtype}, got {t.DType} with shape {t.Shape}", name);
        }

        if (t.Storage.IsDisposed)
        {
            throw new ObjectDisposedException(name, $"{name} {t.Shape} has been disposed");
        }
    }

    public static void Same(Tensor a, string nameA, Tensor b, string nameB)
    {
        if (!a.Shape.Equals(b.Shape))
        {
            throw new ArgumentException($"{nameA} {a.Shape} and {nameB} {b.Shape} must have the same shape");
        }
    }

    public static void Rank(Tensor t, int rank, string name, string layout)
    {
        if (t.Shape.Rank != rank)
        {
            throw new ArgumentException($"{name} must be {layout}, got {t.Shape}", name);
        }
    }

    public static void Is(Tensor t, string name, params int[] dims)
    {
        if (!t.Shape.Equals(new Shape(dims)))
        {
            throw new ArgumentException($"{name} must have shape {new Shape(dims)}, got {t.Shape}", name);
        }
    }

    /// <summary>Throws naming the first id outside [lo, hi), with the tensor's shape.</summary>
    public static void Ids(ReadOnlySpan<int> ids, int lo, int hi, string name, Shape shape)
    {
        for (int i = 0; i < ids.Length; i++)
        {
            if (ids[i] < lo || ids[i] >= hi)
            {
                throw new ArgumentException($"{name}[{i}] = {ids[i]} is outside [{lo}, {hi}) ({name} {shape})", name);
            }
        }
    }

    public static void Require(bool condition, string message)
    {
        if (!condition)
        {
            throw new ArgumentException(message);
        }
    }
}
