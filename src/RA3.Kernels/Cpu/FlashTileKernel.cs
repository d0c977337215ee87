using RA3.Kernels.Ops;

namespace RA3.Kernels.Cpu;

/// <summary>
/// The row kernels of the tiled fused attention (<see cref="Backend"/>'s flash driver does the
/// GEMMs): head layout changes, the online-softmax update of a score tile, the end of a query
/// block, and the dS of the backward. Tile kernels run one task per (batch, head) plane.
/// </summary>
internal static unsafe class FlashTileKernel
{
    /// <summary>
    /// [B, T, Hx, D] ↔ [B·Hq, T, D]: forward copies each kv head to every query head of its group;
    /// <see cref="Back"/> adds each group's query heads into their kv head. One task per (b, t).
    /// </summary>
    public struct Heads : IParallelBody
    {
        public float* X;
        public float* Dst;
        public int T;
        public int Hx;
        public int Hq;
        public int D;
        public bool Back;

        public readonly void Run(int bt)
        {
            int b = bt / T, t = bt % T, group = Hq / Hx;
            for (int h = 0; h < Hq; h++)
            {
                var head = new Span<float>(X + ((((long)bt * Hx) + (h / group)) * D), D);
                var plane = new Span<float>(Dst + ((((long)b * Hq) + h) * T + t) * D, D);
                if (Back)
                {
                    Simd.Axpy(1f, plane, head);
                }
                else
                {
                    head.CopyTo(plane);
                }
            }
        }
    }

    /// <summary>Online softmax over one score tile of plane p: mask, scale, running max/sum, rescale the output rows.</summary>
    public struct Forward : IParallelBody
    {
        public float* S;
        public float* O;
        public float* M;
        public float* L;
        public int* Lengths;
        public FlashTile Tile;

        public readonly void Run(int p)
        {
            var t = Tile;
            int n = Lengths == null ? t.T : Lengths[p / t.Hq];
            for (int r = 0; r < t.Br; r++)
            {
                int i = t.I0 + r;
                long row = ((long)p * t.T) + i;
                var s = new Span<float>(S + ((((long)p * t.Br) + r) * t.Bc), t.Bc);
                var o = new Span<float>(O + (row * t.D), t.D);
                if (t.First)
                {
                    M[row] = float.NegativeInfinity;
                    L[row] = 0f;
                    o.Clear();
                }

                if (i >= n)
                {
                    s.Clear();
                    continue;
                }

                int visible = Math.Min(t.Bc, i - t.J0 + 1);
                if (visible <= 0)
                {
                    s.Clear();
                    continue;
                }

                var live = s[..visible];
                Simd.Scale(live, t.Scale, live);
                float mNew = MathF.Max(M[row], Simd.Max(live)), rescale = MathF.Exp(M[row] - mNew);
                L[row] = (L[row] * rescale) + Simd.ExpShifted(live, mNew, live);
                s[visible..].Clear();
                if (rescale != 1f)
                {
                    Simd.Scale(o, rescale, o);
                }

                M[row] = mNew;
            }
        }
    }

    /// <summary>End of a query block of plane p: o /= l, m becomes lse; padded rows get zeros.</summary>
    public struct Finish : IParallelBody
    {
        public float* O;
        public float* M;
        public float* L;
        public int* Lengths;
        public FlashTile Tile;

        public readonly void Run(int p)
        {
            var t = Tile;
            int n = Lengths == null ? t.T : Lengths[p / t.Hq];
            for (int i = t.I0; i < t.I0 + t.Br; i++)
            {
                long row = ((long)p * t.T) + i;
                var o = new Span<float>(O + (row * t.D), t.D);
                if (i >= n)
                {
                    o.Clear();
                    M[row] = 0f;
                    continue;
                }

                Simd.Scale(o, 1f / L[row], o);
                M[row] += MathF.Log(L[row]);
            }
        }
    }

    /// <summary>Tile of plane p: p = exp(scale·s − lse) masked, dS = scale · p ⊙ (dP − rowDot).</summary>
    public struct Backward : IParallelBody
    {
        public float* P;
        public float* DS;
        public float* Lse;
        public float* RowDot;
        public int* Lengths;
        public FlashTile Tile;

        public readonly void Run(int p)
        {
            var t = Tile;
            int n = Lengths == null ? t.T : Lengths[p / t.Hq];
            for (int r = 0; r < t.Br; r++)
            {
                int i = t.I0 + r;
                long row = ((long)p * t.T) + i, offset = (((long)p * t.Br) + r) * t.Bc;
                var prob = new Span<float>(P + offset, t.Bc);
                var ds = new Span<float>(DS + offset, t.Bc);
                int visible = i < n ? Math.Clamp(i - t.J0 + 1, 0, t.Bc) : 0;
                var live = prob[..visible];
                Simd.Scale(live, t.Scale, live);
                Simd.ExpShifted(live, Lse[row], live);
                prob[visible..].Clear();
                float dot = RowDot[row];
                for (int j = 0; j < visible; j++)
                {
                    ds[j] = t.Scale * prob[j] * (ds[j] - dot);
                }

                ds[visible..].Clear();
            }
        }
    }

    /// <summary>out[r] = a[r] · b[r], 256 rows per task.</summary>
    public struct RowDot : IParallelBody
    {
        public float* A;
        public float* B;
        public float* Out;
        public int Rows;
        public int D;

        public readonly void Run(int index)
        {
            (long r0, int n) = Chunks.Range(index, Rows, 256);
            for (long r = r0; r < r0 + n; r++)
            {
                Out[r] = Simd.Dot(new ReadOnlySpan<float>(A + (r * D), D), new ReadOnlySpan<float>(B + (r * D), D));
            }
        }
    }
}
