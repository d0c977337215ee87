// common.cuh - what every CUDA source shares: error checks that become ra3 status codes, the
// calling thread's stream, the stream-ordered scratch allocator, and bf16 conversions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "../guard.h"

namespace ra3::cuda {

using bf16 = __nv_bfloat16;

/** Throws (caught by ra3::guarded at the ABI) when a CUDA runtime call failed. */
inline void check(cudaError_t status, const char* what) {
    if (status != cudaSuccess)
        throw std::runtime_error(std::string(what) + ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
}

/** Checks the launch just made (bad configuration, missing kernel image). */
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

/** The stream every ra3_cuda_* call of this thread enqueues on (0 = the legacy default stream). */
cudaStream_t current_stream();

/**
 * Scratch memory from the device's stream-ordered pool (cudaMallocAsync): freed on the same stream
 * when the owner goes out of scope, so the memory returns to the pool, not to the driver.
 */
class Scratch {
public:
    Scratch(size_t bytes, cudaStream_t stream) : stream_(stream) {
        if (bytes > 0) check(cudaMallocAsync(&ptr_, bytes, stream), "cudaMallocAsync(scratch)");
    }
    ~Scratch() {
        if (ptr_) cudaFreeAsync(ptr_, stream_);
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    template <typename T>
    T* as() const { return static_cast<T*>(ptr_); }

private:
    void* ptr_ = nullptr;
    cudaStream_t stream_;
};

__host__ __device__ inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace ra3::cuda
