// flash_attention.cu - fused causal attention on the tensor cores (bf16 in, f32 accumulate),
// FlashAttention-2 style, with grouped-query heads and head dims 64 and 128.
//
// Layouts as the CPU kernels: q, out [B, T, Hq, D]; k, v [B, T, Hkv, D]; lse [B, Hq, T];
// lengths [B] (NULL = T) marks right padding: query rows at or past a length get out = 0, lse = 0.
//
// Forward: a block owns 128 query rows of one (b, head), 8 warps of 16 rows each; key/value tiles of
// 64 rows stream through shared memory twice buffered (cp.async), S = Q K^T and O += P V run on
// mma.m16n8k16 with P kept in registers, and an online softmax in base 2 rescales O per tile.
// Backward: delta = rowsum(dO * O) first; then a block owns 64 keys of one (b, kv head), 4 warps
// of 16 keys, and walks every query tile (and every query head of its group) at or after its keys:
// recomputes P^T from lse, accumulates dV = P^T dO and dK = dS^T Q in registers, and adds
// dQ = dS K into an f32 buffer with atomics; a last pass adds that buffer to dq.
#include <cmath>

#include "common.cuh"
#include "mma.cuh"

namespace ra3::cuda {

namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr int kPad = 8;  // bf16 elements of padding per shared row: ldmatrix rows then hit distinct banks

/** Copies rows [row0, row0 + ROWS) of one head from a [B, T, H, D] tensor into shared [ROWS][D + kPad]; rows at or past `valid` are zero-filled. */
template <int ROWS, int D, int THREADS>
__device__ __forceinline__ void load_rows(bf16* dst, const bf16* src, int64_t row_stride, int row0, int valid, int tid) {
    constexpr int kChunks = D / 8;  // 16-byte pieces per row
    for (int i = tid; i < ROWS * kChunks; i += THREADS) {
        const int r = i / kChunks, c = i % kChunks;
        const bool in = row0 + r < valid;
        const bf16* from = in ? src + (row0 + r) * row_stride + c * 8 : src;
        cp_async_16(dst + r * (D + kPad) + c * 8, from, in ? 16 : 0);
    }
}

template <int D>
struct Forward {
    static constexpr int kRows = 128, kKeys = 64, kThreads = 256, kStride = D + kPad;
    static constexpr int kSharedBytes = (kRows + 4 * kKeys) * kStride * 2;
};

/** Forward pass; grid (ceil(T/128), Hq, B), 256 threads, Forward<D>::kSharedBytes of dynamic shared memory. */
template <int D>
__global__ void __launch_bounds__(256) flash_forward_kernel(int T, int Hq, int Hkv, const bf16* __restrict__ q,
                                                            const bf16* __restrict__ k, const bf16* __restrict__ v,
                                                            const int32_t* __restrict__ lengths, bf16* __restrict__ out,
                                                            float* __restrict__ lse, float scale_log2) {
    using F = Forward<D>;
    extern __shared__ __align__(16) unsigned char shared[];
    bf16* sQ = reinterpret_cast<bf16*>(shared);
    bf16* sK = sQ + F::kRows * F::kStride;   // [2][kKeys][kStride]
    bf16* sV = sK + 2 * F::kKeys * F::kStride;

    const int qb = gridDim.x - 1 - blockIdx.x;  // longest rows first: causal blocks differ in work
    const int h = blockIdx.y, b = blockIdx.z, hk = h / (Hq / Hkv);
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, c = lane % 4;
    const int len = lengths ? lengths[b] : T;
    const int q0 = qb * F::kRows;
    const int64_t q_stride = int64_t(Hq) * D, kv_stride = int64_t(Hkv) * D;
    const bf16* qh = q + (int64_t(b) * T * Hq + h) * D;
    const bf16* kh = k + (int64_t(b) * T * Hkv + hk) * D;
    const bf16* vh = v + (int64_t(b) * T * Hkv + hk) * D;
    bf16* oh = out + (int64_t(b) * T * Hq + h) * D;
    float* lh = lse + (int64_t(b) * Hq + h) * T;

    const int valid = min(T, len);
    if (q0 >= valid) {  // every row of this block is padding
        for (int i = tid; i < F::kRows * D; i += F::kThreads) {
            const int r = q0 + i / D;
            if (r < T) oh[r * q_stride + i % D] = __float2bfloat16(0.0f);
        }
        for (int r = q0 + tid; r < min(T, q0 + F::kRows); r += F::kThreads) lh[r] = 0.0f;
        return;
    }
    const int tiles = static_cast<int>(ceil_div(min(valid, q0 + F::kRows), F::kKeys));

    load_rows<F::kRows, D, F::kThreads>(sQ, qh, q_stride, q0, valid, tid);
    load_rows<F::kKeys, D, F::kThreads>(sK, kh, kv_stride, 0, valid, tid);
    load_rows<F::kKeys, D, F::kThreads>(sV, vh, kv_stride, 0, valid, tid);
    cp_async_commit();

    const int r0 = q0 + warp * 16;  // this warp's first query row
    uint32_t qf[D / 16][4];
    float o[D / 8][4];
    for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

    for (int j = 0; j < tiles; ++j) {
        const int buf = j & 1, k0 = j * F::kKeys;
        if (j + 1 < tiles) {
            load_rows<F::kKeys, D, F::kThreads>(sK + (buf ^ 1) * F::kKeys * F::kStride, kh, kv_stride, k0 + F::kKeys, valid, tid);
            load_rows<F::kKeys, D, F::kThreads>(sV + (buf ^ 1) * F::kKeys * F::kStride, vh, kv_stride, k0 + F::kKeys, valid, tid);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (j == 0) {
            for (int kk = 0; kk < D / 16; ++kk)
                ldmatrix_x4(qf[kk], sQ + (warp * 16 + (lane & 15)) * F::kStride + kk * 16 + (lane >> 4) * 8);
        }
        if (k0 <= r0 + 15) {  // a tile wholly after this warp's rows is all masked
            const bf16* tk = sK + buf * F::kKeys * F::kStride;
            const bf16* tv = sV + buf * F::kKeys * F::kStride;
            float s[8][4];
            for (int n = 0; n < 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
                for (int np = 0; np < 4; ++np) {
                    uint32_t kf[4];
                    ldmatrix_x4(kf, tk + (np * 16 + (lane & 7) + ((lane >> 4) & 1) * 8) * F::kStride + kk * 16 + ((lane >> 3) & 1) * 8);
                    mma_bf16(s[2 * np], qf[kk], kf[0], kf[1]);
                    mma_bf16(s[2 * np + 1], qf[kk], kf[2], kf[3]);
                }
            }
            const bool diagonal = k0 + F::kKeys - 1 > r0;
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                const int row = r0 + g + half * 8;
                float mx = -INFINITY;
#pragma unroll
                for (int n = 0; n < 8; ++n)
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        float x = s[n][2 * half + e] * scale_log2;
                        if (diagonal && k0 + n * 8 + 2 * c + e > row) x = -INFINITY;
                        s[n][2 * half + e] = x;
                        mx = fmaxf(mx, x);
                    }
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                const float m_new = fmaxf(m[half], mx);
                const float alpha = exp2f(m[half] - m_new);
                float sum = 0.0f;
#pragma unroll
                for (int n = 0; n < 8; ++n)
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const float p = exp2f(s[n][2 * half + e] - m_new);
                        s[n][2 * half + e] = p;
                        sum += p;
                    }
                l[half] = l[half] * alpha + sum;
                m[half] = m_new;
#pragma unroll
                for (int i = 0; i < D / 8; ++i) {
                    o[i][2 * half] *= alpha;
                    o[i][2 * half + 1] *= alpha;
                }
            }
#pragma unroll
            for (int kk = 0; kk < 4; ++kk) {  // 16 keys per step
                const uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                        pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
                for (int dp = 0; dp < D / 16; ++dp) {
                    uint32_t vf[4];
                    ldmatrix_x4_trans(vf, tv + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * F::kStride + dp * 16 + ((lane >> 4) & 1) * 8);
                    mma_bf16(o[2 * dp], pa, vf[0], vf[1]);
                    mma_bf16(o[2 * dp + 1], pa, vf[2], vf[3]);
                }
            }
        }
        __syncthreads();  // the next iteration's copy overwrites the buffer read here
    }

