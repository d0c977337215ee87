namespace RA3.Kernels.Ops;

/// <summary>
/// One tile of the fused attention: query rows I0..I0+Br of every (batch, head) against keys
/// J0..J0+Bc, in head-major scratch [B·Hq, T, D]; Hq maps a scratch batch to its sequence (for
/// the lengths), Scale is 1/√D, First marks the first key tile of a query block, Window &gt; 0
/// limits query i to keys i − Window + 1 .. i (0: all earlier keys).
/// </summary>
internal readonly record struct FlashTile(int I0, int J0, int Br, int Bc, int T, int D, int Hq, float Scale, bool First, int Window)
{
    /// <summary>
    /// The tile's keys that query row i of a sequence of length n sees, as [From, To) relative to
    /// J0: causal (j ≤ i), inside the window, and none for a padded query (i ≥ n). Empty when From ≥ To.
    /// </summary>
    public (int From, int To) VisibleKeys(int i, int n) =>
        i >= n ? (0, 0) : (Math.Clamp(SlidingWindow.FirstKey(i, Window) - J0, 0, Bc), Math.Clamp(i - J0 + 1, 0, Bc));
}
