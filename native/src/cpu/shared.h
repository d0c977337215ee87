// shared.h - pieces the CPU kernels share: the attention layout with its argument check, a
// single-product GEMM through the library's own ra3_gemm_f32 for kernels built from GEMM tiles, and
// the vectorised exp of their softmax rows.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
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

/**
 * y[i] = exp(x[i] - shift) for i in [0, n), returning their sum; y may be x, or null to only sum.
 * Eight lanes at a time (GCC vector extensions: AVX registers with -march=native, pairs of SSE
 * registers without): Cephes' expf — e^x = 2^k e^r with k = round(x / log 2), r reduced in two parts
 * and e^r a degree-7 polynomial — within 2 ulp of std::exp on the normal range, 0 below e^-87.3
 * (where std::exp is subnormal), clamped above e^88.3 (softmax rows have x - shift <= 0), NaN kept.
 * The last n mod 8 use std::exp. The softmax rows of the attention (fused, plain and decode),
 * segment scoring, softmax and cross-entropy kernels run through it rather than calling libm's
 * scalar expf once per score.
 */
inline float exp_shifted(const float* x, float shift, float* y, int64_t n) {
    typedef float v8f __attribute__((vector_size(32)));
    typedef int32_t v8i __attribute__((vector_size(32)));
    const v8f lo = v8f{} - 87.33654f, hi = v8f{} + 88.3f, zero = v8f{};  // 2^k stays a normal float: -126 <= k <= 127
    v8f acc{};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f v;
        std::memcpy(&v, x + i, sizeof v);
        v -= shift;
        const v8i under = v < lo;
        v = v > hi ? hi : v;
        v = v < lo ? lo : v;
        const v8f k = (v * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest: 1.5 * 2^23
        v8f r = v - k * 0.693359375f;
        r = r - k * -2.12194440e-4f;
        v8f e = r * 1.9875691500e-4f + 1.3981999507e-3f;
        e = e * r + 8.3334519073e-3f;
        e = e * r + 4.1665795894e-2f;
        e = e * r + 1.6666665459e-1f;
        e = e * r + 5.0000001201e-1f;
        e = e * (r * r) + r + 1.0f;
        const v8i bits = (__builtin_convertvector(k, v8i) + 127) << 23;
        v8f scale;
        std::memcpy(&scale, &bits, sizeof scale);
        e = under ? zero : e * scale;
        if (y) std::memcpy(y + i, &e, sizeof e);
        acc += e;
    }
    float sum = 0.0f;
    for (int lane = 0; lane < 8; ++lane) sum += acc[lane];
    for (; i < n; ++i) {
        const float e = std::exp(x[i] - shift);
        if (y) y[i] = e;
        sum += e;
    }
    return sum;
}

}  // namespace ra3
