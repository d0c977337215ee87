/* ra3_kernels.c - a plain C host running the three RA3 kernels through native/include/ra3.h:
 * fused causal attention (checked against the plain attention of the same library), latent
 * segment scoring (checked against logits computed here with loops), and the temporal-ELBO
 * forward-backward with its Viterbi decode (checked against enumerating every think/act
 * assignment). Run by ctest; exits non-zero with a message on any disagreement. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ra3.h"

static unsigned long long state = 88172645463325252ULL;
static float uniform(void) { /* xorshift64, values in [-1, 1) */
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (float)((state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static int check(const char* what, ra3_status s) {
    if (s != RA3_OK) fprintf(stderr, "%s failed: %s\n", what, ra3_last_error());
    return s == RA3_OK;
}

static int close_enough(const char* what, const float* got, const float* want, int n, float tol) {
    for (int i = 0; i < n; ++i) {
        if (!(fabsf(got[i] - want[i]) <= tol * (1.0f + fabsf(want[i])))) {
            fprintf(stderr, "%s[%d] = %.7g, expected %.7g\n", what, i, got[i], want[i]);
            return 0;
        }
    }
    return 1;
}

static int attention(void) {
    enum { B = 2, T = 37, HQ = 4, HKV = 2, D = 16, NQ = B * T * HQ * D, NKV = B * T * HKV * D };
    static float q[NQ], k[NKV], v[NKV], out[NQ], lse[B * HQ * T], ref[NQ], probs[B * HQ * T * T];
    for (int i = 0; i < NQ; ++i) q[i] = uniform();
    for (int i = 0; i < NKV; ++i) { k[i] = uniform(); v[i] = uniform(); }
    if (!check("flash attention", ra3_flash_attention_forward_f32(B, T, HQ, HKV, D, q, k, v, NULL, out, lse))) return 0;
    if (!check("plain attention", ra3_attention_forward_f32(B, T, HQ, HKV, D, q, k, v, ref, probs))) return 0;
    if (!close_enough("flash attention output", out, ref, NQ, 1e-4f)) return 0;
    printf("fused attention: B %d T %d Hq %d Hkv %d D %d matches the plain kernel\n", B, T, HQ, HKV, D);
    return 1;
}

static int segment_scores(void) {
    enum { N = 2, L = 9, D = 8, V = 3000, LINES = 3 };
    static float h[N * L * D], w[V * D], scores[N * LINES], lse[N * L], want[N * LINES];
    int32_t targets[N * L], lines[N * L];
    for (int i = 0; i < N * L * D; ++i) h[i] = uniform();
    for (int i = 0; i < V * D; ++i) w[i] = uniform();
    for (int r = 0; r < N * L; ++r) {
        targets[r] = (int32_t)((uniform() + 1.0f) * 0.5f * (V - 1));
        lines[r] = (r % L) / 3 - ((r % L) == L - 1); /* three lines of three tokens; the last token is padding */
    }
    if (!check("segment scores", ra3_segment_scores_forward_f32(N, L, D, V, LINES, h, w, targets, lines, scores, lse))) return 0;
    for (int i = 0; i < N * LINES; ++i) want[i] = 0.0f;
    for (int r = 0; r < N * L; ++r) {
        if (lines[r] < 0) continue;
        double m = -INFINITY, sum = 0.0, target = 0.0;
        for (int c = 0; c < V; ++c) {
            double x = 0.0;
            for (int e = 0; e < D; ++e) x += (double)h[r * D + e] * w[c * D + e];
            if (c == targets[r]) target = x;
            if (x > m) { sum = sum * exp(m - x) + 1.0; m = x; } else sum += exp(x - m);
        }
        want[(r / L) * LINES + lines[r]] += (float)(target - (m + log(sum)));
    }
    if (!close_enough("segment scores", scores, want, N * LINES, 1e-4f)) return 0;
    printf("segment scoring: %d sequences x %d tokens, vocabulary %d, matches logits computed here\n", N, L, V);
    return 1;
}

static int elbo(void) {
    enum { T = 4 };
    float seg[(T + 1) * T], pt[T], log_z, post[T], marg[(T + 1) * T], best;
    int32_t abstraction[T], length = T;
    const float pa = -0.1f;
    for (int i = 0; i < (T + 1) * T; ++i) seg[i] = -1.0f + 0.5f * uniform();
    for (int i = 0; i < T; ++i) pt[i] = -2.0f + 0.5f * uniform();
    if (!check("elbo", ra3_elbo_forward_backward_f32(1, T, seg, pt, pa, &length, 0, &log_z, post, marg))) return 0;
    if (!check("viterbi", ra3_elbo_viterbi_f32(1, T, seg, pt, pa, &length, 0, &best, abstraction))) return 0;
    double m = -INFINITY, weights[1 << T];
    int arg = 0;
    for (int mask = 0; mask < (1 << T); ++mask) { /* bit t: think at boundary t+1 */
        double wgt = 0.0;
        int j = 0;
        for (int t = 0; t < T; ++t) {
            int think = (mask >> t) & 1;
            j = think ? t + 1 : j;
            wgt += (think ? pt[t] : pa) + seg[j * T + t];
        }
        weights[mask] = wgt;
        if (wgt > m) { m = wgt; arg = mask; }
    }
    double sum = 0.0;
    for (int mask = 0; mask < (1 << T); ++mask) sum += exp(weights[mask] - m);
    const float want_z = (float)(m + log(sum)), want_best = (float)m;
    if (!close_enough("log Z", &log_z, &want_z, 1, 1e-5f) || !close_enough("best score", &best, &want_best, 1, 1e-5f)) return 0;
    for (int t = 0, j = 0; t < T; ++t) {
        j = ((arg >> t) & 1) ? t + 1 : j;
        if (abstraction[t] != j) { fprintf(stderr, "viterbi abstraction[%d] = %d, expected %d\n", t, abstraction[t], j); return 0; }
    }
    printf("temporal ELBO: log Z %.5f and the best segmentation match all %d assignments; P(think at 1) = %.4f\n", log_z, 1 << T, post[0]);
    return 1;
}

int main(void) {
    printf("ra3_native %s (ABI %d)\n", ra3_version(), ra3_abi_version());
    return attention() && segment_scores() && elbo() ? 0 : 1;
}
