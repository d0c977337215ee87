using System.Runtime.InteropServices;

namespace RA3.Kernels.Native;

/// <summary>P/Invoke declarations of <c>native/include/ra3.h</c>; see that header for the contracts.</summary>
internal static unsafe partial class NativeMethods
{
    private const string Lib = NativeLibraryLoader.LibraryName;

    [LibraryImport(Lib, EntryPoint = "ra3_version")]
    public static partial byte* Version();

    [LibraryImport(Lib, EntryPoint = "ra3_abi_version")]
    public static partial int AbiVersion();

    [LibraryImport(Lib, EntryPoint = "ra3_last_error")]
    public static partial byte* LastError();

    [LibraryImport(Lib, EntryPoint = "ra3_cpu_threads")]
    public static partial int CpuThreads();

    [LibraryImport(Lib, EntryPoint = "ra3_cuda_device_count")]
    public static partial int CudaDeviceCount();

    [LibraryImport(Lib, EntryPoint = "ra3_gemm_f32")]
    public static partial int Gemm(int batch, int m, int n, int k, int transA, int transB, float alpha, float* a, long strideA, float* b, long strideB, float beta, float* c, long strideC, float* bias);

    /// <summary><c>ra3_gemm</c>: each operand's dtype is 0 (f32) or 1 (bf16).</summary>
    [LibraryImport(Lib, EntryPoint = "ra3_gemm")]
    public static partial int GemmMixed(int batch, int m, int n, int k, int transA, int transB, float alpha, void* a, int aType, long strideA, void* b, int bType, long strideB, float beta, void* c, int cType, long strideC, void* bias, int biasType);

    [LibraryImport(Lib, EntryPoint = "ra3_gemm_bf16_dot_products")]
    public static partial int GemmBf16DotProducts();

    [LibraryImport(Lib, EntryPoint = "ra3_gemm_set_blocking")]
    public static partial int GemmSetBlocking(int kc, int mc, int nc);

    [LibraryImport(Lib, EntryPoint = "ra3_softmax_forward_f32")]
    public static partial int SoftmaxForward(int rows, int cols, float* x, float* y);

    [LibraryImport(Lib, EntryPoint = "ra3_softmax_backward_f32")]
    public static partial int SoftmaxBackward(int rows, int cols, float* y, float* dy, float* dx);

    [LibraryImport(Lib, EntryPoint = "ra3_cross_entropy_forward_f32")]
    public static partial int CrossEntropyForward(int rows, int vocab, float* logits, int* targets, float* losses);

    [LibraryImport(Lib, EntryPoint = "ra3_cross_entropy_backward_f32")]
    public static partial int CrossEntropyBackward(int rows, int vocab, float* logits, int* targets, float* dLosses, float* dLogits);

    [LibraryImport(Lib, EntryPoint = "ra3_attention_forward_f32")]
    public static partial int AttentionForward(int batch, int t, int hq, int hkv, int d, float* q, float* k, float* v, float* output, float* probs);

    [LibraryImport(Lib, EntryPoint = "ra3_attention_backward_f32")]
    public static partial int AttentionBackward(int batch, int t, int hq, int hkv, int d, float* q, float* k, float* v, float* probs, float* dOutput, float* dq, float* dk, float* dv);

    [LibraryImport(Lib, EntryPoint = "ra3_flash_attention_forward_f32")]
    public static partial int FlashAttentionForward(int batch, int t, int hq, int hkv, int d, int window, float* q, float* k, float* v, int* lengths, float* output, float* lse);

    [LibraryImport(Lib, EntryPoint = "ra3_flash_attention_backward_f32")]
    public static partial int FlashAttentionBackward(int batch, int t, int hq, int hkv, int d, int window, float* q, float* k, float* v, int* lengths, float* output, float* lse, float* dOutput, float* dq, float* dk, float* dv);

    [LibraryImport(Lib, EntryPoint = "ra3_attention_decode_f32")]
    public static partial int AttentionDecode(int batch, int capacity, int hq, int hkv, int d, int window, float* q, float* kNew, float* vNew, float* kCache, float* vCache, int* lengths, float* output);

    [LibraryImport(Lib, EntryPoint = "ra3_segment_scores_forward_f32")]
    public static partial int SegmentScoresForward(int n, int l, int d, int v, int lines, float* h, float* w, int* targets, int* lineIds, float* scores, float* lse);

    [LibraryImport(Lib, EntryPoint = "ra3_segment_scores_backward_f32")]
    public static partial int SegmentScoresBackward(int n, int l, int d, int v, int lines, float* h, float* w, int* targets, int* lineIds, float* lse, float* dScores, float* dh, float* dw);

    [LibraryImport(Lib, EntryPoint = "ra3_elbo_forward_backward_f32")]
    public static partial int ElboForwardBackward(int batch, int t, float* seg, float* priorThink, float priorAct, int* lengths, int maxSpan, float* logZ, float* thinkPosterior, float* lineMarginals);

    [LibraryImport(Lib, EntryPoint = "ra3_elbo_viterbi_f32")]
    public static partial int ElboViterbi(int batch, int t, float* seg, float* priorThink, float priorAct, int* lengths, int maxSpan, float* bestScore, int* abstraction);

    [LibraryImport(Lib, EntryPoint = "ra3_elbo_candidates_forward_backward_f32")]
    public static partial int ElboForwardBackward(int batch, int t, int k, float* seg, float* priorThink, float priorAct, int* lengths, int maxSpan, float* logZ, float* thinkPosterior, float* lineMarginals);

    [LibraryImport(Lib, EntryPoint = "ra3_elbo_candidates_viterbi_f32")]
    public static partial int ElboViterbi(int batch, int t, int k, float* seg, float* priorThink, float priorAct, int* lengths, int maxSpan, float* bestScore, int* abstraction);

    /// <summary>Throws for any status but <see cref="NativeStatus.Ok"/>, with the library's own message.</summary>
    public static void Check(int status)
    {
        var result = (NativeStatus)status;
        if (result == NativeStatus.Ok)
        {
            return;
        }

        string message = Marshal.PtrToStringUTF8((IntPtr)LastError()) ?? "(no message)";
        throw result == NativeStatus.InvalidArgument ? new ArgumentException(message) : new InvalidOperationException($"ra3_native status {result}: {message}");
    }
}
