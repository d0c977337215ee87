// gemm.cpp - blocked, packed SGEMM for CPU hosts (the native backend's matmul).
//
// The classic GotoBLAS/BLIS structure: for each KC-deep slice of K, B is packed into NR-wide
// panels and each thread packs its MC-row block of A into MR-tall panels; an MR x NR
// micro-kernel keeps its accumulators in vector registers: FMA intrinsics, 8 x 32 with AVX-512
// and 6 x 16 with AVX2 (the build's -march picks), GCC/Clang vector extensions elsewhere. Edges
// are zero-padded in the packed panels and written back through a small tile; full tiles of a
// plain product (alpha 1, no bias) go from the accumulators straight into C.
//
// A handful of rows (M <= 16: a decode step's projections, a sampler's batch) takes gemm_skinny
// instead: B read once in place, no packing, columns split over the threads.
//
// Any operand may be stored as bfloat16 (ra3_gemm): packing widens it exactly, so the f32
// micro-kernel is unchanged. A bf16 C is read widened and rounded to nearest even once, after
// the last K slice (past one slice, the slices sum into an f32 copy). When A and B are both bf16
// and the processor has AVX512-BF16, a second loop nest packs them as bf16 pairs and an 8 x 32
// micro-kernel of vdpbf16ps does two multiply-adds per lane per instruction (gemm_one_dpbf16);
// its products are exact and it accumulates in f32, but it treats bf16 subnormals as zero, as
// the instruction does.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "../guard.h"

