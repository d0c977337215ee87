using RA3.Kernels.Ops;

namespace RA3.Kernels.Reference;

/// <summary>
/// The reference tier as a backend: host memory and every op's plain scalar body (sums in double),
/// nothing accelerated — the readable definition the fast backends are tested against, and the
/// starting point of a new backend, which then overrides the ops it speeds up. Slow by design.
/// </summary>
public sealed class ReferenceBackend : Backend
{
    /// <inheritdoc/>
    public override string Name => "reference";
}
