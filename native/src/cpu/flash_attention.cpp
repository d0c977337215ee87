// flash_attention.cpp - fused causal attention with grouped-query heads (float32, CPU).
//
// q [B, T, Hq, D], k, v [B, T, Hkv, D], out [B, T, Hq, D], lse [B, Hq, T]; lengths [B] (may be
// NULL = T everywhere) marks right padding: query rows at or past a length get out = 0, lse = 0.
// FlashAttention-2's schedule on tiles of GEMMs. Forward, one task per (batch, query head):
// the head's q, k, v are gathered into contiguous [T, D] panels; for each block of kBlock query
// rows and each tile of kBlock keys up to the diagonal (the diagonal tile in strips of kStrip rows,
// each against the keys up to its last row), S = scale * Q K^T (ra3_gemm_f32, which
// runs single-threaded inside the task), the causal mask and an online softmax (running max m and
// sum l, output rows rescaled) turn S into P, and O += P V. lse = m + log l. No T x T matrix.
// Backward, one task per (batch, kv head) over its query heads (dk, dv have one writer): with
// P = exp(S - lse), dP = dO V^T, dS = scale * P (dP - rowsum(dO * O)): dQ += dS K, dK += dS^T Q,
// dV += P^T dO, all GEMMs on the panels. A sliding window (window > 0: query i sees keys
// i - window + 1 .. i) masks each row to that range and skips key tiles wholly before a block's window.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "shared.h"

namespace {

constexpr int64_t kBlock = 256;
constexpr int64_t kStrip = 64;

ra3::AttentionDims check(int32_t batch, int32_t t, int32_t hq, int32_t hkv, int32_t d, int32_t window, const int32_t* lengths) {
    const ra3::AttentionDims dims = ra3::check_attention(batch, t, hq, hkv, d);
    ra3::require(window >= 0, "window must be >= 0 (0 = every earlier key), got " + std::to_string(window));
    for (int32_t b = 0; lengths && b < batch; ++b)
        ra3::require(lengths[b] >= 0 && lengths[b] <= t,
                     "lengths[" + std::to_string(b) + "] = " + std::to_string(lengths[b]) + " is outside [0, " + std::to_string(t) + "]");
    return dims;
}

// The first key query i sees: 0, or i - window + 1 in a sliding window.
int64_t first_key(int64_t i, int64_t window) { return window == 0 ? 0 : std::max<int64_t>(0, i - window + 1); }

// The first key tile of a query block starting at i0.
int64_t first_tile(int64_t i0, int64_t window) { return first_key(i0, window) / kBlock * kBlock; }

// One product of the loop nest: query rows i0 .. i0 + rows against keys j0 .. j0 + cols.
struct Tile {
    int64_t i0, rows, j0, cols;
};

// How many tiles query block i0 .. i0 + br runs: the whole key tiles before its diagonal, then the
// diagonal tile's strips.
int64_t block_tiles(int64_t i0, int64_t br, int64_t window) { return (i0 - first_tile(i0, window)) / kBlock + (br + kStrip - 1) / kStrip; }

// Tile x of query block i0 .. i0 + br, in key order (the online softmax needs it): a whole key tile
// before the diagonal, or a strip of the diagonal tile (keys from i0: blocks and tiles are the same
// size) against the keys up to its last row, so the causal triangle costs 62.5 % of the square.
Tile block_tile(int64_t i0, int64_t br, int64_t x, int64_t window) {
    const int64_t first = first_tile(i0, window), before = (i0 - first) / kBlock;
    if (x < before) return {i0, br, first + x * kBlock, kBlock};
    const int64_t r0 = (x - before) * kStrip, rows = std::min(kStrip, br - r0);
    return {i0 + r0, rows, i0, r0 + rows};
}

// panel [n, D] = rows 0..n-1 of head h of x [B, T, H, D]
void gather(const float* x, int64_t heads, const ra3::AttentionDims& s, int64_t b, int64_t h, int64_t n, float* panel) {
    for (int64_t t = 0; t < n; ++t) std::copy_n(x + ((b * s.t + t) * heads + h) * s.d, s.d, panel + t * s.d);
}

}  // namespace

