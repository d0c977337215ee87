using System.Numerics;
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
    /// <see cref="Back"/> writes (or, with <see cref="Accumulate"/>, adds) the sum of each group's
    /// query heads into their kv head. One task per (b, block of <see cref="RowsPerTask"/> time steps).
    /// </summary>
    public struct Heads : IParallelBody
    {
        /// <summary>Time steps per task.</summary>
        public const int RowsPerTask = 32;

        public float* X;
        public float* Dst;
        public int T;
        public int Hx;
        public int Hq;
        public int D;
        public bool Back;
        public bool Accumulate;

        public readonly void Run(int index)
        {
            int blocks = Chunks.Count(T, RowsPerTask), b = index / blocks, t0 = index % blocks * RowsPerTask, group = Hq / Hx;
            for (int t = t0; t < Math.Min(T, t0 + RowsPerTask); t++)
            {
                long bt = ((long)b * T) + t;
                if (Back && !Accumulate)
                {
                    new Span<float>(X + (bt * Hx * D), Hx * D).Clear();
                }

                for (int h = 0; h < Hq; h++)
                {
                    var head = new Span<float>(X + (((bt * Hx) + (h / group)) * D), D);
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
    }

    /// <summary>Online softmax over one (scaled) score tile of plane p: mask, running max/sum, rescale the output rows.</summary>
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

                var (from, to) = t.VisibleKeys(i, n);
                if (from >= to)
                {
                    s.Clear();
                    continue;
                }

                var live = s[from..to];
                float mNew = MathF.Max(M[row], Simd.Max(live)), rescale = MathF.Exp(M[row] - mNew);
                L[row] = (L[row] * rescale) + Simd.ExpShifted(live, mNew, live);
                s[..from].Clear();
                s[to..].Clear();
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

    /// <summary>Tile of plane p: p = exp(s − lse) masked (s already scaled), dS = scale · p ⊙ (dP − rowDot).</summary>
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
                var (from, to) = t.VisibleKeys(i, n);
                to = Math.Max(from, to);
                var live = prob[from..to];
                Simd.ExpShifted(live, Lse[row], live);
                prob[..from].Clear();
                prob[to..].Clear();
                var dot = new Vector<float>(RowDot[row]);
                var scale = new Vector<float>(t.Scale);
                int j = from;
                for (; j + Vector<float>.Count <= to; j += Vector<float>.Count)
                {
                    var grad = scale * new Vector<float>(prob[j..]) * (new Vector<float>(ds[j..]) - dot);
                    grad.CopyTo(ds[j..]);
                }

                for (; j < to; j++)
                {
                    ds[j] = t.Scale * prob[j] * (ds[j] - dot[0]);
                }

                ds[..from].Clear();
                ds[to..].Clear();
            }
        }
    }

    /// <summary>Out[b·H + h, t] = A[b, t, h, :] · B[b, t, h, :]; one task per sequence b.</summary>
    public struct RowDot : IParallelBody
    {
        public float* A;
        public float* B;
        public float* Out;
        public int T;
        public int H;
        public int D;

        public readonly void Run(int b)
        {
            for (int t = 0; t < T; t++)
            {
                for (int h = 0; h < H; h++)
                {
                    long row = ((((long)b * T) + t) * H + h) * D;
                    Out[((((long)b * H) + h) * T) + t] = Simd.Dot(new ReadOnlySpan<float>(A + row, D), new ReadOnlySpan<float>(B + row, D));
                }
            }
        }
    }
}
