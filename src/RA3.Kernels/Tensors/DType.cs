namespace RA3.Kernels.Tensors;

/// <summary>Element type of a tensor's storage.</summary>
/// <remarks>
/// Every op computes in float32. BFloat16 is a storage format every op accepts for its float
/// arguments (the mixed-precision contract of <see cref="Ops.Backend"/>: bf16 outputs rounded to
/// nearest even once); Float16 is not taken by any op yet.
/// </remarks>
public enum DType
{
    /// <summary>IEEE 754 binary32.</summary>
    Float32,

    /// <summary>bfloat16: the upper half of a binary32 (GPU storage).</summary>
    BFloat16,

    /// <summary>IEEE 754 binary16 (GPU storage).</summary>
    Float16,

    /// <summary>Signed 32-bit integer: token ids, targets, positions.</summary>
    Int32,
}

/// <summary>Sizes of the element types.</summary>
public static class DTypeExtensions
{
    /// <summary>Bytes per element.</summary>
    public static int SizeInBytes(this DType dtype) => dtype switch
    {
        DType.Float32 or DType.Int32 => 4,
        DType.BFloat16 or DType.Float16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown element type"),
    };
}
