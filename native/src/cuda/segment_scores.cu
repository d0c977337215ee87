// segment_scores.cu - latent segment scoring on the GPU (RA3 spec section 5): per-(sequence, line)
// sums of log softmax(h W^T)[target] and their gradients without the [rows, V] logits.
//
// Rows go in blocks and the vocabulary in chunks sized so one f32 logits chunk holds at most
// kChunkElements; cuBLASLt computes each chunk (bf16 in, f32 out) and a warp per row folds it into a
// running (max, sum of exp, target logit). The backward recomputes each chunk, turns it into
// dS = g (onehot - softmax) in bf16, and takes dh += dS W_chunk and dW_chunk += dS^T h with two more
// products accumulating into the f32 gradients.
#include <cmath>

#include "common.cuh"
#include "gemm.h"

namespace ra3::cuda {

namespace {

constexpr int64_t kChunkElements = int64_t(8) << 20;  // 32 MiB of f32 logits per chunk

struct Plan {
    int64_t rows, block_rows, chunk;
    explicit Plan(int64_t r, int64_t v) : rows(r) {
        block_rows = std::min<int64_t>(r, 8192);
        chunk = std::min<int64_t>(v, std::max<int64_t>(256, (kChunkElements / std::max<int64_t>(block_rows, 1)) / 256 * 256));
    }
};

/** Folds logits chunk x [rows, vc] (vocabulary c0..c0+vc) into each row's running max, sum of exp and target logit; a warp per row. */
__global__ void fold_chunk_kernel(int64_t rows, int64_t vc, int64_t c0, const float* __restrict__ x, const int32_t* __restrict__ targets,
                                  float* __restrict__ run_max, float* __restrict__ run_sum, float* __restrict__ target_logit) {
    const int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const float* row = x + r * vc;
    float m = -INFINITY, s = 0.0f;
    for (int64_t i = lane; i < vc; i += 32) {
        const float value = row[i];
        if (value > m) {
            s = s * __expf(m - value) + 1.0f;
            m = value;
        } else {
            s += __expf(value - m);
        }
    }
    for (int offset = 16; offset > 0; offset /= 2) {
        const float om = __shfl_xor_sync(0xffffffffu, m, offset), os = __shfl_xor_sync(0xffffffffu, s, offset);
        const float nm = fmaxf(m, om);
        s = (nm == -INFINITY) ? 0.0f : s * __expf(m - nm) + os * __expf(om - nm);
        m = nm;
    }
    if (lane == 0) {
        const float pm = run_max[r], nm = fmaxf(pm, m);
        run_sum[r] = run_sum[r] * __expf(pm - nm) + s * __expf(m - nm);
        run_max[r] = nm;
        const int64_t t = targets[r] - c0;
        if (t >= 0 && t < vc) target_logit[r] = row[t];
    }
}

/** lse[r] = max + log(sum); scores[seq, line] += target logit - lse for rows with a line. */
__global__ void finish_kernel(int64_t rows, int64_t l, int64_t lines, const int32_t* __restrict__ line_ids, const float* __restrict__ run_max,
                              const float* __restrict__ run_sum, const float* __restrict__ target_logit, float* __restrict__ lse,
                              float* __restrict__ scores) {
    const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float z = run_max[r] + logf(run_sum[r]);
    lse[r] = z;
    const int32_t line = line_ids[r];
    if (line >= 0) atomicAdd(scores + (r / l) * lines + line, target_logit[r] - z);
}

/** ds[r, i] = bf16(g_r (onehot(target_r) - exp(x[r, i] - lse_r))) for the block's rows r = row0..row0+rows, g_r = dscores[seq, line] (0 without a line). */
__global__ void softmax_grad_kernel(int64_t rows, int64_t row0, int64_t vc, int64_t c0, int64_t l, int64_t lines, const float* __restrict__ x,
                                    const int32_t* __restrict__ targets, const int32_t* __restrict__ line_ids, const float* __restrict__ lse,
                                    const float* __restrict__ dscores, bf16* __restrict__ ds) {
    const int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32, row = row0 + r;
    const int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const int32_t line = line_ids[row];
    const float g = line >= 0 ? dscores[(row / l) * lines + line] : 0.0f, z = lse[row];
    const int64_t t = targets[row] - c0;
    const float* in = x + r * vc;
    bf16* out = ds + r * vc;
    for (int64_t i = lane; i < vc; i += 32) out[i] = __float2bfloat16_rn(g * ((i == t ? 1.0f : 0.0f) - __expf(in[i] - z)));
}

/** Starts each row's running statistics: max -inf, sum 0, target logit NaN (a target outside the vocabulary leaves it, visible in the score). */
__global__ void init_stats_kernel(int64_t rows, float* __restrict__ run_max, float* __restrict__ run_sum, float* __restrict__ target_logit) {
    const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    run_max[r] = -INFINITY;
    run_sum[r] = 0.0f;
    target_logit[r] = NAN;
}

struct Problem {
    int64_t n, l, d, v, lines;
    int64_t rows() const { return n * l; }
};

Problem check_problem(int32_t n, int32_t l, int32_t d, int32_t v, int32_t lines) {
    ra3::require(n >= 0 && l >= 0 && d > 0 && v > 0 && lines > 0,
                 "expected n, l >= 0 and d, v, lines > 0; got n=" + std::to_string(n) + " l=" + std::to_string(l) + " d=" + std::to_string(d) +
                     " v=" + std::to_string(v) + " lines=" + std::to_string(lines));
    return Problem{n, l, d, v, lines};
}

unsigned warps_grid(int64_t rows) { return static_cast<unsigned>(ceil_div(rows * 32, 256)); }

/**
 * For each block of rows and chunk of the vocabulary: logits [rb, vc] = h[r0 .. r0+rb] W[c0 .. c0+vc]^T
 * into the scratch, then body(r0, rb, c0, vc) — the walk the forward and the backward share.
 */
template <typename Body>
void for_each_logits_chunk(cudaStream_t stream, const Problem& p, const Plan& plan, const bf16* h, const bf16* w, float* logits, Body&& body) {
    for (int64_t r0 = 0; r0 < p.rows(); r0 += plan.block_rows) {
        const int64_t rb = std::min(plan.block_rows, p.rows() - r0);
        for (int64_t c0 = 0; c0 < p.v; c0 += plan.chunk) {
            const int64_t vc = std::min(plan.chunk, p.v - c0);
            gemm_bf16(stream, 1, rb, vc, p.d, false, true, 1.0f, h + r0 * p.d, 0, w + c0 * p.d, 0, 0.0f, logits, CUDA_R_32F, 0);
            body(r0, rb, c0, vc);
        }
    }
}

}  // namespace

}  // namespace ra3::cuda

