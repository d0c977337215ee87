// elbo.cu - the temporal-ELBO forward-backward pass on the GPU (RA3 spec section 4); the same
// recursion as native/src/cpu/elbo.cpp, whose header comment states it.
//
// The scan over lines is sequential; the states j of a line are spread over the threads (state j on
// thread j mod threads). Numbered variants of one kernel (llm.c's dev/cuda style), each runnable
// through ra3_cuda_elbo_forward_backward_variant_f32 and checked and timed by bench/gpu
// (ra3_cuda_bench --only elbo --variant N):
//  1. a block per trace, one state per thread (up to 4 past 1024 states): the default, what
//     ra3_cuda_elbo_forward_backward_f32 runs (0.30-0.36 ms at B64 T256 on an H200);
//  2. a block per trace, 2 states per thread: fewer warps per barrier (measured 0.34 ms: slower);
//  3. a block per trace, 4 states per thread (0.41 ms: slower);
//  4. a warp per trace, up to 16 states per lane: no block barrier, a step's reduction is five
//     shuffles, but one warp issues every instruction of the trace (1.02 ms: 3x slower).
// Whatever the variant, a trace whose states fit 32 threads at the variant's states per thread
// (t + 1 <= 32 for variant 1, 64 for 2, 128 for 3) runs the one-warp kernel of variant 4.
// The pass is latency-bound (T dependent steps), so everything a step reads is in shared
// memory: seg a chunk of C lines at a time (all states x C columns) and, for the backward, the same
// C rows of F, both copied asynchronously and twice buffered; prior_think and the F offsets whole.
//  - forward: F lives in registers. A step's log-sum-exp is shifted by the column's state-0 entry,
//    which every thread reads for itself, so it costs one exp per state, a warp sum, one barrier and
//    a sum of the warps' partials; only when that sum leaves [1e-20, 1e20] (a pathological column)
//    does the step redo it exactly with (max, sum) pairs. Each F row is stored minus that
//    log-sum-exp (offsets summed in double) to global scratch for the backward.
//  - backward: B rows live in shared memory (a step needs B[i+1][i+2] and B[i+1][0] of other
//    threads); each row is stored minus its state-0 value, which every thread computes itself, so a
//    step costs one barrier; marginals are staged per chunk and written out coalesced.
#include <cmath>

#include "common.cuh"
#include "mma.cuh"

