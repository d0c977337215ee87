// norms.cu - LayerNorm and RMSNorm over the last dimension, forward and backward, one warp per row
// (the row is read coalesced, reduced with shuffles), in f32. RMSNorm is LayerNorm without the mean:
// one kernel serves both (mean = NULL). Semantics as the CPU kernels: y = (x - mean) rstd w + b with
// rstd = 1 / sqrt(var + eps); the backward accumulates
//   dx += rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),  dxhat = dy w   (no mean(dxhat) for RMS)
//   dw += sum_rows dy xhat,  db += sum_rows dy.
// Parameter gradients (and the bias gradient of a linear layer, a plain column sum): each block sums
// kParamRows rows of kParamColumns columns in registers, then one atomicAdd per column and block.
#include "common.cuh"

namespace ra3::cuda {

namespace {

constexpr int kWarps = 8;          // rows per block in the forward and the dx pass
constexpr int kParamRows = 64;     // rows per block of the parameter-gradient pass
constexpr int kParamColumns = 256; // columns per block of the parameter-gradient pass

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

/** y, mean (may be NULL: RMSNorm) and rstd of each row; a warp per row. */
__global__ void norm_forward_kernel(int64_t rows, int cols, const float* __restrict__ x, const float* __restrict__ w,
                                    const float* __restrict__ b, float* __restrict__ y, float* __restrict__ mean_out,
                                    float* __restrict__ rstd_out, float eps) {
    const int64_t r = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const float* xr = x + r * cols;
    float mean = 0.0f;
    if (mean_out) {
        float s = 0.0f;
        for (int i = lane; i < cols; i += 32) s += xr[i];
        mean = warp_sum(s) / cols;
    }
    float ss = 0.0f;
    for (int i = lane; i < cols; i += 32) {
        const float d = xr[i] - mean;
        ss += d * d;
    }
    const float rstd = rsqrtf(warp_sum(ss) / cols + eps);
    float* yr = y + r * cols;
    for (int i = lane; i < cols; i += 32) yr[i] = (xr[i] - mean) * rstd * w[i] + (b ? b[i] : 0.0f);
    if (lane == 0) {
        if (mean_out) mean_out[r] = mean;
        rstd_out[r] = rstd;
    }
}

/** dx += rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)); a warp per row. */
__global__ void norm_backward_rows_kernel(int64_t rows, int cols, const float* __restrict__ x, const float* __restrict__ w,
                                          const float* __restrict__ mean_in, const float* __restrict__ rstd_in,
                                          const float* __restrict__ dy, float* __restrict__ dx) {
    const int64_t r = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const float* xr = x + r * cols;
    const float* dyr = dy + r * cols;
    const float mean = mean_in ? mean_in[r] : 0.0f, rstd = rstd_in[r];
    float sum_d = 0.0f, sum_dx = 0.0f;
    for (int i = lane; i < cols; i += 32) {
        const float d = dyr[i] * w[i];
        sum_d += d;
        sum_dx += d * (xr[i] - mean) * rstd;
    }
    const float mean_d = mean_in ? warp_sum(sum_d) / cols : 0.0f, mean_dx = warp_sum(sum_dx) / cols;
    float* dxr = dx + r * cols;
    for (int i = lane; i < cols; i += 32) {
        const float xhat = (xr[i] - mean) * rstd;
        dxr[i] += rstd * (dyr[i] * w[i] - mean_d - xhat * mean_dx);
    }
}

/** dw[c] += sum_rows dy xhat, db[c] += sum_rows dy for a block of kParamRows rows x kParamColumns columns. */
__global__ void norm_backward_params_kernel(int64_t rows, int cols, const float* __restrict__ x, const float* __restrict__ mean_in,
                                            const float* __restrict__ rstd_in, const float* __restrict__ dy, float* __restrict__ dw,
                                            float* __restrict__ db) {
    const int c = blockIdx.x * kParamColumns + threadIdx.x;
    const int64_t r0 = int64_t(blockIdx.y) * kParamRows, r1 = min(rows, r0 + kParamRows);
    if (c >= cols) return;
    float sw = 0.0f, sb = 0.0f;
    for (int64_t r = r0; r < r1; ++r) {
        const float g = dy[r * cols + c];
        sw += g * (x[r * cols + c] - (mean_in ? mean_in[r] : 0.0f)) * rstd_in[r];
        sb += g;
    }
    atomicAdd(dw + c, sw);
    if (db) atomicAdd(db + c, sb);
}

/** dbias[c] += sum_rows dout[r, c], a block of kParamRows rows x kParamColumns columns. */
__global__ void column_sum_kernel(int64_t rows, int cols, const float* __restrict__ dout, float* __restrict__ dbias) {
    const int c = blockIdx.x * kParamColumns + threadIdx.x;
    const int64_t r0 = int64_t(blockIdx.y) * kParamRows, r1 = min(rows, r0 + kParamRows);
    if (c >= cols) return;
    float s = 0.0f;
    for (int64_t r = r0; r < r1; ++r) s += dout[r * cols + c];
    atomicAdd(dbias + c, s);
}

dim3 column_grid(int64_t rows, int cols) {
    return dim3(static_cast<unsigned>(ceil_div(cols, kParamColumns)), static_cast<unsigned>(ceil_div(rows, kParamRows)));
}

void check_norm(int64_t rows, int32_t cols, bool ok) {
    ra3::require(rows >= 0 && cols > 0, "expected rows >= 0 and cols > 0; got rows=" + std::to_string(rows) + " cols=" + std::to_string(cols));
    ra3::require(rows == 0 || ok, "an argument is null");
}

void forward(int64_t rows, int32_t cols, const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, float eps) {
    if (rows == 0) return;
    norm_forward_kernel<<<static_cast<unsigned>(ceil_div(rows, kWarps)), kWarps * 32, 0, current_stream()>>>(rows, cols, x, w, b, y, mean, rstd, eps);
    check_launch("norm_forward_kernel");
}

void backward(int64_t rows, int32_t cols, const float* x, const float* w, const float* mean, const float* rstd, const float* dy, float* dx,
              float* dw, float* db) {
    if (rows == 0) return;
    cudaStream_t stream = current_stream();
    norm_backward_rows_kernel<<<static_cast<unsigned>(ceil_div(rows, kWarps)), kWarps * 32, 0, stream>>>(rows, cols, x, w, mean, rstd, dy, dx);
    check_launch("norm_backward_rows_kernel");
    norm_backward_params_kernel<<<column_grid(rows, cols), kParamColumns, 0, stream>>>(rows, cols, x, mean, rstd, dy, dw, db);
    check_launch("norm_backward_params_kernel");
}

}  // namespace

}  // namespace ra3::cuda

