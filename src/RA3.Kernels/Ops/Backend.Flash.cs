using RA3.Kernels.Reference;
using RA3.Kernels.Tensors;

namespace RA3.Kernels.Ops;

/// <summary>
/// The fused attention: the reference by default, and as tiles of batched GEMMs (FlashAttention-2's schedule): q, k, v are
/// brought to head-major [B·Hq, T, D] (kv heads repeated for their query group); for each block
/// of query rows and each tile of keys up to the block's diagonal (the diagonal tile in row strips,
/// each against the keys up to its last row), S = Q Kᵀ comes from the backend's batched GEMM, a row
/// kernel applies the causal mask and the online softmax (running max and sum, output rows
/// rescaled), and O += P V is a second GEMM. Only a tile of scores
/// exists at a time. The backward recomputes P from the saved lse, and takes dP = dO Vᵀ,
/// dS = P ⊙ (dP − rowsum(dO ⊙ O)), dQ += dS K, dK += dSᵀ Q, dV += Pᵀ dO as GEMMs.
/// </summary>
public abstract partial class Backend
{
    /// <summary>Query rows per block.</summary>
    private protected const int FlashQueryBlock = 256;

    /// <summary>Keys per tile.</summary>
    private protected const int FlashKeyTile = 256;

    /// <summary>Query rows per strip of a diagonal tile.</summary>
    private protected const int FlashDiagonalStrip = 64;

    private protected virtual void FlashAttentionCore(Tensor q, Tensor k, Tensor v, Tensor? lengths, Tensor output, Tensor lse, int window) => FlashAttentionReference(q, k, v, lengths, output, lse, window);

    private void FlashAttentionReference(Tensor q, Tensor k, Tensor v, Tensor? lengths, Tensor output, Tensor lse, int window)
    {
        using var h = Host(nameof(FlashAttention));
        ReferenceKernels.FlashAttention(AttentionShape(q, k), h.In(q), h.In(k), h.In(v), h.Ints(lengths), h.Out(output), h.Out(lse), window);
    }

    private protected virtual void FlashAttentionBackwardCore(Tensor q, Tensor k, Tensor v, Tensor? lengths, Tensor output, Tensor lse, Tensor dOutput, Tensor dq, Tensor dk, Tensor dv, int window) => FlashAttentionBackwardReference(q, k, v, lengths, output, lse, dOutput, dq, dk, dv, window);

    private void FlashAttentionBackwardReference(Tensor q, Tensor k, Tensor v, Tensor? lengths, Tensor output, Tensor lse, Tensor dOutput, Tensor dq, Tensor dk, Tensor dv, int window)
    {
        using var h = Host(nameof(FlashAttentionBackward));
        ReferenceKernels.FlashAttentionBackward(AttentionShape(q, k), h.In(q), h.In(k), h.In(v), h.Ints(lengths), h.In(lse), h.In(dOutput), h.Out(dq), h.Out(dk), h.Out(dv), window);
    }

    /// <summary>The first key tile a query block starting at <paramref name="i0"/> sees: 0, or with a window the tile holding key i0 − window + 1.</summary>
    private static int FirstKeyTile(int i0, int window) => SlidingWindow.FirstKey(i0, window) / FlashKeyTile * FlashKeyTile;

    /// <summary>
    /// How many tiles query block i0..i0 + <paramref name="br"/> runs (<see cref="BlockTile"/>): the
    /// whole key tiles before its diagonal, then the diagonal tile's row strips.
    /// </summary>
    private static int BlockTiles(int i0, int br, int window) => ((i0 - FirstKeyTile(i0, window)) / FlashKeyTile) + ((br + FlashDiagonalStrip - 1) / FlashDiagonalStrip);

