namespace RA3.Kernels.Reference;

/// <summary>
/// The rounding of the mixed-precision contract: bfloat16 is the upper half of a binary32, and a
/// float becomes one by round-to-nearest, ties to even (PyTorch's rounding, bit for bit), and
/// every NaN the canonical quiet NaN 0x7FC0, as PyTorch's scalar <c>c10::BFloat16</c> does (its
/// vectorised tensor conversion writes 0xFFFF: both are NaN). Every backend's bf16 output must equal this
/// rounding of its f32 result.
/// </summary>
internal static partial class ReferenceKernels
{
    /// <summary>x rounded to the nearest bfloat16, ties to even.</summary>
    public static ushort ToBFloat16(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        if (float.IsNaN(x))
        {
            return 0x7FC0;
        }

        uint lsb = (bits >> 16) & 1;
        return (ushort)((bits + 0x7FFF + lsb) >> 16);
    }

    /// <summary>The float a bfloat16 stands for (exact).</summary>
    public static float FromBFloat16(ushort x) => BitConverter.UInt32BitsToSingle((uint)x << 16);

    /// <summary>dst = src, each element rounded to bfloat16.</summary>
    public static void ToBFloat16(ReadOnlySpan<float> src, Span<ushort> dst)
    {
        for (int i = 0; i < src.Length; i++)
        {
            dst[i] = ToBFloat16(src[i]);
        }
    }

    /// <summary>dst = the floats of src.</summary>
    public static void FromBFloat16(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        for (int i = 0; i < src.Length; i++)
        {
            dst[i] = FromBFloat16(src[i]);
        }
    }
}