namespace {

inline float widen(uint16_t x) {
    const uint32_t bits = static_cast<uint32_t>(x) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

// Round to nearest even; NaN -> 0x7FC0 (the reference tier's rounding).
inline uint16_t round_bf16(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;
    return static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
constexpr int MR = 8;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
constexpr int MR = 6;
#else
constexpr int kVecBytes = 16;
constexpr int MR = 4;
#endif
typedef float vfloat __attribute__((vector_size(kVecBytes), aligned(4)));
constexpr int VW = kVecBytes / 4;  // floats per vector
constexpr int NR = 2 * VW;         // micro-tile width: two vectors
// The blocking, process-wide (ra3_gemm_set_blocking: a managed host passes the tuning it measured)
// and read once per product: KC, the K slice (an MR x KC panel of A and a KC x NR panel of B stay
// in L1/L2; it also sets the order of each element's sum); MC, rows of A per thread block (a
// multiple of 24, so of every MR); NC, columns of B per packed block (L2/L3).
std::atomic<int> block_kc{256}, block_mc{96}, block_nc{2048};

struct Operand {
    const void* data;
    int64_t ld;
    bool trans;
    bool bf16;
    // Element (row, col) of op(X), widened.
    float at(int64_t row, int64_t col) const {
        const int64_t i = trans ? col * ld + row : row * ld + col;
        return bf16 ? widen(static_cast<const uint16_t*>(data)[i]) : static_cast<const float*>(data)[i];
    }
    // Raw bf16 bits of element (row, col) (bf16 operands only).
    uint16_t bits(int64_t row, int64_t col) const { return static_cast<const uint16_t*>(data)[trans ? col * ld + row : row * ld + col]; }
};

// C, read and written as f32 or bf16.
struct Output {
    void* data;
    bool bf16;
    float get(int64_t i) const { return bf16 ? widen(static_cast<const uint16_t*>(data)[i]) : static_cast<const float*>(data)[i]; }
    void set(int64_t i, float x) const {
        if (bf16)
            static_cast<uint16_t*>(data)[i] = round_bf16(x);
        else
            static_cast<float*>(data)[i] = x;
    }
};

// Bias element j (f32 or bf16), or 0 without one.
struct Bias {
    const void* data;
    bool bf16;
    float at(int64_t j) const {
        if (!data) return 0.0f;
        return bf16 ? widen(static_cast<const uint16_t*>(data)[j]) : static_cast<const float*>(data)[j];
    }
};

inline float as_float(float x) { return x; }
inline float as_float(uint16_t x) { return widen(x); }

#if defined(__AVX__)
// out[k * width + l] = lines[l][p + k] for k < 8 and l < n (6 or 8): an 8 x 8 transpose in ymm
// registers, lines past n read as zero. Six lines are stored 8 wide in k order, each store's
// last two floats landing on the next k's first two, which its store then writes; the last k
// stores exactly six (the panel may end there).
inline void transpose_lines(const float* const* lines, int p, int n, int width, float* out) {
    __m256 r[8];
    for (int l = 0; l < 8; ++l) r[l] = l < n ? _mm256_loadu_ps(lines[l] + p) : _mm256_setzero_ps();
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    const __m256 columns[8] = {
        _mm256_permute2f128_ps(u0, u4, 0x20), _mm256_permute2f128_ps(u1, u5, 0x20), _mm256_permute2f128_ps(u2, u6, 0x20),
        _mm256_permute2f128_ps(u3, u7, 0x20), _mm256_permute2f128_ps(u0, u4, 0x31), _mm256_permute2f128_ps(u1, u5, 0x31),
        _mm256_permute2f128_ps(u2, u6, 0x31), _mm256_permute2f128_ps(u3, u7, 0x31),
    };
    for (int k = 0; k < 7; ++k) _mm256_storeu_ps(out + k * width, columns[k]);
    if (n == 8) {
        _mm256_storeu_ps(out + 7 * width, columns[7]);
    } else {
        _mm_storeu_ps(out + 7 * width, _mm256_castps256_ps128(columns[7]));
        _mm_storel_pi(reinterpret_cast<__m64*>(out + 7 * width + 4), _mm256_extractf128_ps(columns[7], 1));
    }
}
#endif

// One packed panel: `count` lines (rows of op(A), or columns of op(B)) from `first`, over k in
// [p0, p0 + kc), stored k-major as [kc][width] with lines past `count` zero. `along`: at each k
// the lines are contiguous in storage (B as stored, a transposed A); otherwise each line is
// contiguous along k. The layout and dtype are resolved once per panel, not per element (an
// accessor that tested both per element made packing a fifth of a training step).
template <typename T>
void pack_lines(const T* src, int64_t ld, bool along, int first, int count, int width, int p0, int kc, float* out) {
    if (along) {
        for (int p = 0; p < kc; ++p) {
            const T* from = src + static_cast<int64_t>(p0 + p) * ld + first;
            float* to = out + static_cast<int64_t>(p) * width;
            for (int l = 0; l < count; ++l) to[l] = as_float(from[l]);
            for (int l = count; l < width; ++l) to[l] = 0.0f;
        }
        return;
    }
    const T* lines[64];  // width <= 32 (NR), one pointer per line
    for (int l = 0; l < count; ++l) lines[l] = src + static_cast<int64_t>(first + l) * ld + p0;
    int p = 0;
#if defined(__AVX__)
    if constexpr (std::is_same_v<T, float>) {
        if (count == width && (width == 6 || width % 8 == 0))
            for (; p + 8 <= kc; p += 8)
                for (int l = 0; l < width; l += 8) transpose_lines(lines + l, p, std::min(8, width - l), width, out + static_cast<int64_t>(p) * width + l);
    }
#endif
    for (; p < kc; ++p) {
        float* to = out + static_cast<int64_t>(p) * width;
        for (int l = 0; l < count; ++l) to[l] = as_float(lines[l][p]);
        for (int l = count; l < width; ++l) to[l] = 0.0f;
    }
}

void pack_panel(const Operand& x, bool along, int first, int count, int width, int p0, int kc, float* out) {
    if (x.bf16)
        pack_lines(static_cast<const uint16_t*>(x.data), x.ld, along, first, count, width, p0, kc, out);
    else
        pack_lines(static_cast<const float*>(x.data), x.ld, along, first, count, width, p0, kc, out);
}

// Packs rows [i0, i0+mc) x cols [p0, p0+kc) of op(A) into MR-tall panels: panel[p * MR + r].
void pack_a(const Operand& a, int i0, int mc, int p0, int kc, float* out) {
    for (int ir = 0; ir < mc; ir += MR)
        pack_panel(a, a.trans, i0 + ir, std::min(MR, mc - ir), MR, p0, kc, out + static_cast<int64_t>(ir) * kc);
}

// Packs rows [p0, p0+kc) x cols [j0, j0+nc) of op(B) into NR-wide panels: panel[p * NR + c].
// The panels are packed in parallel: one thread packing them left the others waiting.
void pack_b(const Operand& b, int p0, int kc, int j0, int nc, float* out) {
    const int panels = (nc + NR - 1) / NR;
#pragma omp parallel for schedule(static)
    for (int panel = 0; panel < panels; ++panel) {
        const int jr = panel * NR;
        pack_panel(b, !b.trans, j0 + jr, std::min(NR, nc - jr), NR, p0, kc, out + static_cast<int64_t>(panel) * kc * NR);
    }
}

// dst (MR x NR, rows ld apart) = sum_p ap[p, :] outer bp[p, :], or += it with accumulate: a tile
// buffer, or C itself (see gemm_one). With AVX-512 and with AVX2 + FMA the
// kernel is written with intrinsics and one named accumulator per register, out of line: written
// with arrays of vector-extension types, GCC kept AVX2's 12 accumulators (of 16 ymm registers) on
// the stack, storing them every K step — 8x slower (23 GFLOP/s at 1024^3 on a 2-core Zen 3 whose
// FMA peak is ~190). The generic version serves other instruction sets.
#if defined(__AVX512F__)
#define RA3_ROW(r)                                  \
    a = _mm512_set1_ps(ap[r]);                      \
    c##r##0 = _mm512_fmadd_ps(a, b0, c##r##0);      \
    c##r##1 = _mm512_fmadd_ps(a, b1, c##r##1);
#define RA3_STORE(r)                                                                             \
    if (accumulate) {                                                                            \
        c##r##0 = _mm512_add_ps(c##r##0, _mm512_loadu_ps(dst + (r) * ld));                       \
        c##r##1 = _mm512_add_ps(c##r##1, _mm512_loadu_ps(dst + (r) * ld + VW));                  \
    }                                                                                            \
    _mm512_storeu_ps(dst + (r) * ld, c##r##0);                                                   \
    _mm512_storeu_ps(dst + (r) * ld + VW, c##r##1);
__attribute__((noinline)) void micro_kernel(int kc, const float* __restrict ap, const float* __restrict bp, float* __restrict dst, int64_t ld,
                                            bool accumulate) {
    static_assert(MR == 8 && NR == 32, "the AVX-512 kernel is 8 x 32");
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    __m512 c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
    for (int p = 0; p < kc; ++p) {
        const __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + VW);
        __m512 a;
        RA3_ROW(0) RA3_ROW(1) RA3_ROW(2) RA3_ROW(3) RA3_ROW(4) RA3_ROW(5) RA3_ROW(6) RA3_ROW(7)
        ap += MR;
        bp += NR;
    }
    RA3_STORE(0) RA3_STORE(1) RA3_STORE(2) RA3_STORE(3) RA3_STORE(4) RA3_STORE(5) RA3_STORE(6) RA3_STORE(7)
}
#undef RA3_ROW
#undef RA3_STORE
#elif defined(__AVX2__) && defined(__FMA__)
#define RA3_ROW(r)                                  \
    a = _mm256_broadcast_ss(ap + (r));              \
    c##r##0 = _mm256_fmadd_ps(a, b0, c##r##0);      \
    c##r##1 = _mm256_fmadd_ps(a, b1, c##r##1);
#define RA3_STORE(r)                                                                             \
    if (accumulate) {                                                                            \
        c##r##0 = _mm256_add_ps(c##r##0, _mm256_loadu_ps(dst + (r) * ld));                       \
        c##r##1 = _mm256_add_ps(c##r##1, _mm256_loadu_ps(dst + (r) * ld + VW));                  \
    }                                                                                            \
    _mm256_storeu_ps(dst + (r) * ld, c##r##0);                                                   \
    _mm256_storeu_ps(dst + (r) * ld + VW, c##r##1);
__attribute__((noinline)) void micro_kernel(int kc, const float* __restrict ap, const float* __restrict bp, float* __restrict dst, int64_t ld,
                                            bool accumulate) {
    static_assert(MR == 6 && NR == 16, "the AVX2 kernel is 6 x 16");
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int p = 0; p < kc; ++p) {
        const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + VW);
        __m256 a;
        RA3_ROW(0) RA3_ROW(1) RA3_ROW(2) RA3_ROW(3) RA3_ROW(4) RA3_ROW(5)
        ap += MR;
        bp += NR;
    }
    RA3_STORE(0) RA3_STORE(1) RA3_STORE(2) RA3_STORE(3) RA3_STORE(4) RA3_STORE(5)
}
#undef RA3_ROW
#undef RA3_STORE
#else
inline void micro_kernel(int kc, const float* __restrict ap, const float* __restrict bp, float* __restrict dst, int64_t ld, bool accumulate) {
    vfloat c0[MR], c1[MR];
    for (int r = 0; r < MR; ++r) c0[r] = c1[r] = vfloat{};
    for (int p = 0; p < kc; ++p) {
        vfloat b0, b1;
        std::memcpy(&b0, bp, kVecBytes);
        std::memcpy(&b1, bp + VW, kVecBytes);
        for (int r = 0; r < MR; ++r) {
            const float av = ap[r];
            c0[r] += av * b0;
            c1[r] += av * b1;
        }
        ap += MR;
        bp += NR;
    }
    for (int r = 0; r < MR; ++r) {
        if (accumulate) {
            vfloat prior0, prior1;
            std::memcpy(&prior0, dst + r * ld, kVecBytes);
            std::memcpy(&prior1, dst + r * ld + VW, kVecBytes);
            c0[r] += prior0;
            c1[r] += prior1;
        }
        std::memcpy(dst + r * ld, &c0[r], kVecBytes);
        std::memcpy(dst + r * ld + VW, &c1[r], kVecBytes);
    }
}
#endif

// C[rows, cols] at (row0, col0) = alpha * tile + (first K slice ? beta * C + bias : C).
void store(const Output& c, int64_t n, int64_t row0, int64_t col0, int rows, int cols, const float* tile, int ld_tile, bool first,
           float alpha, float beta, const Bias& bias) {
    if (!c.bf16 && !bias.bf16) {
        // f32 C and bias: one branch-free loop per case, which the compiler vectorizes without
        // masked loads (a conditional read of the bias or of C became vmaskmovps, slow on Zen).
        const float* b = first && bias.data ? static_cast<const float*>(bias.data) + col0 : nullptr;
        const bool keep = !first || beta != 0.0f;  // C's prior value enters the sum
        const float scale = first ? beta : 1.0f;
        for (int r = 0; r < rows; ++r) {
            float* row = static_cast<float*>(c.data) + (row0 + r) * n + col0;
            const float* t = tile + r * ld_tile;
            if (keep && b)
                for (int col = 0; col < cols; ++col) row[col] = scale * row[col] + b[col] + alpha * t[col];
            else if (keep)
                for (int col = 0; col < cols; ++col) row[col] = scale * row[col] + alpha * t[col];
            else if (b)
                for (int col = 0; col < cols; ++col) row[col] = b[col] + alpha * t[col];
            else
                for (int col = 0; col < cols; ++col) row[col] = alpha * t[col];
        }
        return;
    }
    for (int r = 0; r < rows; ++r)
        for (int col = 0; col < cols; ++col) {
            const int64_t at = (row0 + r) * n + col0 + col;
            const float prior = first ? (beta == 0.0f ? 0.0f : beta * c.get(at)) + bias.at(col0 + col) : c.get(at);
            c.set(at, prior + alpha * tile[r * ld_tile + col]);
        }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define RA3_DPBF16 1
// The AVX512-BF16 loop nest: A and B packed as bf16 pairs along K (K rounded up to even, zero
// padded), an 8 x 32 micro-kernel of vdpbf16ps (16 f32 accumulators of 16 lanes).
constexpr int kDpMR = 8, kDpNR = 32;

__attribute__((target("avx512f,avx512bf16"))) void dp_micro_kernel(int pairs, const uint32_t* ap, const uint32_t* bp, float* tile) {
    __m512 c[kDpMR][2];
    for (int r = 0; r < kDpMR; ++r) c[r][0] = c[r][1] = _mm512_setzero_ps();
    for (int p = 0; p < pairs; ++p) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp + 16);
        for (int r = 0; r < kDpMR; ++r) {
            const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(ap[r]));
            c[r][0] = _mm512_dpbf16_ps(c[r][0], a, b0);
            c[r][1] = _mm512_dpbf16_ps(c[r][1], a, b1);
        }
        ap += kDpMR;
        bp += kDpNR;
    }
    for (int r = 0; r < kDpMR; ++r) {
        _mm512_storeu_ps(tile + r * kDpNR, c[r][0]);
        _mm512_storeu_ps(tile + r * kDpNR + 16, c[r][1]);
    }
}

// Two bf16 of op(A) at (row, k), (row, k + 1) — or of op(B) at (k, col), (k + 1, col) — in one
// 32-bit word, the low half first; a k + 1 past the slice is zero.
inline uint32_t pair_of_a(const Operand& a, int64_t row, int64_t k, int64_t kend) {
    return static_cast<uint32_t>(a.bits(row, k)) | (k + 1 < kend ? static_cast<uint32_t>(a.bits(row, k + 1)) << 16 : 0u);
}

inline uint32_t pair_of_b(const Operand& b, int64_t k, int64_t col, int64_t kend) {
    return static_cast<uint32_t>(b.bits(k, col)) | (k + 1 < kend ? static_cast<uint32_t>(b.bits(k + 1, col)) << 16 : 0u);
}

void gemm_one_dpbf16(int m, int n, int k, const Operand& a, const Operand& b, float alpha, float beta, const Output& c, const Bias& bias) {
    const int KC = block_kc.load(std::memory_order_relaxed), MC = block_mc.load(std::memory_order_relaxed), NC = block_nc.load(std::memory_order_relaxed);
    const int threads = ra3_cpu_threads();
    std::vector<uint32_t> packed_b;
    for (int j0 = 0; j0 < n; j0 += NC) {
        const int nc = std::min(NC, n - j0), panels = (nc + kDpNR - 1) / kDpNR;
        for (int p0 = 0; p0 < k; p0 += KC) {
            const int kc = std::min(KC, k - p0), pairs = (kc + 1) / 2;
            packed_b.assign(static_cast<size_t>(panels) * pairs * kDpNR, 0u);
            for (int panel = 0; panel < panels; ++panel)
                for (int p = 0; p < pairs; ++p)
                    for (int col = 0; col < std::min(kDpNR, nc - panel * kDpNR); ++col)
                        packed_b[(static_cast<size_t>(panel) * pairs + p) * kDpNR + col] = pair_of_b(b, p0 + 2 * p, j0 + panel * kDpNR + col, p0 + kc);
            const int per_thread = (m + threads - 1) / threads;
            const int mc_block = std::max(kDpMR, std::min(MC, (per_thread + kDpMR - 1) / kDpMR * kDpMR));
            const int blocks = (m + mc_block - 1) / mc_block;
#pragma omp parallel
            {
                alignas(64) float tile[kDpMR * kDpNR];
                std::vector<uint32_t> packed_a(static_cast<size_t>(mc_block) * pairs);
#pragma omp for schedule(dynamic, 1)
                for (int blk = 0; blk < blocks; ++blk) {
                    const int i0 = blk * mc_block, mc = std::min(mc_block, m - i0);
                    for (int ir = 0; ir < mc; ir += kDpMR)
                        for (int p = 0; p < pairs; ++p)
                            for (int r = 0; r < kDpMR; ++r)
                                packed_a[static_cast<size_t>(ir) * pairs + p * kDpMR + r] = ir + r < mc ? pair_of_a(a, i0 + ir + r, p0 + 2 * p, p0 + kc) : 0u;
                    for (int panel = 0; panel < panels; ++panel) {
                        const int cols = std::min(kDpNR, nc - panel * kDpNR);
                        for (int ir = 0; ir < mc; ir += kDpMR) {
                            dp_micro_kernel(pairs, packed_a.data() + static_cast<size_t>(ir) * pairs, packed_b.data() + static_cast<size_t>(panel) * pairs * kDpNR, tile);
                            store(c, n, i0 + ir, j0 + panel * kDpNR, std::min(kDpMR, mc - ir), cols, tile, kDpNR, p0 == 0, alpha, beta, bias);
                        }
                    }
                }
            }
        }
    }
}
#endif

// A handful of rows (M <= kSkinnyRows: a decode step, a sampler's batch): packing B would read,
// write and re-read every weight for a few FMAs each, so B is read once, in place — with B stored
// [N, K] (trans_b: nn.Linear's layout) each output is a dot product of an A row and a B row; with B
// stored [K, N] each C row segment accumulates A elements times B's row segments. Columns are split
// over the threads. A and C f32 (B may be bf16, widened as it is read).
constexpr int kSkinnyRows = 16;

bool skinny(int m, const Operand& a, const Output& c) { return m <= kSkinnyRows && !a.trans && !a.bf16 && !c.bf16; }

void gemm_skinny(int m, int n, int k, const Operand& a, const Operand& b, float alpha, float beta, const Output& c, const Bias& bias) {
    const float* ap = static_cast<const float*>(a.data);
    float* cp = static_cast<float*>(c.data);
    auto store = [&](int64_t i, int64_t j, float sum) {
        float& at = cp[i * n + j];
        at = (beta == 0.0f ? 0.0f : beta * at) + bias.at(j) + alpha * sum;
    };
    if (b.trans) {
#pragma omp parallel for schedule(static)
        for (int j = 0; j < n; ++j) {
            // C[i, j] = A_i . B_j over contiguous K, every row of A against this B row (in L1).
            for (int i = 0; i < m; ++i) {
                const float* ai = ap + static_cast<int64_t>(i) * a.ld;
                float s = 0.0f;
                if (!b.bf16) {
                    const float* bj = static_cast<const float*>(b.data) + static_cast<int64_t>(j) * b.ld;
#pragma omp simd reduction(+ : s)
                    for (int p = 0; p < k; ++p) s += ai[p] * bj[p];
                } else {
                    const uint16_t* bj = static_cast<const uint16_t*>(b.data) + static_cast<int64_t>(j) * b.ld;
#pragma omp simd reduction(+ : s)
                    for (int p = 0; p < k; ++p) s += ai[p] * widen(bj[p]);
                }
                store(i, j, s);
            }
        }
        return;
    }
    // B [K, N]: a block of 16 columns at a time, each row p of B read once as a segment.
    constexpr int kBlock = 16;
#pragma omp parallel for schedule(static)
    for (int j0 = 0; j0 < n; j0 += kBlock) {
        const int cols = std::min(kBlock, n - j0);
        float acc[kSkinnyRows][kBlock] = {};
        float segment[kBlock] = {};
        for (int p = 0; p < k; ++p) {
            for (int q = 0; q < cols; ++q) segment[q] = b.at(p, j0 + q);
            for (int i = 0; i < m; ++i) {
                const float av = ap[static_cast<int64_t>(i) * a.ld + p];
#pragma omp simd
                for (int q = 0; q < kBlock; ++q) acc[i][q] += av * segment[q];
            }
        }
        for (int i = 0; i < m; ++i)
            for (int q = 0; q < cols; ++q) store(i, j0 + q, acc[i][q]);
    }
}

// Whether the bf16 x bf16 GEMM runs on AVX512-BF16 dot products on this processor.
bool has_dpbf16() {
#if defined(RA3_DPBF16)
    static const bool has = __builtin_cpu_supports("avx512bf16");
    return has;
#else
    return false;
#endif
}

void gemm_one(int m, int n, int k, const Operand& a, const Operand& b, float alpha, float beta,
              const Output& c, const Bias& bias, std::vector<float>& packed_b) {
    const int KC = block_kc.load(std::memory_order_relaxed), MC = block_mc.load(std::memory_order_relaxed), NC = block_nc.load(std::memory_order_relaxed);
    if (c.bf16 && k > KC) {
        // A bf16 C is rounded once, as ra3.h says: the K slices sum into an f32 copy.
        const int64_t count = static_cast<int64_t>(m) * n;
        std::vector<float> wide(static_cast<size_t>(count));
        for (int64_t i = 0; i < count; ++i) wide[i] = c.get(i);
        gemm_one(m, n, k, a, b, alpha, beta, Output{wide.data(), false}, bias, packed_b);
        for (int64_t i = 0; i < count; ++i) c.set(i, wide[i]);
        return;
    }
    if (k == 0) {  // C = beta * C + bias: nothing to multiply
        for (int64_t i = 0; i < m; ++i)
            for (int j = 0; j < n; ++j) c.set(i * n + j, (beta == 0.0f ? 0.0f : beta * c.get(i * n + j)) + bias.at(j));
        return;
    }
    if (skinny(m, a, c)) {
        gemm_skinny(m, n, k, a, b, alpha, beta, c, bias);
        return;
    }
#if defined(RA3_DPBF16)
    if (a.bf16 && b.bf16 && has_dpbf16()) {
        gemm_one_dpbf16(m, n, k, a, b, alpha, beta, c, bias);
        return;
    }
#endif
    const int threads = ra3_cpu_threads();
    for (int j0 = 0; j0 < n; j0 += NC) {
        const int nc = std::min(NC, n - j0);
        const int nc_padded = (nc + NR - 1) / NR * NR;
        for (int p0 = 0; p0 < k; p0 += KC) {
            const int kc = std::min(KC, k - p0);
            const bool first = p0 == 0;
            packed_b.resize(static_cast<size_t>(nc_padded) * kc);
            pack_b(b, p0, kc, j0, nc, packed_b.data());
            // Rows per block: at most MC, but small enough that every thread gets a block.
            const int per_thread = (m + threads - 1) / threads;
            const int mc_block = std::max(MR, std::min(MC, (per_thread + MR - 1) / MR * MR));
            const int blocks = (m + mc_block - 1) / mc_block;
            // A full tile of an f32 C goes from the accumulators straight into C when the store is
            // plain: C = acc (a first slice with beta 0) or C += acc (beta 1, or a later slice),
            // with alpha 1 and no bias to add; the same sums as store()'s, which takes the rest.
            const float slice_beta = first ? beta : 1.0f;
            const bool direct = !c.bf16 && alpha == 1.0f && (slice_beta == 0.0f || slice_beta == 1.0f) && (!first || !bias.data);
#pragma omp parallel
            {
                alignas(64) float tile[MR * NR];
                thread_local std::vector<float> packed_a;
                packed_a.resize(static_cast<size_t>(mc_block) * kc);
#pragma omp for schedule(dynamic, 1)
                for (int blk = 0; blk < blocks; ++blk) {
                    const int i0 = blk * mc_block;
                    const int mc = std::min(mc_block, m - i0);
                    pack_a(a, i0, mc, p0, kc, packed_a.data());
                    for (int jr = 0; jr < nc; jr += NR) {
                        const int cols = std::min(NR, nc - jr);
                        const float* bp = packed_b.data() + static_cast<int64_t>(jr / NR) * kc * NR;
                        for (int ir = 0; ir < mc; ir += MR) {
                            const int rows = std::min(MR, mc - ir);
                            const float* ap = packed_a.data() + static_cast<int64_t>(ir) * kc;
                            if (direct && rows == MR && cols == NR) {
                                float* to = static_cast<float*>(c.data) + static_cast<int64_t>(i0 + ir) * n + j0 + jr;
                                micro_kernel(kc, ap, bp, to, n, slice_beta == 1.0f);
                                continue;
                            }
                            micro_kernel(kc, ap, bp, tile, NR, false);
                            store(c, n, i0 + ir, j0 + jr, rows, cols, tile, NR, first, alpha, beta, bias);
                        }
                    }
                }
            }
        }
    }
}

}  // namespace

extern "C" RA3_API ra3_status ra3_gemm(int32_t batch, int32_t m, int32_t n, int32_t k, int32_t trans_a, int32_t trans_b, float alpha,
                                       const void* a, ra3_dtype a_type, int64_t stride_a, const void* b, ra3_dtype b_type,
                                       int64_t stride_b, float beta, void* c, ra3_dtype c_type, int64_t stride_c, const void* bias,
                                       ra3_dtype bias_type) {
    return ra3::guarded("ra3_gemm", [&] {
        using ra3::require;
        require(batch >= 0 && m >= 0 && n >= 0 && k >= 0,
                "sizes must be non-negative, got batch=" + std::to_string(batch) + " m=" + std::to_string(m) +
                    " n=" + std::to_string(n) + " k=" + std::to_string(k));
        require(c != nullptr || batch == 0 || m == 0 || n == 0, "c is null");
        require((a != nullptr && b != nullptr) || k == 0 || m == 0 || n == 0 || batch == 0, "a or b is null");
        require(stride_a >= 0 && stride_b >= 0 && stride_c >= 0, "batch strides must be non-negative");
        require(batch <= 1 || stride_c >= static_cast<int64_t>(m) * n,
                "stride_c " + std::to_string(stride_c) + " overlaps batch outputs of " + std::to_string(m) + "x" +
                    std::to_string(n));
        for (const ra3_dtype type : {a_type, b_type, c_type, bias_type})
            require(type == RA3_DTYPE_F32 || type == RA3_DTYPE_BF16,
                    "an operand's dtype is " + std::to_string(static_cast<int>(type)) + ", not RA3_DTYPE_F32 or RA3_DTYPE_BF16");
        const int64_t sa = a_type == RA3_DTYPE_BF16 ? 2 : 4, sb = b_type == RA3_DTYPE_BF16 ? 2 : 4, sc = c_type == RA3_DTYPE_BF16 ? 2 : 4;
        std::vector<float> packed_b;
        for (int32_t bi = 0; bi < batch; ++bi) {
            const Operand oa{static_cast<const char*>(a) + bi * stride_a * sa, trans_a ? m : k, trans_a != 0, a_type == RA3_DTYPE_BF16};
            const Operand ob{static_cast<const char*>(b) + bi * stride_b * sb, trans_b ? k : n, trans_b != 0, b_type == RA3_DTYPE_BF16};
            const Output oc{static_cast<char*>(c) + bi * stride_c * sc, c_type == RA3_DTYPE_BF16};
            gemm_one(m, n, k, oa, ob, alpha, beta, oc, Bias{bias, bias_type == RA3_DTYPE_BF16}, packed_b);
        }
    });
}

extern "C" RA3_API ra3_status ra3_gemm_f32(int32_t batch, int32_t m, int32_t n, int32_t k, int32_t trans_a, int32_t trans_b, float alpha,
                                           const float* a, int64_t stride_a, const float* b, int64_t stride_b, float beta, float* c,
                                           int64_t stride_c, const float* bias) {
    return ra3_gemm(batch, m, n, k, trans_a, trans_b, alpha, a, RA3_DTYPE_F32, stride_a, b, RA3_DTYPE_F32, stride_b, beta, c, RA3_DTYPE_F32,
                    stride_c, bias, RA3_DTYPE_F32);
}

extern "C" RA3_API int32_t ra3_gemm_bf16_dot_products(void) { return has_dpbf16() ? 1 : 0; }

extern "C" RA3_API ra3_status ra3_gemm_set_blocking(int32_t kc, int32_t mc, int32_t nc) {
    return ra3::guarded("ra3_gemm_set_blocking", [&] {
        ra3::require(kc > 0 && mc > 0 && nc > 0 && kc <= 65536 && mc <= 65536 && nc <= 1 << 20,
                     "kc, mc and nc must be in 1..65536, 1..65536 and 1..1048576, got kc=" + std::to_string(kc) + " mc=" + std::to_string(mc) +
                         " nc=" + std::to_string(nc));
        block_kc.store(kc, std::memory_order_relaxed);
        block_mc.store((mc + 23) / 24 * 24, std::memory_order_relaxed);
        block_nc.store(nc, std::memory_order_relaxed);
    });
}
