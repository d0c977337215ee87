// elbo.cpp - the temporal-ELBO forward-backward pass and its Viterbi decode (spec section 4), with
// K candidate rationales per boundary (K = 1: one, the layout of ra3_elbo_forward_backward_f32).
//
// One trace per OpenMP task. Each trace's seg [1 + t*K, t] is first transposed into rows over
// abstractions, segT[i][s] (i the 0-based line), so every step of the scan reads and writes
// contiguous rows: F[i][s] is the log-weight of lines before i with abstraction s active at line i,
// B[i][s] that of lines i.. given that state. Abstraction s >= 1 is candidate (s - 1) % K of
// boundary j = 1 + (s - 1) / K; state (i, s) exists for s <= (i + 1) * K and, with a span limit,
// i + 1 - j < max_span.
//   F[0][0] = log alpha, F[0][1 + k] = prior_think[0][k]
//   F[i][s]  = F[i-1][s] + segT[i-1][s] + log alpha                         (s <= i*K, stay)
//   F[i][1 + i*K + k] = logsumexp_s (F[i-1][s] + segT[i-1][s]) + prior_think[i][k]   (think)
//   log Z    = logsumexp_s (F[n-1][s] + segT[n-1][s])
//   B[n-1][s] = segT[n-1][s];
//   B[i][s] = segT[i][s] + logaddexp(log alpha + B[i+1][s], logsumexp_k(prior_think[i+1][k] + B[i+1][1 + (i+1)*K + k]))
//   marginal[s, i] = exp(F + B - log Z) = d log Z / d seg[s, i];  think posterior[i][k] = marginal[1 + i*K + k, i].
// For log Z, every row of F and B is stored minus its maximum, the running sums of those maxima in
// double, so exp(F + B - log Z) never cancels two large numbers in float (T up to thousands).
#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdint>
#include <string>
#include <vector>

#include "../guard.h"

namespace {

constexpr float kNegInf = -INFINITY;

struct Trace {
    int64_t T, K, W;  // lines, candidates per boundary, row width (1 + T*K + 1)
    int32_t n;
    float act;
    int32_t span;
    const float* pt;
    // Per-thread tables, reused across traces and calls: fresh pages cost a fault each on first touch.
    std::vector<float>& seg_t;
    std::vector<float>& f;
    std::vector<float>& b;
    std::vector<double>& off_f;
    std::vector<double>& off_b;

    static std::vector<float>& table(int k) {
        thread_local std::vector<float> tables[3];
        return tables[k];
    }

    static std::vector<double>& offsets(int k) {
        thread_local std::vector<double> sums[2];
        return sums[k];
    }

    Trace(const float* seg, const float* prior_think, int64_t t, int64_t k, int32_t length, float prior_act, int32_t max_span)
        : T(t), K(k), W(t * k + 2), n(length), act(prior_act), span(max_span), pt(prior_think),
          seg_t(table(0)), f(table(1)), b(table(2)), off_f(offsets(0)), off_b(offsets(1)) {
        const size_t size = static_cast<size_t>(t * W);
        for (auto* x : {&seg_t, &f, &b})
            if (x->size() < size) x->resize(size);
        off_f.resize(t);
        off_b.resize(t);
        for (int64_t i = 0; i < n; ++i) std::fill(seg_t.begin() + i * W, seg_t.begin() + (i + 1) * W, kNegInf);
        for (int64_t s = 0; s <= T * K; ++s)
            for (int64_t i = std::max<int64_t>(0, boundary(s) - 1); i < n; ++i) seg_t[i * W + s] = seg[s * T + i];
    }

    int64_t boundary(int64_t s) const { return s == 0 ? 0 : 1 + (s - 1) / K; }
    int64_t lowest(int64_t i) const { return span == 0 ? 1 : std::max<int64_t>(1, i + 2 - span); }
    bool live(int64_t s, int64_t i) const { return s <= (i + 1) * K && (s == 0 || boundary(s) >= lowest(i)); }
    float* row(std::vector<float>& x, int64_t i) { return x.data() + i * W; }

    // Subtracts the maximum of row[0..count) (when finite) and returns it.
    static double normalise(float* r, int64_t count) {
        float m = kNegInf;
        for (int64_t j = 0; j < count; ++j) m = std::max(m, r[j]);
        if (m == kNegInf) return 0.0;
        for (int64_t j = 0; j < count; ++j) r[j] -= m;
        return m;
    }

