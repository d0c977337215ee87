// gemm.h - matrix products on the tensor cores through cuBLASLt (f32 accumulation): bf16 inputs,
// or f32 inputs through TF32.
#pragma once

#include <library_types.h>

#include "common.cuh"

namespace ra3::cuda {

/**
 * Row-major batched product on `stream`: for each b < batch,
 *   C_b[m, n] = alpha * op(A_b)[m, k] op(B_b)[k, n] + beta * C_b[m, n]
 * with op(A) = A [m, k] or, transposed, A stored [k, m] (likewise B [k, n] or [n, k]); matrices are
 * dense (leading dimension = row length); stride_* in elements between batch matrices (0 broadcasts).
 * A and B are bf16; C is bf16 or f32 (c_type); accumulation is f32 either way.
 */
void gemm_bf16(cudaStream_t stream, int64_t batch, int64_t m, int64_t n, int64_t k, bool trans_a, bool trans_b, float alpha,
               const bf16* a, int64_t stride_a, const bf16* b, int64_t stride_b, float beta, void* c, cudaDataType_t c_type,
               int64_t stride_c);

/** The same product for f32 A, B and C on the TF32 tensor cores, plus bias [n] on every row when bias is not null. */
void gemm_tf32(cudaStream_t stream, int64_t batch, int64_t m, int64_t n, int64_t k, bool trans_a, bool trans_b, float alpha,
               const float* a, int64_t stride_a, const float* b, int64_t stride_b, float beta, float* c, int64_t stride_c,
               const float* bias);

}  // namespace ra3::cuda
