// shared.h - pieces the CPU kernels share: the attention layout with its argument check, and a
// single-product GEMM through the library's own ra3_gemm_f32 for kernels built from GEMM tiles.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../guard.h"

namespace ra3 {

/** Sizes of q [B, T, Hq, D], k and v [B, T, Hkv, D] and probabilities [B, Hq, T, T], with their row offsets. */
struct AttentionDims {
    int64_t b, t, hq, hkv, d;
    int64_t q_index(int64_t bi, int64_t ti, int64_t h) const { return ((bi * t + ti) * hq + h) * d; }
    int64_t kv_index(int64_t bi, int64_t ti, int64_t h) const { return ((bi * t + ti) * hkv + h) * d; }
    int64_t p_index(int64_t bi, int64_t h, int64_t ti) const { return ((bi * hq + h) * t + ti) * t; }
};

/** Checks the attention sizes (Hq a positive multiple of Hkv) and returns them. */
inline AttentionDims check_attention(int32_t batch, int32_t t, int32_t hq, int32_t hkv, int32_t d) {
    require(batch >= 0 && t >= 0 && hq > 0 && hkv > 0 && d > 0 && hq % hkv == 0,
            "expected batch, t >= 0, d > 0 and hq a positive multiple of hkv; got batch=" + std::to_string(batch) + " t=" +
                std::to_string(t) + " hq=" + std::to_string(hq) + " hkv=" + std::to_string(hkv) + " d=" + std::to_string(d));
    return AttentionDims{batch, t, hq, hkv, d};
}

/**
 * C [m, n] = alpha op(A) op(B) + beta C on contiguous operands. Called inside an OpenMP task it
 * runs single-threaded (nested parallel regions are inactive), which is what tiled kernels want.
 */
inline void gemm(int64_t m, int64_t n, int64_t k, bool ta, bool tb, float alpha, const float* a, const float* b, float beta, float* c) {
    const ra3_status s = ra3_gemm_f32(1, static_cast<int32_t>(m), static_cast<int32_t>(n), static_cast<int32_t>(k), ta, tb, alpha, a, 0,
                                      b, 0, beta, c, 0, nullptr);
    if (s != RA3_OK) throw std::runtime_error(std::string("gemm failed: ") + ra3_last_error());
}

}  // namespace ra3
