// device.cu - the CUDA device, the calling thread's stream, the stream-ordered memory pool, copies
// and f32 <-> bf16 conversion. Compiled only when CMake finds a CUDA toolkit.
#include <cstring>

#include "common.cuh"

namespace ra3::cuda {

namespace {
thread_local cudaStream_t thread_stream = nullptr;

/** y[i] = bf16(x[i]), round to nearest even. */
__global__ void f32_to_bf16_kernel(int64_t count, const float* __restrict__ x, bf16* __restrict__ y) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
        y[i] = __float2bfloat16_rn(x[i]);
}

/** y[i] += float(x[i]). */
__global__ void accumulate_bf16_kernel(int64_t count, const bf16* __restrict__ x, float* __restrict__ y) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
        y[i] += __bfloat162float(x[i]);
}

/** y[i] = float(x[i]). */
__global__ void bf16_to_f32_kernel(int64_t count, const bf16* __restrict__ x, float* __restrict__ y) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
        y[i] = __bfloat162float(x[i]);
}

unsigned grid_for(int64_t count) { return static_cast<unsigned>(std::min<int64_t>(ceil_div(count, 256), 4096)); }

void require_count(int64_t count, const void* x, const void* y) {
    ra3::require(count >= 0, "count = " + std::to_string(count) + " is negative");
    ra3::require(count == 0 || (x && y), "an argument is null");
}

cudaMemPool_t device_pool() {
    int device = 0;
    check(cudaGetDevice(&device), "cudaGetDevice");
    cudaMemPool_t pool;
    check(cudaDeviceGetDefaultMemPool(&pool, device), "cudaDeviceGetDefaultMemPool");
    return pool;
}
}  // namespace

cudaStream_t current_stream() { return thread_stream; }

}  // namespace ra3::cuda

using namespace ra3::cuda;

int32_t ra3_cuda_device_count_impl() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
    return static_cast<int32_t>(count);
}

extern "C" {

RA3_API ra3_status ra3_cuda_device_name(int32_t device, char* buffer, int32_t capacity) {
    return ra3::guarded("ra3_cuda_device_name", [&] {
        ra3::require(buffer && capacity > 0, "buffer is null or capacity <= 0");
        cudaDeviceProp props;
        check(cudaGetDeviceProperties(&props, device), "cudaGetDeviceProperties");
        std::strncpy(buffer, props.name, static_cast<size_t>(capacity - 1));
        buffer[capacity - 1] = '\0';
    });
}

RA3_API ra3_status ra3_cuda_set_device(int32_t device) {
    return ra3::guarded("ra3_cuda_set_device", [&] {
        check(cudaSetDevice(device), "cudaSetDevice");
        // Keep freed blocks in the pool instead of returning them to the driver at each synchronisation.
        uint64_t keep = UINT64_MAX;
        check(cudaMemPoolSetAttribute(device_pool(), cudaMemPoolAttrReleaseThreshold, &keep), "cudaMemPoolSetAttribute");
    });
}

RA3_API ra3_status ra3_cuda_set_stream(void* stream) {
    return ra3::guarded("ra3_cuda_set_stream", [&] { thread_stream = static_cast<cudaStream_t>(stream); });
}

RA3_API ra3_status ra3_cuda_synchronize(void) {
    return ra3::guarded("ra3_cuda_synchronize", [&] { check(cudaStreamSynchronize(current_stream()), "cudaStreamSynchronize"); });
}

RA3_API ra3_status ra3_cuda_malloc(int64_t bytes, void** ptr) {
    return ra3::guarded("ra3_cuda_malloc", [&] {
        ra3::require(ptr && bytes >= 0, "ptr is null or bytes = " + std::to_string(bytes) + " is negative");
        *ptr = nullptr;
        if (bytes == 0) return;
        const cudaError_t status = cudaMallocAsync(ptr, static_cast<size_t>(bytes), current_stream());
        if (status == cudaErrorMemoryAllocation) {
            cudaGetLastError();
            throw std::bad_alloc();
        }
        check(status, "cudaMallocAsync");
    });
}

RA3_API ra3_status ra3_cuda_free(void* ptr) {
    return ra3::guarded("ra3_cuda_free", [&] {
        if (ptr) check(cudaFreeAsync(ptr, current_stream()), "cudaFreeAsync");
    });
}

RA3_API ra3_status ra3_cuda_memcpy(void* dst, const void* src, int64_t bytes) {
    return ra3::guarded("ra3_cuda_memcpy", [&] {
        require_count(bytes, dst, src);
        if (bytes == 0) return;
        check(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDefault, current_stream()), "cudaMemcpyAsync");
        check(cudaStreamSynchronize(current_stream()), "cudaStreamSynchronize");
    });
}

RA3_API ra3_status ra3_cuda_memset(void* ptr, int32_t value, int64_t bytes) {
    return ra3::guarded("ra3_cuda_memset", [&] {
        require_count(bytes, ptr, ptr);
        if (bytes > 0) check(cudaMemsetAsync(ptr, value, static_cast<size_t>(bytes), current_stream()), "cudaMemsetAsync");
    });
}

RA3_API ra3_status ra3_cuda_accumulate_bf16(int64_t count, const uint16_t* x, float* y) {
    return ra3::guarded("ra3_cuda_accumulate_bf16", [&] {
        require_count(count, x, y);
        if (count == 0) return;
        accumulate_bf16_kernel<<<grid_for(count), 256, 0, current_stream()>>>(count, reinterpret_cast<const bf16*>(x), y);
        check_launch("accumulate_bf16_kernel");
    });
}

RA3_API ra3_status ra3_cuda_pool_usage(int64_t* current, int64_t* peak, int32_t reset_peak) {
    return ra3::guarded("ra3_cuda_pool_usage", [&] {
        ra3::require(current && peak, "an output is null");
        cudaMemPool_t pool = device_pool();
        uint64_t used = 0, high = 0;
        check(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used), "cudaMemPoolGetAttribute");
        check(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &high), "cudaMemPoolGetAttribute");
        *current = static_cast<int64_t>(used);
        *peak = static_cast<int64_t>(high);
        if (reset_peak) {
            uint64_t zero = 0;  // resets the high-water mark to the current use
            check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero), "cudaMemPoolSetAttribute");
        }
    });
}

RA3_API ra3_status ra3_cuda_f32_to_bf16(int64_t count, const float* x, uint16_t* y) {
    return ra3::guarded("ra3_cuda_f32_to_bf16", [&] {
        require_count(count, x, y);
        if (count == 0) return;
        f32_to_bf16_kernel<<<grid_for(count), 256, 0, current_stream()>>>(count, x, reinterpret_cast<bf16*>(y));
        check_launch("f32_to_bf16_kernel");
    });
}

RA3_API ra3_status ra3_cuda_bf16_to_f32(int64_t count, const uint16_t* x, float* y) {
    return ra3::guarded("ra3_cuda_bf16_to_f32", [&] {
        require_count(count, x, y);
        if (count == 0) return;
        bf16_to_f32_kernel<<<grid_for(count), 256, 0, current_stream()>>>(count, reinterpret_cast<const bf16*>(x), y);
        check_launch("bf16_to_f32_kernel");
    });
}

}  // extern "C"
