/*
 * ra3.h - the C ABI of ra3_native, the only header a native host needs.
 *
 * Conventions
 *  - Every kernel returns an ra3_status; on anything but RA3_OK, ra3_last_error() returns a
 *    message (thread-local, valid until the next call on the same thread) that names the
 *    argument and the values that were wrong. No C++ exception and no abort crosses this ABI.
 *  - Tensors are dense, row-major float32 arrays owned by the caller; shapes are given in the
 *    comments as [B, T, H, D] style lists.
 *  - Backward kernels ACCUMULATE into their gradient outputs (dx += ...), as llm.c does, so that
 *    a residual stream or a shared weight sums its gradients without extra buffers. Callers
 *    zero the gradient buffers once per step.
 */
#ifndef RA3_H
#define RA3_H

#include <stdint.h>

#if defined(_WIN32)
#define RA3_API __declspec(dllexport)
#else
#define RA3_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** Result of every call. */
typedef enum ra3_status {
    RA3_OK = 0,
    RA3_ERR_INVALID_ARGUMENT = 1, /**< a null pointer, a negative or inconsistent size */
    RA3_ERR_OUT_OF_MEMORY = 2,    /**< a scratch allocation failed */
    RA3_ERR_UNSUPPORTED = 3,      /**< the build lacks the feature (e.g. CUDA) */
    RA3_ERR_INTERNAL = 4          /**< an unexpected C++ exception, caught at the boundary */
} ra3_status;

/** Library version, "MAJOR.MINOR.PATCH". */
RA3_API const char* ra3_version(void);

/** ABI version: bumped whenever a signature in this header changes. */
RA3_API int32_t ra3_abi_version(void);

/** Message describing the last failed call on this thread ("" if none). */
RA3_API const char* ra3_last_error(void);

/** Number of worker threads the CPU kernels use. */
RA3_API int32_t ra3_cpu_threads(void);

/** Number of CUDA devices visible to this build (0 when built without CUDA). */
RA3_API int32_t ra3_cuda_device_count(void);

/**
 * Batched GEMM: for each b < batch,
 *   C_b[m, n] = alpha * sum_k op(A_b)[m, k] * op(B_b)[k, n] + beta * C_b[m, n] + bias[n]
 * op(A) is A [m, k] (trans_a = 0) or A^T with A stored [k, m] (trans_a = 1); likewise B [k, n]
 * or [n, k]. stride_* is the element distance between consecutive batch matrices (0 broadcasts
 * one matrix to the whole batch). bias [n] may be NULL.
 */
RA3_API ra3_status ra3_gemm_f32(int32_t batch, int32_t m, int32_t n, int32_t k,
                                int32_t trans_a, int32_t trans_b, float alpha,
                                const float* a, int64_t stride_a,
                                const float* b, int64_t stride_b, float beta,
                                float* c, int64_t stride_c, const float* bias);

/** Row softmax: y[r, :] = softmax(x[r, :]) for x, y [rows, cols]. */
RA3_API ra3_status ra3_softmax_forward_f32(int32_t rows, int32_t cols, const float* x, float* y);

/** Softmax backward: dx[r, i] += y[r, i] * (dy[r, i] - sum_j dy[r, j] y[r, j]). */
RA3_API ra3_status ra3_softmax_backward_f32(int32_t rows, int32_t cols, const float* y,
                                            const float* dy, float* dx);

/**
 * Cross-entropy per row: losses[r] = logsumexp(logits[r, :]) - logits[r, targets[r]], for
 * logits [rows, vocab] and targets [rows]; a negative target marks padding (loss 0).
 */
RA3_API ra3_status ra3_cross_entropy_forward_f32(int32_t rows, int32_t vocab, const float* logits,
                                                 const int32_t* targets, float* losses);

/** Cross-entropy backward: dlogits[r, :] += dlosses[r] * (softmax(logits[r, :]) - onehot(targets[r])). */
RA3_API ra3_status ra3_cross_entropy_backward_f32(int32_t rows, int32_t vocab, const float* logits,
                                                  const int32_t* targets, const float* dlosses,
                                                  float* dlogits);

/**
 * Plain causal attention with grouped-query heads (the fused kernel is separate).
 * q [B, T, Hq, D], k and v [B, T, Hkv, D] (Hq a multiple of Hkv), out [B, T, Hq, D],
 * probs [B, Hq, T, T] receives the softmax weights (kept for the backward; the upper
 * triangle is written as 0). Scale is 1/sqrt(D).
 */
RA3_API ra3_status ra3_attention_forward_f32(int32_t batch, int32_t t, int32_t hq, int32_t hkv,
                                             int32_t d, const float* q, const float* k,
                                             const float* v, float* out, float* probs);

/** Backward of ra3_attention_forward_f32: accumulates into dq, dk, dv (shapes of q, k, v). */
RA3_API ra3_status ra3_attention_backward_f32(int32_t batch, int32_t t, int32_t hq, int32_t hkv,
                                              int32_t d, const float* q, const float* k,
                                              const float* v, const float* probs,
                                              const float* dout, float* dq, float* dk, float* dv);

#ifdef __cplusplus
}
#endif

#endif /* RA3_H */
