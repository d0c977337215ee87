/* embed.c - a plain C host that links ra3_native: the proof that a native program can embed the
 * kernels through native/include/ra3.h alone. Multiplies two small matrices, takes a softmax and
 * a cross-entropy, and reports a deliberate error through ra3_last_error(). */
#include <math.h>
#include <stdio.h>

#include "ra3.h"

int main(void) {
    printf("ra3_native %s (ABI %d), %d CPU thread(s), %d CUDA device(s)\n", ra3_version(), ra3_abi_version(),
           ra3_cpu_threads(), ra3_cuda_device_count());

    const float a[2 * 3] = {1, 2, 3, 4, 5, 6};    /* [2, 3] */
    const float b[3 * 2] = {7, 8, 9, 10, 11, 12}; /* [3, 2] */
    float c[2 * 2];
    if (ra3_gemm_f32(1, 2, 2, 3, 0, 0, 1.0f, a, 0, b, 0, 0.0f, c, 0, NULL) != RA3_OK) {
        fprintf(stderr, "gemm failed: %s\n", ra3_last_error());
        return 1;
    }
    const float want[4] = {58, 64, 139, 154};
    for (int i = 0; i < 4; ++i) {
        if (c[i] != want[i]) {
            fprintf(stderr, "c[%d] = %g, expected %g\n", i, c[i], want[i]);
            return 1;
        }
    }

    const int32_t targets[2] = {1, 0};
    float losses[2];
    if (ra3_cross_entropy_forward_f32(2, 2, c, targets, losses) != RA3_OK) {
        fprintf(stderr, "cross-entropy failed: %s\n", ra3_last_error());
        return 1;
    }
    /* row 0: logsumexp(58, 64) - 64 = log(1 + e^-6); row 1: logsumexp(139, 154) - 139 */
    if (fabsf(losses[0] - log1pf(expf(-6.0f))) > 1e-5f || fabsf(losses[1] - (15.0f + log1pf(expf(-15.0f)))) > 1e-4f) {
        fprintf(stderr, "unexpected losses %g %g\n", losses[0], losses[1]);
        return 1;
    }

    if (ra3_gemm_f32(1, 2, 2, -3, 0, 0, 1.0f, a, 0, b, 0, 0.0f, c, 0, NULL) != RA3_ERR_INVALID_ARGUMENT) {
        fprintf(stderr, "a negative k was accepted\n");
        return 1;
    }
    printf("expected error reported: %s\n", ra3_last_error());
    printf("gemm, cross-entropy and error reporting work from C\n");
    return 0;
}
