using System.Buffers;

namespace RA3.Kernels.Cpu;

/// <summary>
/// Rotary position embedding in the Hugging Face rotate-half layout: within each head of D
/// elements, element i (i &lt; D/2) and element i + D/2 rotate by angle pos·invFreq[i]. The forward
/// writes y = R·x; the inverse accumulates dx += Rᵀ·dy. One task per (batch, time) row.
/// </summary>
internal static unsafe class RopeKernel
{
    /// <summary>
    /// Rotates x [rows, heads, d] into y. When positions repeat (a batch of sequences that all
    /// count from 0), each position's cosines and sines are computed once into a table rather than
    /// once per row: the same double-precision angles rounded to float, so the same results (the
    /// per-row recomputation was 2–3 % of a training step).
    /// </summary>
    public static void Run(float* x, int* positions, float* invFreq, float* y, int rows, int heads, int d, bool inverse)
    {
        var body = new Body { X = x, Positions = positions, InvFreq = invFreq, Y = y, Heads = heads, D = d, Inverse = inverse };
        if (rows == 0)
        {
            return;
        }

        int min = int.MaxValue, max = int.MinValue;
        for (int row = 0; row < rows; row++)
        {
            min = Math.Min(min, positions[row]);
            max = Math.Max(max, positions[row]);
        }

        long span = (long)max - min + 1;
        if (2 * span > rows)
        {
            WorkerPool.For(rows, body);
            return;
        }

        int half = d / 2;
        float[] table = ArrayPool<float>.Shared.Rent(checked((int)(2 * span * half)));
        try
        {
            fixed (float* t = table)
            {
                WorkerPool.For((int)span, new Angles { InvFreq = invFreq, First = min, Half = half, Table = t });
                WorkerPool.For(rows, body with { Table = t, First = min });
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(table);
        }
    }

    /// <summary>(cos, sin) of position First + index at every frequency, as [position][half][2].</summary>
    private struct Angles : IParallelBody
    {
        public float* InvFreq;
        public int First;
        public int Half;
        public float* Table;

        public readonly void Run(int index)
        {
            float* at = Table + (2L * index * Half);
            CosSin((double)First + index, InvFreq, Half, at);
        }
    }

    // out[2i], out[2i + 1] = cos, sin of pos·invFreq[i], in double and rounded to float.
    private static void CosSin(double pos, float* invFreq, int half, float* cosSin)
    {
        for (int i = 0; i < half; i++)
        {
            double angle = pos * invFreq[i];
            cosSin[2 * i] = (float)Math.Cos(angle);
            cosSin[(2 * i) + 1] = (float)Math.Sin(angle);
        }
    }

    /// <summary>One RoPE application over x [B, T, H, D], with its angles from a table (<see cref="Table"/> not null) or computed per row.</summary>
    private struct Body : IParallelBody
    {
        public float* X;
        public int* Positions;
        public float* InvFreq;
        public float* Y;
        public int Heads;
        public int D;
        public bool Inverse;
        public float* Table;
        public int First;

        public readonly void Run(int row)
        {
            int half = D / 2;
            float* cosSin = stackalloc float[Table == null ? 2 * half : 0];
            if (Table == null)
            {
                CosSin(Positions[row], InvFreq, half, cosSin);
            }
            else
            {
                cosSin = Table + (2L * (Positions[row] - First) * half);
            }

            for (int i = 0; i < half; i++)
            {
                float cos = cosSin[2 * i], sin = cosSin[(2 * i) + 1];
                for (int h = 0; h < Heads; h++)
                {
                    long b = (((long)row * Heads) + h) * D;
                    float x1 = X[b + i], x2 = X[b + i + half];
                    if (Inverse)
                    {
                        Y[b + i] += (x1 * cos) + (x2 * sin);
                        Y[b + i + half] += (x2 * cos) - (x1 * sin);
                    }
                    else
                    {
                        Y[b + i] = (x1 * cos) - (x2 * sin);
                        Y[b + i + half] = (x2 * cos) + (x1 * sin);
                    }
                }
            }
        }
    }
}
