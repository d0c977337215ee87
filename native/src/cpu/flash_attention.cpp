// flash_attention.cpp - fused causal attention with grouped-query heads (float32, CPU).
//
// q [B, T, Hq, D], k, v [B, T, Hkv, D], out [B, T, Hq, D], lse [B, Hq, T]; lengths [B] (may be
// NULL = T everywhere) marks right padding: query rows at or past a length get out = 0, lse = 0.
// Forward, one task per (batch, query head): keys transposed to K^T [D, T] so a score row is D
// broadcast-FMAs along the keys; keys in tiles of kTile with an online softmax (running max and
// sum, output rescaled), so no T x T matrix exists; lse_i = m + log l is saved.
// Backward, one task per (batch, kv head) over its query heads (dk, dv have a single writer):
// p_ij = exp(s_ij - lse_i), dp_ij = dout_i . v_j, ds_ij = p_ij (dp_ij - dout_i . out_i);
// dq_i += ds_ij k_j / sqrt(D); dk_j += ds_ij q_i / sqrt(D); dv_j += p_ij dout_i.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../guard.h"

namespace {

constexpr int64_t kTile = 128;

struct Dims {
    int64_t b, t, hq, hkv, d;
    int64_t q(int64_t bi, int64_t ti, int64_t h) const { return ((bi * t + ti) * hq + h) * d; }
    int64_t kv(int64_t bi, int64_t ti, int64_t h) const { return ((bi * t + ti) * hkv + h) * d; }
};

Dims check(int32_t batch, int32_t t, int32_t hq, int32_t hkv, int32_t d, const int32_t* lengths) {
    ra3::require(batch >= 0 && t >= 0 && hq > 0 && hkv > 0 && d > 0 && hq % hkv == 0,
                 "expected batch, t >= 0, d > 0 and hq a positive multiple of hkv; got batch=" + std::to_string(batch) +
                     " t=" + std::to_string(t) + " hq=" + std::to_string(hq) + " hkv=" + std::to_string(hkv) + " d=" + std::to_string(d));
    for (int32_t b = 0; lengths && b < batch; ++b)
        ra3::require(lengths[b] >= 0 && lengths[b] <= t,
                     "lengths[" + std::to_string(b) + "] = " + std::to_string(lengths[b]) + " is outside [0, " + std::to_string(t) + "]");
    return Dims{batch, t, hq, hkv, d};
}

void transpose(const float* src, const Dims& s, int64_t b, int64_t hk, int64_t n, float* dst) {
    for (int64_t j = 0; j < n; ++j) {
        const float* row = src + s.kv(b, j, hk);
        for (int64_t c = 0; c < s.d; ++c) dst[c * s.t + j] = row[c];
    }
}

// out[0..n) = scale * sum_c x[c] * kt[c, j0 + j]
void scores(const float* x, const float* kt, const Dims& s, int64_t j0, int64_t n, float scale, float* out) {
    std::fill(out, out + n, 0.0f);
    for (int64_t c = 0; c < s.d; ++c) {
        const float a = x[c] * scale;
        const float* row = kt + c * s.t + j0;
        for (int64_t j = 0; j < n; ++j) out[j] += a * row[j];
    }
}

}  // namespace

