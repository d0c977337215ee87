using RA3.Kernels.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using RA3.Kernels.Ops;
using RA3.Kernels.Reference;

namespace RA3.Kernels.Cpu;

/// <summary>
/// Register-blocked, packed SGEMM (the GotoBLAS/BLIS loop nest) on System.Runtime.Intrinsics.
/// For each KC-deep slice of K, op(B) is packed into NR-wide panels (shared), each task packs
/// its block of op(A) rows into MR-tall panels (thread-local), and an MR×NR micro-kernel keeps
/// all accumulators in vector registers: 8×32 with AVX-512 (16 zmm accumulators), 6×16 with
/// AVX2/FMA (12 ymm), and a scalar loop where neither is accelerated. Packing reads op(X)
/// through its transpose flag, so all four transpose cases share the kernel. The tile and the
/// blocking (KC, MC, NC) are a <see cref="GemmTuning"/>: the process's (<see cref="Tuning"/>,
/// measured per processor), or a kernel's own (the measurement's candidates).
/// </summary>
public sealed unsafe class GemmKernel : IDisposable
{
    private static readonly bool Vector512Stores = GemmTuning.Avx512;
    private static readonly bool Vectorized = GemmTuning.Avx512 || GemmTuning.Avx2;

    /// <summary>Largest M·N·K run one product per task when batched (a 256×256×64 attention tile).</summary>
    private const long SmallProduct = 1L << 22;

    [ThreadStatic]
    private static AlignedBuffer? packedA;

    [ThreadStatic]
    private static AlignedBuffer? threadPackedB;

    [ThreadStatic]
    private static AlignedBuffer? wideC;

    private readonly AlignedBuffer packedB = new();
    private readonly GemmTuning? own;

    /// <summary>A kernel that runs with the process's tuning (<see cref="Tuning"/>, read at each product), or with <paramref name="tuning"/>.</summary>
    public GemmKernel(GemmTuning? tuning = null)
    {
        if (tuning is { Runs: false })
        {
            throw new ArgumentException($"GEMM tuning {tuning}: this processor does not run its tile", nameof(tuning));
        }

        own = tuning;
    }

    /// <summary>
    /// The tuning every kernel without its own runs with: <see cref="GemmTuning.EnvironmentVariable"/>'s,
    /// else this processor's cached measurement, else <see cref="GemmTuning.Default"/> — set it to
    /// <see cref="GemmTuning.ForThisProcessor"/> to measure (the ra3 commands do), or to a run's
    /// recorded tuning to resume it bit for bit. Set it between products, never during one.
    /// </summary>
    public static GemmTuning Tuning
    {
        get;
        set => field = value is { Runs: true } ? value : throw new ArgumentException($"GEMM tuning {value}: this processor does not run its tile", nameof(value));
    } = GemmTuning.Cached();

    /// <summary>Whether <paramref name="g"/> runs on the packed kernels (a vector unit and K &gt; 0), which take bf16 operands too.</summary>
    internal static bool Packs(in GemmArgs g) => g.K > 0 && Vectorized;

    /// <summary>Description of the process's tuning, e.g. "avx2-6x16 kc256 mc96 nc3072", or "scalar".</summary>
    public static string Variant => Vectorized ? Tuning.ToString() : "scalar";

    private GemmTuning Current => own ?? Tuning;

    /// <summary>Frees the packing buffer.</summary>
    public void Dispose() => packedB.Dispose();

    /// <summary>
    /// Runs the product described by <paramref name="g"/> on host pointers. A batch of small
    /// products (attention tiles) runs one product per task, each packing into its thread's own
    /// buffers, instead of splitting every small product over all threads.
    /// </summary>
    internal void Run(in GemmArgs g, float* a, float* b, float* c, float* bias) => Run(g, new Operand(a), new Operand(b), new Operand(c), new Operand(bias));

