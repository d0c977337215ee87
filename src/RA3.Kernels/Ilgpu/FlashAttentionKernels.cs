using ILGPU;
using ILGPU.Algorithms;
using RA3.Kernels.Ops;

namespace RA3.Kernels.Ilgpu;

/// <summary>A <see cref="FlashTile"/> as kernel parameters (ints only).</summary>
internal readonly record struct FlashTileDims(int I0, int J0, int Br, int Bc, int T, int D, int Hq, float Scale, int First, int Window)
{
    public static FlashTileDims From(FlashTile t) => new(t.I0, t.J0, t.Br, t.Bc, t.T, t.D, t.Hq, t.Scale, t.First ? 1 : 0, t.Window);

    /// <summary>First visible key of row i in the tile, relative to J0 (<see cref="FlashTile.VisibleKeys"/>).</summary>
    public int From(int i) => XMath.Clamp(SlidingWindow.FirstKey(i, Window) - J0, 0, Bc);

    /// <summary>One past the last visible key of row i of a sequence of length n (0 for a padded row).</summary>
    public int To(int i, int n) => i < n ? XMath.Clamp(i - J0 + 1, 0, Bc) : 0;
}

/// <summary>
/// The row kernels of the tiled fused attention on ILGPU (the backend's GEMM computes the tiles):
/// one thread per (plane, row) for the online-softmax update, the block finish and dS; one per
/// element for the head layout changes. Same steps as the managed <see cref="Cpu.FlashTileKernel"/>.
/// </summary>
internal static class FlashAttentionKernels
{
    /// <summary>dst[b·Hq + h, t, c] = x[b, t, h / (Hq/Hx), c]; idx = ((b·T + t)·Hq + h, c).</summary>
    public static void HeadsToBatch(Index2D idx, ArrayView<float> x, ArrayView<float> dst, int t1, int hx, int hq, int d)
    {
        int bt = idx.X / hq, h = idx.X % hq, b = bt / t1, t = bt % t1;
        dst[((((long)b * hq) + h) * t1 + t) * d + idx.Y] = x[((((long)bt * hx) + (h / (hq / hx))) * d) + idx.Y];
    }

    /// <summary>dst[b, t, hx, c] (+)= Σ_h in group src[b·Hq + h, t, c]; idx = ((b·T + t)·Hx + hx, c).</summary>
    public static void BatchToHeads(Index2D idx, ArrayView<float> src, ArrayView<float> dst, int t1, int hx, int hq, int d, int accumulate)
    {
        int bt = idx.X / hx, k = idx.X % hx, b = bt / t1, t = bt % t1, group = hq / hx;
        float sum = 0f;
        for (int h = k * group; h < (k + 1) * group; h++)
        {
            sum += src[((((long)b * hq) + h) * t1 + t) * d + idx.Y];
        }

        long o = ((long)idx.X * d) + idx.Y;
        dst[o] = accumulate != 0 ? dst[o] + sum : sum;
    }

    /// <summary>Online-softmax update of row r of plane p; idx = p·Br + r.</summary>
    public static void TileForward(Index1D idx, ArrayView<float> s, ArrayView<float> o, ArrayView<float> m, ArrayView<float> l, ArrayView<int> lengths, FlashTileDims t)
    {
        int p = idx / t.Br, r = idx % t.Br, i = t.I0 + r, n = lengths[p / t.Hq];
        long row = ((long)p * t.T) + i, so = (long)(int)idx * t.Bc, oo = row * t.D;
        if (t.First != 0)
        {
            m[row] = float.NegativeInfinity;
            l[row] = 0f;
            for (int c = 0; c < t.D; c++)
            {
                o[oo + c] = 0f;
            }
        }

        int from = t.From(i), to = t.To(i, n);
        float mx = m[row];
        for (int j = from; j < to; j++)
        {
            mx = XMath.Max(mx, s[so + j]);
        }

        bool any = from < to;
        float rescale = any ? XMath.Exp(m[row] - mx) : 1f, sum = 0f;
        for (int j = 0; j < t.Bc; j++)
        {
            float e = j >= from && j < to ? XMath.Exp(s[so + j] - mx) : 0f;
            s[so + j] = e;
            sum += e;
        }

        if (any)
        {
            l[row] = (l[row] * rescale) + sum;
            m[row] = mx;
            for (int c = 0; c < t.D; c++)
            {
                o[oo + c] *= rescale;
            }
        }
    }

    /// <summary>End of a query block for row r of plane p: o /= l, m += log l (zeros for padded rows); idx = p·Br + r.</summary>
    public static void Finish(Index1D idx, ArrayView<float> o, ArrayView<float> m, ArrayView<float> l, ArrayView<int> lengths, FlashTileDims t)
    {
        int p = idx / t.Br, i = t.I0 + (idx % t.Br);
        long row = ((long)p * t.T) + i;
        bool real = i < lengths[p / t.Hq];
        for (int c = 0; c < t.D; c++)
        {
            o[(row * t.D) + c] = real ? o[(row * t.D) + c] / l[row] : 0f;
        }

        m[row] = real ? m[row] + XMath.Log(l[row]) : 0f;
    }

    /// <summary>Row r of plane p of a backward tile: p = exp(s − lse) masked (s already scaled), dS = scale·p·(dP − rowDot); idx = p·Br + r.</summary>
    public static void TileBackward(Index1D idx, ArrayView<float> prob, ArrayView<float> ds, ArrayView<float> lse, ArrayView<float> rowDot, ArrayView<int> lengths, FlashTileDims t)
    {
        int p = idx / t.Br, i = t.I0 + (idx % t.Br), n = lengths[p / t.Hq];
        long row = ((long)p * t.T) + i, so = (long)(int)idx * t.Bc;
        int from = t.From(i), to = t.To(i, n);
        for (int j = 0; j < t.Bc; j++)
        {
            bool seen = j >= from && j < to;
            float e = seen ? XMath.Exp(prob[so + j] - lse[row]) : 0f;
            prob[so + j] = e;
            ds[so + j] = seen ? t.Scale * e * (ds[so + j] - rowDot[row]) : 0f;
        }
    }

    /// <summary>rowDot[b·H + h, t] = a[b, t, h, :] · o[b, t, h, :]; idx = (b·T + t)·H + h; dims = (T, H, D).</summary>
    public static void RowDot(Index1D idx, ArrayView<float> a, ArrayView<float> o, ArrayView<float> rowDot, Index3D dims)
    {
        int t1 = dims.X, h1 = dims.Y, d = dims.Z, h = idx % h1, t = idx / h1 % t1, b = idx / h1 / t1;
        float sum = 0f;
        for (int c = 0; c < d; c++)
        {
            sum += a[((long)(int)idx * d) + c] * o[((long)(int)idx * d) + c];
        }

        rowDot[((((long)b * h1) + h) * t1) + t] = sum;
    }
}