extern "C" {

RA3_API ra3_status ra3_flash_attention_forward_f32(int32_t batch, int32_t t, int32_t hq, int32_t hkv, int32_t d, int32_t window,
                                                   const float* q, const float* k, const float* v, const int32_t* lengths, float* out,
                                                   float* lse) {
    return ra3::guarded("ra3_flash_attention_forward_f32", [&] {
        const ra3::AttentionDims s = check(batch, t, hq, hkv, d, window, lengths);
        ra3::require(batch == 0 || t == 0 || (q && k && v && out && lse), "an argument is null");
        const float scale = 1.0f / std::sqrt(static_cast<float>(d));
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t task = 0; task < s.b * s.hq; ++task) {
            const int64_t b = task / s.hq, h = task % s.hq, hk = h / (s.hq / s.hkv), n = lengths ? lengths[b] : s.t;
            std::vector<float> qp(s.t * s.d), kp(s.t * s.d), vp(s.t * s.d), op(s.t * s.d, 0.0f), tile(kBlock * kBlock), m(s.t), l(s.t);
            gather(q, s.hq, s, b, h, n, qp.data());
            gather(k, s.hkv, s, b, hk, n, kp.data());
            gather(v, s.hkv, s, b, hk, n, vp.data());
            for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
                const int64_t br = std::min(kBlock, n - i0);
                std::fill(m.begin() + i0, m.begin() + i0 + br, -INFINITY);
                std::fill(l.begin() + i0, l.begin() + i0 + br, 0.0f);
                for (int64_t x = 0; x < block_tiles(i0, br, window); ++x) {
                    const Tile tl = block_tile(i0, br, x, window);
                    const int64_t bc = tl.cols;
                    ra3::gemm(tl.rows, bc, s.d, false, true, scale, qp.data() + tl.i0 * s.d, kp.data() + tl.j0 * s.d, 0.0f, tile.data());
                    for (int64_t r = 0; r < tl.rows; ++r) {
                        const int64_t i = tl.i0 + r, from = std::clamp<int64_t>(first_key(i, window) - tl.j0, 0, bc),
                                      to = std::clamp<int64_t>(i - tl.j0 + 1, 0, bc);
                        float* row = tile.data() + r * bc;
                        float mx = m[i];
                        for (int64_t j = from; j < to; ++j) mx = std::max(mx, row[j]);
                        if (from >= to) {
                            std::fill(row, row + bc, 0.0f);
                            continue;
                        }
                        std::fill(row, row + from, 0.0f);
                        std::fill(row + to, row + bc, 0.0f);
                        const float sum = ra3::exp_shifted(row + from, mx, row + from, to - from);
                        const float rescale = std::exp(m[i] - mx);
                        l[i] = l[i] * rescale + sum;
                        m[i] = mx;
                        for (int64_t c = 0; c < s.d; ++c) op[i * s.d + c] *= rescale;
                    }
                    ra3::gemm(tl.rows, s.d, bc, false, false, 1.0f, tile.data(), vp.data() + tl.j0 * s.d, 1.0f, op.data() + tl.i0 * s.d);
                }
            }
            for (int64_t i = 0; i < s.t; ++i) {
                float* o = out + s.q_index(b, i, h);
                const bool real = i < n;
                for (int64_t c = 0; c < s.d; ++c) o[c] = real ? op[i * s.d + c] / l[i] : 0.0f;
                lse[(b * s.hq + h) * s.t + i] = real ? m[i] + std::log(l[i]) : 0.0f;
            }
        }
    });
}

RA3_API ra3_status ra3_flash_attention_backward_f32(int32_t batch, int32_t t, int32_t hq, int32_t hkv, int32_t d, int32_t window,
                                                    const float* q, const float* k, const float* v, const int32_t* lengths,
                                                    const float* out, const float* lse, const float* dout, float* dq, float* dk,
                                                    float* dv) {
    return ra3::guarded("ra3_flash_attention_backward_f32", [&] {
        const ra3::AttentionDims s = check(batch, t, hq, hkv, d, window, lengths);
        ra3::require(batch == 0 || t == 0 || (q && k && v && out && lse && dout && dq && dk && dv), "an argument is null");
        const float scale = 1.0f / std::sqrt(static_cast<float>(d));
        const int64_t group = s.hq / s.hkv;
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t task = 0; task < s.b * s.hkv; ++task) {
            const int64_t b = task / s.hkv, hk = task % s.hkv, n = lengths ? lengths[b] : s.t;
            const size_t panel = static_cast<size_t>(s.t * s.d);
            std::vector<float> kp(panel), vp(panel), dkp(panel, 0.0f), dvp(panel, 0.0f), qp(panel), dop(panel), dqp(panel), rowdot(s.t);
            std::vector<float> p(kBlock * kBlock), ds(kBlock * kBlock);
            gather(k, s.hkv, s, b, hk, n, kp.data());
            gather(v, s.hkv, s, b, hk, n, vp.data());
            for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
                gather(q, s.hq, s, b, h, n, qp.data());
                gather(dout, s.hq, s, b, h, n, dop.data());
                std::fill(dqp.begin(), dqp.end(), 0.0f);
                for (int64_t i = 0; i < n; ++i) {
                    const float* o = out + s.q_index(b, i, h);
                    float acc = 0.0f;
                    for (int64_t c = 0; c < s.d; ++c) acc += dop[i * s.d + c] * o[c];
                    rowdot[i] = acc;
                }
                const float* row_lse = lse + (b * s.hq + h) * s.t;
                for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
                    const int64_t br = std::min(kBlock, n - i0);
                    for (int64_t x = 0; x < block_tiles(i0, br, window); ++x) {
                        const Tile tl = block_tile(i0, br, x, window);
                        const int64_t bc = tl.cols, rows = tl.rows, qi = tl.i0 * s.d, kj = tl.j0 * s.d;
                        ra3::gemm(rows, bc, s.d, false, true, scale, qp.data() + qi, kp.data() + kj, 0.0f, p.data());
                        ra3::gemm(rows, bc, s.d, false, true, 1.0f, dop.data() + qi, vp.data() + kj, 0.0f, ds.data());
                        for (int64_t r = 0; r < rows; ++r) {
                            const int64_t i = tl.i0 + r, from = std::clamp<int64_t>(first_key(i, window) - tl.j0, 0, bc),
                                          to = std::clamp<int64_t>(i - tl.j0 + 1, 0, bc);
                            float *pr = p.data() + r * bc, *dsr = ds.data() + r * bc;
                            const int64_t end = std::max(from, to);
                            ra3::exp_shifted(pr + from, row_lse[i], pr + from, end - from);
                            for (int64_t j = from; j < end; ++j) dsr[j] = scale * pr[j] * (dsr[j] - rowdot[i]);
                            for (float* row : {pr, dsr}) {
                                std::fill(row, row + from, 0.0f);
                                std::fill(row + end, row + bc, 0.0f);
                            }
                        }
                        ra3::gemm(rows, s.d, bc, false, false, 1.0f, ds.data(), kp.data() + kj, 1.0f, dqp.data() + qi);
                        ra3::gemm(bc, s.d, rows, true, false, 1.0f, ds.data(), qp.data() + qi, 1.0f, dkp.data() + kj);
                        ra3::gemm(bc, s.d, rows, true, false, 1.0f, p.data(), dop.data() + qi, 1.0f, dvp.data() + kj);
                    }
                }
                for (int64_t i = 0; i < n; ++i)
                    for (int64_t c = 0; c < s.d; ++c) dq[s.q_index(b, i, h) + c] += dqp[i * s.d + c];
            }
            for (int64_t j = 0; j < n; ++j)
                for (int64_t c = 0; c < s.d; ++c) {
                    dk[s.kv_index(b, j, hk) + c] += dkp[j * s.d + c];
                    dv[s.kv_index(b, j, hk) + c] += dvp[j * s.d + c];
                }
        }
    });
}

}  // extern "C"

