namespace RA3.Kernels.Cpu;

/// <summary>
/// Row softmax and token cross-entropy over the last dimension, forward and backward, one task
/// per block of rows; max-subtracted for stability.
/// </summary>
internal static unsafe class SoftmaxKernel
{
    /// <summary>Which of the four row kernels a task runs.</summary>
    public enum Kind
    {
        /// <summary>Y = softmax(X).</summary>
        Forward,

        /// <summary>Dx += Y ⊙ (Dy − Σ Dy ⊙ Y), with X = y.</summary>
        Backward,

        /// <summary>Losses[r] = logsumexp(X[r]) − X[r, Targets[r]].</summary>
        CrossEntropy,

        /// <summary>Dx[r] += Dy[r] · (softmax(X[r]) − onehot(Targets[r])).</summary>
        CrossEntropyBackward,
    }

    /// <summary>One row kernel over <see cref="Rows"/> rows of <see cref="C"/> columns.</summary>
    public struct Body : IParallelBody
    {
        public Kind Kind;
        public float* X;
        public float* Y;
        public float* Dy;
        public float* Dx;
        public int* Targets;
        public long Rows;
        public int C;

        public readonly int RowsPerTask => Chunks.RowsPerTask(C);

        public readonly void Run(int index)
        {
            (long r0, int n) = Chunks.Range(index, Rows, RowsPerTask);
            for (long r = r0; r < r0 + n; r++)
            {
                var x = new Span<float>(X + (r * C), C);
                switch (Kind)
                {
                    case Kind.Forward:
                        {
                            var y = new Span<float>(Y + (r * C), C);
                            float sum = Simd.ExpShifted(x, Simd.Max(x), y);
                            Simd.Scale(y, 1f / sum, y);
                            break;
                        }

                    case Kind.Backward:
                        {
                            var dy = new Span<float>(Dy + (r * C), C);
                            float dot = Simd.Dot(x, dy);
                            var dx = new Span<float>(Dx + (r * C), C);
                            for (int i = 0; i < C; i++)
                            {
                                dx[i] += x[i] * (dy[i] - dot);
                            }

                            break;
                        }

                    case Kind.CrossEntropy:
                        Y[r] = Targets[r] < 0 ? 0f : Simd.LogSumExp(x) - x[Targets[r]];
                        break;

                    case Kind.CrossEntropyBackward:
                        if (Targets[r] >= 0)
                        {
                            var dx = new Span<float>(Dx + (r * C), C);
                            float lse = Simd.LogSumExp(x), g = Dy[r];
                            for (int i = 0; i < C; i++)
                            {
                                dx[i] += g * MathF.Exp(x[i] - lse);
                            }

                            dx[Targets[r]] -= g;
                        }

                        break;
                }
            }
        }
    }

    /// <summary>Runs <paramref name="body"/> over its rows on all cores.</summary>
    public static void Run(in Body body) => WorkerPool.For(Chunks.Count(body.Rows, body.RowsPerTask), body);
}