    /// <summary>
    /// Tile <paramref name="index"/> of query block i0..i0 + <paramref name="br"/>, in key order (the
    /// online softmax needs it): a whole key tile before the diagonal, or a strip of the diagonal tile
    /// (keys i0.., since blocks and tiles are the same size) against the keys up to its last row — the
    /// causal triangle at the cost of (1 + 2 + 3 + 4)/16 = 62.5 % of the square with four strips,
    /// where one 256 × 256 tile computed all of it.
    /// </summary>
    private static FlashTile BlockTile(int i0, int br, int index, int t, int d, int hq, int window)
    {
        int first = FirstKeyTile(i0, window), before = (i0 - first) / FlashKeyTile;
        float scale = 1f / MathF.Sqrt(d);
        if (index < before)
        {
            int j0 = first + (index * FlashKeyTile);
            return new FlashTile(i0, j0, br, FlashKeyTile, t, d, hq, scale, j0 == first, window);
        }

        int r0 = (index - before) * FlashDiagonalStrip, rows = Math.Min(FlashDiagonalStrip, br - r0);
        return new FlashTile(i0 + r0, i0, rows, r0 + rows, t, d, hq, scale, i0 == first, window);
    }

    /// <summary>The tiled forward on a backend's batched GEMM and its <paramref name="tiles"/> primitives; with a window, key tiles wholly before every row's window are skipped.</summary>
    private protected void TiledFlashAttention(IFlashTiles tiles, Tensor q, Tensor k, Tensor v, Tensor? lengths, Tensor output, Tensor lse, int window)
    {
        int b = q.Shape[0], t = q.Shape[1], hq = q.Shape[2], d = q.Shape[3], bh = b * hq;
        var work = Workspace((4L * bh * t * d) + ((long)bh * t) + ((long)bh * Math.Min(FlashQueryBlock, t) * Math.Min(FlashKeyTile, t)));
        var (qh, kh, vh, oh) = (work.View(0, bh, t, d), work.View((long)bh * t * d, bh, t, d), work.View(2L * bh * t * d, bh, t, d), work.View(3L * bh * t * d, bh, t, d));
        var l = work.View(4L * bh * t * d, bh, t);
        var s = work.View((4L * bh * t * d) + ((long)bh * t), bh * Math.Min(FlashQueryBlock, t) * Math.Min(FlashKeyTile, t));
        tiles.HeadsToBatch(q, qh, hq);
        tiles.HeadsToBatch(k, kh, hq);
        tiles.HeadsToBatch(v, vh, hq);
        var m = lse.Reshape(bh, t);
        for (int i0 = 0; i0 < t; i0 += FlashQueryBlock)
        {
            int br = Math.Min(FlashQueryBlock, t - i0);
            for (int x = 0; x < BlockTiles(i0, br, window); x++)
            {
                var tile = BlockTile(i0, br, x, t, d, hq, window);
                var scores = s.View(0, bh * tile.Br * tile.Bc);
                long td = (long)t * d, rc = (long)tile.Br * tile.Bc, qi = (long)tile.I0 * d, kj = (long)tile.J0 * d;
                TileGemm(bh, tile.Br, tile.Bc, d, false, true, (qh, qi, td), (kh, kj, td), (scores, 0, rc), 0f, tile.Scale);
                tiles.TileForward(scores, oh, m, l, lengths, tile);
                TileGemm(bh, tile.Br, d, tile.Bc, false, false, (scores, 0, rc), (vh, kj, td), (oh, qi, td), 1f);
            }

            tiles.FinishForward(oh, m, l, lengths, new FlashTile(i0, 0, br, 0, t, d, hq, 0f, false, window));
        }

        tiles.BatchToHeads(oh, output, hq, accumulate: false);
    }

