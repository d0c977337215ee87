// segment.cpp - latent segment scoring (RA3 spec section 5): per-(sequence, line) sums of
// log softmax(h W^T)[target] and their gradients, without the [N*L, V] logits.
//
// Rows are processed in blocks of kRows; the vocabulary in chunks of kVocab. For each block and
// chunk, S = h_block W_chunk^T comes from ra3_gemm_f32 into a kRows x kVocab scratch (2 MiB),
// then each row updates a running (max, sum of exp, target logit). The backward recomputes S,
// turns it into dS = g (onehot - softmax) in place (g = dscores[sequence, line]), and takes
// dh_block += dS W_chunk and dW_chunk += dS^T h_block with two more GEMMs.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "shared.h"

namespace {

constexpr int64_t kRows = 256;
constexpr int64_t kVocab = 2048;

struct Problem {
    int64_t n, l, d, v, lines;
    const float* h;
    const float* w;
    const int32_t* targets;
    const int32_t* line_ids;
    int64_t rows() const { return n * l; }
};

Problem check(int32_t n, int32_t l, int32_t d, int32_t v, int32_t lines, const float* h, const float* w, const int32_t* targets,
              const int32_t* line_ids) {
    ra3::require(n >= 0 && l >= 0 && d > 0 && v > 0 && lines > 0,
                 "expected n, l >= 0 and d, v, lines > 0; got n=" + std::to_string(n) + " l=" + std::to_string(l) + " d=" +
                     std::to_string(d) + " v=" + std::to_string(v) + " lines=" + std::to_string(lines));
    const Problem p{n, l, d, v, lines, h, w, targets, line_ids};
    ra3::require(p.rows() == 0 || (h && w && targets && line_ids), "an argument is null");
    for (int64_t r = 0; r < p.rows(); ++r) {
        const int32_t line = line_ids[r];
        ra3::require(line >= -1 && line < lines, "line_ids[" + std::to_string(r) + "] = " + std::to_string(line) +
                                                     " is outside [-1, " + std::to_string(lines) + ")");
        ra3::require(line < 0 || (targets[r] >= 0 && targets[r] < v),
                     "targets[" + std::to_string(r) + "] = " + std::to_string(targets[r]) + " is outside [0, " + std::to_string(v) + ")");
    }
    return p;
}

/**
 * For each block of rows and chunk of the vocabulary: chunk [rb, vc] = h[r0 .. r0+rb] W[c0 .. c0+vc]^T
 * in a scratch buffer, then body(r0, rb, c0, vc, chunk) — the walk the forward and the backward share.
 */
template <typename Body>
void for_each_logits_chunk(const Problem& p, Body&& body) {
    const int64_t rows = p.rows();
    std::vector<float> chunk(static_cast<size_t>(std::min(kRows, std::max<int64_t>(rows, 1)) * std::min(kVocab, p.v)));
    for (int64_t r0 = 0; r0 < rows; r0 += kRows) {
        const int64_t rb = std::min(kRows, rows - r0);
        for (int64_t c0 = 0; c0 < p.v; c0 += kVocab) {
            const int64_t vc = std::min(kVocab, p.v - c0);
            ra3::gemm(rb, vc, p.d, false, true, 1.0f, p.h + r0 * p.d, p.w + c0 * p.d, 0.0f, chunk.data());
            body(r0, rb, c0, vc, chunk.data());
        }
    }
}

}  // namespace

extern "C" {

RA3_API ra3_status ra3_segment_scores_forward_f32(int32_t n, int32_t l, int32_t d, int32_t v, int32_t lines, const float* h,
                                                  const float* w, const int32_t* targets, const int32_t* line_ids, float* scores,
                                                  float* lse) {
    return ra3::guarded("ra3_segment_scores_forward_f32", [&] {
        const Problem p = check(n, l, d, v, lines, h, w, targets, line_ids);
        ra3::require(p.rows() == 0 || (scores && lse), "an output is null");
        const int64_t rows = p.rows();
        std::vector<float> mx(rows, -INFINITY), sum(rows, 0.0f), tgt(rows, 0.0f);
        for_each_logits_chunk(p, [&](int64_t r0, int64_t rb, int64_t c0, int64_t vc, const float* chunk) {
#pragma omp parallel for schedule(static)
            for (int64_t r = 0; r < rb; ++r) {
                const float* x = chunk + r * vc;
                const int64_t row = r0 + r, t = targets[row] - c0;
                if (t >= 0 && t < vc) tgt[row] = x[t];
                float cm = -INFINITY;
                for (int64_t i = 0; i < vc; ++i) cm = std::max(cm, x[i]);
                const float m = std::max(mx[row], cm);
                sum[row] = sum[row] * std::exp(mx[row] - m) + ra3::exp_shifted(x, m, nullptr, vc);
                mx[row] = m;
            }
        });
#pragma omp parallel for schedule(static)
        for (int64_t s = 0; s < p.n; ++s) {
            float* out = scores + s * p.lines;
            std::fill(out, out + p.lines, 0.0f);
            for (int64_t row = s * p.l; row < (s + 1) * p.l; ++row) {
                lse[row] = mx[row] + std::log(sum[row]);
                if (line_ids[row] >= 0) out[line_ids[row]] += tgt[row] - lse[row];
            }
        }
    });
}

RA3_API ra3_status ra3_segment_scores_backward_f32(int32_t n, int32_t l, int32_t d, int32_t v, int32_t lines, const float* h,
                                                   const float* w, const int32_t* targets, const int32_t* line_ids,
                                                   const float* lse, const float* dscores, float* dh, float* dw) {
    return ra3::guarded("ra3_segment_scores_backward_f32", [&] {
        const Problem p = check(n, l, d, v, lines, h, w, targets, line_ids);
        ra3::require(p.rows() == 0 || (lse && dscores && dh && dw), "an argument is null");
        for_each_logits_chunk(p, [&](int64_t r0, int64_t rb, int64_t c0, int64_t vc, float* chunk) {
#pragma omp parallel for schedule(static)
            for (int64_t r = 0; r < rb; ++r) {
                float* x = chunk + r * vc;
                const int64_t row = r0 + r, t = targets[row] - c0;
                const int32_t line = line_ids[row];
                const float g = line >= 0 ? dscores[(row / p.l) * p.lines + line] : 0.0f;
                if (g == 0.0f) {
                    std::fill(x, x + vc, 0.0f);
                    continue;
                }
                ra3::exp_shifted(x, lse[row], x, vc);
                for (int64_t i = 0; i < vc; ++i) x[i] *= -g;
                if (t >= 0 && t < vc) x[t] += g;
            }
            ra3::gemm(rb, p.d, vc, false, false, 1.0f, chunk, p.w + c0 * p.d, 1.0f, dh + r0 * p.d);
            ra3::gemm(vc, p.d, rb, true, false, 1.0f, chunk, p.h + r0 * p.d, 1.0f, dw + c0 * p.d);
        });
    });
}

}  // extern "C"
