namespace RA3.Kernels.Ops;

/// <summary>
/// The one statement of which keys a query sees under a sliding window, shared by the reference,
/// the tiled attention's planning and tiles, and the decode kernels of every backend (including
/// inside ILGPU kernels: plain integer arithmetic only).
/// </summary>
internal static class SlidingWindow
{
    /// <summary>
    /// The first key query <paramref name="i"/> sees: 0 without a window (<paramref name="window"/> 0),
    /// else i − window + 1 (at least 0), so it sees exactly <paramref name="window"/> keys once i ≥ window − 1.
    /// </summary>
    public static int FirstKey(int i, int window) => window == 0 || i < window ? 0 : i - window + 1;
}