namespace ra3::cuda {

namespace {

constexpr int kMaxPerThread = 4;

struct Shape {
    int T, S, C, log_c;  // lines, states (T + 1), lines per staged chunk (a power of two) and its log2
    int threads, per_thread;
    /** red pairs, warp sums, pt, offsets, seg chunks, F chunks, staged marginals, B rows. */
    static size_t bytes(int T, int S, int C) {
        return 2 * 32 * sizeof(float2) + 2 * 32 * sizeof(float) + size_t(T) * (sizeof(float) + sizeof(double)) +
               (2 * size_t(S) * (C + 1) + 2 * size_t(C) * S + size_t(S) * (C + 1) + 2 * size_t(S)) * sizeof(float);
    }
    size_t shared_bytes() const { return bytes(T, S, C); }
};

__device__ __forceinline__ bool live(int j, int i, int span) { return j <= i + 1 && (j == 0 || span == 0 || j >= i + 2 - span); }

__device__ __forceinline__ float logaddexp(float a, float b) {
    const float m = fmaxf(a, b);
    return m == -INFINITY ? -INFINITY : m + __logf(1.0f + __expf(fminf(a, b) - m));
}

/** Merges (max, sum of exp relative to max) pairs. */
__device__ __forceinline__ float2 merge(float2 a, float2 b) {
    const float m = fmaxf(a.x, b.x);
    if (m == -INFINITY) return make_float2(-INFINITY, 0.0f);
    return make_float2(m, a.y * __expf(a.x - m) + b.y * __expf(b.x - m));
}

/** Barrier of the threads that share a trace: the warp, or the block. */
template <bool ONE_WARP>
__device__ __forceinline__ void sync_trace() {
    if constexpr (ONE_WARP) __syncwarp();
    else __syncthreads();
}

/** Exact log-sum-exp of x[0..PER) over the trace's threads, by (max, sum) pairs; red is [2][32] pairs. */
template <int PER, bool ONE_WARP>
__device__ __forceinline__ float block_logsumexp_exact(const float (&x)[PER], float2* red, int parity) {
    float2 part = make_float2(-INFINITY, 0.0f);
#pragma unroll
    for (int k = 0; k < PER; ++k) part = merge(part, make_float2(x[k], 1.0f));
    for (int offset = 16; offset > 0; offset /= 2)
        part = merge(part, make_float2(__shfl_xor_sync(0xffffffffu, part.x, offset), __shfl_xor_sync(0xffffffffu, part.y, offset)));
    if constexpr (ONE_WARP) return part.x + __logf(part.y);
    if (threadIdx.x % 32 == 0) red[parity * 32 + threadIdx.x / 32] = part;
    __syncthreads();
    float2 all = red[parity * 32];
    for (int w = 1; w < int(blockDim.x / 32); ++w) all = merge(all, red[parity * 32 + w]);
    return all.x + __logf(all.y);
}

/**
 * Block-wide log-sum-exp of x[0..PER) over all threads, shifted by `shift` (a value every thread
 * knows, near the largest x): one exp per element, warp sums, one barrier. Falls back to the exact
 * pairwise reduction when the shifted sum under- or overflows. sums is [2][32], red [2][32] pairs.
 */
template <int PER, bool ONE_WARP>
__device__ __forceinline__ float block_logsumexp(const float (&x)[PER], float shift, float* sums, float2* red, int parity) {
    float part = 0.0f;
#pragma unroll
    for (int k = 0; k < PER; ++k) part += __expf(x[k] - shift);
    for (int offset = 16; offset > 0; offset /= 2) part += __shfl_xor_sync(0xffffffffu, part, offset);
    float total = part;
    if constexpr (!ONE_WARP) {
        if (threadIdx.x % 32 == 0) sums[parity * 32 + threadIdx.x / 32] = part;
        __syncthreads();
        total = 0.0f;
        for (int w = 0; w < int(blockDim.x / 32); ++w) total += sums[parity * 32 + w];
    }
    if (total >= 1e-20f && total <= 1e20f) return shift + __logf(total);
    return block_logsumexp_exact<PER, ONE_WARP>(x, red, parity);  // uniform: every thread saw the same total
}

/** Copies seg columns [c0, c0 + C) (clipped to T) of every state into stage [S][C + 1]. */
__device__ __forceinline__ void stage_columns(float* stage, const float* seg, const Shape& s, int c0) {
    const int cols = min(s.C, s.T - c0);
    for (int idx = threadIdx.x; idx < s.S * s.C; idx += blockDim.x) {
        const int j = idx >> s.log_c, col = idx & (s.C - 1);
        if (col < cols) cp_async_4(stage + j * (s.C + 1) + col, seg + int64_t(j) * s.T + c0 + col);
    }
}

/** Copies F rows [r0, r0 + C) (clipped to rows) into stage [C][S]. */
__device__ __forceinline__ void stage_rows(float* stage, const float* f, const Shape& s, int r0, int rows) {
    const int count = min(s.C, rows - r0) * s.S;
    for (int idx = threadIdx.x; idx < count; idx += blockDim.x) cp_async_4(stage + idx, f + int64_t(r0) * s.S + idx);
}

template <int PER, bool ONE_WARP>
__global__ void __launch_bounds__(ONE_WARP ? 32 : 1024) elbo_kernel(Shape s, const float* __restrict__ seg_all, const float* __restrict__ prior_think,
                                                    float act, const int32_t* __restrict__ lengths, int span, float* __restrict__ f_all,
                                                    float* __restrict__ log_z, float* __restrict__ posterior_all, float* __restrict__ marg_all) {
    extern __shared__ __align__(16) unsigned char shared[];
    const int T = s.T, S = s.S, C = s.C, stride = C + 1;
    float2* red = reinterpret_cast<float2*>(shared);                 // [2][32]
    double* off_f = reinterpret_cast<double*>(red + 2 * 32);         // [T]
    float* sums = reinterpret_cast<float*>(off_f + T);               // [2][32]
    float* pt = sums + 2 * 32;                                       // [T]
    float* seg_stage = pt + T;                                       // [2][S][C + 1]
    float* f_stage = seg_stage + 2 * S * stride;                     // [2][C][S]
    float* marg_stage = f_stage + 2 * C * S;                         // [S][C + 1]
    float* brow = marg_stage + S * stride;                           // [2][S]

    const int b = blockIdx.x, tid = threadIdx.x;
    const int n = min(max(lengths[b], 1), T);
    const float* seg = seg_all + int64_t(b) * S * T;
    float* fr = f_all + int64_t(b) * T * S;
    float* marg = marg_all + int64_t(b) * S * T;
    float* post = posterior_all + int64_t(b) * T;

    for (int i = tid; i < T; i += blockDim.x) pt[i] = prior_think[int64_t(b) * T + i];
    // Past the length everything is 0.
    for (int idx = tid; idx < S * (T - n); idx += blockDim.x) marg[int64_t(idx / (T - n)) * T + n + idx % (T - n)] = 0.0f;
    for (int i = n + tid; i < T; i += blockDim.x) post[i] = 0.0f;
    sync_trace<ONE_WARP>();

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
    stage_columns(seg_stage, seg, s, 0);
    cp_async_commit();
    int chunk = -1, in_chunk = C - 1;  // chunk of column col, and col's place in it (no division per step)
    for (int col = 0; col < n; ++col) {  // column col = line i - 1 feeds row i = col + 1
        if (++in_chunk == C) {
            in_chunk = 0;
            ++chunk;
            if ((chunk + 1) * C < n) {
                stage_columns(seg_stage + ((chunk + 1) & 1) * S * stride, seg, s, (chunk + 1) * C);
                cp_async_commit();
                cp_async_wait<1>();
            } else {
                cp_async_wait<0>();
            }
            sync_trace<ONE_WARP>();
        }
        const float* column = seg_stage + (chunk & 1) * S * stride + in_chunk;
        float x[PER];
#pragma unroll
        for (int k = 0; k < PER; ++k) {
            const int j = tid + k * blockDim.x;
            x[k] = j <= col + 1 && j < S ? f[k] + column[j * stride] : -INFINITY;
        }
        const float into = block_logsumexp<PER, ONE_WARP>(x, column[0], sums, red, col & 1);
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
    sync_trace<ONE_WARP>();  // F rows and offsets written by other threads; the staged chunks are read no more

    // ---- backward ----
    const int last_chunk = (n - 1) / C;
    stage_columns(seg_stage + (last_chunk & 1) * S * stride, seg, s, last_chunk * C);
    stage_rows(f_stage + (last_chunk & 1) * C * S, fr, s, last_chunk * C, n);
    cp_async_commit();
    double offset_b = 0.0;
    chunk = last_chunk;  // line i's chunk and place in it
    in_chunk = (n - 1) - last_chunk * C;
    for (int i = n - 1; i >= 0; --i, --in_chunk) {
        if (in_chunk < 0) {
            in_chunk = C - 1;
            --chunk;
        }
        if (i == n - 1 || in_chunk == C - 1) {
            if (chunk > 0) {
                stage_columns(seg_stage + ((chunk - 1) & 1) * S * stride, seg, s, (chunk - 1) * C);
                stage_rows(f_stage + ((chunk - 1) & 1) * C * S, fr, s, (chunk - 1) * C, n);
                cp_async_commit();
                cp_async_wait<1>();
            } else {
                cp_async_wait<0>();
            }
            sync_trace<ONE_WARP>();
        }
        const float* column = seg_stage + (chunk & 1) * S * stride + in_chunk;
        const float* f_row = f_stage + (chunk & 1) * C * S + in_chunk * S;
        const float* next = brow + ((i + 1) & 1) * S;
        float* cur = brow + (i & 1) * S;
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
            const float m = z > -INFINITY ? __expf(f_row[j] + bv[k] + shift) : 0.0f;  // an impossible trace has no mass
            marg_stage[j * stride + in_chunk] = m;
            if (j == i + 1) post[i] = m;
        }
        sync_trace<ONE_WARP>();
        if (in_chunk == 0) {  // the chunk's lowest line is done: write the staged marginals out
            const int cols = min(C, n - i);
            for (int idx = tid; idx < S * C; idx += blockDim.x) {
                const int j = idx >> s.log_c, col = idx & (C - 1);
                if (col < cols) marg[int64_t(j) * T + i + col] = marg_stage[j * stride + col];
            }
            sync_trace<ONE_WARP>();
        }
    }
}

constexpr int kWarpMaxPerLane = 16;  // a warp per trace serves t + 1 <= 16 * 32 states

/** The states per thread of a variant (the header comment lists them): the fewest the 1024-thread limit allows, or more. */
int states_per_thread(int states, int variant) {
    const int64_t fewest = ceil_div(states, 1024);
    switch (variant) {
        case 1: return static_cast<int>(std::max<int64_t>(fewest, 1));
        case 2: return static_cast<int>(std::max<int64_t>(fewest, 2));
        case 3: return static_cast<int>(std::max<int64_t>(fewest, 4));
        case 4: return static_cast<int>(ceil_div(states, 32));  // the whole trace in one warp
        default: throw ra3::invalid_argument("ELBO variant " + std::to_string(variant) + " does not exist (1-4)");
    }
}

Shape plan(int32_t t, int variant) {
    Shape s{};
    s.T = t;
    s.S = t + 1;
    const int per = states_per_thread(s.S, variant);
    s.threads = static_cast<int>(std::min<int64_t>(1024, ceil_div(ceil_div(s.S, per), 32) * 32));
    s.per_thread = static_cast<int>(ceil_div(s.S, s.threads));
    const bool one_warp = s.threads == 32;
    int device = 0, optin = 0;
    check(cudaGetDevice(&device), "cudaGetDevice");
    check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "cudaDeviceGetAttribute");
    for (s.C = 32, s.log_c = 5; s.C > 0 && Shape::bytes(s.T, s.S, s.C) > size_t(optin); s.C /= 2, --s.log_c) {
    }
    ra3::require(s.per_thread <= (one_warp ? kWarpMaxPerLane : kMaxPerThread),
                 "t=" + std::to_string(t) + " needs " + std::to_string(s.per_thread) + " states per thread, more than the CUDA ELBO kernel holds (" +
                     std::to_string(one_warp ? kWarpMaxPerLane : kMaxPerThread) + "; variant " + std::to_string(variant) + ")");
    ra3::require(s.C >= 1, "t=" + std::to_string(t) + " lines is too many for the CUDA ELBO kernel on this device (its shared memory holds no chunk)");
    return s;
}

struct Args {
    int32_t batch;
    const float* seg;
    const float* prior_think;
    float prior_act;
    const int32_t* lengths;
    int32_t max_span;
    float *f, *log_z, *think_posterior, *line_marginals;
};

template <int PER, bool ONE_WARP>
void launch(const Shape& s, const Args& a) {
    const size_t bytes = s.shared_bytes();
    check(cudaFuncSetAttribute(elbo_kernel<PER, ONE_WARP>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
          "cudaFuncSetAttribute(elbo_kernel)");
    elbo_kernel<PER, ONE_WARP><<<a.batch, s.threads, bytes, current_stream()>>>(s, a.seg, a.prior_think, a.prior_act, a.lengths, a.max_span,
                                                                                a.f, a.log_z, a.think_posterior, a.line_marginals);
    check_launch("elbo_kernel");
}

/** Launches the one-warp variant compiled for exactly s.per_thread states per lane. */
template <int PER>
void launch_one_warp(const Shape& s, const Args& a) {
    if (s.per_thread == PER) launch<PER, true>(s, a);
    else if constexpr (PER < kWarpMaxPerLane) launch_one_warp<PER + 1>(s, a);
}

}  // namespace

}  // namespace ra3::cuda

