using RA3.Kernels.Tensors;

namespace RA3.Kernels.Ops;

/// <summary>
/// The row kernels of the chunked segment scoring (<see cref="Backend"/>'s <c>ChunkedSegmentScores</c>),
/// run between its GEMMs; a backend that accelerates segment scoring that way implements them.
/// </summary>
internal interface ISegmentChunks
{
    /// <summary>
    /// Updates each row's running state (max, Σ exp(x − max), target logit) [rows, 3] with a
    /// logits chunk [rows, vc] covering vocabulary ids c0..c0+vc−1 (<paramref name="first"/>: start afresh).
    /// </summary>
    void ChunkForward(Tensor logits, int c0, Tensor targets, Tensor state, bool first);

    /// <summary>lse[r] = max + log sum; scores[n, line] = Σ (target logit − lse) over the rows of each (sequence, line) (scores overwritten).</summary>
    void Finish(Tensor state, Tensor lineIds, Tensor lse, Tensor scores);

    /// <summary>
    /// Turns a logits chunk of rows r0.. into dlogits in place: g·(onehot(target) − exp(x − lse)),
    /// g = dScores[row / L, lineIds[row]] (0 for padding).
    /// </summary>
    void ChunkBackward(Tensor logits, int c0, Tensor targets, Tensor lineIds, Tensor lse, Tensor dScores, int r0, int tokensPerSequence, int lines);
}