#pragma unroll
    for (int half = 0; half < 2; ++half) {
        float sum = l[half];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        const int row = r0 + g + half * 8;
        if (row >= T) continue;
        const bool live = row < valid;
        const float inv = live ? 1.0f / sum : 0.0f;
#pragma unroll
        for (int i = 0; i < D / 8; ++i)
            *reinterpret_cast<__nv_bfloat162*>(oh + row * q_stride + i * 8 + 2 * c) =
                __floats2bfloat162_rn(o[i][2 * half] * inv, o[i][2 * half + 1] * inv);
        if (c == 0) lh[row] = live ? (m[half] + log2f(sum)) / kLog2e : 0.0f;
    }
}

/** delta[b, h, t] = sum_d dout * out over each query row; one warp per row. */
template <int D>
__global__ void flash_delta_kernel(int B, int T, int Hq, const bf16* __restrict__ out, const bf16* __restrict__ dout,
                                   float* __restrict__ delta) {
    const int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;  // index into [B, T, Hq]
    const int lane = threadIdx.x % 32;
    if (row >= int64_t(B) * T * Hq) return;
    float sum = 0.0f;
    for (int d = lane * 2; d < D; d += 64) {
        const float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(out + row * D + d));
        const float2 y = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(dout + row * D + d));
        sum += x.x * y.x + x.y * y.y;
    }
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (lane == 0) {
        const int h = static_cast<int>(row % Hq);
        const int64_t bt = row / Hq;
        const int t = static_cast<int>(bt % T), b = static_cast<int>(bt / T);
        delta[(int64_t(b) * Hq + h) * T + t] = sum;
    }
}

