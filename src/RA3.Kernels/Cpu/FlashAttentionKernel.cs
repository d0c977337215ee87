using System.Runtime.InteropServices;

namespace RA3.Kernels.Cpu;

/// <summary>
/// Fused causal attention on the CPU (see <see cref="Ops.Backend.FlashAttention"/>). Each task
/// first transposes its keys (and, for the backward, values) into Kᵀ [D, T] scratch, so a row of
/// scores is D broadcast-FMAs along the keys — vector lanes over keys, no horizontal sums — and
/// outputs are FMAs along D.
/// Forward: one task per (batch, query head); keys in tiles of <see cref="KeyTile"/> with an online
/// softmax (running max and sum, output rescaled), so no score matrix is kept.
/// Backward: one task per (batch, kv head) looping over its query heads, so dk and dv have a
/// single writer; p is recomputed from the saved lse: ds = p ⊙ (dout·v − dout·out).
/// </summary>
internal static unsafe class FlashAttentionKernel
{
    /// <summary>Keys per tile of the online softmax.</summary>
    public const int KeyTile = 128;

    /// <summary>Operands; <see cref="DOut"/> is null in the forward.</summary>
    public struct Body : IParallelBody
    {
        public float* Q;
        public float* K;
        public float* V;
        public int* Lengths;
        public float* Out;
        public float* Lse;
        public float* DOut;
        public float* DQ;
        public float* DK;
        public float* DV;
        public float* Scratch;   // per task: Kᵀ [D, T], Vᵀ [D, T], a score row [T] and a second row [T]
        public int B;
        public int T;
        public int Hq;
        public int Hkv;
        public int D;

        /// <summary>Floats of scratch one task needs.</summary>
        public readonly long ScratchPerTask => (2L * D * T) + (2L * T) + 64;

        public readonly int Tasks => DOut == null ? B * Hq : B * Hkv;

        public readonly void Run(int index)
        {
            float* scratch = Scratch + (index * ScratchPerTask);
            if (DOut == null)
            {
                Forward(index / Hq, index % Hq, scratch);
            }
            else
            {
                Backward(index / Hkv, index % Hkv, scratch);
            }
        }

        private readonly long QRow(int b, int t, int h) => ((((long)b * T) + t) * Hq + h) * D;

        private readonly long KvRow(int b, int t, int h) => ((((long)b * T) + t) * Hkv + h) * D;

        private readonly int Length(int b) => Lengths == null ? T : Lengths[b];

        /// <summary>dst [D, n] = src rows 0..n−1 of head hk, transposed.</summary>
        private readonly void Transpose(float* src, int b, int hk, int n, float* dst)
        {
            for (int j = 0; j < n; j++)
            {
                float* row = src + KvRow(b, j, hk);
                for (int c = 0; c < D; c++)
                {
                    dst[((long)c * T) + j] = row[c];
                }
            }
        }

        /// <summary>s[0..n) = scale · Σ_c x[c] · kt[c, j0 + j].</summary>
        private readonly void Scores(float* x, float* kt, int j0, int n, float scale, Span<float> s)
        {
            s.Clear();
            for (int c = 0; c < D; c++)
            {
                Simd.Axpy(x[c] * scale, new ReadOnlySpan<float>(kt + ((long)c * T) + j0, n), s);
            }
        }

        private readonly void Forward(int b, int h, float* scratch)
        {
            int hk = h / (Hq / Hkv), n = Length(b);
            float scale = 1f / MathF.Sqrt(D);
            float* kt = scratch;
            var s = new Span<float>(scratch + (2L * D * T), KeyTile);
            Transpose(K, b, hk, n, kt);
            for (int i = 0; i < T; i++)
            {
                var o = new Span<float>(Out + QRow(b, i, h), D);
                o.Clear();
                long li = ((((long)b * Hq) + h) * T) + i;
                if (i >= n)
                {
                    Lse[li] = 0f;
                    continue;
                }

                float m = float.NegativeInfinity, l = 0f;
                for (int j0 = 0; j0 <= i; j0 += KeyTile)
                {
                    int w = Math.Min(KeyTile, i + 1 - j0);
                    var tile = s[..w];
                    Scores(Q + QRow(b, i, h), kt, j0, w, scale, tile);
                    float mNew = MathF.Max(m, Simd.Max(tile)), rescale = MathF.Exp(m - mNew);
                    l = (l * rescale) + Simd.ExpShifted(tile, mNew, tile);
                    if (rescale != 1f)
                    {
                        Simd.Scale(o, rescale, o);
                    }

                    for (int j = 0; j < w; j++)
                    {
                        Simd.Axpy(tile[j], new ReadOnlySpan<float>(V + KvRow(b, j0 + j, hk), D), o);
                    }

                    m = mNew;
                }

                Simd.Scale(o, 1f / l, o);
                Lse[li] = m + MathF.Log(l);
            }
        }

        private readonly void Backward(int b, int hk, float* scratch)
        {
            int n = Length(b), group = Hq / Hkv;
            float scale = 1f / MathF.Sqrt(D);
            float* kt = scratch, vt = scratch + ((long)D * T);
            var p = new Span<float>(scratch + (2L * D * T), T);
            var dp = new Span<float>(scratch + (2L * D * T) + T, T);
            Transpose(K, b, hk, n, kt);
            Transpose(V, b, hk, n, vt);
            for (int h = hk * group; h < (hk + 1) * group; h++)
            {
                for (int i = 0; i < n; i++)
                {
                    float* qi = Q + QRow(b, i, h), doi = DOut + QRow(b, i, h);
                    var dout = new ReadOnlySpan<float>(doi, D);
                    float lse = Lse[((((long)b * Hq) + h) * T) + i];
                    float di = Simd.Dot(dout, new ReadOnlySpan<float>(Out + QRow(b, i, h), D));
                    var pi = p[..(i + 1)];
                    var dpi = dp[..(i + 1)];
                    Scores(qi, kt, 0, i + 1, scale, pi);
                    Simd.ExpShifted(pi, lse, pi);
                    Scores(doi, vt, 0, i + 1, 1f, dpi);
                    var dq = new Span<float>(DQ + QRow(b, i, h), D);
                    var q = new ReadOnlySpan<float>(qi, D);
                    for (int j = 0; j <= i; j++)
                    {
                        float ds = pi[j] * (dpi[j] - di) * scale;
                        long kv = KvRow(b, j, hk);
                        Simd.Axpy(ds, new ReadOnlySpan<float>(K + kv, D), dq);
                        Simd.Axpy(ds, q, new Span<float>(DK + kv, D));
                        Simd.Axpy(pi[j], dout, new Span<float>(DV + kv, D));
                    }
                }
            }
        }
    }

    /// <summary>Runs <paramref name="body"/> (whose scratch holds <see cref="Body.ScratchPerTask"/> floats per task) on all cores.</summary>
    public static void Run(in Body body) => WorkerPool.For(body.Tasks, body);
}
