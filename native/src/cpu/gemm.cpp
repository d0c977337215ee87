// gemm.cpp - blocked, packed SGEMM for CPU hosts (the native backend's matmul).
//
// The classic GotoBLAS/BLIS structure: for each KC-deep slice of K, B is packed into NR-wide
// panels and each thread packs its MC-row block of A into MR-tall panels; an MR x NR
// micro-kernel keeps its accumulators in vector registers (GCC/Clang vector extensions, so
// the same source uses AVX-512, AVX2 or SSE as the build's -march allows). Edges are
// zero-padded in the packed panels and written back through a small tile.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../guard.h"

namespace {

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
constexpr int KC = 256;            // K slice: an A panel (MR x KC) and B panel (KC x NR) stay in L1/L2
constexpr int MC = 96;             // rows of A per thread block
constexpr int NC = 2048;           // columns of B per packed block (fits L2/L3)

struct Operand {
    const float* data;
    int64_t ld;
    bool trans;
    // Element (row, col) of op(X).
    float at(int64_t row, int64_t col) const { return trans ? data[col * ld + row] : data[row * ld + col]; }
};

// Packs rows [i0, i0+mc) x cols [p0, p0+kc) of op(A) into MR-tall panels: panel[p * MR + r].
void pack_a(const Operand& a, int i0, int mc, int p0, int kc, float* out) {
    for (int ir = 0; ir < mc; ir += MR) {
        const int rows = std::min(MR, mc - ir);
        for (int p = 0; p < kc; ++p) {
            for (int r = 0; r < rows; ++r) out[p * MR + r] = a.at(i0 + ir + r, p0 + p);
            for (int r = rows; r < MR; ++r) out[p * MR + r] = 0.0f;
        }
        out += static_cast<int64_t>(kc) * MR;
    }
}

// Packs rows [p0, p0+kc) x cols [j0, j0+nc) of op(B) into NR-wide panels: panel[p * NR + c].
void pack_b(const Operand& b, int p0, int kc, int j0, int nc, float* out) {
    for (int jr = 0; jr < nc; jr += NR) {
        const int cols = std::min(NR, nc - jr);
        float* panel = out + static_cast<int64_t>(jr / NR) * kc * NR;
        if (!b.trans && cols == NR) {
            for (int p = 0; p < kc; ++p)
                std::memcpy(panel + p * NR, b.data + (p0 + p) * b.ld + j0 + jr, sizeof(float) * NR);
            continue;
        }
        for (int p = 0; p < kc; ++p) {
            for (int c = 0; c < cols; ++c) panel[p * NR + c] = b.at(p0 + p, j0 + jr + c);
            for (int c = cols; c < NR; ++c) panel[p * NR + c] = 0.0f;
        }
    }
}

// acc (MR x NR, row-major) = sum_p ap[p, :] outer bp[p, :]
inline void micro_kernel(int kc, const float* __restrict ap, const float* __restrict bp, float* __restrict acc) {
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
        std::memcpy(acc + r * NR, &c0[r], kVecBytes);
        std::memcpy(acc + r * NR + VW, &c1[r], kVecBytes);
    }
}

void gemm_one(int m, int n, int k, const Operand& a, const Operand& b, float alpha, float beta,
              float* c, const float* bias, std::vector<float>& packed_b) {
    if (k == 0) {  // C = beta * C + bias: nothing to multiply
        for (int64_t i = 0; i < m; ++i)
            for (int j = 0; j < n; ++j)
                c[i * n + j] = (beta == 0.0f ? 0.0f : beta * c[i * n + j]) + (bias ? bias[j] : 0.0f);
        return;
    }
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
#pragma omp parallel
            {
                alignas(64) float tile[MR * NR];
                std::vector<float> packed_a(static_cast<size_t>(mc_block) * kc);
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
                            micro_kernel(kc, packed_a.data() + static_cast<int64_t>(ir) * kc, bp, tile);
                            for (int r = 0; r < rows; ++r) {
                                float* crow = c + static_cast<int64_t>(i0 + ir + r) * n + j0 + jr;
                                for (int col = 0; col < cols; ++col) {
                                    float prior = first ? (beta == 0.0f ? 0.0f : beta * crow[col]) : crow[col];
                                    if (first && bias) prior += bias[j0 + jr + col];
                                    crow[col] = prior + alpha * tile[r * NR + col];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

}  // namespace

extern "C" RA3_API ra3_status ra3_gemm_f32(int32_t batch, int32_t m, int32_t n, int32_t k,
                                           int32_t trans_a, int32_t trans_b, float alpha,
                                           const float* a, int64_t stride_a, const float* b,
                                           int64_t stride_b, float beta, float* c, int64_t stride_c,
                                           const float* bias) {
    return ra3::guarded("ra3_gemm_f32", [&] {
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
        std::vector<float> packed_b;
        for (int32_t bi = 0; bi < batch; ++bi) {
            const Operand oa{a + bi * stride_a, trans_a ? m : k, trans_a != 0};
            const Operand ob{b + bi * stride_b, trans_b ? k : n, trans_b != 0};
            gemm_one(m, n, k, oa, ob, alpha, beta, c + bi * stride_c, bias, packed_b);
        }
    });
}