template <int D>
struct Backward {
    static constexpr int kKeys = 64, kRows = 64, kThreads = 128, kStride = D + kPad, kDsStride = kRows + kPad;
    static constexpr int kSharedBytes = 4 * 64 * kStride * 2 + kKeys * kDsStride * 2 + 2 * kRows * 4;
};

/** Backward pass for one block of 64 keys of one (b, kv head); grid (ceil(T/64), Hkv, B), 128 threads. */
template <int D>
__global__ void __launch_bounds__(128) flash_backward_kernel(int T, int Hq, int Hkv, const bf16* __restrict__ q,
                                                             const bf16* __restrict__ k, const bf16* __restrict__ v,
                                                             const int32_t* __restrict__ lengths, const float* __restrict__ lse,
                                                             const float* __restrict__ delta, const bf16* __restrict__ dout,
                                                             float* __restrict__ dq_accum, bf16* __restrict__ dk,
                                                             bf16* __restrict__ dv, float scale) {
    using P = Backward<D>;
    extern __shared__ __align__(16) unsigned char shared[];
    bf16* sK = reinterpret_cast<bf16*>(shared);
    bf16* sV = sK + P::kKeys * P::kStride;
    bf16* sQ = sV + P::kKeys * P::kStride;
    bf16* sO = sQ + P::kRows * P::kStride;  // dO
    bf16* sDs = sO + P::kRows * P::kStride;  // dS^T [kKeys][kDsStride]
    float* sLse = reinterpret_cast<float*>(sDs + P::kKeys * P::kDsStride);
    float* sDelta = sLse + P::kRows;

    const int k0 = blockIdx.x * P::kKeys;  // the first key blocks see the most query tiles: schedule them first
    const int hk = blockIdx.y, b = blockIdx.z, group = Hq / Hkv;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, c = lane % 4;
    const int valid = min(T, lengths ? lengths[b] : T);
    if (k0 >= valid) return;  // keys past the length get no gradient (they are only seen by padding rows)
    const int64_t q_stride = int64_t(Hq) * D, kv_stride = int64_t(Hkv) * D;
    const bf16* kh = k + (int64_t(b) * T * Hkv + hk) * D;
    const bf16* vh = v + (int64_t(b) * T * Hkv + hk) * D;
    const float scale_log2 = scale * kLog2e;

    load_rows<P::kKeys, D, P::kThreads>(sK, kh, kv_stride, k0, valid, tid);
    load_rows<P::kKeys, D, P::kThreads>(sV, vh, kv_stride, k0, valid, tid);
    cp_async_commit();

    float dk_acc[D / 8][4], dv_acc[D / 8][4];
    for (int i = 0; i < D / 8; ++i)
        for (int e = 0; e < 4; ++e) dk_acc[i][e] = dv_acc[i][e] = 0.0f;
    const int key_row = warp * 16;  // this warp's keys within the block

    for (int gi = 0; gi < group; ++gi) {
        const int h = hk * group + gi;
        const bf16* qh = q + (int64_t(b) * T * Hq + h) * D;
        const bf16* oh = dout + (int64_t(b) * T * Hq + h) * D;
        const float* lh = lse + (int64_t(b) * Hq + h) * T;
        const float* dh = delta + (int64_t(b) * Hq + h) * T;
        float* dqh = dq_accum + (int64_t(b) * T * Hq + h) * D;
        for (int q0 = k0; q0 < valid; q0 += P::kRows) {
            load_rows<P::kRows, D, P::kThreads>(sQ, qh, q_stride, q0, valid, tid);
            load_rows<P::kRows, D, P::kThreads>(sO, oh, q_stride, q0, valid, tid);
            cp_async_commit();
            for (int r = tid; r < P::kRows; r += P::kThreads) {
                const bool in = q0 + r < valid;
                sLse[r] = in ? lh[q0 + r] * kLog2e : INFINITY;  // +inf makes P = 0 in padding columns
                sDelta[r] = in ? dh[q0 + r] : 0.0f;
            }
            cp_async_wait<0>();
            __syncthreads();

            // S^T = K Q^T for this warp's 16 keys x 64 queries; then P^T and dP^T = V dO^T.
            float s[8][4], dp[8][4];
            for (int n = 0; n < 8; ++n)
                for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                uint32_t ka[4], va[4];
                ldmatrix_x4(ka, sK + (key_row + (lane & 15)) * P::kStride + kk * 16 + (lane >> 4) * 8);
                ldmatrix_x4(va, sV + (key_row + (lane & 15)) * P::kStride + kk * 16 + (lane >> 4) * 8);
#pragma unroll
                for (int np = 0; np < 4; ++np) {
                    const int off = (np * 16 + (lane & 7) + ((lane >> 4) & 1) * 8) * P::kStride + kk * 16 + ((lane >> 3) & 1) * 8;
                    uint32_t qf[4], of[4];
                    ldmatrix_x4(qf, sQ + off);
                    ldmatrix_x4(of, sO + off);
                    mma_bf16(s[2 * np], ka, qf[0], qf[1]);
                    mma_bf16(s[2 * np + 1], ka, qf[2], qf[3]);
                    mma_bf16(dp[2 * np], va, of[0], of[1]);
                    mma_bf16(dp[2 * np + 1], va, of[2], of[3]);
                }
            }
#pragma unroll
            for (int n = 0; n < 8; ++n)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int key = k0 + key_row + g + (e >= 2 ? 8 : 0), col = n * 8 + 2 * c + (e & 1);
                    const float p = key > q0 + col ? 0.0f : exp2f(s[n][e] * scale_log2 - sLse[col]);
                    s[n][e] = p;                              // P^T
                    dp[n][e] = p * (dp[n][e] - sDelta[col]);  // dS^T
                }
            // dV += P^T dO and dK += dS^T Q (16 keys x D each), queries 16 at a time.
#pragma unroll
            for (int kk = 0; kk < 4; ++kk) {
                const uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                        pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
                const uint32_t da[4] = {pack_bf16(dp[2 * kk][0], dp[2 * kk][1]), pack_bf16(dp[2 * kk][2], dp[2 * kk][3]),
                                        pack_bf16(dp[2 * kk + 1][0], dp[2 * kk + 1][1]), pack_bf16(dp[2 * kk + 1][2], dp[2 * kk + 1][3])};
#pragma unroll
                for (int d2 = 0; d2 < D / 16; ++d2) {
                    const int off = (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * P::kStride + d2 * 16 + ((lane >> 4) & 1) * 8;
                    uint32_t of[4], qf[4];
                    ldmatrix_x4_trans(of, sO + off);
                    ldmatrix_x4_trans(qf, sQ + off);
                    mma_bf16(dv_acc[2 * d2], pa, of[0], of[1]);
                    mma_bf16(dv_acc[2 * d2 + 1], pa, of[2], of[3]);
                    mma_bf16(dk_acc[2 * d2], da, qf[0], qf[1]);
                    mma_bf16(dk_acc[2 * d2 + 1], da, qf[2], qf[3]);
                }
                // dS^T to shared memory for the dQ product, which needs it by query rows.
                for (int h2 = 0; h2 < 2; ++h2) {
                    const int n = 2 * kk + h2;
                    *reinterpret_cast<uint32_t*>(sDs + (key_row + g) * P::kDsStride + n * 8 + 2 * c) = da[2 * h2];
                    *reinterpret_cast<uint32_t*>(sDs + (key_row + g + 8) * P::kDsStride + n * 8 + 2 * c) = da[2 * h2 + 1];
                }
            }
            __syncthreads();
            // dQ rows [16 warp, +16) += dS K over the block's 64 keys, added to the f32 buffer.
            float dq[D / 8][4];
            for (int i = 0; i < D / 8; ++i) dq[i][0] = dq[i][1] = dq[i][2] = dq[i][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < 4; ++kk) {
                uint32_t a[4];
                ldmatrix_x4_trans(a, sDs + (kk * 16 + (lane & 7) + ((lane >> 4) & 1) * 8) * P::kDsStride + warp * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
                for (int d2 = 0; d2 < D / 16; ++d2) {
                    uint32_t kf[4];
                    ldmatrix_x4_trans(kf, sK + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * P::kStride + d2 * 16 + ((lane >> 4) & 1) * 8);
                    mma_bf16(dq[2 * d2], a, kf[0], kf[1]);
                    mma_bf16(dq[2 * d2 + 1], a, kf[2], kf[3]);
                }
            }
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                const int row = q0 + warp * 16 + g + half * 8;
                if (row >= valid) continue;
#pragma unroll
                for (int i = 0; i < D / 8; ++i) {
                    atomicAdd(dqh + row * q_stride + i * 8 + 2 * c, dq[i][2 * half] * scale);
                    atomicAdd(dqh + row * q_stride + i * 8 + 2 * c + 1, dq[i][2 * half + 1] * scale);
                }
            }
            __syncthreads();  // the next tile overwrites sQ, sO and sDs
        }
    }

    // dk, dv += the accumulated gradients (the ABI's accumulate convention).
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const int key = k0 + key_row + g + half * 8;
        if (key >= valid) continue;
        bf16* dkr = dk + (int64_t(b) * T * Hkv + int64_t(key) * Hkv + hk) * D;
        bf16* dvr = dv + (int64_t(b) * T * Hkv + int64_t(key) * Hkv + hk) * D;
