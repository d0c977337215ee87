// mma.cuh - the tensor-core building blocks of the attention kernels (sm_80+ PTX, run on sm_90):
// asynchronous global->shared copies, ldmatrix fragment loads and the bf16 m16n8k16 MMA.
//
// Fragment layouts of mma.m16n8k16 (g = lane / 4, c = lane % 4), as the kernels rely on them:
//   A 16x16 (4 regs of 2 bf16): a0 (row g, cols 2c..2c+1), a1 (row g+8, same cols),
//                               a2 (row g, cols 2c+8..2c+9), a3 (row g+8, cols 2c+8..2c+9)
//   B 16x8  (2 regs):           b0 (rows 2c..2c+1, col g), b1 (rows 2c+8..2c+9, col g)
//   C 16x8  (4 floats):         c0, c1 (row g, cols 2c, 2c+1), c2, c3 (row g+8, cols 2c, 2c+1)
// Two adjacent C tiles of a product are, packed to bf16, the A fragment of the next product (the
// FlashAttention-2 trick that keeps P in registers).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace ra3::cuda {

__device__ __forceinline__ uint32_t smem_address(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

/** 16-byte global->shared copy that bypasses L1; copies src_bytes (0 or 16) and zero-fills the rest. */
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(dst)), "l"(src), "r"(src_bytes));
}

/** 4-byte global->shared copy. */
__device__ __forceinline__ void cp_async_4(void* dst, const void* src) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(smem_address(dst)), "l"(src));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

/** Waits until at most N of this thread's committed copy groups are still in flight. */
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/** Four 8x8 b16 matrices; lanes 8m..8m+7 give the row addresses of matrix m, which lands in r[m]. */
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_address(row)));
}

/** As ldmatrix_x4, each matrix transposed on the way. */
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_address(row)));
}

/** acc (16x8 f32) += a (16x16 bf16, row) * b (16x8 bf16, col). */
__device__ __forceinline__ void mma_bf16(float (&acc)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/** Two floats rounded to bf16 and packed, lo in the low half (the element with the lower index). */
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
}

}  // namespace ra3::cuda
