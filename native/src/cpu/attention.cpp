// attention.cpp - plain causal attention with grouped-query heads (float32, CPU).
//
// q [B, T, Hq, D], k, v [B, T, Hkv, D], out [B, T, Hq, D], probs [B, Hq, T, T].
// Forward: probs[i, j] = softmax_j<=i(q_i . k_j / sqrt(D)), out_i = sum_j probs[i, j] v_j.
// Backward (accumulating): dv_j += sum_i p_ij dout_i; dp_ij = dout_i . v_j;
//   ds_ij = p_ij (dp_ij - sum_j' p_ij' dp_ij'); dq_i += ds_ij k_j / sqrt(D); dk_j += ds_ij q_i / sqrt(D).
// The backward runs one task per (batch, kv head) so the query heads sharing a kv head write
// dk and dv without races.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "shared.h"

namespace {

inline float dot(const float* a, const float* b, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

}  // namespace

extern "C" {

RA3_API ra3_status ra3_attention_forward_f32(int32_t batch, int32_t t, int32_t hq, int32_t hkv, int32_t d,
                                             const float* q, const float* k, const float* v, float* out,
                                             float* probs) {
    return ra3::guarded("ra3_attention_forward_f32", [&] {
        const ra3::AttentionDims s = ra3::check_attention(batch, t, hq, hkv, d);
        ra3::require(batch == 0 || t == 0 || (q && k && v && out && probs), "an argument is null");
        const float scale = 1.0f / std::sqrt(static_cast<float>(d));
        const int64_t group = s.hq / s.hkv;
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
        for (int64_t bi = 0; bi < s.b; ++bi) {
            for (int64_t h = 0; h < s.hq; ++h) {
                const int64_t hk = h / group;
                for (int64_t i = 0; i < s.t; ++i) {
                    const float* qi = q + s.q_index(bi, i, h);
                    float* p = probs + s.p_index(bi, h, i);
                    float m = -INFINITY;
                    for (int64_t j = 0; j <= i; ++j) {
                        p[j] = dot(qi, k + s.kv_index(bi, j, hk), s.d) * scale;
                        m = std::max(m, p[j]);
                    }
                    const float inv = 1.0f / ra3::exp_shifted(p, m, p, i + 1);
                    float* o = out + s.q_index(bi, i, h);
                    std::fill(o, o + s.d, 0.0f);
                    for (int64_t j = 0; j <= i; ++j) {
                        p[j] *= inv;
                        const float* vj = v + s.kv_index(bi, j, hk);
                        for (int64_t c = 0; c < s.d; ++c) o[c] += p[j] * vj[c];
                    }
                    std::fill(p + i + 1, p + s.t, 0.0f);
                }
            }
        }
    });
}

RA3_API ra3_status ra3_attention_backward_f32(int32_t batch, int32_t t, int32_t hq, int32_t hkv, int32_t d,
                                              const float* q, const float* k, const float* v, const float* probs,
                                              const float* dout, float* dq, float* dk, float* dv) {
    return ra3::guarded("ra3_attention_backward_f32", [&] {
        const ra3::AttentionDims s = ra3::check_attention(batch, t, hq, hkv, d);
        ra3::require(batch == 0 || t == 0 || (q && k && v && probs && dout && dq && dk && dv), "an argument is null");
        const float scale = 1.0f / std::sqrt(static_cast<float>(d));
        const int64_t group = s.hq / s.hkv;
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
        for (int64_t bi = 0; bi < s.b; ++bi) {
            for (int64_t hk = 0; hk < s.hkv; ++hk) {
                std::vector<float> ds(static_cast<size_t>(s.t));
                for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
                    for (int64_t i = 0; i < s.t; ++i) {
                        const float* p = probs + s.p_index(bi, h, i);
                        const float* doi = dout + s.q_index(bi, i, h);
                        float pdp = 0.0f;
                        for (int64_t j = 0; j <= i; ++j) {
                            ds[j] = dot(doi, v + s.kv_index(bi, j, hk), s.d);
                            pdp += p[j] * ds[j];
                        }
                        const float* qi = q + s.q_index(bi, i, h);
                        float* dqi = dq + s.q_index(bi, i, h);
                        for (int64_t j = 0; j <= i; ++j) {
                            const float g = p[j] * (ds[j] - pdp) * scale;
                            const float* kj = k + s.kv_index(bi, j, hk);
                            float* dkj = dk + s.kv_index(bi, j, hk);
                            float* dvj = dv + s.kv_index(bi, j, hk);
                            for (int64_t c = 0; c < s.d; ++c) {
                                dqi[c] += g * kj[c];
                                dkj[c] += g * qi[c];
                                dvj[c] += p[j] * doi[c];
                            }
                        }
                    }
                }
            }
        }
    });
}

}  // extern "C"
