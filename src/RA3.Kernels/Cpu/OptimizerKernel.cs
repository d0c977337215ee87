using RA3.Kernels.Ops;

namespace RA3.Kernels.Cpu;

/// <summary>The AdamW step and the sum of squares behind the gradient norm, chunked over the cores.</summary>
internal static unsafe class OptimizerKernel
{
    /// <summary>One AdamW update of <see cref="Count"/> parameters (see <see cref="AdamWSettings"/>).</summary>
    public struct AdamW : IParallelBody
    {
        public float* Param;
        public float* Grad;
        public float* M;
        public float* V;
        public long Count;
        public AdamWSettings S;
        public int Step;

        public readonly void Run(int index)
        {
            (long s, int n) = Chunks.Range(index, Count, Chunks.Elements);
            float b1 = S.Beta1, b2 = S.Beta2;
            float c1 = 1f - MathF.Pow(b1, Step), sqrtC2 = MathF.Sqrt(1f - MathF.Pow(b2, Step));
            float stepSize = S.LearningRate / c1, decay = 1f - (S.LearningRate * S.WeightDecay);
            for (long i = s; i < s + n; i++)
            {
                float g = Grad[i];
                float m = M[i] = (b1 * M[i]) + ((1f - b1) * g);
                float v = V[i] = (b2 * V[i]) + ((1f - b2) * g * g);
                Param[i] = (Param[i] * decay) - (stepSize * m / ((MathF.Sqrt(v) / sqrtC2) + S.Epsilon));
            }
        }
    }

    /// <summary>Per-chunk Σ x², written to <see cref="Partials"/>[chunk] in double.</summary>
    public struct SumOfSquares : IParallelBody
    {
        public float* X;
        public long Count;
        public double* Partials;

        public readonly void Run(int index)
        {
            (long s, int n) = Chunks.Range(index, Count, Chunks.Elements);
            var x = new ReadOnlySpan<float>(X + s, n);
            Partials[index] = Simd.Dot(x, x);
        }
    }
}
