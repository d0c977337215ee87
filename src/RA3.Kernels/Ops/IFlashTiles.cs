using RA3.Kernels.Tensors;

namespace RA3.Kernels.Ops;

/// <summary>
/// The row kernels the tiled fused attention (<see cref="Backend"/>'s <c>TiledFlashAttention</c>)
/// runs between its batched GEMMs; a backend that accelerates attention that way implements them.
/// </summary>
internal interface IFlashTiles
{
    /// <summary>dst[b·Hq + h, t, :] = x[b, t, h / (Hq / Hx), :] for x [B, T, Hx, D] (kv heads repeated over their query group).</summary>
    void HeadsToBatch(Tensor x, Tensor dst, int hq);

    /// <summary>dst[b, t, hx, :] (+)= Σ over the query heads h of group hx of src[b·Hq + h, t, :], for dst [B, T, Hx, D].</summary>
    void BatchToHeads(Tensor src, Tensor dst, int hq, bool accumulate);

    /// <summary>
    /// Online-softmax update of one tile: scores [B·Hq, Br, Bc] (already scaled by 1/√D) are masked (causal,
    /// padded queries) and become P = exp(s − m_new) in place; m and l [B·Hq, T] are updated (reset
    /// on the first tile) and the output rows o [B·Hq, T, D] of the block rescaled (zeroed on the first tile).
    /// </summary>
    void TileForward(Tensor scores, Tensor o, Tensor m, Tensor l, Tensor? lengths, FlashTile tile);

    /// <summary>Ends a query block: o rows /= l, m becomes the lse m + log l; padded rows get o = 0, lse = 0.</summary>
    void FinishForward(Tensor o, Tensor m, Tensor l, Tensor? lengths, FlashTile tile);

    /// <summary>From a tile's scaled scores s and dP = dO Vᵀ: p = exp(s − lse) (masked) in place, and dS = scale · p ⊙ (dP − rowDot) in place of dP.</summary>
    void TileBackward(Tensor p, Tensor ds, Tensor lse, Tensor rowDot, Tensor? lengths, FlashTile tile);

    /// <summary>rowDot[b·Hq + h, t] = dOut[b, t, h, :] · out[b, t, h, :] (the backward's rowsum(dO ⊙ O), read in place).</summary>
    void RowDot(Tensor dOut, Tensor output, Tensor rowDot);
}
