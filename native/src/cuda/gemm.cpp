// gemm.cpp - bf16 GEMM through cuBLASLt. The row-major product C = op(A) op(B) is computed as the
// column-major C^T = op(B)^T op(A)^T, so no data moves. One algorithm is chosen per shape by
// cuBLASLt's heuristic and kept (with its descriptors) for the life of the process.
#include <cublasLt.h>

#include <map>
#include <mutex>
#include <tuple>

#include "gemm.h"

namespace ra3::cuda {

namespace {

constexpr size_t kWorkspace = 32u << 20;

void check_lt(cublasStatus_t status, const char* what) {
    if (status != CUBLAS_STATUS_SUCCESS) throw std::runtime_error(std::string(what) + ": cuBLASLt status " + std::to_string(status));
}

cublasLtHandle_t handle() {
    static cublasLtHandle_t h = [] {
        cublasLtHandle_t created;
        check_lt(cublasLtCreate(&created), "cublasLtCreate");
        return created;
    }();
    return h;
}

// batch, m, n, k, trans_a, trans_b, input type, output type, stride_a, stride_b, stride_c, bias epilogue
using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, bool, bool, int, int, int64_t, int64_t, int64_t, bool>;

/** Descriptors and the heuristic's algorithm for one shape (never freed: a process has few shapes). */
struct Plan {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;  // cuBLAS's A (our B), B (our A), C = D
    cublasLtMatmulAlgo_t algo;
};

cublasLtMatrixLayout_t layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride) {
    cublasLtMatrixLayout_t l;
    check_lt(cublasLtMatrixLayoutCreate(&l, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld), "cublasLtMatrixLayoutCreate");
    if (batch > 1) {
        const int32_t count = static_cast<int32_t>(batch);
        check_lt(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)), "batch count");
        check_lt(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)), "batch stride");
    }
    return l;
}

Plan plan_for(const Key& key) {
    static std::mutex mutex;
    static std::map<Key, Plan> plans;
    std::lock_guard<std::mutex> lock(mutex);
    auto found = plans.find(key);
    if (found != plans.end()) return found->second;
    const auto [batch, m, n, k, ta, tb, in_type, ctype, sa, sb, sc, bias] = key;
    const cudaDataType_t input = static_cast<cudaDataType_t>(in_type);
    Plan p{};
    check_lt(cublasLtMatmulDescCreate(&p.op, input == CUDA_R_32F ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F),
             "cublasLtMatmulDescCreate");
    if (bias) {
        const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;  // adds bias[row of column-major C] = bias[our column n]
        check_lt(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)), "epilogue");
    }
    const cublasOperation_t op_first = tb ? CUBLAS_OP_T : CUBLAS_OP_N, op_second = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    check_lt(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof(op_first)), "transa");
    check_lt(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof(op_second)), "transb");
    // cuBLAS's A = our B^T: stored [k, n] row-major = column-major n x k (ld n), or [n, k] = k x n (ld k) when tb.
    p.a = tb ? layout(input, k, n, k, batch, sb) : layout(input, n, k, n, batch, sb);
    p.b = ta ? layout(input, m, k, m, batch, sa) : layout(input, k, m, k, batch, sa);
    p.c = layout(static_cast<cudaDataType_t>(ctype), n, m, n, batch, sc);
    cublasLtMatmulPreference_t pref;
    check_lt(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
    const size_t workspace = kWorkspace;
    check_lt(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(workspace)),
             "workspace preference");
    cublasLtMatmulHeuristicResult_t result{};
    int count = 0;
    check_lt(cublasLtMatmulAlgoGetHeuristic(handle(), p.op, p.a, p.b, p.c, p.c, pref, 1, &result, &count), "cublasLtMatmulAlgoGetHeuristic");
    cublasLtMatmulPreferenceDestroy(pref);
    if (count == 0)
        throw std::runtime_error("cuBLASLt has no algorithm for m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k));
    p.algo = result.algo;
    return plans.insert(std::make_pair(key, p)).first->second;
}

}  // namespace

