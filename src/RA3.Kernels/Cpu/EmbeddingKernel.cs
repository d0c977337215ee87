using RA3.Kernels.Tensors;

namespace RA3.Kernels.Cpu;

/// <summary>
/// Embedding lookup (one task per block of ids) and its backward (one task per block of table
/// columns, scanning all ids, so repeated ids never race).
/// </summary>
internal static unsafe class EmbeddingKernel
{
    private const int ColumnsPerTask = 64;

    /// <summary>Operands: ids [N], table [V, C], rows [N, C] (output, or dOutput in the backward); a forward may read a bfloat16 table (<see cref="TableBFloat16"/>).</summary>
    public struct Body : IParallelBody
    {
        public int* Ids;
        public void* Table;  // float, or ushort (bfloat16) when TableBFloat16
        public float* Rows;
        public long N;
        public int C;
        public bool Backward;
        public bool TableBFloat16;

        public readonly int Tasks => Backward ? Chunks.Count(C, ColumnsPerTask) : Chunks.Count(N, Chunks.RowsPerTask(C));

        public readonly void Run(int index)
        {
            if (Backward)
            {
                int c0 = index * ColumnsPerTask, width = Math.Min(ColumnsPerTask, C - c0);
                for (long i = 0; i < N; i++)
                {
                    Simd.Axpy(1f, new ReadOnlySpan<float>(Rows + (i * C) + c0, width), new Span<float>((float*)Table + ((long)Ids[i] * C) + c0, width));
                }
            }
            else
            {
                (long r0, int n) = Chunks.Range(index, N, Chunks.RowsPerTask(C));
                for (long i = r0; i < r0 + n; i++)
                {
                    var row = new Span<float>(Rows + (i * C), C);
                    if (TableBFloat16)
                    {
                        BFloat16.Widen(new ReadOnlySpan<ushort>((ushort*)Table + ((long)Ids[i] * C), C), row);
                    }
                    else
                    {
                        new ReadOnlySpan<float>((float*)Table + ((long)Ids[i] * C), C).CopyTo(row);
                    }
                }
            }
        }
    }

    /// <summary>Runs <paramref name="body"/> on all cores.</summary>
    public static void Run(in Body body) => WorkerPool.For(body.Tasks, body);
}