    // F rows (normalised for log Z); returns log Z, or with viterbi the best score and back-pointers in bp.
    double forward(bool viterbi, int32_t* bp, int32_t* best_state) {
        float* f0 = row(f, 0);
        std::fill(f0, f0 + W, kNegInf);
        f0[0] = act;
        for (int64_t c = 0; c < K; ++c) f0[1 + c] = pt[c];
        double offset = viterbi ? 0.0 : normalise(f0, 1 + K);
        off_f[0] = offset;
        for (int64_t i = 1; i < n; ++i) {
            const float* prev = row(f, i - 1);
            const float* s = row(seg_t, i - 1);
            float* cur = row(f, i);
            const int64_t before = 1 + i * K;  // states alive at line i - 1
            float m = kNegInf;
            int32_t arg = 0;
            for (int64_t j = 0; j < before; ++j) {
                cur[j] = prev[j] + s[j];
                if (cur[j] > m) { m = cur[j]; arg = static_cast<int32_t>(j); }
            }
            float into = m;
            if (!viterbi && m > kNegInf) {
                double sum = 0.0;
                for (int64_t j = 0; j < before; ++j) sum += std::exp(cur[j] - m);
                into = m + static_cast<float>(std::log(sum));
            }
            for (int64_t j = 0; j < before; ++j) cur[j] = live(j, i) ? cur[j] + act : kNegInf;
            std::fill(cur + before, cur + W, kNegInf);
            for (int64_t c = 0; c < K; ++c) cur[before + c] = into + pt[i * K + c];
            if (viterbi) bp[i] = arg;
            else off_f[i] = (offset += normalise(cur, before + K));
        }
        const float* last = row(f, n - 1);
        const float* s = row(seg_t, n - 1);
        float m = kNegInf;
        int32_t arg = 0;
        for (int64_t j = 0; j <= n * K; ++j)
            if (last[j] + s[j] > m) { m = last[j] + s[j]; arg = static_cast<int32_t>(j); }
        if (best_state) *best_state = arg;
        if (viterbi || m == kNegInf) return m;
        double sum = 0.0;
        for (int64_t j = 0; j <= n * K; ++j) sum += std::exp(last[j] + s[j] - m);
        return offset + m + std::log(sum);
    }