    /// <summary>The tiled backward: recomputes each tile's P from lse.</summary>
    private protected void TiledFlashAttentionBackward(IFlashTiles tiles, Tensor q, Tensor k, Tensor v, Tensor? lengths, Tensor output, Tensor lse, Tensor dOutput, Tensor dq, Tensor dk, Tensor dv, int window)
    {
        int b = q.Shape[0], t = q.Shape[1], hq = q.Shape[2], d = q.Shape[3], bh = b * hq;
        long plane = (long)bh * t * d, tileFloats = (long)bh * Math.Min(FlashQueryBlock, t) * Math.Min(FlashKeyTile, t);
        var work = Workspace((7 * plane) + ((long)bh * t) + (2 * tileFloats));
        Tensor Plane(int i) => work.View(i * plane, bh, t, d);
        var (qh, kh, vh, doh, dqh, dkh, dvh) = (Plane(0), Plane(1), Plane(2), Plane(3), Plane(4), Plane(5), Plane(6));
        var rowDot = work.View(7 * plane, bh, t);
        var s = work.View((7 * plane) + ((long)bh * t), (int)tileFloats);
        var dp = work.View((7 * plane) + ((long)bh * t) + tileFloats, (int)tileFloats);
        Zero(work.View(4 * plane, checked((int)(3 * plane))));
        tiles.HeadsToBatch(q, qh, hq);
        tiles.HeadsToBatch(k, kh, hq);
        tiles.HeadsToBatch(v, vh, hq);
        tiles.HeadsToBatch(dOutput, doh, hq);
        tiles.RowDot(dOutput, output, rowDot);
        var lse2 = lse.Reshape(bh, t);
        for (int i0 = 0; i0 < t; i0 += FlashQueryBlock)
        {
            int br = Math.Min(FlashQueryBlock, t - i0);
            for (int x = 0; x < BlockTiles(i0, br, window); x++)
            {
                var tile = BlockTile(i0, br, x, t, d, hq, window);
                var p = s.View(0, bh * tile.Br * tile.Bc);
                var ds = dp.View(0, bh * tile.Br * tile.Bc);
                long td = (long)t * d, rc = (long)tile.Br * tile.Bc, qi = (long)tile.I0 * d, kj = (long)tile.J0 * d;
                TileGemm(bh, tile.Br, tile.Bc, d, false, true, (qh, qi, td), (kh, kj, td), (p, 0, rc), 0f, tile.Scale);
                TileGemm(bh, tile.Br, tile.Bc, d, false, true, (doh, qi, td), (vh, kj, td), (ds, 0, rc), 0f);
                tiles.TileBackward(p, ds, lse2, rowDot, lengths, tile);
                TileGemm(bh, tile.Br, d, tile.Bc, false, false, (ds, 0, rc), (kh, kj, td), (dqh, qi, td), 1f);
                TileGemm(bh, tile.Bc, d, tile.Br, true, false, (ds, 0, rc), (qh, qi, td), (dkh, kj, td), 1f);
                TileGemm(bh, tile.Bc, d, tile.Br, true, false, (p, 0, rc), (doh, qi, td), (dvh, kj, td), 1f);
            }
        }

        tiles.BatchToHeads(dqh, dq, hq, accumulate: true);
        tiles.BatchToHeads(dkh, dk, hq, accumulate: true);
        tiles.BatchToHeads(dvh, dv, hq, accumulate: true);
    }

    /// <summary>A flat view from <paramref name="offset"/> long enough for <paramref name="batch"/> blocks of <paramref name="block"/> floats <paramref name="stride"/> apart.</summary>
    private static Tensor Span(Tensor plane, long offset, int batch, long block, long stride) =>
        plane.Reshape(checked((int)plane.Count)).View(offset, checked((int)(((batch - 1) * stride) + block)));

    /// <summary>
    /// A batched GEMM on strided blocks of head-major planes: each operand is (tensor, offset of
    /// the first block, stride between batch blocks). No shape checks: the driver's own sizes.
    /// </summary>
    private void TileGemm(int batch, int m, int n, int k, bool transA, bool transB, (Tensor T, long Offset, long Stride) a, (Tensor T, long Offset, long Stride) b, (Tensor T, long Offset, long Stride) c, float beta, float alpha = 1f)
    {
        var av = Span(a.T, a.Offset, batch, (long)m * k, a.Stride);
        var bv = Span(b.T, b.Offset, batch, (long)k * n, b.Stride);
        var cv = Span(c.T, c.Offset, batch, (long)m * n, c.Stride);
        GemmCore(new GemmArgs(batch, m, n, k, transA, transB, alpha, beta, a.Stride, b.Stride, c.Stride), av, bv, cv, null);
    }
}