#pragma unroll
        for (int i = 0; i < D / 8; ++i) {
            auto* pk = reinterpret_cast<__nv_bfloat162*>(dkr + i * 8 + 2 * c);
            auto* pv = reinterpret_cast<__nv_bfloat162*>(dvr + i * 8 + 2 * c);
            const float2 ok = __bfloat1622float2(*pk), ov = __bfloat1622float2(*pv);
            *pk = __floats2bfloat162_rn(ok.x + dk_acc[i][2 * half] * scale, ok.y + dk_acc[i][2 * half + 1] * scale);
            *pv = __floats2bfloat162_rn(ov.x + dv_acc[i][2 * half], ov.y + dv_acc[i][2 * half + 1]);
        }
    }
}

/** dq[i] = bf16(dq[i] + accum[i]). */
__global__ void add_f32_to_bf16_kernel(int64_t count, const float* __restrict__ accum, bf16* __restrict__ dq) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
        dq[i] = __float2bfloat16_rn(__bfloat162float(dq[i]) + accum[i]);
}

struct Dims {
    int batch, t, hq, hkv, d;
};

Dims check_dims(int32_t batch, int32_t t, int32_t hq, int32_t hkv, int32_t d, const int32_t* lengths) {
    ra3::require(batch >= 0 && t >= 0 && hq > 0 && hkv > 0 && hq % hkv == 0,
                 "expected batch, t >= 0 and hq a positive multiple of hkv; got batch=" + std::to_string(batch) + " t=" +
                     std::to_string(t) + " hq=" + std::to_string(hq) + " hkv=" + std::to_string(hkv));
    ra3::require(d == 64 || d == 128, "head dim d=" + std::to_string(d) + " is not supported on CUDA (64 or 128)");
    (void)lengths;  // device memory: the kernels clamp lengths to [0, t] instead of reading them here
    return Dims{batch, t, hq, hkv, d};
}

