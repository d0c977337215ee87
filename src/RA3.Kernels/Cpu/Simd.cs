using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace RA3.Kernels.Cpu;

/// <summary>
/// Vector loops the CPU kernels share: 512-bit where the hardware accelerates it, else 256-bit,
/// with a scalar tail. Spans must have equal lengths (callers guarantee it).
/// </summary>
public static class Simd
{
    /// <summary>Width of the widest accelerated float vector, in floats (16, 8 or 1).</summary>
    public static int Width => Vector512.IsHardwareAccelerated ? 16 : Vector256.IsHardwareAccelerated ? 8 : 1;

    /// <summary>Σ a[i]·b[i].</summary>
    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        ref float pa = ref MemoryMarshal.GetReference(a);
        ref float pb = ref MemoryMarshal.GetReference(b);
        int n = a.Length, i = 0;
        float sum = 0f;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var acc = Vector512<float>.Zero;
            for (; i <= n - 16; i += 16)
            {
                acc = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref pa, (nuint)i), Vector512.LoadUnsafe(ref pb, (nuint)i), acc);
            }

            sum = Vector512.Sum(acc);
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var acc = Vector256<float>.Zero;
            for (; i <= n - 8; i += 8)
            {
                acc = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref pa, (nuint)i), Vector256.LoadUnsafe(ref pb, (nuint)i), acc);
            }

            sum = Vector256.Sum(acc);
        }

        for (; i < n; i++)
        {
            sum += Unsafe.Add(ref pa, i) * Unsafe.Add(ref pb, i);
        }

        return sum;
    }

    /// <summary>y[i] += alpha·x[i].</summary>
    public static void Axpy(float alpha, ReadOnlySpan<float> x, Span<float> y)
    {
        ref float px = ref MemoryMarshal.GetReference(x);
        ref float py = ref MemoryMarshal.GetReference(y);
        int n = x.Length, i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var va = Vector512.Create(alpha);
            for (; i <= n - 16; i += 16)
            {
                Vector512.FusedMultiplyAdd(va, Vector512.LoadUnsafe(ref px, (nuint)i), Vector512.LoadUnsafe(ref py, (nuint)i)).StoreUnsafe(ref py, (nuint)i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var va = Vector256.Create(alpha);
            for (; i <= n - 8; i += 8)
            {
                Vector256.FusedMultiplyAdd(va, Vector256.LoadUnsafe(ref px, (nuint)i), Vector256.LoadUnsafe(ref py, (nuint)i)).StoreUnsafe(ref py, (nuint)i);
            }
        }

        for (; i < n; i++)
        {
            Unsafe.Add(ref py, i) += alpha * Unsafe.Add(ref px, i);
        }
    }

    /// <summary>y[i] = x[i]·s (x and y may be the same span).</summary>
    public static void Scale(ReadOnlySpan<float> x, float s, Span<float> y)
    {
        ref float px = ref MemoryMarshal.GetReference(x);
        ref float py = ref MemoryMarshal.GetReference(y);
        int n = x.Length, i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= n - 16; i += 16)
            {
                (Vector512.LoadUnsafe(ref px, (nuint)i) * s).StoreUnsafe(ref py, (nuint)i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - 8; i += 8)
            {
                (Vector256.LoadUnsafe(ref px, (nuint)i) * s).StoreUnsafe(ref py, (nuint)i);
            }
        }

        for (; i < n; i++)
        {
            Unsafe.Add(ref py, i) = Unsafe.Add(ref px, i) * s;
        }
    }

    /// <summary>The largest element (−∞ for an empty span).</summary>
    public static float Max(ReadOnlySpan<float> x)
    {
        ref float px = ref MemoryMarshal.GetReference(x);
        int n = x.Length, i = 0;
        float m = float.NegativeInfinity;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var acc = Vector512.Create(float.NegativeInfinity);
            for (; i <= n - 16; i += 16)
            {
                acc = Vector512.Max(acc, Vector512.LoadUnsafe(ref px, (nuint)i));
            }

            for (int j = 0; j < 16; j++)
            {
                m = MathF.Max(m, acc[j]);
            }
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var acc = Vector256.Create(float.NegativeInfinity);
            for (; i <= n - 8; i += 8)
            {
                acc = Vector256.Max(acc, Vector256.LoadUnsafe(ref px, (nuint)i));
            }

            for (int j = 0; j < 8; j++)
            {
                m = MathF.Max(m, acc[j]);
            }
        }

        for (; i < n; i++)
        {
            m = MathF.Max(m, Unsafe.Add(ref px, i));
        }

        return m;
    }

    /// <summary>
    /// Σ exp(x[i] − shift), also stored to y[i] unless <paramref name="y"/> is empty. x and y may
    /// be the same span.
    /// </summary>
    public static float ExpShifted(ReadOnlySpan<float> x, float shift, Span<float> y)
    {
        bool store = !y.IsEmpty;
        ref float px = ref MemoryMarshal.GetReference(x);
        ref float py = ref MemoryMarshal.GetReference(y);
        int n = x.Length, i = 0;
        float sum = 0f;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var vs = Vector512.Create(shift);
            var acc = Vector512<float>.Zero;
            for (; i <= n - 16; i += 16)
            {
                var e = Vector512.Exp(Vector512.LoadUnsafe(ref px, (nuint)i) - vs);
                if (store)
                {
                    e.StoreUnsafe(ref py, (nuint)i);
                }

                acc += e;
            }

            sum = Vector512.Sum(acc);
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var vs = Vector256.Create(shift);
            var acc = Vector256<float>.Zero;
            for (; i <= n - 8; i += 8)
            {
                var e = Vector256.Exp(Vector256.LoadUnsafe(ref px, (nuint)i) - vs);
                if (store)
                {
                    e.StoreUnsafe(ref py, (nuint)i);
                }

                acc += e;
            }

            sum = Vector256.Sum(acc);
        }

        for (; i < n; i++)
        {
            float e = MathF.Exp(Unsafe.Add(ref px, i) - shift);
            if (store)
            {
                Unsafe.Add(ref py, i) = e;
            }

            sum += e;
        }

        return sum;
    }

    /// <summary>log Σ exp(x[i]), max-shifted; −∞ when every element is −∞.</summary>
    public static float LogSumExp(ReadOnlySpan<float> x)
    {
        float m = Max(x);
        return float.IsNegativeInfinity(m) ? m : m + MathF.Log(ExpShifted(x, m, Span<float>.Empty));
    }
}
