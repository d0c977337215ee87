/* ra3_kernels.c - a plain C host running the three RA3 kernels through native/include/ra3.h:
 * fused causal attention (checked against softmax attention computed here with loops, padded
 * rows included), latent segment scoring (checked against logits computed here with loops), and
 * the temporal-ELBO forward-backward with its Viterbi decode (log Z, think posteriors, line
 * marginals and the best segmentation checked against enumerating every think/act assignment).
 * Every reference is computed in this file, in double precision, not by the library. Run by
 * ctest; exits non-zero with a message on any disagreement. */
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
    static float q[NQ], k[NKV], v[NKV], out[NQ], lse[B * HQ * T], want[NQ], want_lse[B * HQ * T];
    const int32_t lengths[B] = {T, 23}; /* the second sequence is right-padded */
    for (int i = 0; i < NQ; ++i) q[i] = uniform();
    for (int i = 0; i < NKV; ++i) { k[i] = uniform(); v[i] = uniform(); }
    if (!check("flash attention", ra3_flash_attention_forward_f32(B, T, HQ, HKV, D, 0, q, k, v, lengths, out, lse))) return 0;
    /* Reference: out[b,i,h] = sum_{j<=i} softmax_j(q_i . k_j / sqrt(D)) v_j over kv head h / (HQ / HKV);
     * rows at or past a length are 0 with lse 0, as ra3.h documents. */
    for (int b = 0; b < B; ++b)
        for (int h = 0; h < HQ; ++h)
            for (int i = 0; i < T; ++i) {
                float* o = &want[((b * T + i) * HQ + h) * D];
                const int g = h / (HQ / HKV);
                double logits[T], m = -INFINITY, sum = 0.0, acc[D] = {0};
                if (i >= lengths[b]) {
                    for (int e = 0; e < D; ++e) o[e] = 0.0f;
                    want_lse[(b * HQ + h) * T + i] = 0.0f;
                    continue;
                }
                for (int j = 0; j <= i; ++j) {
                    double x = 0.0;
                    for (int e = 0; e < D; ++e) x += (double)q[((b * T + i) * HQ + h) * D + e] * k[((b * T + j) * HKV + g) * D + e];
                    logits[j] = x / sqrt((double)D);
                    if (logits[j] > m) m = logits[j];
                }
                for (int j = 0; j <= i; ++j) {
                    const double p = exp(logits[j] - m);
                    sum += p;
                    for (int e = 0; e < D; ++e) acc[e] += p * v[((b * T + j) * HKV + g) * D + e];
                }
                for (int e = 0; e < D; ++e) o[e] = (float)(acc[e] / sum);
                want_lse[(b * HQ + h) * T + i] = (float)(m + log(sum));
            }
    if (!close_enough("flash attention output", out, want, NQ, 1e-5f)) return 0;
    if (!close_enough("flash attention lse", lse, want_lse, B * HQ * T, 1e-5f)) return 0;
    printf("fused attention: B %d T %d Hq %d Hkv %d D %d, lengths %d and %d, matches loops computed here\n", B, T, HQ,
           HKV, D, lengths[0], lengths[1]);
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
    float seg[(T + 1) * T], pt[T], log_z, post[T], marg[(T + 1) * T], best, want_post[T], want_marg[(T + 1) * T];
    int32_t abstraction[T], length = T;
    const float pa = -0.1f;
    for (int i = 0; i < (T + 1) * T; ++i) seg[i] = -1.0f + 0.5f * uniform();
    for (int i = 0; i < T; ++i) pt[i] = -2.0f + 0.5f * uniform();
    if (!check("elbo", ra3_elbo_forward_backward_f32(1, T, seg, pt, pa, &length, 0, &log_z, post, marg))) return 0;
    if (!check("viterbi", ra3_elbo_viterbi_f32(1, T, seg, pt, pa, &length, 0, &best, abstraction))) return 0;
    /* Enumerate the 2^T assignments. Bit t of a mask: think at boundary t+1, so line t starts
     * abstraction t+1 (seg row t+1); otherwise line t continues the current abstraction j. */
    double m = -INFINITY, weights[1 << T];
    int arg = 0;
    for (int mask = 0; mask < (1 << T); ++mask) {
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
    double sum = 0.0, p_think[T] = {0}, p_line[(T + 1) * T] = {0};
    for (int mask = 0; mask < (1 << T); ++mask) sum += exp(weights[mask] - m);
    const double z = m + log(sum);
    /* The think posterior and line marginals are each assignment's probability summed over the
     * assignments that think at t, or that score line t under abstraction j. */
    for (int mask = 0; mask < (1 << T); ++mask) {
        const double p = exp(weights[mask] - z);
        for (int t = 0, j = 0; t < T; ++t) {
            if ((mask >> t) & 1) { p_think[t] += p; j = t + 1; }
            p_line[j * T + t] += p;
        }
    }
    for (int t = 0; t < T; ++t) want_post[t] = (float)p_think[t];
    for (int i = 0; i < (T + 1) * T; ++i) want_marg[i] = (float)p_line[i];
    const float want_z = (float)z, want_best = (float)m;
    if (!close_enough("log Z", &log_z, &want_z, 1, 1e-5f) || !close_enough("best score", &best, &want_best, 1, 1e-5f)) return 0;
    if (!close_enough("think posterior", post, want_post, T, 1e-5f)) return 0;
    if (!close_enough("line marginals", marg, want_marg, (T + 1) * T, 1e-5f)) return 0;
    for (int t = 0, j = 0; t < T; ++t) {
        j = ((arg >> t) & 1) ? t + 1 : j;
        if (abstraction[t] != j) { fprintf(stderr, "viterbi abstraction[%d] = %d, expected %d\n", t, abstraction[t], j); return 0; }
    }
    printf("temporal ELBO: log Z %.5f, posteriors, marginals and the best segmentation match all %d assignments\n", log_z,
           1 << T);
    return 1;
}

int main(void) {
    printf("ra3_native %s (ABI %d)\n", ra3_version(), ra3_abi_version());
    return attention() && segment_scores() && elbo() ? 0 : 1;
}