    /// <summary>
    /// <see cref="Run(in GemmArgs, float*, float*, float*, float*)"/> with any operand stored as
    /// bfloat16: A and B are widened while they are packed (so the micro-kernels stay f32), a bf16
    /// bias is widened per tile and a bf16 C is read widened and written rounded. Needs a vector
    /// unit and K &gt; 0 (<see cref="Packs"/>); the caller runs the reference otherwise.
    /// </summary>
    internal void Run(in GemmArgs g, Operand a, Operand b, Operand c, Operand bias)
    {
        var tuning = Current;
        bool batchParallel = g.Batch >= 2 * WorkerPool.Threads && (long)g.M * g.N * g.K <= SmallProduct && Vectorized && g.K > 0;
        if (batchParallel)
        {
            WorkerPool.For(g.Batch, new BatchTask { G = g, A = a, B = b, C = c, Bias = bias, T = tuning });
            return;
        }

        if (SkinnyGemmKernel.Takes(g, a, c))
        {
            SkinnyGemmKernel.Run(g, a, b, c, bias);
            return;
        }

        if (!Packs(g))
        {
            // No vector unit to pack for (or nothing to sum): the reference tier's scalar GEMM.
            if (a.Bf16 || b.Bf16 || c.Bf16 || bias.Bf16)
            {
                throw new InvalidOperationException("the packed GEMM takes bf16 operands only when it packs (Packs); run the reference");
            }

            static int Span(int batch, long stride, long block) => checked((int)(((batch - 1) * stride) + block));
            ReferenceKernels.Gemm(
                g,
                new ReadOnlySpan<float>(a.P, Span(g.Batch, g.StrideA, (long)g.M * g.K)),
                new ReadOnlySpan<float>(b.P, Span(g.Batch, g.StrideB, (long)g.K * g.N)),
                new Span<float>(c.P, Span(g.Batch, g.StrideC, (long)g.M * g.N)),
                bias.P == null ? [] : new ReadOnlySpan<float>(bias.P, g.N));
            return;
        }

        for (int bi = 0; bi < g.Batch; bi++)
        {
            Blocked(Product.Of(g, a, b, c, bias, bi, tuning), packedB, parallel: true);
        }
    }

    /// <summary>The loop nest over K slices and column blocks; tasks run on the pool, or inline on this thread.</summary>
    private static void Blocked(Product p, AlignedBuffer pack, bool parallel)
    {
        if (p.C.Bf16 && p.K > p.KC)
        {
            // A bf16 C is rounded once, as the contract says: the K slices sum into an f32 copy.
            int count = checked(p.M * p.N);
            float* wide = (wideC ??= new AlignedBuffer()).Ensure(count);
            BFloat16.Widen(new ReadOnlySpan<ushort>(p.C.P, count), new Span<float>(wide, count));
            Blocked(p with { C = new Operand(wide) }, pack, parallel);
            BFloat16.Round(new ReadOnlySpan<float>(wide, count), new Span<ushort>(p.C.P, count));
            return;
        }

        int threads = parallel ? WorkerPool.Threads : 1;
        int mr = p.MR, nr = p.NR;
        for (int j0 = 0; j0 < p.N; j0 += p.NC)
        {
            int nc = Math.Min(p.NC, p.N - j0);
            int panels = (nc + nr - 1) / nr;
            for (int p0 = 0; p0 < p.K; p0 += p.KC)
            {
                int kc = Math.Min(p.KC, p.K - p0);
                float* pb = pack.Ensure((long)panels * nr * kc);
                For(parallel, panels, new PackB { P = p, Out = pb, P0 = p0, Kc = kc, J0 = j0, Nc = nc });

                // Rows per task: at most MC, few enough tasks that none is tiny, enough to feed
                // every thread; when rows run short, the column panels are split too.
                int mcBlock = Math.Max(mr, Math.Min(p.MC, RoundUp((p.M + threads - 1) / threads, mr)));
                int mBlocks = (p.M + mcBlock - 1) / mcBlock;
                int nChunks = Math.Min(panels, Math.Max(1, (2 * threads) / mBlocks));
                For(parallel, mBlocks * nChunks, new Macro
                {
                    P = p,
                    PackedB = pb,
                    P0 = p0,
                    Kc = kc,
                    J0 = j0,
                    Nc = nc,
                    McBlock = mcBlock,
                    NChunks = nChunks,
                    Panels = panels,
                    First = p0 == 0,
                });
            }
        }
    }

