// library.cpp - version, last error, and what the build contains.
#include <string>

#include "guard.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef RA3_VERSION_STRING
#error "RA3_VERSION_STRING is set by CMakeLists.txt"
#endif

namespace {
thread_local std::string last_error;
}

namespace ra3 {
void set_last_error(const std::string& message) { last_error = message; }
void clear_last_error() { last_error.clear(); }
}  // namespace ra3

#ifdef RA3_WITH_CUDA
int32_t ra3_cuda_device_count_impl();
#endif

extern "C" {

RA3_API const char* ra3_version(void) { return RA3_VERSION_STRING; }

RA3_API int32_t ra3_abi_version(void) { return RA3_ABI_VERSION; }

RA3_API const char* ra3_last_error(void) { return last_error.c_str(); }

RA3_API int32_t ra3_cpu_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

RA3_API int32_t ra3_cuda_device_count(void) {
#ifdef RA3_WITH_CUDA
    return ra3_cuda_device_count_impl();
#else
    return 0;
#endif
}

#ifndef RA3_WITH_CUDA
// A build without a CUDA toolkit keeps the whole ABI: every CUDA entry point says why it cannot run.
#define RA3_NO_CUDA(name, ...)                                                   \
    RA3_API ra3_status name(__VA_ARGS__) {                                       \
        ra3::set_last_error(#name ": this ra3_native was built without CUDA"); \
        return RA3_ERR_UNSUPPORTED;                                              \
    }
RA3_NO_CUDA(ra3_cuda_device_name, int32_t, char*, int32_t)
RA3_NO_CUDA(ra3_cuda_set_device, int32_t)
RA3_NO_CUDA(ra3_cuda_set_stream, void*)
RA3_NO_CUDA(ra3_cuda_synchronize, void)
RA3_NO_CUDA(ra3_cuda_malloc, int64_t, void**)
RA3_NO_CUDA(ra3_cuda_free, void*)
RA3_NO_CUDA(ra3_cuda_memcpy, void*, const void*, int64_t)
RA3_NO_CUDA(ra3_cuda_memset, void*, int32_t, int64_t)
RA3_NO_CUDA(ra3_cuda_pool_usage, int64_t*, int64_t*, int32_t)
RA3_NO_CUDA(ra3_cuda_f32_to_bf16, int64_t, const float*, uint16_t*)
RA3_NO_CUDA(ra3_cuda_bf16_to_f32, int64_t, const uint16_t*, float*)
RA3_NO_CUDA(ra3_cuda_accumulate_bf16, int64_t, const uint16_t*, float*)
RA3_NO_CUDA(ra3_cuda_gemm_bf16, int32_t, int32_t, int32_t, int32_t, int32_t, int32_t, float, const uint16_t*, int64_t, const uint16_t*,
            int64_t, float, void*, int32_t, int64_t)
RA3_NO_CUDA(ra3_cuda_gemm_f32, int32_t, int32_t, int32_t, int32_t, int32_t, int32_t, float, const float*, int64_t, const float*, int64_t,
            float, float*, int64_t, const float*)
RA3_NO_CUDA(ra3_cuda_bias_backward_f32, int64_t, int32_t, const float*, float*)
RA3_NO_CUDA(ra3_cuda_layernorm_forward_f32, int64_t, int32_t, const float*, const float*, const float*, float*, float*, float*, float)
RA3_NO_CUDA(ra3_cuda_layernorm_backward_f32, int64_t, int32_t, const float*, const float*, const float*, const float*, const float*, float*,
            float*, float*)
RA3_NO_CUDA(ra3_cuda_rmsnorm_forward_f32, int64_t, int32_t, const float*, const float*, float*, float*, float)
RA3_NO_CUDA(ra3_cuda_rmsnorm_backward_f32, int64_t, int32_t, const float*, const float*, const float*, const float*, float*, float*)
RA3_NO_CUDA(ra3_cuda_flash_attention_forward_bf16, int32_t, int32_t, int32_t, int32_t, int32_t, const uint16_t*, const uint16_t*,
            const uint16_t*, const int32_t*, uint16_t*, float*)
RA3_NO_CUDA(ra3_cuda_flash_attention_backward_bf16, int32_t, int32_t, int32_t, int32_t, int32_t, const uint16_t*, const uint16_t*,
            const uint16_t*, const int32_t*, const uint16_t*, const float*, const uint16_t*, uint16_t*, uint16_t*, uint16_t*)
RA3_NO_CUDA(ra3_cuda_segment_scores_forward_bf16, int32_t, int32_t, int32_t, int32_t, int32_t, const uint16_t*, const uint16_t*,
            const int32_t*, const int32_t*, float*, float*)
RA3_NO_CUDA(ra3_cuda_segment_scores_backward_bf16, int32_t, int32_t, int32_t, int32_t, int32_t, const uint16_t*, const uint16_t*,
            const int32_t*, const int32_t*, const float*, const float*, float*, float*)
RA3_NO_CUDA(ra3_cuda_elbo_forward_backward_f32, int32_t, int32_t, const float*, const float*, float, const int32_t*, int32_t, float*,
            float*, float*)
RA3_NO_CUDA(ra3_cuda_elbo_forward_backward_variant_f32, int32_t, int32_t, int32_t, const float*, const float*, float, const int32_t*,
            int32_t, float*, float*, float*)
#undef RA3_NO_CUDA
#endif

}  // extern "C"
