// elbo.cpp - the temporal-ELBO forward-backward pass and its Viterbi decode (spec section 4).
//
// One trace per OpenMP task. Each trace's seg [t+1, t] is first transposed into rows over
// abstractions, segT[i][j] (i the 0-based line), so every step of the scan reads and writes
// contiguous rows: F[i][j] is the log-weight of lines before i with abstraction j active at line i,
// B[i][j] that of lines i.. given that state. State (i, j) exists for j <= i + 1 and, with a span
// limit, i + 1 - j < max_span (j >= 1).
//   F[0][j]  = log alpha (j = 0), prior_think[0] (j = 1)
//   F[i][j]  = F[i-1][j] + segT[i-1][j] + log alpha                 (j <= i, stay)
//   F[i][i+1] = logsumexp_j (F[i-1][j] + segT[i-1][j]) + prior_think[i]   (think)
//   log Z    = logsumexp_j (F[n-1][j] + segT[n-1][j])
//   B[n-1][j] = segT[n-1][j];  B[i][j] = segT[i][j] + logaddexp(log alpha + B[i+1][j], prior_think[i+1] + B[i+1][i+2])
//   marginal[j, i] = exp(F + B - log Z) = d log Z / d seg[j, i];  think posterior[i] = marginal[i+1, i].
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
    int64_t T, W;  // lines, row width (T + 2)
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

    Trace(const float* seg, const float* prior_think, int64_t t, int32_t length, float prior_act, int32_t max_span)
        : T(t), W(t + 2), n(length), act(prior_act), span(max_span), pt(prior_think),
          seg_t(table(0)), f(table(1)), b(table(2)), off_f(offsets(0)), off_b(offsets(1)) {
        const size_t size = static_cast<size_t>(t * (t + 2));
        for (auto* x : {&seg_t, &f, &b})
            if (x->size() < size) x->resize(size);
        off_f.resize(t);
        off_b.resize(t);
        for (int64_t i = 0; i < n; ++i) std::fill(seg_t.begin() + i * W, seg_t.begin() + (i + 1) * W, kNegInf);
        for (int64_t j = 0; j <= T; ++j)
            for (int64_t i = std::max<int64_t>(0, j - 1); i < n; ++i) seg_t[i * W + j] = seg[j * T + i];
    }

    int64_t lowest(int64_t i) const { return span == 0 ? 1 : std::max<int64_t>(1, i + 2 - span); }
    bool live(int64_t j, int64_t i) const { return j <= i + 1 && (j == 0 || j >= lowest(i)); }
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
        f0[1] = pt[0];
        double offset = viterbi ? 0.0 : normalise(f0, 2);
        off_f[0] = offset;
        for (int64_t i = 1; i < n; ++i) {
            const float* prev = row(f, i - 1);
            const float* s = row(seg_t, i - 1);
            float* cur = row(f, i);
            float m = kNegInf;
            int32_t arg = 0;
            for (int64_t j = 0; j <= i; ++j) {
                cur[j] = prev[j] + s[j];
                if (cur[j] > m) { m = cur[j]; arg = static_cast<int32_t>(j); }
            }
            float into = m;
            if (!viterbi && m > kNegInf) {
                double sum = 0.0;
                for (int64_t j = 0; j <= i; ++j) sum += std::exp(cur[j] - m);
                into = m + static_cast<float>(std::log(sum));
            }
            for (int64_t j = 0; j <= i; ++j) cur[j] = live(j, i) ? cur[j] + act : kNegInf;
            std::fill(cur + i + 1, cur + W, kNegInf);
            cur[i + 1] = into + pt[i];
            if (viterbi) bp[i] = arg;
            else off_f[i] = (offset += normalise(cur, i + 2));
        }
        const float* last = row(f, n - 1);
        const float* s = row(seg_t, n - 1);
        float m = kNegInf;
        int32_t arg = 0;
        for (int64_t j = 0; j <= n; ++j)
            if (last[j] + s[j] > m) { m = last[j] + s[j]; arg = static_cast<int32_t>(j); }
        if (best_state) *best_state = arg;
        if (viterbi || m == kNegInf) return m;
        double sum = 0.0;
        for (int64_t j = 0; j <= n; ++j) sum += std::exp(last[j] + s[j] - m);
        return offset + m + std::log(sum);
    }

    void backward() {
        float* last = row(b, n - 1);
        const float* sl = row(seg_t, n - 1);
        for (int64_t j = 0; j < W; ++j) last[j] = j <= n && live(j, n - 1) ? sl[j] : kNegInf;
        double offset = normalise(last, n + 1);
        off_b[n - 1] = offset;
        for (int64_t i = n - 2; i >= 0; --i) {
            const float* next = row(b, i + 1);
            const float* s = row(seg_t, i);
            float* cur = row(b, i);
            const float think = pt[i + 1] + next[i + 2];
            for (int64_t j = 0; j <= i + 1; ++j) {
                const float stay = live(j, i + 1) ? act + next[j] : kNegInf;
                const float m = std::max(stay, think), lo = std::min(stay, think);
                cur[j] = !live(j, i) || m == kNegInf ? kNegInf : s[j] + m + std::log1p(std::exp(lo - m));  // logaddexp
            }
            std::fill(cur + i + 2, cur + W, kNegInf);
            off_b[i] = (offset += normalise(cur, i + 2));
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
#pragma omp parallel for schedule(dynamic, 1)
        for (int32_t b = 0; b < batch; ++b) {
            Trace tr(seg + b * table, prior_think + static_cast<int64_t>(b) * t, t, lengths[b], prior_act, max_span);
            const double z = tr.forward(false, nullptr, nullptr);
            tr.backward();
            log_z[b] = static_cast<float>(z);
            float* marg = line_marginals + b * table;
            float* post = think_posterior + static_cast<int64_t>(b) * t;
            std::fill(marg, marg + table, 0.0f);
            std::fill(post, post + t, 0.0f);
            // An impossible trace (log Z = -inf) has no mass anywhere; exp(-inf - -inf) would be NaN.
            for (int64_t i = 0; i < tr.n && z > -std::numeric_limits<double>::infinity(); ++i) {
                const float shift = static_cast<float>(tr.off_f[i] + tr.off_b[i] - z);
                const float* fr = tr.row(tr.f, i);
                const float* br = tr.row(tr.b, i);
                for (int64_t j = 0; j <= i + 1; ++j) marg[j * t + i] = std::exp(fr[j] + br[j] + shift);
                post[i] = marg[(i + 1) * t + i];
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
#pragma omp parallel for schedule(dynamic, 1)
        for (int32_t b = 0; b < batch; ++b) {
            Trace tr(seg + b * table, prior_think + static_cast<int64_t>(b) * t, t, lengths[b], prior_act, max_span);
            int32_t* line = abstraction + static_cast<int64_t>(b) * t;
            int32_t state = 0;
            best_score[b] = static_cast<float>(tr.forward(true, line, &state));
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
