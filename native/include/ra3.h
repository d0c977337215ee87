/*
 * ra3.h - the C ABI of ra3_native, the only header a native host needs.
 *
 * Conventions
 *  - Every kernel returns an ra3_status; on anything but RA3_OK, ra3_last_error() returns a
 *    message (thread-local, valid until the next call on the same thread) that names the
 *    argument and the values that were wrong. No C++ exception and no abort crosses this ABI.
 *  - Tensors are dense, row-major float32 arrays owned by the caller; shapes are given in the
 *    comments as [B, T, H, D] style lists.
 *  - The ra3_cuda_* functions take device pointers (from ra3_cuda_malloc or any CUDA allocation of
 *    the current device), enqueue on the calling thread's stream (ra3_cuda_set_stream) and return
 *    without waiting; a build without CUDA returns RA3_ERR_UNSUPPORTED from each. bf16 tensors are
 *    passed as uint16_t arrays holding the bf16 bit patterns. Index arrays in device memory
 *    (lengths, targets, line ids) are not read by the host, so they are not validated: the CPU
 *    kernels are the place to check untrusted ids.
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

/** The ABI version of this header: bumped whenever a signature in it changes. The library returns it
 *  from ra3_abi_version(), and the .NET side reads it from this line at build time (RA3.Kernels.csproj),
 *  so this is the one place the number is written. */
#define RA3_ABI_VERSION 5

/** ABI version of the loaded library (RA3_ABI_VERSION of the header it was built from). */
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

/** How a tensor's elements are stored: float32, or bfloat16 (the upper half of a float32, passed as uint16_t bit patterns). */
typedef enum ra3_dtype {
    RA3_DTYPE_F32 = 0,
    RA3_DTYPE_BF16 = 1
} ra3_dtype;

/**
 * ra3_gemm_f32 with each operand stored as float32 or bfloat16 (a bf16 model's weights and
 * activations): bf16 inputs are widened exactly and the arithmetic is f32; a bf16 c is read
 * widened and written rounded to nearest even (NaN becomes 0x7FC0). Strides are in elements of
 * each operand's own type. With a and b both bf16 on a processor with AVX512-BF16 the products
 * run on vdpbf16ps (exact products, f32 sums; bf16 subnormal inputs count as zero there);
 * ra3_gemm_bf16_dot_products() says whether this one does.
 */
RA3_API ra3_status ra3_gemm(int32_t batch, int32_t m, int32_t n, int32_t k, int32_t trans_a,
                            int32_t trans_b, float alpha, const void* a, ra3_dtype a_type,
                            int64_t stride_a, const void* b, ra3_dtype b_type, int64_t stride_b,
                            float beta, void* c, ra3_dtype c_type, int64_t stride_c,
                            const void* bias, ra3_dtype bias_type);

/** 1 when ra3_gemm multiplies bf16 by bf16 with AVX512-BF16 dot products on this processor, else 0. */
RA3_API int32_t ra3_gemm_bf16_dot_products(void);

/**
 * The CPU GEMM's blocking, for the whole process, from the next product on: kc, the depth of a K
 * slice (it also sets the order in which each element's products are summed, so results change in
 * the last bits with it); mc, rows of A per thread block (rounded up to a multiple of 24); nc,
 * columns of B per packed block. The register tile is the build's (-march). Defaults 256, 96,
 * 2048; the .NET backend passes the tuning it measured for this processor. Not while a product runs.
 */
RA3_API ra3_status ra3_gemm_set_blocking(int32_t kc, int32_t mc, int32_t nc);

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

/**
 * Fused causal attention (flash style: keys in tiles with an online softmax, no T x T matrix).
 * q [B, T, Hq, D], k and v [B, T, Hkv, D], out [B, T, Hq, D], lse [B, Hq, T] (row log-sum-exp,
 * kept for the backward); lengths [B] in [0, T] marks right padding (NULL = T everywhere):
 * query rows at or past a length get out = 0 and lse = 0. Scale is 1/sqrt(D). window > 0 is
 * sliding-window attention: query i sees keys i - window + 1 .. i (exactly window of them, as
 * transformers defines Mistral's and Qwen2's window); 0 sees every earlier key.
 */
RA3_API ra3_status ra3_flash_attention_forward_f32(int32_t batch, int32_t t, int32_t hq,
                                                   int32_t hkv, int32_t d, int32_t window, const float* q,
                                                   const float* k, const float* v,
                                                   const int32_t* lengths, float* out, float* lse);