    private static void For<T>(bool parallel, int count, T body)
        where T : struct, IParallelBody
    {
        if (parallel)
        {
            WorkerPool.For(count, body);
            return;
        }

        for (int i = 0; i < count; i++)
        {
            body.Run(i);
        }
    }

    private static int RoundUp(int x, int m) => (x + m - 1) / m * m;

    // dst[MR, NR] (rows ld apart) = Σ_p ap[p, :] ⊗ bp[p, :], or += it when accumulate
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel512(int kc, float* ap, float* bp, float* dst, long ld, bool accumulate)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default;
        for (int k = 0; k < kc; k++)
        {
            var b0 = Vector512.Load(bp);
            var b1 = Vector512.Load(bp + 16);
            var a = Vector512.Create(ap[0]);
            c00 = Vector512.FusedMultiplyAdd(a, b0, c00);
            c01 = Vector512.FusedMultiplyAdd(a, b1, c01);
            a = Vector512.Create(ap[1]);
            c10 = Vector512.FusedMultiplyAdd(a, b0, c10);
            c11 = Vector512.FusedMultiplyAdd(a, b1, c11);
            a = Vector512.Create(ap[2]);
            c20 = Vector512.FusedMultiplyAdd(a, b0, c20);
            c21 = Vector512.FusedMultiplyAdd(a, b1, c21);
            a = Vector512.Create(ap[3]);
            c30 = Vector512.FusedMultiplyAdd(a, b0, c30);
            c31 = Vector512.FusedMultiplyAdd(a, b1, c31);
            a = Vector512.Create(ap[4]);
            c40 = Vector512.FusedMultiplyAdd(a, b0, c40);
            c41 = Vector512.FusedMultiplyAdd(a, b1, c41);
            a = Vector512.Create(ap[5]);
            c50 = Vector512.FusedMultiplyAdd(a, b0, c50);
            c51 = Vector512.FusedMultiplyAdd(a, b1, c51);
            a = Vector512.Create(ap[6]);
            c60 = Vector512.FusedMultiplyAdd(a, b0, c60);
            c61 = Vector512.FusedMultiplyAdd(a, b1, c61);
            a = Vector512.Create(ap[7]);
            c70 = Vector512.FusedMultiplyAdd(a, b0, c70);
            c71 = Vector512.FusedMultiplyAdd(a, b1, c71);
            ap += 8;
            bp += 32;
        }

