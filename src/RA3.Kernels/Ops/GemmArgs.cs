namespace RA3.Kernels.Ops;

/// <summary>
/// The sizes of one validated GEMM: <paramref name="Batch"/> products of op(A) [M, K] by op(B)
/// [K, N] into C [M, N]; strides are element distances between batch matrices (0 broadcasts B).
/// </summary>
internal readonly record struct GemmArgs(
    int Batch,
    int M,
    int N,
    int K,
    bool TransA,
    bool TransB,
    float Alpha,
    float Beta,
    long StrideA,
    long StrideB,
    long StrideC);
