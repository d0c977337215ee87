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

RA3_API int32_t ra3_abi_version(void) { return 2; }

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

}  // extern "C"