        Row512(dst, c00, c01, accumulate);
        Row512(dst + ld, c10, c11, accumulate);
        Row512(dst + (2 * ld), c20, c21, accumulate);
        Row512(dst + (3 * ld), c30, c31, accumulate);
        Row512(dst + (4 * ld), c40, c41, accumulate);
        Row512(dst + (5 * ld), c50, c51, accumulate);
        Row512(dst + (6 * ld), c60, c61, accumulate);
        Row512(dst + (7 * ld), c70, c71, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Row512(float* row, Vector512<float> left, Vector512<float> right, bool accumulate)
    {
        if (accumulate)
        {
            left += Vector512.Load(row);
            right += Vector512.Load(row + 16);
        }

        left.Store(row);
        right.Store(row + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel256(int kc, float* ap, float* bp, float* dst, long ld, bool accumulate)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int k = 0; k < kc; k++)
        {
            var b0 = Vector256.Load(bp);
            var b1 = Vector256.Load(bp + 8);
            var a = Vector256.Create(ap[0]);
            c00 = Vector256.FusedMultiplyAdd(a, b0, c00);
            c01 = Vector256.FusedMultiplyAdd(a, b1, c01);
            a = Vector256.Create(ap[1]);
            c10 = Vector256.FusedMultiplyAdd(a, b0, c10);
            c11 = Vector256.FusedMultiplyAdd(a, b1, c11);
            a = Vector256.Create(ap[2]);
            c20 = Vector256.FusedMultiplyAdd(a, b0, c20);
            c21 = Vector256.FusedMultiplyAdd(a, b1, c21);
            a = Vector256.Create(ap[3]);
            c30 = Vector256.FusedMultiplyAdd(a, b0, c30);
            c31 = Vector256.FusedMultiplyAdd(a, b1, c31);
            a = Vector256.Create(ap[4]);
            c40 = Vector256.FusedMultiplyAdd(a, b0, c40);
            c41 = Vector256.FusedMultiplyAdd(a, b1, c41);
            a = Vector256.Create(ap[5]);
            c50 = Vector256.FusedMultiplyAdd(a, b0, c50);
            c51 = Vector256.FusedMultiplyAdd(a, b1, c51);
            ap += 6;
            bp += 16;
        }

        Row256(dst, c00, c01, accumulate);
        Row256(dst + ld, c10, c11, accumulate);
        Row256(dst + (2 * ld), c20, c21, accumulate);
        Row256(dst + (3 * ld), c30, c31, accumulate);
        Row256(dst + (4 * ld), c40, c41, accumulate);
        Row256(dst + (5 * ld), c50, c51, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Row256(float* row, Vector256<float> left, Vector256<float> right, bool accumulate)
    {
        if (accumulate)
        {
            left += Vector256.Load(row);
            right += Vector256.Load(row + 8);
        }

        left.Store(row);
        right.Store(row + 8);
    }

    /// <summary>A GEMM operand: its address and whether it is stored as bfloat16 (else float32).</summary>
    internal readonly struct Operand(void* p, bool bf16 = false)
    {
        public readonly float* P = (float*)p;
        public readonly bool Bf16 = bf16;

        /// <summary>Element <paramref name="i"/>, widened.</summary>
        public float this[long i]
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => Bf16 ? BFloat16.Widen(((ushort*)P)[i]) : P[i];
        }

        /// <summary>The operand <paramref name="elements"/> further on.</summary>
        public Operand Skip(long elements) => new(Bf16 ? (ushort*)P + elements : P + elements, Bf16);
    }

    /// <summary>One 2-D product with its leading dimensions.</summary>
    private struct Product
    {
        public Operand A;
        public Operand B;
        public Operand C;
        public Operand Bias;
        public int M;
        public int N;
        public int K;
        public int Lda;
        public int Ldb;
        public bool TransA;
        public bool TransB;
        public float Alpha;
        public float Beta;

        // The tuning's tile and blocking.
        public int MR;
        public int NR;
        public int KC;
        public int MC;
        public int NC;
        public bool Tile512;

        /// <summary>Product <paramref name="index"/> of the batch <paramref name="g"/>.</summary>
        public static Product Of(in GemmArgs g, Operand a, Operand b, Operand c, Operand bias, int index, GemmTuning t) => new()
        {
            MR = t.MR,
            NR = t.NR,
            KC = t.KC,
            MC = t.MC,
            NC = t.NC,
            Tile512 = t.Tile == GemmTile.Avx512x8x32,
            A = a.Skip(index * g.StrideA),
            B = b.Skip(index * g.StrideB),
            C = c.Skip(index * g.StrideC),
            Bias = bias,
            M = g.M,
            N = g.N,
            K = g.K,
            Lda = g.TransA ? g.M : g.K,
            Ldb = g.TransB ? g.K : g.N,
            TransA = g.TransA,
            TransB = g.TransB,
            Alpha = g.Alpha,
            Beta = g.Beta,
        };
    }

    /// <summary>One product of a batch on the calling worker thread, with that thread's packing buffers.</summary>
    private struct BatchTask : IParallelBody
    {
        public GemmArgs G;
        public Operand A;
        public Operand B;
        public Operand C;
        public Operand Bias;
        public GemmTuning T;

        public readonly void Run(int index) => Blocked(Product.Of(G, A, B, C, Bias, index, T), threadPackedB ??= new AlignedBuffer(), parallel: false);
    }

    /// <summary>Packs column panel <c>index</c> of op(B)[p0:p0+kc, j0:j0+nc] as [kc][NR], zero-padded.</summary>
    private struct PackB : IParallelBody
    {
        public Product P;
        public float* Out;
        public int P0;
        public int Kc;
        public int J0;
        public int Nc;

        public readonly void Run(int index)
        {
            int nr = P.NR, jr = index * nr;
            PackPanel(Out + ((long)index * Kc * nr), P.B, P.Ldb, !P.TransB, J0 + jr, Math.Min(nr, Nc - jr), nr, P0, Kc);
        }
    }

    /// <summary>
    /// One packed panel: <paramref name="count"/> lines (rows of op(A), or columns of op(B)) from
    /// <paramref name="first"/> over k in [p0, p0 + kc), stored k-major as [kc][width] with lines
    /// past count zero. <paramref name="alongPanel"/>: at each k the panel's lines are contiguous in
    /// memory (B as stored, a transposed A); otherwise each line is contiguous along k and lands
    /// every width floats. The layout and dtype are tested once per line, not per element (an
    /// element accessor here was a fifth of a training step's time).
    /// </summary>
    private static void PackPanel(float* dst, Operand src, long ld, bool alongPanel, int first, int count, int width, int p0, int kc)
    {
        if (alongPanel && !src.Bf16 && count == width && width % 8 == 0 && Vector256.IsHardwareAccelerated)
        {
            // Whole f32 lines a few vectors wide: copied in registers (a memmove call per line of
            // 16 floats cost as much as the copy).
            for (int k = 0; k < kc; k++)
            {
                float* from = src.P + ((long)(p0 + k) * ld) + first, to = dst + ((long)k * width);
                for (int j = 0; j < width; j += 8)
                {
                    Vector256.Store(Vector256.Load(from + j), to + j);
                }
            }

            return;
        }

        if (alongPanel)
        {
            for (int k = 0; k < kc; k++)
            {
                long at = ((long)(p0 + k) * ld) + first;
                var to = new Span<float>(dst + ((long)k * width), width);
                if (src.Bf16)
                {
                    BFloat16.Widen(new ReadOnlySpan<ushort>((ushort*)src.P + at, count), to[..count]);
                }
                else
                {
                    new ReadOnlySpan<float>(src.P + at, count).CopyTo(to);
                }

                to[count..].Clear();
            }

            return;
        }

        int k0 = 0;
        if (Avx.IsSupported && !src.Bf16 && count == width && (width == 6 || width % 8 == 0))
        {
            // Eight lines by eight k at a time: eight row loads, an in-register transpose, eight
            // stores along the panel (a 6-line A panel loads two lines of zeros and stores 6 wide).
            for (; k0 <= kc - 8; k0 += 8)
            {
                for (int line = 0; line < width; line += 8)
                {
                    TransposeLines(dst + ((long)k0 * width) + line, src.P + ((long)(first + line) * ld) + p0 + k0, ld, width, Math.Min(8, width - line));
                }
            }
        }

        for (int line = 0; line < width; line++)
        {
            float* d = dst + line;
            if (line >= count)
            {
                for (int k = 0; k < kc; k++)
                {
                    d[(long)k * width] = 0f;
                }
            }
            else if (src.Bf16)
            {
                ushort* from = (ushort*)src.P + ((long)(first + line) * ld) + p0;
                for (int k = 0; k < kc; k++)
                {
                    d[(long)k * width] = BFloat16.Widen(from[k]);
                }
            }
            else
            {
                float* from = src.P + ((long)(first + line) * ld) + p0;
                for (int k = k0; k < kc; k++)
                {
                    d[(long)k * width] = from[k];
                }
            }
        }
    }

    /// <summary>
    /// dst[k·width + l] = src[l·ld + k] for k &lt; 8 and l &lt; lines (6 or 8): an 8 × 8 transpose in
    /// ymm registers (unpack, shuffle, lane permute), lines past <paramref name="lines"/> read as zero.
    /// </summary>
    private static void TransposeLines(float* dst, float* src, long ld, int width, int lines)
    {
        var r0 = Avx.LoadVector256(src);
        var r1 = Avx.LoadVector256(src + ld);
        var r2 = Avx.LoadVector256(src + (2 * ld));
        var r3 = Avx.LoadVector256(src + (3 * ld));
        var r4 = Avx.LoadVector256(src + (4 * ld));
        var r5 = Avx.LoadVector256(src + (5 * ld));
        var r6 = lines == 8 ? Avx.LoadVector256(src + (6 * ld)) : Vector256<float>.Zero;
        var r7 = lines == 8 ? Avx.LoadVector256(src + (7 * ld)) : Vector256<float>.Zero;
        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44);
        var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44);
        var u7 = Avx.Shuffle(t5, t7, 0xEE);
        // Column k in k order: with six lines each 8-wide store's last two floats land on the
        // next k's first two, which that k's store then writes; the last k stores exactly six
        // (the panel may end there).
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + width, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + (2 * width), Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + (3 * width), Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + (4 * width), Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + (5 * width), Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + (6 * width), Avx.Permute2x128(u2, u6, 0x31));
        var last = Avx.Permute2x128(u3, u7, 0x31);
        if (lines == 8)
        {
            Avx.Store(dst + (7 * width), last);
        }
        else
        {
            Sse.Store(dst + (7 * width), last.GetLower());
            Sse.StoreLow(dst + (7 * width) + 4, last.GetUpper());
        }
    }

    /// <summary>Computes one (row block, panel chunk) of C from packed A and B panels.</summary>
    private struct Macro : IParallelBody
    {
        public Product P;
        public float* PackedB;
        public int P0;
        public int Kc;
        public int J0;
        public int Nc;
        public int McBlock;
        public int NChunks;
        public int Panels;
        public bool First;

        public readonly void Run(int index)
        {
            int mr = P.MR, nr = P.NR;
            int i0 = index / NChunks * McBlock, mc = Math.Min(McBlock, P.M - i0);
            int chunk = index % NChunks;
            int panelStart = (int)((long)Panels * chunk / NChunks), panelEnd = (int)((long)Panels * (chunk + 1) / NChunks);

            float* pa = (packedA ??= new AlignedBuffer()).Ensure((long)McBlock * Kc);
            for (int ir = 0; ir < mc; ir += mr)
            {
                PackPanel(pa + ((long)ir * Kc), P.A, P.Lda, P.TransA, i0 + ir, Math.Min(mr, mc - ir), mr, P0, Kc);
            }

            // A full tile of an f32 C goes from the accumulators straight into C when the store is
            // plain: C = acc (a first slice with beta 0) or C += acc (beta 1, or a later slice),
            // with alpha 1 and no bias to add. The same sums in the same order as Store's, which
            // takes every other tile through a buffer (a C.N-wide copy was 8 % of a training step).
            float beta = First ? P.Beta : 1f;
            bool direct = !P.C.Bf16 && P.Alpha == 1f && (beta == 0f || beta == 1f) && (!First || P.Bias.P == null);
            float* tile = stackalloc float[8 * 32];
            for (int panel = panelStart; panel < panelEnd; panel++)
            {
                int jr = panel * nr, cols = Math.Min(nr, Nc - jr);
                float* bp = PackedB + ((long)panel * Kc * nr);
                for (int ir = 0; ir < mc; ir += mr)
                {
                    int rows = Math.Min(mr, mc - ir);
                    bool straight = direct && rows == mr && cols == nr;
                    float* to = straight ? P.C.P + ((long)(i0 + ir) * P.N) + J0 + jr : tile;
                    long ld = straight ? P.N : nr;
                    bool accumulate = straight && beta == 1f;
                    if (P.Tile512)
                    {
                        Kernel512(Kc, pa + ((long)ir * Kc), bp, to, ld, accumulate);
                    }
                    else
                    {
                        Kernel256(Kc, pa + ((long)ir * Kc), bp, to, ld, accumulate);
                    }

                    if (!straight)
                    {
                        Store(tile, i0 + ir, rows, J0 + jr, cols);
                    }
                }
            }
        }

        // C[rows, cols] = alpha·tile + (first slice ? beta·C + bias : C)
        private readonly void Store(float* tile, int row0, int rows, int col0, int cols)
        {
            int nr = P.NR;
            float alpha = P.Alpha;
            float beta = First ? P.Beta : 1f;
            float* bias = First ? P.Bias.P : null;
            float* wideBias = stackalloc float[32];
            if (bias != null && P.Bias.Bf16)
            {
                BFloat16.Widen(new ReadOnlySpan<ushort>((ushort*)bias + col0, cols), new Span<float>(wideBias, cols));
                bias = wideBias - col0;
            }

            if (P.C.Bf16)
            {
                // A bf16 C: each element widened, summed in f32 and rounded once.
                for (int r = 0; r < rows; r++)
                {
                    ushort* c = (ushort*)P.C.P + ((long)(row0 + r) * P.N) + col0;
                    for (int j = 0; j < cols; j++)
                    {
                        float prior = beta == 0f ? 0f : beta * BFloat16.Widen(c[j]);
                        c[j] = BFloat16.Round(prior + (bias == null ? 0f : bias[col0 + j]) + (alpha * tile[(r * nr) + j]));
                    }
                }

                return;
            }

            for (int r = 0; r < rows; r++)
            {
                var t = new Span<float>(tile + (r * nr), cols);
                var c = new Span<float>(P.C.P + ((long)(row0 + r) * P.N) + col0, cols);
                int j = 0;
                if (Vector512Stores)
                {
                    for (; j <= cols - 16; j += 16)
                    {
                        var acc = Vector512.LoadUnsafe(ref t[j]) * alpha;
                        if (beta != 0f)
                        {
                            acc = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref c[j]), Vector512.Create(beta), acc);
                        }

                        if (bias != null)
                        {
                            acc += Vector512.Load(bias + col0 + j);
                        }

                        acc.StoreUnsafe(ref c[j]);
                    }
                }
                else
                {
                    for (; j <= cols - 8; j += 8)
                    {
                        var acc = Vector256.LoadUnsafe(ref t[j]) * alpha;
                        if (beta != 0f)
                        {
                            acc = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref c[j]), Vector256.Create(beta), acc);
                        }

                        if (bias != null)
                        {
                            acc += Vector256.Load(bias + col0 + j);
                        }

                        acc.StoreUnsafe(ref c[j]);
                    }
                }

                for (; j < cols; j++)
                {
                    float prior = beta == 0f ? 0f : beta * c[j];
                    c[j] = prior + (bias == null ? 0f : bias[col0 + j]) + (alpha * t[j]);
                }
            }
        }
    }

    /// <summary>A growable 64-byte-aligned scratch buffer.</summary>
    private sealed class AlignedBuffer : IDisposable
    {
        private float* data;
        private long capacity;

        ~AlignedBuffer() => Free();

        public float* Ensure(long floats)
        {
            if (floats > capacity)
            {
                Free();
                data = (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
                capacity = floats;
            }

            return data;
        }

        public void Dispose()
        {
            Free();
            GC.SuppressFinalize(this);
        }

        private void Free()
        {
            if (data != null)
            {
                NativeMemory.AlignedFree(data);
                data = null;
                capacity = 0;
            }
        }
    }
}
