using RA3.Kernels.Ops;

namespace RA3.Kernels.Cpu;

/// <summary>
/// One generation step of attention over a KV cache: q [B, Hq, D], caches [B, S, Hkv, D],
/// lengths [B]. The caller appends this step's key and value first (serially, before the
/// parallel part), so each (batch, query head) task reads a cache no one writes.
/// </summary>
internal static unsafe class DecodeAttentionKernel
{
    /// <summary>Largest cache length scored on the stack; longer ones allocate their scores.</summary>
    private const int StackScores = 4096;

    /// <summary>Operands.</summary>
    public struct Body : IParallelBody
    {
        public float* Q;
        public float* KCache;
        public float* VCache;
        public int* Lengths;
        public float* Out;
        public int B;
        public int S;
        public int Hq;
        public int Hkv;
        public int D;

        /// <summary>Keys seen: the last Window positions (0: all).</summary>
        public int Window;

        public readonly void Run(int index)
        {
            int b = index / Hq, h = index % Hq;
            var o = new Span<float>(Out + (((long)b * Hq) + h) * D, D);
            o.Clear();
            Attend(new ReadOnlySpan<float>(Q + (((long)b * Hq) + h) * D, D), KCache, VCache, S, Hkv, b, Lengths[b], Window, h / (Hq / Hkv), o);
        }

        /// <summary>Copies kNew, vNew [B, Hkv, D] into the caches at position lengths[b].</summary>
        public readonly void Append(float* kNew, float* vNew)
        {
            int row = Hkv * D;
            for (int b = 0; b < B; b++)
            {
                long dst = (((long)b * S) + Lengths[b]) * row;
                new ReadOnlySpan<float>(kNew + ((long)b * row), row).CopyTo(new Span<float>(KCache + dst, row));
                new ReadOnlySpan<float>(vNew + ((long)b * row), row).CopyTo(new Span<float>(VCache + dst, row));
            }
        }
    }

    // o += softmax_j(q·k_j/√D) v_j over slot b's positions FirstKey(last, window) .. last of the
    // caches [*, S, Hkv, D] (key head hk): one query head's output, shared by both bodies.
    private static void Attend(ReadOnlySpan<float> q, float* kCache, float* vCache, int s, int hkv, int b, int last, int window, int hk, Span<float> o)
    {
        int d = q.Length, start = SlidingWindow.FirstKey(last, window), n = last + 1 - start;
        Span<float> p = n <= StackScores ? stackalloc float[n] : new float[n];
        float scale = 1f / MathF.Sqrt(d);
        for (int j = 0; j < n; j++)
        {
            p[j] = Simd.Dot(q, Row(kCache, j)) * scale;
        }

        Simd.Scale(p, 1f / Simd.ExpShifted(p, Simd.Max(p), p), p);
        for (int j = 0; j < n; j++)
        {
            Simd.Axpy(p[j], Row(vCache, j), o);
        }

        ReadOnlySpan<float> Row(float* cache, int j) => new(cache + (((((long)b * s) + start + j) * hkv) + hk) * d, d);
    }

    /// <summary>Appends the new key and value, then runs one task per (batch, query head) on all cores.</summary>
    public static void Run(in Body body, float* kNew, float* vNew)
    {
        body.Append(kNew, vNew);
        WorkerPool.For(body.B * body.Hq, body);
    }

    /// <summary>
    /// Rows over a KV cache (<see cref="Ops.Backend.AttentionCached"/>): q [N, Hq, D], caches [Bc, S, Hkv, D],
    /// slots and positions [N]. The rows' keys and values are written first (serially), then one task
    /// per (row, query head) attends over its slot's positions up to its own.
    /// </summary>
    public struct CachedRows : IParallelBody
    {
        public float* Q;
        public float* KCache;
        public float* VCache;
        public int* Slots;
        public int* Positions;
        public float* Out;
        public int S;
        public int Hq;
        public int Hkv;
        public int D;

        /// <summary>Keys seen: the last Window positions (0: all).</summary>
        public int Window;

        public readonly void Run(int index)
        {
            int r = index / Hq, h = index % Hq, hk = h / (Hq / Hkv), b = Slots[r];
            var o = new Span<float>(Out + (((long)r * Hq) + h) * D, D);
            o.Clear();
            if (b < 0)
            {
                return;
            }

            Attend(new ReadOnlySpan<float>(Q + (((long)r * Hq) + h) * D, D), KCache, VCache, S, Hkv, b, Positions[r], Window, hk, o);
        }

        /// <summary>Copies row r of kNew, vNew [N, Hkv, D] into the caches at (slots[r], positions[r]); padding rows are skipped.</summary>
        public readonly void Append(float* kNew, float* vNew, int rows)
        {
            int row = Hkv * D;
            for (int r = 0; r < rows; r++)
            {
                if (Slots[r] >= 0)
                {
                    long dst = (((long)Slots[r] * S) + Positions[r]) * row;
                    new ReadOnlySpan<float>(kNew + ((long)r * row), row).CopyTo(new Span<float>(KCache + dst, row));
                    new ReadOnlySpan<float>(vNew + ((long)r * row), row).CopyTo(new Span<float>(VCache + dst, row));
                }
            }
        }
    }

    /// <summary>Appends the rows' keys and values, then runs one task per (row, query head) on all cores.</summary>
    public static void Run(in CachedRows body, float* kNew, float* vNew, int rows)
    {
        body.Append(kNew, vNew, rows);
        WorkerPool.For(rows * body.Hq, body);
    }
}
