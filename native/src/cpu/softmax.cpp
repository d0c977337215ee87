// softmax.cpp - row softmax and token cross-entropy, forward and backward (float32, CPU).
// Rows are independent: OpenMP splits them over the cores. Max-subtracted for stability.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "shared.h"

namespace {

float row_max(const float* x, int cols) {
    float m = -INFINITY;
    for (int i = 0; i < cols; ++i) m = std::max(m, x[i]);
    return m;
}

// log(sum(exp(x))) computed with the row maximum subtracted.
float row_logsumexp(const float* x, int cols) {
    const float m = row_max(x, cols);
    if (m == -INFINITY) return -INFINITY;
    return m + std::log(ra3::exp_shifted(x, m, nullptr, cols));
}

void check_rows(int32_t rows, int32_t cols) {
    ra3::require(rows >= 0 && cols > 0,
                 "expected rows >= 0 and cols > 0, got rows=" + std::to_string(rows) + " cols=" + std::to_string(cols));
}

}  // namespace

extern "C" {

RA3_API ra3_status ra3_softmax_forward_f32(int32_t rows, int32_t cols, const float* x, float* y) {
    return ra3::guarded("ra3_softmax_forward_f32", [&] {
        check_rows(rows, cols);
        ra3::require(rows == 0 || (x && y), "x or y is null");
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; ++r) {
            const float* xr = x + r * cols;
            float* yr = y + r * cols;
            const float m = row_max(xr, cols);
            const float inv = 1.0f / ra3::exp_shifted(xr, m, yr, cols);
            for (int i = 0; i < cols; ++i) yr[i] *= inv;
        }
    });
}

RA3_API ra3_status ra3_softmax_backward_f32(int32_t rows, int32_t cols, const float* y, const float* dy,
                                            float* dx) {
    return ra3::guarded("ra3_softmax_backward_f32", [&] {
        check_rows(rows, cols);
        ra3::require(rows == 0 || (y && dy && dx), "y, dy or dx is null");
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; ++r) {
            const float* yr = y + r * cols;
            const float* dyr = dy + r * cols;
            float* dxr = dx + r * cols;
            float dot = 0.0f;
            for (int i = 0; i < cols; ++i) dot += yr[i] * dyr[i];
            for (int i = 0; i < cols; ++i) dxr[i] += yr[i] * (dyr[i] - dot);
        }
    });
}

RA3_API ra3_status ra3_cross_entropy_forward_f32(int32_t rows, int32_t vocab, const float* logits,
                                                 const int32_t* targets, float* losses) {
    return ra3::guarded("ra3_cross_entropy_forward_f32", [&] {
        check_rows(rows, vocab);
        ra3::require(rows == 0 || (logits && targets && losses), "logits, targets or losses is null");
        for (int64_t r = 0; r < rows; ++r)
            ra3::require(targets[r] < vocab, "targets[" + std::to_string(r) + "] = " + std::to_string(targets[r]) +
                                                 " is outside the vocabulary of " + std::to_string(vocab));
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; ++r) {
            const float* lr = logits + r * vocab;
            losses[r] = targets[r] < 0 ? 0.0f : row_logsumexp(lr, vocab) - lr[targets[r]];
        }
    });
}

RA3_API ra3_status ra3_cross_entropy_backward_f32(int32_t rows, int32_t vocab, const float* logits,
                                                  const int32_t* targets, const float* dlosses, float* dlogits) {
    return ra3::guarded("ra3_cross_entropy_backward_f32", [&] {
        check_rows(rows, vocab);
        ra3::require(rows == 0 || (logits && targets && dlosses && dlogits), "an argument is null");
        for (int64_t r = 0; r < rows; ++r)
            ra3::require(targets[r] < vocab, "targets[" + std::to_string(r) + "] = " + std::to_string(targets[r]) +
                                                 " is outside the vocabulary of " + std::to_string(vocab));
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; ++r) {
            if (targets[r] < 0) continue;
            const float* lr = logits + r * vocab;
            float* dr = dlogits + r * vocab;
            const float lse = row_logsumexp(lr, vocab);
            const float g = dlosses[r];
            // The row's probabilities a chunk at a time through the vectorised exp, into 4 KB of
            // stack that stays in L1, then accumulated: dlogits is added to, not written.
            float p[1024];
            for (int64_t c = 0; c < vocab; c += 1024) {
                const int64_t n = std::min<int64_t>(1024, vocab - c);
                ra3::exp_shifted(lr + c, lse, p, n);
                for (int64_t i = 0; i < n; ++i) dr[c + i] += g * p[i];
            }
            dr[targets[r]] -= g;
        }
    });
}

}  // extern "C"
