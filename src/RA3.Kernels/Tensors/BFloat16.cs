using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using RA3.Kernels.Reference;

namespace RA3.Kernels.Tensors;

/// <summary>
/// The bfloat16 storage format: conversions to and from float32 with the rounding of the
/// mixed-precision contract (nearest, ties to even; NaN → 0x7FC0, as the reference tier defines
/// it, PyTorch's bit for bit). Widening is a 16-bit shift, exact. The CPU kernels that take bf16
/// operands widen them through here while they pack or load and round their bf16 outputs through
/// here once; checkpoint readers and writers convert through here too.
/// </summary>
public static class BFloat16
{
    /// <summary>The float a bfloat16 stands for.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Widen(ushort x) => BitConverter.UInt32BitsToSingle((uint)x << 16);

    /// <summary>x rounded to bfloat16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Round(float x) => ReferenceKernels.ToBFloat16(x);

    /// <summary>dst[i] = the float of src[i] for each i of src (dst at least as long).</summary>
    public static void Widen(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dst.Length, src.Length, nameof(dst));
        ref ushort s = ref MemoryMarshal.GetReference(src);
        ref uint d = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(dst));
        int n = src.Length, i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= n - 32; i += 32)
            {
                var (lo, hi) = Vector512.Widen(Vector512.LoadUnsafe(ref s, (nuint)i));
                (lo << 16).StoreUnsafe(ref d, (nuint)i);
                (hi << 16).StoreUnsafe(ref d, (nuint)(i + 16));
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - 16; i += 16)
            {
                var (lo, hi) = Vector256.Widen(Vector256.LoadUnsafe(ref s, (nuint)i));
                (lo << 16).StoreUnsafe(ref d, (nuint)i);
                (hi << 16).StoreUnsafe(ref d, (nuint)(i + 8));
            }
        }

        for (; i < n; i++)
        {
            Unsafe.Add(ref d, i) = (uint)Unsafe.Add(ref s, i) << 16;
        }
    }

    /// <summary>dst[i] = src[i] rounded to bfloat16 for each i of src (dst at least as long).</summary>
    public static void Round(ReadOnlySpan<float> src, Span<ushort> dst)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dst.Length, src.Length, nameof(dst));
        ref uint s = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(src));
        ref ushort d = ref MemoryMarshal.GetReference(dst);
        int n = src.Length, i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - 16; i += 16)
            {
                var lo = Round256(Vector256.LoadUnsafe(ref s, (nuint)i));
                var hi = Round256(Vector256.LoadUnsafe(ref s, (nuint)(i + 8)));
                Vector256.Narrow(lo, hi).StoreUnsafe(ref d, (nuint)i);
            }
        }

        for (; i < n; i++)
        {
            Unsafe.Add(ref d, i) = ReferenceKernels.ToBFloat16(BitConverter.UInt32BitsToSingle(Unsafe.Add(ref s, i)));
        }
    }

    // The rounded upper halves of 8 floats (as uints below 2^16): bits + 0x7FFF + lsb, shifted; NaN → 0x7FC0.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> Round256(Vector256<uint> bits)
    {
        var rounded = (bits + Vector256.Create(0x7FFFu) + ((bits >> 16) & Vector256<uint>.One)) >> 16;
        var f = bits.AsSingle();
        return Vector256.ConditionalSelect(Vector256.Equals(f, f).AsUInt32(), rounded, Vector256.Create(0x7FC0u));
    }
}
