namespace RA3.Kernels.Cpu;

/// <summary>
/// LayerNorm and RMSNorm over the last dimension C of x [rows, C]. Forward and dx run one task
/// per block of rows; the weight and bias gradients run one task per block of columns, each
/// summing over all rows, so no two tasks write the same element.
/// </summary>
internal static unsafe class NormalizationKernel
{
    private const int ColumnsPerTask = 64;

    /// <summary>Runs the forward of <paramref name="body"/> (rows) on all cores.</summary>
    public static void Forward(in Rows body) => WorkerPool.For(Chunks.Count(body.RowCount, body.RowsPerTask), body);

    /// <summary>Runs the backward: dx by rows, then dWeight and dBias by columns.</summary>
    public static void Backward(in Rows body)
    {
        WorkerPool.For(Chunks.Count(body.RowCount, body.RowsPerTask), body);
        WorkerPool.For(Chunks.Count(body.C, ColumnsPerTask), new ParamGrads { R = body });
    }

    /// <summary>
    /// Operands of one norm; <see cref="Mean"/> is null for RMSNorm, <see cref="Dy"/> null in the
    /// forward. With <see cref="AddA"/> and <see cref="AddB"/> the forward first writes each row of
    /// X as their sum (the fused residual add), while the row is in cache.
    /// </summary>
    public struct Rows : IParallelBody
    {
        public float* AddA;
        public float* AddB;
        public float* X;
        public float* Weight;
        public float* Bias;
        public float* Y;
        public float* Mean;
        public float* Rstd;
        public float* Dy;
        public float* Dx;
        public float* DWeight;
        public float* DBias;
        public long RowCount;
        public int C;
        public float Eps;
        public bool Rms;

        public readonly int RowsPerTask => Chunks.RowsPerTask(C);

        public readonly void Run(int index)
        {
            (long r0, int n) = Chunks.Range(index, RowCount, RowsPerTask);
            for (long r = r0; r < r0 + n; r++)
            {
                if (Dy == null)
                {
                    ForwardRow(r);
                }
                else
                {
                    BackwardRow(r);
                }
            }
        }

        private readonly void ForwardRow(long r)
        {
            if (AddA != null)
            {
                ElementwiseKernel.Add(new ReadOnlySpan<float>(AddA + (r * C), C), new ReadOnlySpan<float>(AddB + (r * C), C), new Span<float>(X + (r * C), C));
            }

            var x = new ReadOnlySpan<float>(X + (r * C), C);
            var y = new Span<float>(Y + (r * C), C);
            float mean = 0f;
            if (!Rms)
            {
                double s = 0;
                foreach (float v in x)
                {
                    s += v;
                }

                mean = (float)(s / C);
            }

            double ss = 0;
            foreach (float v in x)
            {
                ss += (v - mean) * (double)(v - mean);
            }

            float rstd = (float)(1.0 / Math.Sqrt((ss / C) + Eps));
            for (int i = 0; i < C; i++)
            {
                y[i] = ((x[i] - mean) * rstd * Weight[i]) + (Bias == null ? 0f : Bias[i]);
            }

            if (!Rms)
            {
                Mean[r] = mean;
            }

            Rstd[r] = rstd;
        }

        // dx += rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ ⊙ x̂)), dx̂ = dy ⊙ w; RMSNorm drops the mean(dx̂) term.
        private readonly void BackwardRow(long r)
        {
            float* x = X + (r * C), dy = Dy + (r * C), dx = Dx + (r * C);
            float mean = Rms ? 0f : Mean[r], rstd = Rstd[r];
            double sumD = 0, sumDX = 0;
            for (int i = 0; i < C; i++)
            {
                float d = dy[i] * Weight[i];
                sumD += d;
                sumDX += d * (double)((x[i] - mean) * rstd);
            }

            float meanD = Rms ? 0f : (float)(sumD / C), meanDX = (float)(sumDX / C);
            for (int i = 0; i < C; i++)
            {
                float xhat = (x[i] - mean) * rstd;
                dx[i] += rstd * ((dy[i] * Weight[i]) - meanD - (xhat * meanDX));
            }
        }
    }

    /// <summary>dWeight[c] += Σ_rows dy·x̂, dBias[c] += Σ_rows dy, for one block of columns.</summary>
    private struct ParamGrads : IParallelBody
    {
        public Rows R;

        public readonly void Run(int index)
        {
            int c0 = index * ColumnsPerTask, c1 = Math.Min(R.C, c0 + ColumnsPerTask);
            for (long r = 0; r < R.RowCount; r++)
            {
                float* x = R.X + (r * R.C), dy = R.Dy + (r * R.C);
                float mean = R.Rms ? 0f : R.Mean[r], rstd = R.Rstd[r];
                for (int c = c0; c < c1; c++)
                {
                    R.DWeight[c] += dy[c] * (x[c] - mean) * rstd;
                    if (R.DBias != null)
                    {
                        R.DBias[c] += dy[c];
                    }
                }
            }
        }
    }
}
