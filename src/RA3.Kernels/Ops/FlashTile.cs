namespace RA3.Kernels.Ops;

/// <summary>
/// One tile of the fused attention: query rows I0..I0+Br of every (batch, head) against keys
/// J0..J0+Bc, in head-major scratch [B·Hq, T, D]; Hq maps a scratch batch to its sequence (for
/// the lengths), Scale is 1/√D, First marks the first key tile of a query block.
/// </summary>
internal readonly record struct FlashTile(int I0, int J0, int Br, int Bc, int T, int D, int Hq, float Scale, bool First)
{
    /// <summary>Whether query row i may see key j of a sequence of length n (causal, and a real query).</summary>
    public bool Visible(int i, int j, int n) => j <= i && i < n;
}