using namespace ra3::cuda;

extern "C" {

RA3_API ra3_status ra3_cuda_layernorm_forward_f32(int64_t rows, int32_t cols, const float* x, const float* weight, const float* bias, float* y,
                                                  float* mean, float* rstd, float eps) {
    return ra3::guarded("ra3_cuda_layernorm_forward_f32", [&] {
        check_norm(rows, cols, x && weight && y && mean && rstd);
        forward(rows, cols, x, weight, bias, y, mean, rstd, eps);
    });
}

RA3_API ra3_status ra3_cuda_layernorm_backward_f32(int64_t rows, int32_t cols, const float* x, const float* weight, const float* mean,
                                                   const float* rstd, const float* dy, float* dx, float* dweight, float* dbias) {
    return ra3::guarded("ra3_cuda_layernorm_backward_f32", [&] {
        check_norm(rows, cols, x && weight && mean && rstd && dy && dx && dweight);
        backward(rows, cols, x, weight, mean, rstd, dy, dx, dweight, dbias);
    });
}

RA3_API ra3_status ra3_cuda_rmsnorm_forward_f32(int64_t rows, int32_t cols, const float* x, const float* weight, float* y, float* rstd,
                                                float eps) {
    return ra3::guarded("ra3_cuda_rmsnorm_forward_f32", [&] {
        check_norm(rows, cols, x && weight && y && rstd);
        forward(rows, cols, x, weight, nullptr, y, nullptr, rstd, eps);
    });
}

RA3_API ra3_status ra3_cuda_rmsnorm_backward_f32(int64_t rows, int32_t cols, const float* x, const float* weight, const float* rstd,
                                                 const float* dy, float* dx, float* dweight) {
    return ra3::guarded("ra3_cuda_rmsnorm_backward_f32", [&] {
        check_norm(rows, cols, x && weight && rstd && dy && dx && dweight);
        backward(rows, cols, x, weight, nullptr, rstd, dy, dx, dweight, nullptr);
    });
}

RA3_API ra3_status ra3_cuda_bias_backward_f32(int64_t rows, int32_t cols, const float* dout, float* dbias) {
    return ra3::guarded("ra3_cuda_bias_backward_f32", [&] {
        check_norm(rows, cols, dout && dbias);
        if (rows == 0) return;
        column_sum_kernel<<<column_grid(rows, cols), kParamColumns, 0, current_stream()>>>(rows, cols, dout, dbias);
        check_launch("column_sum_kernel");
    });
}

}  // extern "C"