/** Backward of ra3_flash_attention_forward_f32 (same window) from out and lse: accumulates into dq, dk, dv. */
RA3_API ra3_status ra3_flash_attention_backward_f32(int32_t batch, int32_t t, int32_t hq,
                                                    int32_t hkv, int32_t d, int32_t window, const float* q,
                                                    const float* k, const float* v,
                                                    const int32_t* lengths, const float* out,
                                                    const float* lse, const float* dout, float* dq,
                                                    float* dk, float* dv);

/**
 * One generation step over a KV cache: appends k_new, v_new [B, Hkv, D] to k_cache, v_cache
 * [B, capacity, Hkv, D] at position lengths[b] (< capacity), then attends q [B, Hq, D] over cache
 * positions 0..lengths[b] (with window > 0, the last window of them) into out [B, Hq, D]. The
 * caller advances lengths.
 */
RA3_API ra3_status ra3_attention_decode_f32(int32_t batch, int32_t capacity, int32_t hq,
                                            int32_t hkv, int32_t d, int32_t window, const float* q,
                                            const float* k_new, const float* v_new,
                                            float* k_cache, float* v_cache,
                                            const int32_t* lengths, float* out);

/**
 * Latent segment scoring (RA3 spec section 5) without the [n*l, v] logits: for hidden states
 * h [n, l, d], unembedding w [v, d], targets [n, l] and line_ids [n, l] (-1 = padding, else
 * below `lines`): scores [n, lines] = per-(sequence, line) sums of log softmax(h w^T)[target];
 * lse [n, l] = per-token log-sum-exp, kept for the backward.
 */
RA3_API ra3_status ra3_segment_scores_forward_f32(int32_t n, int32_t l, int32_t d, int32_t v,
                                                  int32_t lines, const float* h, const float* w,
                                                  const int32_t* targets,
                                                  const int32_t* line_ids, float* scores,
                                                  float* lse);

/** Backward of ra3_segment_scores_forward_f32 for dscores [n, lines]: accumulates dh [n, l, d] and dw [v, d]. */
RA3_API ra3_status ra3_segment_scores_backward_f32(int32_t n, int32_t l, int32_t d, int32_t v,
                                                   int32_t lines, const float* h, const float* w,
                                                   const int32_t* targets,
                                                   const int32_t* line_ids, const float* lse,
                                                   const float* dscores, float* dh, float* dw);

/**
 * Temporal-ELBO forward-backward (RA3 spec section 4) over `batch` traces of up to `t` lines.
 * seg [batch, t+1, t]: seg[b, j, i] = log pi(line i+1 | abstraction j), j = 0 "no rationale",
 * j >= 1 the rationale of 1-based boundary j (entries with j > i+1 are not read);
 * prior_think [batch, t]: log-prior of a think at boundary i+1; prior_act = log alpha;
 * lengths [batch] in [1, t]; max_span > 0 limits an abstraction j >= 1 to lines j..j+max_span-1
 * (0 = no limit). Outputs: log_z [batch]; think_posterior [batch, t] = d log_z / d prior_think;
 * line_marginals [batch, t+1, t] = d log_z / d seg (0 for impossible states and past a length).
 */
RA3_API ra3_status ra3_elbo_forward_backward_f32(int32_t batch, int32_t t, const float* seg,
                                                 const float* prior_think, float prior_act,
                                                 const int32_t* lengths, int32_t max_span,
                                                 float* log_z, float* think_posterior,
                                                 float* line_marginals);

/**
 * MAP segmentation of the same model: best_score [batch] and abstraction [batch, t], the
 * abstraction active at each line (0 = none, j = boundary j; -1 past a trace's length).
 */
RA3_API ra3_status ra3_elbo_viterbi_f32(int32_t batch, int32_t t, const float* seg,
                                        const float* prior_think, float prior_act,
                                        const int32_t* lengths, int32_t max_span,
                                        float* best_score, int32_t* abstraction);

/**
 * ra3_elbo_forward_backward_f32 with k >= 1 candidate rationales per boundary: abstraction s = 0 is
 * "no rationale", s = 1 + (j-1)*k + c candidate c of boundary j (1-based). seg [batch, 1 + t*k, t]:
 * seg[b, s, i] = log pi(line i+1 | abstraction s) (entries whose boundary lies after line i+1 are not
 * read); prior_think [batch, t, k]: log-prior of a think at boundary i+1 writing candidate c.
 * Outputs: log_z [batch]; think_posterior [batch, t, k] = d log_z / d prior_think; line_marginals
 * [batch, 1 + t*k, t] = d log_z / d seg. With k = 1 it is ra3_elbo_forward_backward_f32.
 */
RA3_API ra3_status ra3_elbo_candidates_forward_backward_f32(int32_t batch, int32_t t, int32_t k, const float* seg,
                                                            const float* prior_think, float prior_act,
                                                            const int32_t* lengths, int32_t max_span,
                                                            float* log_z, float* think_posterior,
                                                            float* line_marginals);

