namespace RA3.Kernels.Cpu;

/// <summary>
/// Plain causal attention with grouped-query heads: q [B, T, Hq, D], k, v [B, T, Hkv, D],
/// probs [B, Hq, T, T], scale 1/√D. The forward runs one task per (batch, query head); the
/// backward one task per (batch, kv head), looping over the query heads of its group, so dk and
/// dv have a single writer. Rows use the SIMD dot and axpy of <see cref="Simd"/>.
/// </summary>
internal static unsafe class AttentionKernel
{
    /// <summary>Operands; <see cref="DOut"/> is null in the forward.</summary>
    public struct Body : IParallelBody
    {
        public float* Q;
        public float* K;
        public float* V;
        public float* Out;
        public float* Probs;
        public float* DOut;
        public float* DQ;
        public float* DK;
        public float* DV;
        public int B;
        public int T;
        public int Hq;
        public int Hkv;
        public int D;

        public readonly int Tasks => DOut == null ? B * Hq : B * Hkv;

        public readonly void Run(int index)
        {
            if (DOut == null)
            {
                Forward(index / Hq, index % Hq);
            }
            else
            {
                int b = index / Hkv, hk = index % Hkv, group = Hq / Hkv;
                for (int h = hk * group; h < (hk + 1) * group; h++)
                {
                    Backward(b, h, hk);
                }
            }
        }

        private readonly long QRow(int b, int t, int h) => ((((long)b * T) + t) * Hq + h) * D;

        private readonly long KvRow(int b, int t, int h) => ((((long)b * T) + t) * Hkv + h) * D;

        private readonly Span<float> Row(float* p, long offset) => new(p + offset, D);

        private readonly void Forward(int b, int h)
        {
            int hk = h / (Hq / Hkv);
            float scale = 1f / MathF.Sqrt(D);
            for (int i = 0; i < T; i++)
            {
                var p = new Span<float>(Probs + ((((long)b * Hq) + h) * T + i) * T, T);
                var q = Row(Q, QRow(b, i, h));
                for (int j = 0; j <= i; j++)
                {
                    p[j] = Simd.Dot(q, Row(K, KvRow(b, j, hk))) * scale;
                }

                var live = p[..(i + 1)];
                Simd.Scale(live, 1f / Simd.ExpShifted(live, Simd.Max(live), live), live);
                p[(i + 1)..].Clear();
                var o = Row(Out, QRow(b, i, h));
                o.Clear();
                for (int j = 0; j <= i; j++)
                {
                    Simd.Axpy(p[j], Row(V, KvRow(b, j, hk)), o);
                }
            }
        }

        // ds_ij = p_ij (dout_i·v_j − Σ_j' p_ij' dout_i·v_j'); dq_i += s Σ_j ds_ij k_j; dk_j += s ds_ij q_i; dv_j += p_ij dout_i.
        private readonly void Backward(int b, int h, int hk)
        {
            float scale = 1f / MathF.Sqrt(D);
            Span<float> dp = T <= 1024 ? stackalloc float[T] : new float[T];
            for (int i = 0; i < T; i++)
            {
                var p = new ReadOnlySpan<float>(Probs + ((((long)b * Hq) + h) * T + i) * T, i + 1);
                var dout = Row(DOut, QRow(b, i, h));
                float pdp = 0f;
                for (int j = 0; j <= i; j++)
                {
                    dp[j] = Simd.Dot(dout, Row(V, KvRow(b, j, hk)));
                    pdp += p[j] * dp[j];
                }

                var q = Row(Q, QRow(b, i, h));
                var dq = Row(DQ, QRow(b, i, h));
                for (int j = 0; j <= i; j++)
                {
                    float g = p[j] * (dp[j] - pdp) * scale;
                    long kv = KvRow(b, j, hk);
                    Simd.Axpy(g, Row(K, kv), dq);
                    Simd.Axpy(g, q, Row(DK, kv));
                    Simd.Axpy(p[j], dout, Row(DV, kv));
                }
            }
        }
    }

    /// <summary>Runs <paramref name="body"/> on all cores.</summary>
    public static void Run(in Body body) => WorkerPool.For(body.Tasks, body);
}
