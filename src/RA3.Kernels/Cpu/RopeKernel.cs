namespace RA3.Kernels.Cpu;

/// <summary>
/// Rotary position embedding in the Hugging Face rotate-half layout: within each head of D
/// elements, element i (i &lt; D/2) and element i + D/2 rotate by angle pos·invFreq[i]. The forward
/// writes y = R·x; the inverse accumulates dx += Rᵀ·dy. One task per (batch, time) row.
/// </summary>
internal static unsafe class RopeKernel
{
    /// <summary>One RoPE application over x [B, T, H, D].</summary>
    public struct Body : IParallelBody
    {
        public float* X;
        public int* Positions;
        public float* InvFreq;
        public float* Y;
        public int Heads;
        public int D;
        public bool Inverse;

        public readonly void Run(int row)
        {
            int half = D / 2;
            double pos = Positions[row];
            for (int i = 0; i < half; i++)
            {
                double angle = pos * InvFreq[i];
                float cos = (float)Math.Cos(angle), sin = (float)Math.Sin(angle);
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
