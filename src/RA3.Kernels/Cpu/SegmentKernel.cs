namespace RA3.Kernels.Cpu;

/// <summary>
/// The row kernels of chunked segment scoring (see <see cref="Ops.Backend.SegmentScores"/>):
/// the running log-sum-exp update per logits chunk, the finish that scatters per-token
/// log-probabilities into (sequence, line) sums, and the in-place dlogits of the backward.
/// Chunk kernels run one task per block of rows; the finish one task per sequence (no races).
/// </summary>
internal static unsafe class SegmentKernel
{
    private const int RowsPerTask = 16;

    /// <summary>Running state update: state[r] = (max, Σ exp(x − max), target logit).</summary>
    public struct ChunkForward : IParallelBody
    {
        public float* Logits;
        public int* Targets;
        public float* State;
        public int Rows;
        public int Vc;
        public int C0;
        public bool First;

        public readonly int Tasks => Chunks.Count(Rows, RowsPerTask);

        public readonly void Run(int index)
        {
            (long r0, int n) = Chunks.Range(index, Rows, RowsPerTask);
            for (long r = r0; r < r0 + n; r++)
            {
                var x = new Span<float>(Logits + (r * Vc), Vc);
                float* st = State + (r * 3);
                if (First)
                {
                    st[0] = float.NegativeInfinity;
                    st[1] = 0f;
                    st[2] = 0f;
                }

                int t = Targets[r] - C0;
                if (t >= 0 && t < Vc)
                {
                    st[2] = x[t];
                }

                float m = MathF.Max(st[0], Simd.Max(x));
                st[1] = (st[1] * MathF.Exp(st[0] - m)) + Simd.ExpShifted(x, m, x);
                st[0] = m;
            }
        }
    }

    /// <summary>lse and per-(sequence, line) sums; one task per sequence of L rows.</summary>
    public struct Finish : IParallelBody
    {
        public float* State;
        public int* LineIds;
        public float* Lse;
        public float* Scores;
        public int L;
        public int Lines;

        public readonly void Run(int n)
        {
            var scores = new Span<float>(Scores + ((long)n * Lines), Lines);
            scores.Clear();
            for (long r = (long)n * L; r < (long)(n + 1) * L; r++)
            {
                float* st = State + (r * 3);
                Lse[r] = st[0] + MathF.Log(st[1]);
                if (LineIds[r] >= 0)
                {
                    scores[LineIds[r]] += st[2] - Lse[r];
                }
            }
        }
    }

    /// <summary>dlogits in place: g·(onehot(target) − softmax), the gradient of g·log p(target), for each row of the chunk.</summary>
    public struct ChunkBackward : IParallelBody
    {
        public float* Logits;
        public int* Targets;
        public int* LineIds;
        public float* Lse;
        public float* DScores;
        public int Rows;
        public int Vc;
        public int C0;
        public int R0;
        public int L;
        public int Lines;

        public readonly int Tasks => Chunks.Count(Rows, RowsPerTask);

        public readonly void Run(int index)
        {
            (long r0, int n) = Chunks.Range(index, Rows, RowsPerTask);
            for (long r = r0; r < r0 + n; r++)
            {
                var x = new Span<float>(Logits + (r * Vc), Vc);
                int line = LineIds[r];
                float g = line >= 0 ? DScores[((R0 + r) / L * Lines) + line] : 0f;
                if (g == 0f)
                {
                    x.Clear();
                    continue;
                }

                Simd.ExpShifted(x, Lse[r], x);
                Simd.Scale(x, -g, x);
                int t = Targets[r] - C0;
                if (t >= 0 && t < Vc)
                {
                    x[t] += g;
                }
            }
        }
    }
}