namespace {

void matmul(cudaStream_t stream, const Key& key, float alpha, const void* a, const void* b, float beta, void* c, const float* bias) {
    Plan p = plan_for(key);
    if (bias) check_lt(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)), "bias pointer");
    Scratch workspace(kWorkspace, stream);
    check_lt(cublasLtMatmul(handle(), p.op, &alpha, b, p.a, a, p.b, &beta, c, p.c, c, p.c, &p.algo, workspace.as<void>(), kWorkspace, stream),
             "cublasLtMatmul");
}

}  // namespace

void gemm_bf16(cudaStream_t stream, int64_t batch, int64_t m, int64_t n, int64_t k, bool trans_a, bool trans_b, float alpha,
               const bf16* a, int64_t stride_a, const bf16* b, int64_t stride_b, float beta, void* c, cudaDataType_t c_type,
               int64_t stride_c) {
    if (batch == 0 || m == 0 || n == 0) return;
    matmul(stream, Key{batch, m, n, k, trans_a, trans_b, CUDA_R_16BF, c_type, stride_a, stride_b, stride_c, false}, alpha, a, b, beta, c,
           nullptr);
}

void gemm_tf32(cudaStream_t stream, int64_t batch, int64_t m, int64_t n, int64_t k, bool trans_a, bool trans_b, float alpha,
               const float* a, int64_t stride_a, const float* b, int64_t stride_b, float beta, float* c, int64_t stride_c,
               const float* bias) {
    if (batch == 0 || m == 0 || n == 0) return;
    matmul(stream, Key{batch, m, n, k, trans_a, trans_b, CUDA_R_32F, CUDA_R_32F, stride_a, stride_b, stride_c, bias != nullptr}, alpha, a, b,
           beta, c, bias);
}

}  // namespace ra3::cuda

using namespace ra3::cuda;

extern "C" {

RA3_API ra3_status ra3_cuda_gemm_bf16(int32_t batch, int32_t m, int32_t n, int32_t k, int32_t trans_a, int32_t trans_b, float alpha,
                                      const uint16_t* a, int64_t stride_a, const uint16_t* b, int64_t stride_b, float beta, void* c,
                                      int32_t c_is_bf16, int64_t stride_c) {
    return ra3::guarded("ra3_cuda_gemm_bf16", [&] {
        ra3::require(batch >= 0 && m >= 0 && n >= 0 && k >= 0, "expected batch, m, n, k >= 0; got batch=" + std::to_string(batch) +
                                                                    " m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k));
        ra3::require(batch == 0 || m == 0 || n == 0 || (a && b && c), "an argument is null");
        gemm_bf16(current_stream(), batch, m, n, k, trans_a != 0, trans_b != 0, alpha, reinterpret_cast<const bf16*>(a), stride_a,
                  reinterpret_cast<const bf16*>(b), stride_b, beta, c, c_is_bf16 ? CUDA_R_16BF : CUDA_R_32F, stride_c);
    });
}

RA3_API ra3_status ra3_cuda_gemm_f32(int32_t batch, int32_t m, int32_t n, int32_t k, int32_t trans_a, int32_t trans_b, float alpha, const float* a,
                                     int64_t stride_a, const float* b, int64_t stride_b, float beta, float* c, int64_t stride_c,
                                     const float* bias) {
    return ra3::guarded("ra3_cuda_gemm_f32", [&] {
        ra3::require(batch >= 0 && m >= 0 && n >= 0 && k >= 0, "expected batch, m, n, k >= 0; got batch=" + std::to_string(batch) +
                                                                    " m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k));
        ra3::require(batch == 0 || m == 0 || n == 0 || (a && b && c), "an argument is null");
        gemm_tf32(current_stream(), batch, m, n, k, trans_a != 0, trans_b != 0, alpha, a, stride_a, b, stride_b, beta, c, stride_c, bias);
    });
}

}  // extern "C"