using namespace ra3::cuda;

extern "C" {

RA3_API ra3_status ra3_cuda_elbo_forward_backward_variant_f32(int32_t variant, int32_t batch, int32_t t, const float* seg,
                                                              const float* prior_think, float prior_act, const int32_t* lengths,
                                                              int32_t max_span, float* log_z, float* think_posterior, float* line_marginals) {
    return ra3::guarded("ra3_cuda_elbo_forward_backward_variant_f32", [&] {
        ra3::require(batch >= 0 && t >= 1 && max_span >= 0, "expected batch >= 0, t >= 1, max_span >= 0; got batch=" + std::to_string(batch) +
                                                                " t=" + std::to_string(t) + " max_span=" + std::to_string(max_span));
        states_per_thread(t + 1, variant);  // an unknown variant is refused even for an empty batch
        if (batch == 0) return;
        ra3::require(seg && prior_think && lengths && log_z && think_posterior && line_marginals, "an argument is null");
        const Shape s = plan(t, variant);
        cudaStream_t stream = current_stream();
        Scratch f(int64_t(batch) * t * s.S * sizeof(float), stream);
        const Args a{batch, seg, prior_think, prior_act, lengths, max_span, f.as<float>(), log_z, think_posterior, line_marginals};
        if (s.threads == 32) launch_one_warp<1>(s, a);
        else if (s.per_thread == 1) launch<1, false>(s, a);
        else if (s.per_thread == 2) launch<2, false>(s, a);
        else if (s.per_thread == 3) launch<3, false>(s, a);
        else launch<4, false>(s, a);
    });
}

RA3_API ra3_status ra3_cuda_elbo_forward_backward_f32(int32_t batch, int32_t t, const float* seg, const float* prior_think, float prior_act,
                                                      const int32_t* lengths, int32_t max_span, float* log_z, float* think_posterior,
                                                      float* line_marginals) {
    return ra3_cuda_elbo_forward_backward_variant_f32(1, batch, t, seg, prior_think, prior_act, lengths, max_span, log_z, think_posterior,
                                                      line_marginals);
}

}  // extern "C"