using namespace ra3::cuda;

extern "C" {

RA3_API ra3_status ra3_cuda_segment_scores_forward_bf16(int32_t n, int32_t l, int32_t d, int32_t v, int32_t lines, const uint16_t* h,
                                                        const uint16_t* w, const int32_t* targets, const int32_t* line_ids, float* scores,
                                                        float* lse) {
    return ra3::guarded("ra3_cuda_segment_scores_forward_bf16", [&] {
        const Problem p = check_problem(n, l, d, v, lines);
        ra3::require(p.rows() == 0 || (h && w && targets && line_ids && scores && lse), "an argument is null");
        if (p.rows() == 0) return;
        cudaStream_t stream = current_stream();
        const Plan plan(p.rows(), p.v);
        Scratch logits(plan.block_rows * plan.chunk * sizeof(float), stream), stats(3 * p.rows() * sizeof(float), stream);
        float* run_max = stats.as<float>();
        float* run_sum = run_max + p.rows();
        float* target_logit = run_sum + p.rows();
        init_stats_kernel<<<static_cast<unsigned>(ceil_div(p.rows(), 256)), 256, 0, stream>>>(p.rows(), run_max, run_sum, target_logit);
        check_launch("init_stats_kernel");
        check(cudaMemsetAsync(scores, 0, p.n * p.lines * sizeof(float), stream), "cudaMemsetAsync");
        const bf16* hb = reinterpret_cast<const bf16*>(h);
        const bf16* wb = reinterpret_cast<const bf16*>(w);
        for_each_logits_chunk(stream, p, plan, hb, wb, logits.as<float>(), [&](int64_t r0, int64_t rb, int64_t c0, int64_t vc) {
            fold_chunk_kernel<<<warps_grid(rb), 256, 0, stream>>>(rb, vc, c0, logits.as<float>(), targets + r0, run_max + r0, run_sum + r0,
                                                                  target_logit + r0);
            check_launch("fold_chunk_kernel");
        });
        finish_kernel<<<static_cast<unsigned>(ceil_div(p.rows(), 256)), 256, 0, stream>>>(p.rows(), p.l, p.lines, line_ids, run_max, run_sum,
                                                                                           target_logit, lse, scores);
        check_launch("finish_kernel");
    });
}

RA3_API ra3_status ra3_cuda_segment_scores_backward_bf16(int32_t n, int32_t l, int32_t d, int32_t v, int32_t lines, const uint16_t* h,
                                                         const uint16_t* w, const int32_t* targets, const int32_t* line_ids, const float* lse,
                                                         const float* dscores, float* dh, float* dw) {
    return ra3::guarded("ra3_cuda_segment_scores_backward_bf16", [&] {
        const Problem p = check_problem(n, l, d, v, lines);
        ra3::require(p.rows() == 0 || (h && w && targets && line_ids && lse && dscores && dh && dw), "an argument is null");
        if (p.rows() == 0) return;
        cudaStream_t stream = current_stream();
        const Plan plan(p.rows(), p.v);
        Scratch logits(plan.block_rows * plan.chunk * sizeof(float), stream), ds(plan.block_rows * plan.chunk * sizeof(bf16), stream);
        const bf16* hb = reinterpret_cast<const bf16*>(h);
        const bf16* wb = reinterpret_cast<const bf16*>(w);
        for_each_logits_chunk(stream, p, plan, hb, wb, logits.as<float>(), [&](int64_t r0, int64_t rb, int64_t c0, int64_t vc) {
            softmax_grad_kernel<<<warps_grid(rb), 256, 0, stream>>>(rb, r0, vc, c0, p.l, p.lines, logits.as<float>(), targets, line_ids, lse,
                                                                    dscores, ds.as<bf16>());
            check_launch("softmax_grad_kernel");
            gemm_bf16(stream, 1, rb, p.d, vc, false, false, 1.0f, ds.as<bf16>(), 0, wb + c0 * p.d, 0, 1.0f, dh + r0 * p.d, CUDA_R_32F, 0);
            gemm_bf16(stream, 1, vc, p.d, rb, true, false, 1.0f, ds.as<bf16>(), 0, hb + r0 * p.d, 0, 1.0f, dw + c0 * p.d, CUDA_R_32F, 0);
        });
    });
}

}  // extern "C"