template <int D>
void forward(const Dims& s, const bf16* q, const bf16* k, const bf16* v, const int32_t* lengths, bf16* out, float* lse) {
    using F = Forward<D>;
    check(cudaFuncSetAttribute(flash_forward_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, F::kSharedBytes),
          "cudaFuncSetAttribute(flash_forward_kernel)");
    const dim3 grid(static_cast<unsigned>(ceil_div(s.t, F::kRows)), s.hq, s.batch);
    flash_forward_kernel<D><<<grid, F::kThreads, F::kSharedBytes, current_stream()>>>(s.t, s.hq, s.hkv, q, k, v, lengths, out, lse,
                                                                                      kLog2e / std::sqrt(float(D)));
    check_launch("flash_forward_kernel");
}

template <int D>
void backward(const Dims& s, const bf16* q, const bf16* k, const bf16* v, const int32_t* lengths, const bf16* out, const float* lse,
              const bf16* dout, bf16* dq, bf16* dk, bf16* dv) {
    using P = Backward<D>;
    cudaStream_t stream = current_stream();
    const int64_t rows = int64_t(s.batch) * s.t * s.hq, q_elements = rows * D;
    Scratch delta(rows * sizeof(float), stream), accum(q_elements * sizeof(float), stream);
    check(cudaMemsetAsync(accum.as<float>(), 0, q_elements * sizeof(float), stream), "cudaMemsetAsync");
    flash_delta_kernel<D><<<static_cast<unsigned>(ceil_div(rows * 32, 256)), 256, 0, stream>>>(s.batch, s.t, s.hq, out, dout,
                                                                                                delta.as<float>());
    check_launch("flash_delta_kernel");
    check(cudaFuncSetAttribute(flash_backward_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, P::kSharedBytes),
          "cudaFuncSetAttribute(flash_backward_kernel)");
    const dim3 grid(static_cast<unsigned>(ceil_div(s.t, P::kKeys)), s.hkv, s.batch);
    flash_backward_kernel<D><<<grid, P::kThreads, P::kSharedBytes, stream>>>(s.t, s.hq, s.hkv, q, k, v, lengths, lse, delta.as<float>(),
                                                                             dout, accum.as<float>(), dk, dv, 1.0f / std::sqrt(float(D)));
    check_launch("flash_backward_kernel");
    add_f32_to_bf16_kernel<<<static_cast<unsigned>(std::min<int64_t>(ceil_div(q_elements, 256), 8192)), 256, 0, stream>>>(
        q_elements, accum.as<float>(), dq);
    check_launch("add_f32_to_bf16_kernel");
}

}  // namespace

}  // namespace ra3::cuda