extern "C" {

RA3_API ra3_status ra3_attention_decode_f32(int32_t batch, int32_t capacity, int32_t hq, int32_t hkv, int32_t d, int32_t window,
                                            const float* q, const float* k_new, const float* v_new, float* k_cache, float* v_cache,
                                            const int32_t* lengths, float* out) {
    return ra3::guarded("ra3_attention_decode_f32", [&] {
        ra3::require(batch >= 0 && capacity > 0 && hq > 0 && hkv > 0 && d > 0 && hq % hkv == 0,
                     "expected batch >= 0, capacity, d > 0 and hq a positive multiple of hkv");
        ra3::require(window >= 0, "window must be >= 0 (0 = every earlier key), got " + std::to_string(window));
        ra3::require(batch == 0 || (q && k_new && v_new && k_cache && v_cache && lengths && out), "an argument is null");
        for (int32_t b = 0; b < batch; ++b)
            ra3::require(lengths[b] >= 0 && lengths[b] < capacity, "lengths[" + std::to_string(b) + "] = " + std::to_string(lengths[b]) +
                                                                       " leaves no room in a cache of " + std::to_string(capacity));
        const int64_t row = static_cast<int64_t>(hkv) * d, group = hq / hkv;
        for (int64_t b = 0; b < batch; ++b) {  // append this step's key and value first
            std::copy_n(k_new + b * row, row, k_cache + (b * capacity + lengths[b]) * row);
            std::copy_n(v_new + b * row, row, v_cache + (b * capacity + lengths[b]) * row);
        }
        const float scale = 1.0f / std::sqrt(static_cast<float>(d));
#pragma omp parallel for schedule(static)
        for (int64_t task = 0; task < static_cast<int64_t>(batch) * hq; ++task) {
            const int64_t b = task / hq, h = task % hq, hk = h / group, n = lengths[b] + 1, start = first_key(lengths[b], window);
            const float* qi = q + task * d;
            float* o = out + task * d;
            std::vector<float> p(n);
            float m = -INFINITY;
            for (int64_t j = start; j < n; ++j) {
                const float* kj = k_cache + ((b * capacity + j) * hkv + hk) * d;
                float dot = 0.0f;
                for (int64_t c = 0; c < d; ++c) dot += qi[c] * kj[c];
                p[j] = dot * scale;
                m = std::max(m, p[j]);
            }
            const float sum = ra3::exp_shifted(p.data() + start, m, p.data() + start, n - start);
            std::fill(o, o + d, 0.0f);
            for (int64_t j = start; j < n; ++j) {
                const float* vj = v_cache + ((b * capacity + j) * hkv + hk) * d;
                for (int64_t c = 0; c < d; ++c) o[c] += p[j] / sum * vj[c];
            }
        }
    });
}

}  // extern "C"