extern "C" {

RA3_API ra3_status ra3_flash_attention_forward_f32(int32_t batch, int32_t t, int32_t hq, int32_t hkv, int32_t d, const float* q,
                                                   const float* k, const float* v, const int32_t* lengths, float* out, float* lse) {
    return ra3::guarded("ra3_flash_attention_forward_f32", [&] {
        const Dims s = check(batch, t, hq, hkv, d, lengths);
        ra3::require(batch == 0 || t == 0 || (q && k && v && out && lse), "an argument is null");
        const float scale = 1.0f / std::sqrt(static_cast<float>(d));
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t task = 0; task < s.b * s.hq; ++task) {
            const int64_t b = task / s.hq, h = task % s.hq, hk = h / (s.hq / s.hkv), n = lengths ? lengths[b] : s.t;
            std::vector<float> kt(static_cast<size_t>(s.d * s.t)), tile(kTile);
            transpose(k, s, b, hk, n, kt.data());
            for (int64_t i = 0; i < s.t; ++i) {
                float* o = out + s.q(b, i, h);
                std::fill(o, o + s.d, 0.0f);
                float* row_lse = lse + (b * s.hq + h) * s.t + i;
                if (i >= n) { *row_lse = 0.0f; continue; }
                float m = -INFINITY, l = 0.0f;
                for (int64_t j0 = 0; j0 <= i; j0 += kTile) {
                    const int64_t w = std::min(kTile, i + 1 - j0);
                    scores(q + s.q(b, i, h), kt.data(), s, j0, w, scale, tile.data());
                    float m_new = m;
                    for (int64_t j = 0; j < w; ++j) m_new = std::max(m_new, tile[j]);
                    const float rescale = std::exp(m - m_new);
                    l *= rescale;
                    for (int64_t c = 0; c < s.d; ++c) o[c] *= rescale;
                    for (int64_t j = 0; j < w; ++j) {
                        const float p = std::exp(tile[j] - m_new);
                        l += p;
                        const float* vj = v + s.kv(b, j0 + j, hk);
                        for (int64_t c = 0; c < s.d; ++c) o[c] += p * vj[c];
                    }
                    m = m_new;
                }
                for (int64_t c = 0; c < s.d; ++c) o[c] /= l;
                *row_lse = m + std::log(l);
            }
        }
    });
}

RA3_API ra3_status ra3_flash_attention_backward_f32(int32_t batch, int32_t t, int32_t hq, int32_t hkv, int32_t d, const float* q,
                                                    const float* k, const float* v, const int32_t* lengths, const float* out,
                                                    const float* lse, const float* dout, float* dq, float* dk, float* dv) {
    return ra3::guarded("ra3_flash_attention_backward_f32", [&] {
        const Dims s = check(batch, t, hq, hkv, d, lengths);
        ra3::require(batch == 0 || t == 0 || (q && k && v && out && lse && dout && dq && dk && dv), "an argument is null");
        const float scale = 1.0f / std::sqrt(static_cast<float>(d));
        const int64_t group = s.hq / s.hkv;
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t task = 0; task < s.b * s.hkv; ++task) {
            const int64_t b = task / s.hkv, hk = task % s.hkv, n = lengths ? lengths[b] : s.t;
            std::vector<float> kt(static_cast<size_t>(s.d * s.t)), vt(static_cast<size_t>(s.d * s.t)), p(s.t), dp(s.t);
            transpose(k, s, b, hk, n, kt.data());
            transpose(v, s, b, hk, n, vt.data());
            for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
                for (int64_t i = 0; i < n; ++i) {
                    const float* qi = q + s.q(b, i, h);
                    const float* doi = dout + s.q(b, i, h);
                    const float* oi = out + s.q(b, i, h);
                    const float row_lse = lse[(b * s.hq + h) * s.t + i];
                    float di = 0.0f;
                    for (int64_t c = 0; c < s.d; ++c) di += doi[c] * oi[c];
                    scores(qi, kt.data(), s, 0, i + 1, scale, p.data());
                    scores(doi, vt.data(), s, 0, i + 1, 1.0f, dp.data());
                    float* dqi = dq + s.q(b, i, h);
                    for (int64_t j = 0; j <= i; ++j) {
                        const float pj = std::exp(p[j] - row_lse), ds = pj * (dp[j] - di) * scale;
                        const float* kj = k + s.kv(b, j, hk);
                        float* dkj = dk + s.kv(b, j, hk);
                        float* dvj = dv + s.kv(b, j, hk);
                        for (int64_t c = 0; c < s.d; ++c) {
                            dqi[c] += ds * kj[c];
                            dkj[c] += ds * qi[c];
                            dvj[c] += pj * doi[c];
                        }
                    }
                }
            }
        }
    });
}

}  // extern "C"
