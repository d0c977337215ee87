using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using RA3.Kernels.Tensors;

namespace RA3.Kernels.Cpu;

/// <summary>
/// GEMM for a handful of rows (M ≤ <see cref="MaxRows"/>): a decode step's projections and head,
/// a rollout's or a sampler's batch. Packing B there costs as much as the product (every weight is
/// read, written packed and read again for a few FMAs each), so this path reads B once, in place:
/// with B stored [N, K] (transB, nn.Linear's layout) each output is a dot product of an A row and
/// a B row, 4 rows × 2 columns of them at a time; with B stored [K, N] (Conv1D's) a 6 × 16 tile of
/// C accumulates broadcast A elements times B's row segments. Columns are split over the worker
/// threads. B may be bf16 (a bf16 model's weights), widened as it is loaded; A and C are f32.
/// </summary>
internal static unsafe class SkinnyGemmKernel
{
    /// <summary>The most rows this path takes; more amortise packing and take the packed kernels.</summary>
    public const int MaxRows = 16;

    /// <summary>Whether the product takes this path: few rows, one product, A and C f32, a 256-bit vector unit.</summary>
    public static bool Takes(in Ops.GemmArgs g, GemmKernel.Operand a, GemmKernel.Operand c) =>
        g.M <= MaxRows && g.Batch == 1 && !g.TransA && g.K > 0 && !a.Bf16 && !c.Bf16 && Vector256.IsHardwareAccelerated;

    /// <summary>Runs the product on all cores.</summary>
    public static void Run(in Ops.GemmArgs g, GemmKernel.Operand a, GemmKernel.Operand b, GemmKernel.Operand c, GemmKernel.Operand bias)
    {
        int columnsPerTask = Math.Max(16, (g.N + (4 * WorkerPool.Threads) - 1) / (4 * WorkerPool.Threads) / 16 * 16);
        var body = new Body { G = g, A = a.P, B = b, C = c.P, Bias = bias, ColumnsPerTask = columnsPerTask };
        WorkerPool.For(Chunks.Count(g.N, columnsPerTask), body);
    }

    private struct Body : IParallelBody
    {
        public Ops.GemmArgs G;
        public float* A;
        public GemmKernel.Operand B;
        public float* C;
        public GemmKernel.Operand Bias;
        public int ColumnsPerTask;

        public readonly void Run(int index)
        {
            int j0 = index * ColumnsPerTask, j1 = Math.Min(G.N, j0 + ColumnsPerTask);
            if (G.TransB)
            {
                RowDots(j0, j1);
            }
            else
            {
                RowSegments(j0, j1);
            }
        }

        // B [N, K]: C[i, j] = A_i · B_j, 4 rows × 2 columns of dot products per pass over K.
        private readonly void RowDots(int j0, int j1)
        {
            int k = G.K, m = G.M;
            float* sums = stackalloc float[8];
            for (int j = j0; j < j1; j += 2)
            {
                int cols = Math.Min(2, j1 - j);
                for (int i0 = 0; i0 < m; i0 += 4)
                {
                    int rows = Math.Min(4, m - i0);
                    Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
                    float* r0 = A + ((long)i0 * k), r1 = rows > 1 ? r0 + k : r0, r2 = rows > 2 ? r0 + (2L * k) : r0, r3 = rows > 3 ? r0 + (3L * k) : r0;
                    long b0 = (long)j * k, b1 = (long)(cols > 1 ? j + 1 : j) * k;
                    int p = 0;
                    for (; p <= k - 8; p += 8)
                    {
                        var x0 = Load(B, b0 + p);
                        var x1 = Load(B, b1 + p);
                        var v = Vector256.Load(r0 + p);
                        a00 = Vector256.FusedMultiplyAdd(v, x0, a00);
                        a01 = Vector256.FusedMultiplyAdd(v, x1, a01);
                        v = Vector256.Load(r1 + p);
                        a10 = Vector256.FusedMultiplyAdd(v, x0, a10);
                        a11 = Vector256.FusedMultiplyAdd(v, x1, a11);
                        v = Vector256.Load(r2 + p);
                        a20 = Vector256.FusedMultiplyAdd(v, x0, a20);
                        a21 = Vector256.FusedMultiplyAdd(v, x1, a21);
                        v = Vector256.Load(r3 + p);
                        a30 = Vector256.FusedMultiplyAdd(v, x0, a30);
                        a31 = Vector256.FusedMultiplyAdd(v, x1, a31);
                    }

                    sums[0] = Vector256.Sum(a00);
                    sums[1] = Vector256.Sum(a01);
                    sums[2] = Vector256.Sum(a10);
                    sums[3] = Vector256.Sum(a11);
                    sums[4] = Vector256.Sum(a20);
                    sums[5] = Vector256.Sum(a21);
                    sums[6] = Vector256.Sum(a30);
                    sums[7] = Vector256.Sum(a31);
                    for (; p < k; p++)
                    {
                        float x0 = B[b0 + p], x1 = B[b1 + p];
                        sums[0] += r0[p] * x0;
                        sums[1] += r0[p] * x1;
                        sums[2] += r1[p] * x0;
                        sums[3] += r1[p] * x1;
                        sums[4] += r2[p] * x0;
                        sums[5] += r2[p] * x1;
                        sums[6] += r3[p] * x0;
                        sums[7] += r3[p] * x1;
                    }

                    for (int r = 0; r < rows; r++)
                    {
                        for (int q = 0; q < cols; q++)
                        {
                            Store(i0 + r, j + q, sums[(2 * r) + q]);
                        }
                    }
                }
            }
        }

