using RA3.Kernels.Ops;

namespace RA3.Kernels.Reference;

/// <summary>
/// The reference tier: every op of <see cref="Backend"/> as plain scalar loops over host spans,
/// shapes in the comments, sums in double — the readable definition each fast kernel is checked
/// against and the body a backend runs for an op it does not accelerate. Arguments arrive
/// checked by <see cref="Backend"/>'s public methods; nothing here is tuned.
/// </summary>
internal static partial class ReferenceKernels
{
    /// <summary>
    /// c[b] = alpha · op(a[b]) · op(b[b]) + beta · c[b] + bias for each of the batch blocks
    /// (blocks <see cref="GemmArgs.StrideA"/> … apart). op(a) [M, K]: a is [M, K], or [K, M]
    /// transposed; op(b) [K, N]: b is [K, N], or [N, K] transposed; c [M, N]; bias [N] or empty.
    /// With beta = 0, c is written without being read.
    /// </summary>
    public static void Gemm(in GemmArgs g, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, ReadOnlySpan<float> bias)
    {
        int m = g.M, n = g.N, k = g.K;
        for (int batch = 0; batch < g.Batch; batch++)
        {
            var ab = a[(int)(batch * g.StrideA)..];
            var bb = b[(int)(batch * g.StrideB)..];
            var cb = c[(int)(batch * g.StrideC)..];
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    double sum = 0;
                    for (int p = 0; p < k; p++)
                    {
                        float x = g.TransA ? ab[(p * m) + i] : ab[(i * k) + p];
                        float y = g.TransB ? bb[(j * k) + p] : bb[(p * n) + j];
                        sum += (double)x * y;
                    }

                    double value = (g.Alpha * sum) + (bias.IsEmpty ? 0 : bias[j]);
                    cb[(i * n) + j] = (float)(g.Beta == 0f ? value : value + ((double)g.Beta * cb[(i * n) + j]));
                }
            }
        }
    }

    /// <summary>dBias[j] += Σ_r dOut[r, j] for dOut [rows, N], dBias [N].</summary>
    public static void BiasBackward(ReadOnlySpan<float> dOut, Span<float> dBias)
    {
        int n = dBias.Length, rows = dOut.Length / n;
        for (int j = 0; j < n; j++)
        {
            double sum = 0;
            for (int r = 0; r < rows; r++)
            {
                sum += dOut[(r * n) + j];
            }

            dBias[j] += (float)sum;
        }
    }

    /// <summary>dst[r, dstColumn + j] = src[r, srcColumn + j] for j &lt; width; src [rows, Cs], dst [rows, Cd].</summary>
    public static void CopyColumns(ReadOnlySpan<float> src, int srcColumns, int srcColumn, Span<float> dst, int dstColumns, int dstColumn, int width)
    {
        int rows = src.Length / srcColumns;
        for (int r = 0; r < rows; r++)
        {
            src.Slice((r * srcColumns) + srcColumn, width).CopyTo(dst.Slice((r * dstColumns) + dstColumn, width));
        }
    }

    /// <summary>output[i, :] = table[ids[i], :] for ids [N], table [V, C], output [N, C].</summary>
    public static void Embedding(ReadOnlySpan<int> ids, ReadOnlySpan<float> table, int c, Span<float> output)
    {
        for (int i = 0; i < ids.Length; i++)
        {
            table.Slice(ids[i] * c, c).CopyTo(output.Slice(i * c, c));
        }
    }

    /// <summary>dTable[ids[i], :] += dOutput[i, :] for ids [N], dOutput [N, C], dTable [V, C].</summary>
    public static void EmbeddingBackward(ReadOnlySpan<int> ids, ReadOnlySpan<float> dOutput, int c, Span<float> dTable)
    {
        for (int i = 0; i < ids.Length; i++)
        {
            for (int j = 0; j < c; j++)
            {
                dTable[(ids[i] * c) + j] += dOutput[(i * c) + j];
            }
        }
    }
}
