// elbo.cpp - the temporal-ELBO forward-backward pass and its Viterbi decode (spec section 4).
//
// One trace per OpenMP task. Tables are laid out like seg: X[j, t] at j*T + t, t the 0-based
// line, j = 0 (no rationale) or the 1-based boundary whose rationale is active. State (t, j)
// exists for j <= t + 1 and, with a span limit, t + 1 - j < max_span (j >= 1).
//   F[j, 0]  = log alpha (j = 0), prior_think[0] (j = 1)
//   F[j, t]  = F[j, t-1] + seg[j, t-1] + log alpha                 (j <= t, stay)
//   F[t+1,t] = logsumexp_j (F[j, t-1] + seg[j, t-1]) + prior_think[t]   (think)
//   log Z    = logsumexp_j (F[j, n-1] + seg[j, n-1])
//   B[j, n-1] = seg[j, n-1];  B[j, t] = seg[j, t] + logaddexp(log alpha + B[j, t+1], prior_think[t+1] + B[t+2, t+1])
//   marginal[j, t] = exp(F + B - log Z) = d log Z / d seg[j, t];  think posterior[t] = marginal[t+1, t].
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../guard.h"

namespace {

constexpr float kNegInf = -INFINITY;

struct Trace {
    const float* seg;
    const float* pt;
    int64_t T;
    int32_t n;
    float act;
    int32_t span;

    bool live(int64_t j, int64_t t) const { return j <= t + 1 && (j == 0 || span == 0 || t + 1 - j < span); }
    float s(int64_t j, int64_t t) const { return seg[j * T + t]; }

    void start(float* f) const {
        for (int64_t j = 0; j <= T; ++j) f[j * T] = j == 0 ? act : j == 1 ? pt[0] : kNegInf;
    }

    // Subtracts the maximum of column t (states j <= count - 1) and returns it (0 when all are -inf).
    double normalise(float* x, int64_t t, int64_t count) const {
        float m = kNegInf;
        for (int64_t j = 0; j < count; ++j) m = std::max(m, x[j * T + t]);
        if (m == kNegInf) return 0.0;
        for (int64_t j = 0; j < count; ++j) x[j * T + t] -= m;
        return m;
    }

    // F; with viterbi, max instead of logsumexp and back-pointers in bp. For log Z, each column is
    // stored minus its maximum and the running sum of the maxima goes to off[t] (double), so the
    // posteriors exp(F + B - log Z) never cancel two large numbers in float.
    void forward(float* f, bool viterbi, int32_t* bp, double* off) const {
        start(f);
        double offset = viterbi ? 0.0 : normalise(f, 0, 2);
        if (!viterbi) off[0] = offset;
        for (int64_t t = 1; t < n; ++t) {
            float m = kNegInf;
            int32_t arg = 0;
            for (int64_t j = 0; j <= t; ++j) {
                const float e = f[j * T + t - 1] + s(j, t - 1);
                if (e > m) { m = e; arg = static_cast<int32_t>(j); }
            }
            double sum = 0.0;
            for (int64_t j = 0; j <= t; ++j) {  // states j > t + 1 are never read, so never written
                const float e = f[j * T + t - 1] + s(j, t - 1);
                if (!viterbi && m > kNegInf) sum += std::exp(static_cast<double>(e - m));
                f[j * T + t] = live(j, t) ? e + act : kNegInf;
            }
            float into = viterbi ? m : (sum > 0.0 ? m + static_cast<float>(std::log(sum)) : kNegInf);
            f[(t + 1) * T + t] = into + pt[t];
            if (viterbi) bp[t] = arg;
            else off[t] = (offset += normalise(f, t, t + 2));
        }
    }

    float finish(const float* f, bool viterbi, int32_t* best) const {
        float m = kNegInf;
        int32_t arg = 0;
        for (int64_t j = 0; j <= n; ++j) {
            const float v = f[j * T + n - 1] + s(j, n - 1);
            if (v > m) { m = v; arg = static_cast<int32_t>(j); }
        }
        if (best) *best = arg;
        if (viterbi || m == kNegInf) return m;
        double sum = 0.0;
        for (int64_t j = 0; j <= n; ++j) sum += std::exp(static_cast<double>(f[j * T + n - 1] + s(j, n - 1) - m));
        return m + static_cast<float>(std::log(sum));
    }