        // B [K, N]: C[i0..i0+6, j..j+16] accumulates A[i, p] × B[p, j..j+16] over p, B's rows read in place.
        private readonly void RowSegments(int j0, int j1)
        {
            int k = G.K, m = G.M, n = G.N;
            float* tile = stackalloc float[6 * 16];
            float* pad = stackalloc float[16];
            for (int j = j0; j < j1; j += 16)
            {
                int cols = Math.Min(16, j1 - j);
                for (int i0 = 0; i0 < m; i0 += 6)
                {
                    int rows = Math.Min(6, m - i0);
                    Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
                    Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
                    float* ar = A + ((long)i0 * k);
                    long r1 = rows > 1 ? k : 0, r2 = rows > 2 ? 2L * k : 0, r3 = rows > 3 ? 3L * k : 0, r4 = rows > 4 ? 4L * k : 0, r5 = rows > 5 ? 5L * k : 0;
                    for (int p = 0; p < k; p++)
                    {
                        Vector256<float> x0, x1;
                        if (cols == 16)
                        {
                            x0 = Load(B, ((long)p * n) + j);
                            x1 = Load(B, ((long)p * n) + j + 8);
                        }
                        else
                        {
                            for (int q = 0; q < 16; q++)
                            {
                                pad[q] = q < cols ? B[((long)p * n) + j + q] : 0f;
                            }

                            x0 = Vector256.Load(pad);
                            x1 = Vector256.Load(pad + 8);
                        }

                        var v = Vector256.Create(ar[p]);
                        c00 = Vector256.FusedMultiplyAdd(v, x0, c00);
                        c01 = Vector256.FusedMultiplyAdd(v, x1, c01);
                        v = Vector256.Create(ar[r1 + p]);
                        c10 = Vector256.FusedMultiplyAdd(v, x0, c10);
                        c11 = Vector256.FusedMultiplyAdd(v, x1, c11);
                        v = Vector256.Create(ar[r2 + p]);
                        c20 = Vector256.FusedMultiplyAdd(v, x0, c20);
                        c21 = Vector256.FusedMultiplyAdd(v, x1, c21);
                        v = Vector256.Create(ar[r3 + p]);
                        c30 = Vector256.FusedMultiplyAdd(v, x0, c30);
                        c31 = Vector256.FusedMultiplyAdd(v, x1, c31);
                        v = Vector256.Create(ar[r4 + p]);
                        c40 = Vector256.FusedMultiplyAdd(v, x0, c40);
                        c41 = Vector256.FusedMultiplyAdd(v, x1, c41);
                        v = Vector256.Create(ar[r5 + p]);
                        c50 = Vector256.FusedMultiplyAdd(v, x0, c50);
                        c51 = Vector256.FusedMultiplyAdd(v, x1, c51);
                    }

                    c00.Store(tile); c01.Store(tile + 8); c10.Store(tile + 16); c11.Store(tile + 24);
                    c20.Store(tile + 32); c21.Store(tile + 40); c30.Store(tile + 48); c31.Store(tile + 56);
                    c40.Store(tile + 64); c41.Store(tile + 72); c50.Store(tile + 80); c51.Store(tile + 88);
                    for (int r = 0; r < rows; r++)
                    {
                        for (int q = 0; q < cols; q++)
                        {
                            Store(i0 + r, j + q, tile[(r * 16) + q]);
                        }
                    }
                }
            }
        }

        // C[i, j] = alpha · sum + beta · C[i, j] + bias[j].
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly void Store(int i, int j, float sum)
        {
            float* at = C + ((long)i * G.N) + j;
            float prior = G.Beta == 0f ? 0f : G.Beta * *at;
            *at = prior + (Bias.P == null ? 0f : Bias[j]) + (G.Alpha * sum);
        }

        // 8 consecutive elements of B from element `at`, widened when B is bf16.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<float> Load(GemmKernel.Operand b, long at)
        {
            if (!b.Bf16)
            {
                return Vector256.Load(b.P + at);
            }

            var bits = Vector128.Load((ushort*)b.P + at);
            return (Vector256.WidenLower(bits.ToVector256Unsafe()) << 16).AsSingle();
        }
    }
}
