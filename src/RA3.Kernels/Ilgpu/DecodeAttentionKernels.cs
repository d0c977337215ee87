using ILGPU;
using ILGPU.Algorithms;
using RA3.Kernels.Ops;

namespace RA3.Kernels.Ilgpu;

/// <summary>Decode sizes: q [B, Hq, D] (for cached attention, B is the rows N), caches [B, S, Hkv, D] ([Bc, S, Hkv, D]); Window &gt; 0 keeps the last Window keys.</summary>
internal readonly record struct DecodeDims(int B, int S, int Hq, int Hkv, int D, int Window)
{
    public long Cache(int b, int j, int h) => ((((long)b * S) + j) * Hkv + h) * D;
}

/// <summary>
/// One generation step of attention over a KV cache on ILGPU: an append kernel writes this step's
/// key and value at position lengths[b], then one thread per (batch, query head) runs an online
/// softmax over the cache, rescaling its output row as the running maximum grows (no score buffer).
/// </summary>
internal static class DecodeAttentionKernels
{
    /// <summary>kCache[b, lengths[b], :] = kNew[b, :] and the same for v; idx = (b, column of Hkv·D).</summary>
    public static void Append(Index2D idx, ArrayView<float> kNew, ArrayView<float> vNew, ArrayView<float> kCache, ArrayView<float> vCache, ArrayView<int> lengths, DecodeDims s)
    {
        int row = s.Hkv * s.D;
        long dst = ((((long)idx.X * s.S) + lengths[idx.X]) * row) + idx.Y;
        kCache[dst] = kNew[((long)idx.X * row) + idx.Y];
        vCache[dst] = vNew[((long)idx.X * row) + idx.Y];
    }

    /// <summary>output[b, h, :] = softmax_j(q·k_j/√D) v_j over j ≤ lengths[b] (the last Window of them when Window &gt; 0); idx = b·Hq + h.</summary>
    public static void Attend(Index1D idx, ArrayView<float> q, ArrayView<float> kCache, ArrayView<float> vCache, ArrayView<int> lengths, ArrayView<float> output, DecodeDims s)
    {
        int b = idx / s.Hq, h = idx % s.Hq;
        AttendSlot(q, (long)(int)idx * s.D, kCache, vCache, b, h / (s.Hq / s.Hkv), lengths[b], output, s);
    }

    /// <summary>kCache[slots[r], positions[r], :] = kNew[r, :] and the same for v, skipping padding rows; idx = (r, column of Hkv·D).</summary>
    public static void AppendRows(Index2D idx, ArrayView<float> kNew, ArrayView<float> vNew, ArrayView<float> kCache, ArrayView<float> vCache, ArrayView<int> slots, ArrayView<int> positions, DecodeDims s)
    {
        int b = slots[idx.X];
        if (b < 0)
        {
            return;
        }

        int row = s.Hkv * s.D;
        long dst = ((((long)b * s.S) + positions[idx.X]) * row) + idx.Y;
        kCache[dst] = kNew[((long)idx.X * row) + idx.Y];
        vCache[dst] = vNew[((long)idx.X * row) + idx.Y];
    }

    /// <summary>output[r, h, :] = softmax_j(q·k_j/√D) v_j over the positions j ≤ positions[r] of slot slots[r] (the last Window when Window &gt; 0), 0 for a padding row; idx = r·Hq + h.</summary>
    public static void AttendRows(Index1D idx, ArrayView<float> q, ArrayView<float> kCache, ArrayView<float> vCache, ArrayView<int> slots, ArrayView<int> positions, ArrayView<float> output, DecodeDims s)
    {
        int r = idx / s.Hq, h = idx % s.Hq, b = slots[r];
        long qi = (long)(int)idx * s.D;
        if (b < 0)
        {
            for (int c = 0; c < s.D; c++)
            {
                output[qi + c] = 0f;
            }

            return;
        }

        AttendSlot(q, qi, kCache, vCache, b, h / (s.Hq / s.Hkv), positions[r], output, s);
    }

    // output[qi .. qi + D) = softmax_j(q·k_j/√D) v_j over the keys j ≤ last of cache slot b, head hk
    // (the last Window of them when Window > 0): an online softmax that rescales the output row as
    // the running maximum grows, so no score buffer is needed.
    private static void AttendSlot(ArrayView<float> q, long qi, ArrayView<float> kCache, ArrayView<float> vCache, int b, int hk, int last, ArrayView<float> output, DecodeDims s)
    {
        float scale = 1f / XMath.Sqrt(s.D), m = float.NegativeInfinity, sum = 0f;
        for (int c = 0; c < s.D; c++)
        {
            output[qi + c] = 0f;
        }

        for (int j = SlidingWindow.FirstKey(last, s.Window); j <= last; j++)
        {
            long kj = s.Cache(b, j, hk);
            float dot = 0f;
            for (int c = 0; c < s.D; c++)
            {
                dot += q[qi + c] * kCache[kj + c];
            }

            dot *= scale;
            float mNew = XMath.Max(m, dot), rescale = XMath.Exp(m - mNew), e = XMath.Exp(dot - mNew);
            sum = (sum * rescale) + e;
            for (int c = 0; c < s.D; c++)
            {
                output[qi + c] = (output[qi + c] * rescale) + (e * vCache[kj + c]);
            }

            m = mNew;
        }

        for (int c = 0; c < s.D; c++)
        {
            output[qi + c] /= sum;
        }
    }
}
