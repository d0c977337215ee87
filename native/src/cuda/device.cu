// device.cu - CUDA device discovery; compiled only when CMake finds a CUDA toolkit.
#include <cuda_runtime.h>
#include <cstdint>

int32_t ra3_cuda_device_count_impl() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
    return static_cast<int32_t>(count);
}
