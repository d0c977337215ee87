// elbo.cu - the temporal-ELBO forward-backward pass on the GPU (RA3 spec section 4); the same
// recursion as native/src/cpu/elbo.cpp, whose header comment states it.
//
// One block per trace, one thread per abstraction state j (up to 4 per thread), the scan over lines
// sequential. The pass is latency-bound (T dependent steps), so everything a step needs is on chip:
//  - seg is staged in shared memory a chunk of C lines at a time (all states x C columns, copied
//    asynchronously and twice buffered), so a step reads its column from shared memory;
//  - forward: F lives in registers; the step's log-sum-exp is one block reduction (warp shuffles,
//    then one barrier and every thread merging the warps' partial (max, sum) pairs); each F row is
//    stored minus that log-sum-exp (offsets summed in double) to global scratch for the backward;
//  - backward: B rows live in shared memory (a step needs B[i+1][i+2] and B[i+1][0] of other
//    threads); each row is stored minus its state-0 value, which every thread computes itself, so a
//    step costs one barrier; marginals are staged per chunk and written out coalesced.
#include <cmath>

#include "common.cuh"
#include "mma.cuh"

namespace ra3::cuda {

namespace {

constexpr int kMaxPerThread = 4;
constexpr size_t kSharedBudget = 200 * 1024;

struct Shape {
    int T, S, C;  // lines, states (T + 1), columns per staged chunk
    int threads, per_thread;
    size_t shared_bytes() const { return (3 * size_t(S) * (C + 1) + 2 * size_t(S)) * sizeof(float) + 2 * 32 * sizeof(float2); }
};

__device__ __forceinline__ bool live(int j, int i, int span) { return j <= i + 1 && (j == 0 || span == 0 || j >= i + 2 - span); }

__device__ __forceinline__ float logaddexp(float a, float b) {
    const float m = fmaxf(a, b);
    return m == -INFINITY ? -INFINITY : m + log1pf(expf(fminf(a, b) - m));
}

/** Merges (max, sum of exp relative to max) pairs. */
__device__ __forceinline__ float2 merge(float2 a, float2 b) {
    const float m = fmaxf(a.x, b.x);
    if (m == -INFINITY) return make_float2(-INFINITY, 0.0f);
    return make_float2(m, a.y * expf(a.x - m) + b.y * expf(b.x - m));
}

/** Block-wide log-sum-exp of the threads' partial pairs; red is [2][32] pairs, parity alternates per call. */
__device__ __forceinline__ float block_logsumexp(float2 part, float2* red, int parity) {
    for (int offset = 16; offset > 0; offset /= 2) {
        const float2 other = make_float2(__shfl_xor_sync(0xffffffffu, part.x, offset), __shfl_xor_sync(0xffffffffu, part.y, offset));
        part = merge(part, other);
    }
    const int warp = threadIdx.x / 32, warps = blockDim.x / 32;
    if (threadIdx.x % 32 == 0) red[parity * 32 + warp] = part;
    __syncthreads();
    float2 all = red[parity * 32];
    for (int w = 1; w < warps; ++w) all = merge(all, red[parity * 32 + w]);
    return all.x + logf(all.y);
}

/** Copies seg columns [c0, c0 + C) (clipped to T) of every state into stage [S][C + 1]. */
__device__ __forceinline__ void stage_columns(float* stage, const float* seg, const Shape& s, int c0) {
    const int cols = min(s.C, s.T - c0);
    for (int idx = threadIdx.x; idx < s.S * s.C; idx += blockDim.x) {
        const int j = idx / s.C, col = idx % s.C;
        if (col < cols) cp_async_4(stage + j * (s.C + 1) + col, seg + int64_t(j) * s.T + c0 + col);
    }
    cp_async_commit();
}

template <int PER>
__global__ void __launch_bounds__(1024) elbo_kernel(Shape s, const float* __restrict__ seg_all, const float* __restrict__ prior_think,
                                                    float act, const int32_t* __restrict__ lengths, int span, float* __restrict__ f_all,
                                                    double* __restrict__ off_all, float* __restrict__ log_z, float* __restrict__ posterior_all,
                                                    float* __restrict__ marg_all) {
    extern __shared__ __align__(16) unsigned char shared[];
    const int stride = s.C + 1;
    float2* red = reinterpret_cast<float2*>(shared);       // [2][32], first: float2 needs 8-byte alignment
    float* stage = reinterpret_cast<float*>(red + 2 * 32);  // [2][S][C + 1]
    float* marg_stage = stage + 2 * s.S * stride;           // [S][C + 1]
    float* brow = marg_stage + s.S * stride;                // [2][S]

    const int b = blockIdx.x, tid = threadIdx.x, T = s.T, S = s.S;
    const int n = min(max(lengths[b], 1), T);
    const float* seg = seg_all + int64_t(b) * S * T;
    const float* pt = prior_think + int64_t(b) * T;
    float* fr = f_all + int64_t(b) * T * S;
    double* off_f = off_all + int64_t(b) * T;
    float* marg = marg_all + int64_t(b) * S * T;
    float* post = posterior_all + int64_t(b) * T;

    // Past the length everything is 0.
    for (int idx = tid; idx < S * (T - n); idx += blockDim.x) marg[int64_t(idx / (T - n)) * T + n + idx % (T - n)] = 0.0f;
    for (int i = n + tid; i < T; i += blockDim.x) post[i] = 0.0f;

    // ---- forward ----
    float f[PER];
#pragma unroll
    for (int k = 0; k < PER; ++k) {
        const int j = tid + k * blockDim.x;
        f[k] = j == 0 ? act : (j == 1 ? pt[0] : -INFINITY);
        if (j < S) fr[j] = f[k];
    }
    if (tid == 0) off_f[0] = 0.0;
    double offset = 0.0, z = 0.0;
    stage_columns(stage, seg, s, 0);
    for (int col = 0; col < n; ++col) {  // column col = line i - 1 feeds row i = col + 1
        if (col % s.C == 0) {
            const int chunk = col / s.C;
            if ((chunk + 1) * s.C < n) {
                stage_columns(stage + ((chunk + 1) & 1) * S * stride, seg, s, (chunk + 1) * s.C);
                cp_async_wait<1>();
            } else {
                cp_async_wait<0>();
            }
            __syncthreads();
        }
        const float* column = stage + ((col / s.C) & 1) * S * stride + col % s.C;
        float x[PER];
        float2 part = make_float2(-INFINITY, 0.0f);
#pragma unroll
        for (int k = 0; k < PER; ++k) {
            const int j = tid + k * blockDim.x;
            x[k] = j <= col + 1 && j < S ? f[k] + column[j * stride] : -INFINITY;
            part = merge(part, make_float2(x[k], 1.0f));
        }
        const float into = block_logsumexp(part, red, col & 1);
        if (col == n - 1) {
            z = offset + into;
            break;
        }
        const int i = col + 1;
        offset += into;
#pragma unroll
        for (int k = 0; k < PER; ++k) {
            const int j = tid + k * blockDim.x;
            f[k] = j == i + 1 ? pt[i] : (j <= i && live(j, i, span) ? x[k] + act - into : -INFINITY);
            if (j < S) fr[int64_t(i) * S + j] = f[k];
        }
        if (tid == 0) off_f[i] = offset;
    }
    if (tid == 0) log_z[b] = static_cast<float>(z);
    __syncthreads();  // off_f and F rows written by other threads; the last staged chunk is read no more

    // ---- backward ----
    const int last_chunk = (n - 1) / s.C;
    stage_columns(stage + (last_chunk & 1) * S * stride, seg, s, last_chunk * s.C);
    float fnext[PER];
#pragma unroll
    for (int k = 0; k < PER; ++k) {
        const int j = tid + k * blockDim.x;
        fnext[k] = j < S ? fr[int64_t(n - 1) * S + j] : -INFINITY;
    }
    double offset_b = 0.0;
    for (int i = n - 1; i >= 0; --i) {
        const int chunk = i / s.C;
        if (i == n - 1 || i % s.C == s.C - 1) {
            if (chunk > 0) {
                stage_columns(stage + ((chunk - 1) & 1) * S * stride, seg, s, (chunk - 1) * s.C);
                cp_async_wait<1>();
            } else {
                cp_async_wait<0>();
            }
            __syncthreads();
        }
        const float* column = stage + (chunk & 1) * S * stride + i % s.C;
        const float* next = brow + ((i + 1) & 1) * S;
        float* cur = brow + (i & 1) * S;
        float fi[PER];
#pragma unroll
        for (int k = 0; k < PER; ++k) {
            const int j = tid + k * blockDim.x;
            fi[k] = fnext[k];
            if (i > 0) fnext[k] = j < S ? fr[int64_t(i - 1) * S + j] : -INFINITY;  // in flight while this step runs
        }
        float ref;
        float bv[PER];
        if (i == n - 1) {
            ref = column[0];
#pragma unroll
            for (int k = 0; k < PER; ++k) {
                const int j = tid + k * blockDim.x;
                bv[k] = j < S && live(j, i, span) ? column[j * stride] - ref : -INFINITY;
            }
        } else {
            const float think = pt[i + 1] + next[i + 2];
            ref = column[0] + logaddexp(act + next[0], think);
#pragma unroll
            for (int k = 0; k < PER; ++k) {
                const int j = tid + k * blockDim.x;
                bv[k] = j < S && live(j, i, span) ? column[j * stride] + logaddexp(act + next[j], think) - ref : -INFINITY;
            }
        }
        offset_b += ref;
        const float shift = static_cast<float>(off_f[i] + offset_b - z);
#pragma unroll
        for (int k = 0; k < PER; ++k) {
            const int j = tid + k * blockDim.x;
            if (j >= S) continue;
            cur[j] = bv[k];
            const float m = expf(fi[k] + bv[k] + shift);
            marg_stage[j * stride + i % s.C] = m;
            if (j == i + 1) post[i] = m;
        }
        __syncthreads();
        if (i % s.C == 0) {  // the chunk's lowest column is done: write the staged marginals out
            const int c0 = i, cols = min(s.C, n - c0);
            for (int idx = tid; idx < S * s.C; idx += blockDim.x) {
                const int j = idx / s.C, col = idx % s.C;
                if (col < cols) marg[int64_t(j) * T + c0 + col] = marg_stage[j * stride + col];
            }
            __syncthreads();
        }
    }
}

Shape plan(int32_t t) {
    Shape s{};
    s.T = t;
    s.S = t + 1;
    s.threads = static_cast<int>(std::min<int64_t>(1024, ceil_div(s.S, 32) * 32));
    s.per_thread = static_cast<int>(ceil_div(s.S, s.threads));
    const int64_t fixed = 2 * int64_t(s.S) * 4 + 2 * 32 * 8;
    s.C = static_cast<int>(std::min<int64_t>(32, (int64_t(kSharedBudget) - fixed) / (12 * int64_t(s.S)) - 1));
    ra3::require(s.per_thread <= kMaxPerThread && s.C >= 1,
                 "t=" + std::to_string(t) + " lines is too many for the CUDA ELBO kernel (at most " + std::to_string(kMaxPerThread * 1024 - 1) + ")");
    return s;
}

template <int PER>
void launch(const Shape& s, int32_t batch, const float* seg, const float* prior_think, float prior_act, const int32_t* lengths, int32_t max_span,
            float* f, double* off, float* log_z, float* think_posterior, float* line_marginals) {
    const size_t bytes = s.shared_bytes();
    check(cudaFuncSetAttribute(elbo_kernel<PER>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
          "cudaFuncSetAttribute(elbo_kernel)");
    elbo_kernel<PER><<<batch, s.threads, bytes, current_stream()>>>(s, seg, prior_think, prior_act, lengths, max_span, f, off, log_z,
                                                                    think_posterior, line_marginals);
    check_launch("elbo_kernel");
}

}  // namespace

}  // namespace ra3::cuda

using namespace ra3::cuda;

extern "C" {

RA3_API ra3_status ra3_cuda_elbo_forward_backward_f32(int32_t batch, int32_t t, const float* seg, const float* prior_think, float prior_act,
                                                      const int32_t* lengths, int32_t max_span, float* log_z, float* think_posterior,
                                                      float* line_marginals) {
    return ra3::guarded("ra3_cuda_elbo_forward_backward_f32", [&] {
        ra3::require(batch >= 0 && t >= 1 && max_span >= 0, "expected batch >= 0, t >= 1, max_span >= 0; got batch=" + std::to_string(batch) +
                                                                " t=" + std::to_string(t) + " max_span=" + std::to_string(max_span));
        if (batch == 0) return;
        ra3::require(seg && prior_think && lengths && log_z && think_posterior && line_marginals, "an argument is null");
        const Shape s = plan(t);
        cudaStream_t stream = current_stream();
        Scratch f(int64_t(batch) * t * s.S * sizeof(float), stream), off(int64_t(batch) * t * sizeof(double), stream);
        switch (s.per_thread) {
            case 1: launch<1>(s, batch, seg, prior_think, prior_act, lengths, max_span, f.as<float>(), off.as<double>(), log_z, think_posterior, line_marginals); break;
            case 2: launch<2>(s, batch, seg, prior_think, prior_act, lengths, max_span, f.as<float>(), off.as<double>(), log_z, think_posterior, line_marginals); break;
            default: launch<4>(s, batch, seg, prior_think, prior_act, lengths, max_span, f.as<float>(), off.as<double>(), log_z, think_posterior, line_marginals); break;
        }
    });
}

}  // extern "C"
