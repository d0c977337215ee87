namespace RA3.Kernels.Tensors;

/// <summary>Element type of a tensor's storage.</summary>
/// <remarks>
/// Float32 is what every op computes in today. The 16-bit floating types are storage formats
/// for the GPU path (bf16 weights and activations with float32 accumulation); an op that
/// does not support a type rejects it with an <see cref="ArgumentException"/>.
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