using namespace ra3::cuda;

extern "C" {

RA3_API ra3_status ra3_cuda_flash_attention_forward_bf16(int32_t batch, int32_t t, int32_t hq, int32_t hkv, int32_t d, const uint16_t* q,
                                                         const uint16_t* k, const uint16_t* v, const int32_t* lengths, uint16_t* out,
                                                         float* lse) {
    return ra3::guarded("ra3_cuda_flash_attention_forward_bf16", [&] {
        const Dims s = check_dims(batch, t, hq, hkv, d, lengths);
        if (int64_t(batch) * t == 0) return;
        ra3::require(q && k && v && out && lse, "an argument is null");
        auto as = [](auto* p) { return reinterpret_cast<const bf16*>(p); };
        if (d == 64) forward<64>(s, as(q), as(k), as(v), lengths, reinterpret_cast<bf16*>(out), lse);
        else forward<128>(s, as(q), as(k), as(v), lengths, reinterpret_cast<bf16*>(out), lse);
    });
}

RA3_API ra3_status ra3_cuda_flash_attention_backward_bf16(int32_t batch, int32_t t, int32_t hq, int32_t hkv, int32_t d, const uint16_t* q,
                                                          const uint16_t* k, const uint16_t* v, const int32_t* lengths, const uint16_t* out,
                                                          const float* lse, const uint16_t* dout, uint16_t* dq, uint16_t* dk,
                                                          uint16_t* dv) {
    return ra3::guarded("ra3_cuda_flash_attention_backward_bf16", [&] {
        const Dims s = check_dims(batch, t, hq, hkv, d, lengths);
        if (int64_t(batch) * t == 0) return;
        ra3::require(q && k && v && out && lse && dout && dq && dk && dv, "an argument is null");
        auto as = [](auto* p) { return reinterpret_cast<const bf16*>(p); };
        auto mut = [](uint16_t* p) { return reinterpret_cast<bf16*>(p); };
        if (d == 64) backward<64>(s, as(q), as(k), as(v), lengths, as(out), lse, as(dout), mut(dq), mut(dk), mut(dv));
        else backward<128>(s, as(q), as(k), as(v), lengths, as(out), lse, as(dout), mut(dq), mut(dk), mut(dv));
    });
}

}  // extern "C"