/**
 * MAP segmentation with k candidates per boundary: abstraction [batch, t] holds the state s active
 * at each line (line i+1 thinks when s > i*k), -1 past a trace's length.
 */
RA3_API ra3_status ra3_elbo_candidates_viterbi_f32(int32_t batch, int32_t t, int32_t k, const float* seg,
                                                   const float* prior_think, float prior_act,
                                                   const int32_t* lengths, int32_t max_span,
                                                   float* best_score, int32_t* abstraction);

/* ---------------------------------------------------------------------------------------------
 * CUDA (RA3_ERR_UNSUPPORTED when the library was built without a CUDA toolkit)
 * ------------------------------------------------------------------------------------------- */

/** Name of CUDA device `device` into buffer (NUL-terminated, truncated to capacity). */
RA3_API ra3_status ra3_cuda_device_name(int32_t device, char* buffer, int32_t capacity);

/** Makes `device` current for this thread and keeps freed pool memory cached (no release to the driver). */
RA3_API ra3_status ra3_cuda_set_device(int32_t device);

/** The cudaStream_t this thread's ra3_cuda_* calls enqueue on (NULL = the legacy default stream). */
RA3_API ra3_status ra3_cuda_set_stream(void* stream);

/** Waits for the work enqueued on this thread's stream; reports an asynchronous kernel error. */
RA3_API ra3_status ra3_cuda_synchronize(void);

/** Device memory from the device's stream-ordered pool (cudaMallocAsync on this thread's stream). */
RA3_API ra3_status ra3_cuda_malloc(int64_t bytes, void** ptr);

/** Returns memory from ra3_cuda_malloc to the pool, ordered on this thread's stream. */
RA3_API ra3_status ra3_cuda_free(void* ptr);

/** Copies bytes between any host and device pointers (unified addressing); returns when done. */
RA3_API ra3_status ra3_cuda_memcpy(void* dst, const void* src, int64_t bytes);

/** Sets bytes of device memory to value, ordered on this thread's stream. */
RA3_API ra3_status ra3_cuda_memset(void* ptr, int32_t value, int64_t bytes);

/** Bytes the pool has handed out now and at most since the last reset (reset_peak != 0 resets it to now). */
RA3_API ra3_status ra3_cuda_pool_usage(int64_t* current, int64_t* peak, int32_t reset_peak);

/** y = bf16(x), round to nearest even, for count elements. */
RA3_API ra3_status ra3_cuda_f32_to_bf16(int64_t count, const float* x, uint16_t* y);

/** y = float(x) for count bf16 elements. */
RA3_API ra3_status ra3_cuda_bf16_to_f32(int64_t count, const uint16_t* x, float* y);

/** y += float(x) for count bf16 elements x and f32 y (bf16 gradients into f32 ones). */
RA3_API ra3_status ra3_cuda_accumulate_bf16(int64_t count, const uint16_t* x, float* y);

/**
 * bf16 GEMM on the tensor cores (cuBLASLt, f32 accumulation), with ra3_gemm_f32's conventions
 * (row-major, trans flags, strides in elements, 0 broadcasts), without bias. c is float
 * (c_is_bf16 = 0) or bf16 (c_is_bf16 != 0).
 */
RA3_API ra3_status ra3_cuda_gemm_bf16(int32_t batch, int32_t m, int32_t n, int32_t k, int32_t trans_a,
                                      int32_t trans_b, float alpha, const uint16_t* a, int64_t stride_a,
                                      const uint16_t* b, int64_t stride_b, float beta, void* c,
                                      int32_t c_is_bf16, int64_t stride_c);

/**
 * The product of ra3_gemm_f32 (same arguments, bias [n] or NULL) for f32 device matrices, on the
 * tensor cores in TF32 (10-bit mantissa products, f32 accumulation).
 */
RA3_API ra3_status ra3_cuda_gemm_f32(int32_t batch, int32_t m, int32_t n, int32_t k, int32_t trans_a,
                                     int32_t trans_b, float alpha, const float* a, int64_t stride_a,
                                     const float* b, int64_t stride_b, float beta, float* c,
                                     int64_t stride_c, const float* bias);

/** Bias gradient of a linear layer: dbias [cols] += column sums of dout [rows, cols]. */
RA3_API ra3_status ra3_cuda_bias_backward_f32(int64_t rows, int32_t cols, const float* dout,
                                              float* dbias);

