using System.Runtime.InteropServices;

namespace RA3.Kernels.Native;

/// <summary>P/Invoke declarations of the CUDA half of <c>native/include/ra3.h</c> (device pointers; RA3_ERR_UNSUPPORTED in a build without CUDA).</summary>
internal static unsafe partial class NativeMethods
{
    [LibraryImport(Lib, EntryPoint = "ra3_cuda_device_name")]
    public static partial int CudaDeviceName(int device, byte* buffer, int capacity);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_set_device")]
    public static partial int CudaSetDevice(int device);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_set_stream")]
    public static partial int CudaSetStream(IntPtr stream);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_synchronize")]
    public static partial int CudaSynchronize();

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_malloc")]
    public static partial int CudaMalloc(long bytes, IntPtr* ptr);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_free")]
    public static partial int CudaFree(IntPtr ptr);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_memcpy")]
    public static partial int CudaMemcpy(IntPtr dst, IntPtr src, long bytes);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_memset")]
    public static partial int CudaMemset(IntPtr ptr, int value, long bytes);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_pool_usage")]
    public static partial int CudaPoolUsage(long* current, long* peak, int resetPeak);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_f32_to_bf16")]
    public static partial int CudaF32ToBf16(long count, IntPtr x, IntPtr y);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_bf16_to_f32")]
    public static partial int CudaBf16ToF32(long count, IntPtr x, IntPtr y);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_accumulate_bf16")]
    public static partial int CudaAccumulateBf16(long count, IntPtr x, IntPtr y);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_gemm_bf16")]
    public static partial int CudaGemmBf16(int batch, int m, int n, int k, int transA, int transB, float alpha, IntPtr a, long strideA, IntPtr b, long strideB, float beta, IntPtr c, int cIsBf16, long strideC);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_gemm_f32")]
    public static partial int CudaGemmF32(int batch, int m, int n, int k, int transA, int transB, float alpha, IntPtr a, long strideA, IntPtr b, long strideB, float beta, IntPtr c, long strideC, IntPtr bias);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_bias_backward_f32")]
    public static partial int CudaBiasBackward(long rows, int cols, IntPtr dOutput, IntPtr dBias);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_layernorm_forward_f32")]
    public static partial int CudaLayerNormForward(long rows, int cols, IntPtr x, IntPtr weight, IntPtr bias, IntPtr y, IntPtr mean, IntPtr rstd, float eps);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_layernorm_backward_f32")]
    public static partial int CudaLayerNormBackward(long rows, int cols, IntPtr x, IntPtr weight, IntPtr mean, IntPtr rstd, IntPtr dy, IntPtr dx, IntPtr dWeight, IntPtr dBias);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_rmsnorm_forward_f32")]
    public static partial int CudaRmsNormForward(long rows, int cols, IntPtr x, IntPtr weight, IntPtr y, IntPtr rstd, float eps);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_rmsnorm_backward_f32")]
    public static partial int CudaRmsNormBackward(long rows, int cols, IntPtr x, IntPtr weight, IntPtr rstd, IntPtr dy, IntPtr dx, IntPtr dWeight);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_flash_attention_forward_bf16")]
    public static partial int CudaFlashAttentionForward(int batch, int t, int hq, int hkv, int d, IntPtr q, IntPtr k, IntPtr v, IntPtr lengths, IntPtr output, IntPtr lse);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_flash_attention_backward_bf16")]
    public static partial int CudaFlashAttentionBackward(int batch, int t, int hq, int hkv, int d, IntPtr q, IntPtr k, IntPtr v, IntPtr lengths, IntPtr output, IntPtr lse, IntPtr dOutput, IntPtr dq, IntPtr dk, IntPtr dv);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_segment_scores_forward_bf16")]
    public static partial int CudaSegmentScoresForward(int n, int l, int d, int v, int lines, IntPtr h, IntPtr w, IntPtr targets, IntPtr lineIds, IntPtr scores, IntPtr lse);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_segment_scores_backward_bf16")]
    public static partial int CudaSegmentScoresBackward(int n, int l, int d, int v, int lines, IntPtr h, IntPtr w, IntPtr targets, IntPtr lineIds, IntPtr lse, IntPtr dScores, IntPtr dh, IntPtr dw);

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_elbo_forward_backward_f32")]
    public static partial int CudaElboForwardBackward(int batch, int t, IntPtr seg, IntPtr priorThink, float priorAct, IntPtr lengths, int maxSpan, IntPtr logZ, IntPtr thinkPosterior, IntPtr lineMarginals);

    /// <summary>The ELBO pass through numbered CUDA kernel variant 1-4 (bench/gpu checks and times each).</summary>
    [LibraryImport(Lib, EntryPoint = "ra3_cuda_elbo_forward_backward_variant_f32")]
    public static partial int CudaElboForwardBackwardVariant(int variant, int batch, int t, IntPtr seg, IntPtr priorThink, float priorAct, IntPtr lengths, int maxSpan, IntPtr logZ, IntPtr thinkPosterior, IntPtr lineMarginals);
}