    void backward() {
        float* last = row(b, n - 1);
        const float* sl = row(seg_t, n - 1);
        for (int64_t j = 0; j < W; ++j) last[j] = live(j, n - 1) ? sl[j] : kNegInf;
        double offset = normalise(last, 1 + n * K);
        off_b[n - 1] = offset;
        for (int64_t i = n - 2; i >= 0; --i) {
            const float* next = row(b, i + 1);
            const float* s = row(seg_t, i);
            float* cur = row(b, i);
            // logsumexp over the candidates a think at boundary i + 2 may write
            const float* started = next + 1 + (i + 1) * K;
            const float* p = pt + (i + 1) * K;
            float think = kNegInf;
            for (int64_t c = 0; c < K; ++c) think = std::max(think, p[c] + started[c]);
            if (K > 1 && think > kNegInf) {
                float sum = 0.0f;
                for (int64_t c = 0; c < K; ++c) sum += std::exp(p[c] + started[c] - think);
                think += std::log(sum);
            }
            const int64_t alive = 1 + (i + 1) * K;
            for (int64_t j = 0; j < alive; ++j) {
                const float stay = live(j, i + 1) ? act + next[j] : kNegInf;
                const float m = std::max(stay, think), lo = std::min(stay, think);
                cur[j] = !live(j, i) || m == kNegInf ? kNegInf : s[j] + m + std::log1p(std::exp(lo - m));  // logaddexp
            }
            std::fill(cur + alive, cur + W, kNegInf);
            off_b[i] = (offset += normalise(cur, alive));
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

// The K-candidate passes; the K = 1 exports below call them with k = 1.
ra3_status forward_backward(const char* name, int32_t batch, int32_t t, int32_t k, const float* seg, const float* prior_think,
                            float prior_act, const int32_t* lengths, int32_t max_span, float* log_z, float* think_posterior,
                            float* line_marginals) {
    return ra3::guarded(name, [&] {
        ra3::require(k >= 1, "expected k >= 1 candidates per boundary; got k=" + std::to_string(k));
        check(batch, t, max_span, lengths, seg, prior_think);
        ra3::require(batch == 0 || (log_z && think_posterior && line_marginals), "an output is null");
        const int64_t table = (static_cast<int64_t>(t) * k + 1) * t, priors = static_cast<int64_t>(t) * k;
#pragma omp parallel for schedule(dynamic, 1)
        for (int32_t b = 0; b < batch; ++b) {
            Trace tr(seg + b * table, prior_think + b * priors, t, k, lengths[b], prior_act, max_span);
            const double z = tr.forward(false, nullptr, nullptr);
            tr.backward();
            log_z[b] = static_cast<float>(z);
            float* marg = line_marginals + b * table;
            float* post = think_posterior + b * priors;
            std::fill(marg, marg + table, 0.0f);
            std::fill(post, post + priors, 0.0f);
            // An impossible trace (log Z = -inf) has no mass anywhere; exp(-inf - -inf) would be NaN.
            for (int64_t i = 0; i < tr.n && z > -std::numeric_limits<double>::infinity(); ++i) {
                const float shift = static_cast<float>(tr.off_f[i] + tr.off_b[i] - z);
                const float* fr = tr.row(tr.f, i);
                const float* br = tr.row(tr.b, i);
                for (int64_t j = 0; j <= (i + 1) * k; ++j) marg[j * t + i] = std::exp(fr[j] + br[j] + shift);
                for (int64_t c = 0; c < k; ++c) post[i * k + c] = marg[(1 + i * k + c) * t + i];
            }
        }
    });
}

ra3_status viterbi(const char* name, int32_t batch, int32_t t, int32_t k, const float* seg, const float* prior_think, float prior_act,
                   const int32_t* lengths, int32_t max_span, float* best_score, int32_t* abstraction) {
    return ra3::guarded(name, [&] {
        ra3::require(k >= 1, "expected k >= 1 candidates per boundary; got k=" + std::to_string(k));
        check(batch, t, max_span, lengths, seg, prior_think);
        ra3::require(batch == 0 || (best_score && abstraction), "an output is null");
        const int64_t table = (static_cast<int64_t>(t) * k + 1) * t, priors = static_cast<int64_t>(t) * k;
#pragma omp parallel for schedule(dynamic, 1)
        for (int32_t b = 0; b < batch; ++b) {
            Trace tr(seg + b * table, prior_think + b * priors, t, k, lengths[b], prior_act, max_span);
            int32_t* line = abstraction + static_cast<int64_t>(b) * t;
            int32_t state = 0;
            best_score[b] = static_cast<float>(tr.forward(true, line, &state));
            for (int64_t ti = tr.n; ti < t; ++ti) line[ti] = -1;
            for (int64_t ti = tr.n - 1; ti >= 0; --ti) {
                const int32_t pointer = line[ti];
                line[ti] = state;
                if (state > ti * k) state = pointer;  // the state started at line ti: the think came from the pointer's
            }
        }
    });
}

}  // namespace

extern "C" {

RA3_API ra3_status ra3_elbo_forward_backward_f32(int32_t batch, int32_t t, const float* seg, const float* prior_think,
                                                 float prior_act, const int32_t* lengths, int32_t max_span, float* log_z,
                                                 float* think_posterior, float* line_marginals) {
    return forward_backward("ra3_elbo_forward_backward_f32", batch, t, 1, seg, prior_think, prior_act, lengths, max_span, log_z,
                            think_posterior, line_marginals);
}

RA3_API ra3_status ra3_elbo_viterbi_f32(int32_t batch, int32_t t, const float* seg, const float* prior_think, float prior_act,
                                        const int32_t* lengths, int32_t max_span, float* best_score, int32_t* abstraction) {
    return viterbi("ra3_elbo_viterbi_f32", batch, t, 1, seg, prior_think, prior_act, lengths, max_span, best_score, abstraction);
}

RA3_API ra3_status ra3_elbo_candidates_forward_backward_f32(int32_t batch, int32_t t, int32_t k, const float* seg,
                                                            const float* prior_think, float prior_act, const int32_t* lengths,
                                                            int32_t max_span, float* log_z, float* think_posterior,
                                                            float* line_marginals) {
    return forward_backward("ra3_elbo_candidates_forward_backward_f32", batch, t, k, seg, prior_think, prior_act, lengths, max_span,
                            log_z, think_posterior, line_marginals);
}

RA3_API ra3_status ra3_elbo_candidates_viterbi_f32(int32_t batch, int32_t t, int32_t k, const float* seg, const float* prior_think,
                                                   float prior_act, const int32_t* lengths, int32_t max_span, float* best_score,
                                                   int32_t* abstraction) {
    return viterbi("ra3_elbo_candidates_viterbi_f32", batch, t, k, seg, prior_think, prior_act, lengths, max_span, best_score,
                   abstraction);
}

}  // extern "C"