    void backward(float* b, double* off) const {
        for (int64_t j = 0; j <= n; ++j) b[j * T + n - 1] = live(j, n - 1) ? s(j, n - 1) : kNegInf;
        double offset = normalise(b, n - 1, n + 1);
        off[n - 1] = offset;
        for (int64_t t = n - 2; t >= 0; --t) {
            const float think = pt[t + 1] + b[(t + 2) * T + t + 1];
            for (int64_t j = 0; j <= t + 1; ++j) {
                if (!live(j, t)) { b[j * T + t] = kNegInf; continue; }
                const float stay = live(j, t + 1) ? act + b[j * T + t + 1] : kNegInf;
                const float m = stay > think ? stay : think, lo = stay > think ? think : stay;
                b[j * T + t] = m == kNegInf ? kNegInf : s(j, t) + m + std::log1p(std::exp(lo - m));  // logaddexp
            }
            off[t] = (offset += normalise(b, t, t + 2));
        }
    }
};

void check(int32_t batch, int32_t t, int32_t max_span, const int32_t* lengths, const void* seg, const void* pt) {
    ra3::require(batch >= 0 && t >= 1 && max_span >= 0,
                 "expected batch >= 0, t >= 1, max_span >= 0; got batch=" + std::to_string(batch) + " t=" + std::to_string(t) +
                     " max_span=" + std::to_string(max_span));
    ra3::require(batch == 0 || (seg && pt && lengths), "an argument is null");
    for (int32_t b = 0; b < batch; ++b)
        ra3::require(lengths[b] >= 1 && lengths[b] <= t,
                     "lengths[" + std::to_string(b) + "] = " + std::to_string(lengths[b]) + " is outside [1, " + std::to_string(t) + "]");
}

}  // namespace

extern "C" {

RA3_API ra3_status ra3_elbo_forward_backward_f32(int32_t batch, int32_t t, const float* seg, const float* prior_think,
                                                 float prior_act, const int32_t* lengths, int32_t max_span, float* log_z,
                                                 float* think_posterior, float* line_marginals) {
    return ra3::guarded("ra3_elbo_forward_backward_f32", [&] {
        check(batch, t, max_span, lengths, seg, prior_think);
        ra3::require(batch == 0 || (log_z && think_posterior && line_marginals), "an output is null");
        const int64_t table = static_cast<int64_t>(t + 1) * t;
        std::vector<float> scratch(static_cast<size_t>(batch) * table);
#pragma omp parallel for schedule(dynamic, 1)
        for (int32_t b = 0; b < batch; ++b) {
            const Trace tr{seg + b * table, prior_think + static_cast<int64_t>(b) * t, t, lengths[b], prior_act, max_span};
            float* f = line_marginals + b * table;
            float* back = scratch.data() + b * table;
            std::vector<double> off_f(t), off_b(t);
            tr.forward(f, false, nullptr, off_f.data());
            const double z = off_f[tr.n - 1] + tr.finish(f, false, nullptr);
            tr.backward(back, off_b.data());
            log_z[b] = static_cast<float>(z);
            float* post = think_posterior + static_cast<int64_t>(b) * t;
            for (int64_t ti = 0; ti < t; ++ti) {
                const float shift = ti < tr.n ? static_cast<float>(off_f[ti] + off_b[ti] - z) : 0.0f;
                for (int64_t j = 0; j <= t; ++j) {
                    const int64_t i = j * t + ti;
                    f[i] = ti < tr.n && tr.live(j, ti) ? std::exp(f[i] + back[i] + shift) : 0.0f;
                }
                post[ti] = ti < tr.n ? f[(ti + 1) * t + ti] : 0.0f;
            }
        }
    });
}

RA3_API ra3_status ra3_elbo_viterbi_f32(int32_t batch, int32_t t, const float* seg, const float* prior_think, float prior_act,
                                        const int32_t* lengths, int32_t max_span, float* best_score, int32_t* abstraction) {
    return ra3::guarded("ra3_elbo_viterbi_f32", [&] {
        check(batch, t, max_span, lengths, seg, prior_think);
        ra3::require(batch == 0 || (best_score && abstraction), "an output is null");
        const int64_t table = static_cast<int64_t>(t + 1) * t;
        std::vector<float> scratch(static_cast<size_t>(batch) * table);
#pragma omp parallel for schedule(dynamic, 1)
        for (int32_t b = 0; b < batch; ++b) {
            const Trace tr{seg + b * table, prior_think + static_cast<int64_t>(b) * t, t, lengths[b], prior_act, max_span};
            int32_t* line = abstraction + static_cast<int64_t>(b) * t;
            tr.forward(scratch.data() + b * table, true, line, nullptr);
            int32_t state = 0;
            best_score[b] = tr.finish(scratch.data() + b * table, true, &state);
            for (int64_t ti = tr.n; ti < t; ++ti) line[ti] = -1;
            for (int64_t ti = tr.n - 1; ti >= 0; --ti) {
                const int32_t pointer = line[ti];
                line[ti] = state;
                if (state == ti + 1) state = pointer;
            }
        }
    });
}

}  // extern "C"