/**
 * LayerNorm over the last dimension of x [rows, cols]: y = (x - mean) rstd weight + bias (bias may be
 * NULL), rstd = 1 / sqrt(var + eps); mean and rstd [rows] are kept for the backward.
 */
RA3_API ra3_status ra3_cuda_layernorm_forward_f32(int64_t rows, int32_t cols, const float* x,
                                                  const float* weight, const float* bias, float* y,
                                                  float* mean, float* rstd, float eps);

/** Backward of ra3_cuda_layernorm_forward_f32: accumulates dx [rows, cols], dweight and dbias [cols] (dbias may be NULL). */
RA3_API ra3_status ra3_cuda_layernorm_backward_f32(int64_t rows, int32_t cols, const float* x,
                                                   const float* weight, const float* mean,
                                                   const float* rstd, const float* dy, float* dx,
                                                   float* dweight, float* dbias);

/** RMSNorm: y = x rstd weight, rstd = 1 / sqrt(mean(x^2) + eps), rstd [rows] kept. */
RA3_API ra3_status ra3_cuda_rmsnorm_forward_f32(int64_t rows, int32_t cols, const float* x,
                                                const float* weight, float* y, float* rstd,
                                                float eps);

/** Backward of ra3_cuda_rmsnorm_forward_f32: accumulates dx and dweight. */
RA3_API ra3_status ra3_cuda_rmsnorm_backward_f32(int64_t rows, int32_t cols, const float* x,
                                                 const float* weight, const float* rstd,
                                                 const float* dy, float* dx, float* dweight);

/**
 * Fused causal attention on the tensor cores, the layouts and lengths of
 * ra3_flash_attention_forward_f32 with bf16 q, k, v, out and f32 lse; head dim 64 or 128.
 */
RA3_API ra3_status ra3_cuda_flash_attention_forward_bf16(int32_t batch, int32_t t, int32_t hq,
                                                         int32_t hkv, int32_t d, const uint16_t* q,
                                                         const uint16_t* k, const uint16_t* v,
                                                         const int32_t* lengths, uint16_t* out,
                                                         float* lse);

/** Backward of ra3_cuda_flash_attention_forward_bf16: accumulates into bf16 dq, dk, dv. */
RA3_API ra3_status ra3_cuda_flash_attention_backward_bf16(
    int32_t batch, int32_t t, int32_t hq, int32_t hkv, int32_t d, const uint16_t* q,
    const uint16_t* k, const uint16_t* v, const int32_t* lengths, const uint16_t* out,
    const float* lse, const uint16_t* dout, uint16_t* dq, uint16_t* dk, uint16_t* dv);

/**
 * Latent segment scoring of ra3_segment_scores_forward_f32 with bf16 h [n, l, d] and w [v, d];
 * scores and lse f32. A target outside [0, v) on a scored row gives a NaN score.
 */
RA3_API ra3_status ra3_cuda_segment_scores_forward_bf16(int32_t n, int32_t l, int32_t d, int32_t v,
                                                        int32_t lines, const uint16_t* h,
                                                        const uint16_t* w, const int32_t* targets,
                                                        const int32_t* line_ids, float* scores,
                                                        float* lse);

/** Backward of ra3_cuda_segment_scores_forward_bf16: accumulates into f32 dh [n, l, d] and dw [v, d]. */
RA3_API ra3_status ra3_cuda_segment_scores_backward_bf16(
    int32_t n, int32_t l, int32_t d, int32_t v, int32_t lines, const uint16_t* h, const uint16_t* w,
    const int32_t* targets, const int32_t* line_ids, const float* lse, const float* dscores,
    float* dh, float* dw);

/**
 * Temporal-ELBO forward-backward of ra3_elbo_forward_backward_f32 on the device (t < 4096); lengths
 * are clamped to [1, t].
 */
RA3_API ra3_status ra3_cuda_elbo_forward_backward_f32(int32_t batch, int32_t t, const float* seg,
                                                      const float* prior_think, float prior_act,
                                                      const int32_t* lengths, int32_t max_span,
                                                      float* log_z, float* think_posterior,
                                                      float* line_marginals);

/**
 * ra3_cuda_elbo_forward_backward_f32 through numbered kernel variant 1-4 (native/src/cuda/elbo.cu
 * lists what each changes; 1 is the default), for bench/gpu to check and time each.
 */
RA3_API ra3_status ra3_cuda_elbo_forward_backward_variant_f32(int32_t variant, int32_t batch, int32_t t,
                                                              const float* seg, const float* prior_think,
                                                              float prior_act, const int32_t* lengths,
                                                              int32_t max_span, float* log_z,
                                                              float* think_posterior,
                                                              float* line_marginals);

#ifdef __cplusplus
}
#endif

#endif /* RA3_H */
