using ILGPU;
using ILGPU.Runtime;

namespace RA3.Kernels.Ilgpu;

/// <summary>Sizes and flags of one ILGPU GEMM launch (see <see cref="Ops.GemmArgs"/>).</summary>
internal readonly record struct GemmParams(int M, int N, int K, int TransA, int TransB, float Alpha, float Beta, long StrideA, long StrideB, long StrideC, int HasBias);

/// <summary>
/// Shared-memory tiled SGEMM: a group of Tile×Tile threads computes a Tile×Tile block of C,
/// staging Tile×Tile blocks of op(A) and op(B) in shared memory, one batch matrix per grid z.
/// No tensor cores (ILGPU emits none): those belong to the native CUDA kernels.
/// </summary>
internal static class GemmKernels
{
    /// <summary>Tile edge; a group has Tile² threads.</summary>
    public const int Tile = 16;

    /// <summary>The grid and group for a launch.</summary>
    public static KernelConfig Config(int batch, int m, int n) =>
        new(new Index3D((n + Tile - 1) / Tile, (m + Tile - 1) / Tile, batch), new Index3D(Tile, Tile, 1));

    /// <summary>C = alpha·op(A)·op(B) + beta·C + bias for one Tile×Tile block.</summary>
    public static void Tiled(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias, GemmParams g)
    {
        var tileA = SharedMemory.Allocate<float>(Tile * Tile);
        var tileB = SharedMemory.Allocate<float>(Tile * Tile);
        int tx = Group.IdxX, ty = Group.IdxY;
        int col = (Grid.IdxX * Tile) + tx, row = (Grid.IdxY * Tile) + ty, batch = Grid.IdxZ;
        long ao = batch * g.StrideA, bo = batch * g.StrideB, co = batch * g.StrideC;
        float acc = 0f;
        for (int k0 = 0; k0 < g.K; k0 += Tile)
        {
            int ka = k0 + tx, kb = k0 + ty;
            tileA[(ty * Tile) + tx] = row < g.M && ka < g.K ? a[ao + (g.TransA != 0 ? ((long)ka * g.M) + row : ((long)row * g.K) + ka)] : 0f;
            tileB[(ty * Tile) + tx] = col < g.N && kb < g.K ? b[bo + (g.TransB != 0 ? ((long)col * g.K) + kb : ((long)kb * g.N) + col)] : 0f;
            Group.Barrier();
            for (int kk = 0; kk < Tile; kk++)
            {
                acc += tileA[(ty * Tile) + kk] * tileB[(kk * Tile) + tx];
            }

            Group.Barrier();
        }

        if (row < g.M && col < g.N)
        {
            long ci = co + ((long)row * g.N) + col;
            c[ci] = (g.Alpha * acc) + (g.Beta == 0f ? 0f : g.Beta * c[ci]) + (g.HasBias != 0 ? bias[col] : 0f);
        }
    }

    /// <summary>
    /// C = alpha·op(A)·op(B) + beta·C + bias with one thread per element of C and no shared memory
    /// or barriers: idx = (column, row, batch). The CPU accelerator's choice, where every barrier
    /// is a rendezvous of OS threads and costs far more than the loads it saves.
    /// </summary>
    public static void Direct(Index3D idx, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias, GemmParams g)
    {
        int col = idx.X, row = idx.Y, batch = idx.Z;
        long ao = batch * g.StrideA, bo = batch * g.StrideB, co = batch * g.StrideC;
        float acc = 0f;
        for (int k = 0; k < g.K; k++)
        {
            acc += a[ao + (g.TransA != 0 ? ((long)k * g.M) + row : ((long)row * g.K) + k)] * b[bo + (g.TransB != 0 ? ((long)col * g.K) + k : ((long)k * g.N) + col)];
        }

        long ci = co + ((long)row * g.N) + col;
        c[ci] = (g.Alpha * acc) + (g.Beta == 0f ? 0f : g.Beta * c[ci]) + (g.HasBias != 0 ? bias[col] : 0f);
    }
}
