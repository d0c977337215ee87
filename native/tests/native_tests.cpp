// native_tests.cpp - ctest checks of ra3_native against plain double-precision loops, and of
// the error path of the C ABI. The full per-op oracle (TorchSharp float64) runs in the .NET tests.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ra3.h"

static int failures = 0;

#define CHECK(cond, ...)                                  \
    do {                                                  \
        if (!(cond)) {                                    \
            std::printf("FAIL %s:%d: ", __FILE__, __LINE__); \
            std::printf(__VA_ARGS__);                     \
            std::printf("\n");                            \
            ++failures;                                   \
        }                                                 \
    } while (0)

static std::vector<float> random_vector(size_t n, std::mt19937& rng) {
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}

// Norm-wise relative error ||got - want|| / ||want||.
static double rel_error(const std::vector<float>& got, const std::vector<double>& want) {
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        const double d = got[i] - want[i];
        num += d * d;
        den += want[i] * want[i];
    }
    return std::isnan(num) ? INFINITY : std::sqrt(num / den);
}

static void test_gemm(std::mt19937& rng) {
    const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 65, 17}, {130, 70, 300}, {64, 520, 64}};
    for (auto& sh : shapes) {
        for (int ta = 0; ta < 2; ++ta) {
            for (int tb = 0; tb < 2; ++tb) {
                const int m = sh[0], n = sh[1], k = sh[2], batch = 3;
                auto a = random_vector(size_t(batch) * m * k, rng);
                auto b = random_vector(size_t(k) * n, rng);  // shared across the batch (stride 0)
                auto c = random_vector(size_t(batch) * m * n, rng);
                auto bias = random_vector(n, rng);
                const float alpha = 0.75f, beta = 0.5f;
                std::vector<double> want(c.size());
                for (int bi = 0; bi < batch; ++bi)
                    for (int i = 0; i < m; ++i)
                        for (int j = 0; j < n; ++j) {
                            double s = 0;
                            for (int p = 0; p < k; ++p) {
                                const double av = ta ? a[bi * m * k + p * m + i] : a[bi * m * k + i * k + p];
                                const double bv = tb ? b[j * k + p] : b[p * n + j];
                                s += av * bv;
                            }
                            const size_t idx = size_t(bi) * m * n + size_t(i) * n + j;
                            want[idx] = alpha * s + beta * c[idx] + bias[j];
                        }
                const ra3_status st = ra3_gemm_f32(batch, m, n, k, ta, tb, alpha, a.data(), int64_t(m) * k, b.data(),
                                                   0, beta, c.data(), int64_t(m) * n, bias.data());
                CHECK(st == RA3_OK, "gemm status %d: %s", st, ra3_last_error());
                const double err = rel_error(c, want);
                CHECK(err < 1e-5, "gemm m=%d n=%d k=%d ta=%d tb=%d rel error %g", m, n, k, ta, tb, err);
            }
        }
    }
}

// ra3_gemm_set_blocking: every blocking computes the product (against double); the K slice orders
// each element's sum, so another kc changes some bits (the blocking took effect) while mc and nc
// change none; a blocking out of range is refused with its values named. Ends on the defaults.
static void test_gemm_blocking(std::mt19937& rng) {
    const int m = 70, n = 200, k = 600;
    const auto a = random_vector(size_t(m) * k, rng), b = random_vector(size_t(k) * n, rng);
    std::vector<double> want(size_t(m) * n);
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
            double s = 0;
            for (int p = 0; p < k; ++p) s += double(a[size_t(i) * k + p]) * b[size_t(p) * n + j];
            want[size_t(i) * n + j] = s;
        }
    const int blockings[][3] = {{128, 48, 96}, {128, 96, 2048}, {384, 48, 96}, {384, 96, 2048}, {256, 96, 2048}};
    std::vector<std::vector<float>> got;
    for (auto& bl : blockings) {
        CHECK(ra3_gemm_set_blocking(bl[0], bl[1], bl[2]) == RA3_OK, "blocking %d %d %d refused: %s", bl[0], bl[1], bl[2], ra3_last_error());
        std::vector<float> c(size_t(m) * n);
        CHECK(ra3_gemm_f32(1, m, n, k, 0, 0, 1, a.data(), 0, b.data(), 0, 0, c.data(), 0, nullptr) == RA3_OK, "gemm: %s", ra3_last_error());
        const double err = rel_error(c, want);
        CHECK(err < 1e-5, "blocking kc%d mc%d nc%d rel error %g", bl[0], bl[1], bl[2], err);
        got.push_back(c);
    }
    CHECK(got[0] == got[1] && got[2] == got[3], "mc or nc changed the bits of a product");
    CHECK(got[0] != got[2], "kc 128 and 384 gave the same bits: the blocking was not applied");
    CHECK(ra3_gemm_set_blocking(0, 96, 2048) == RA3_ERR_INVALID_ARGUMENT, "kc 0 accepted");
    CHECK(std::strstr(ra3_last_error(), "kc=0") != nullptr, "message does not name kc: %s", ra3_last_error());
}

// bf16 bits of x rounded to nearest even, and back (exact): the storage the mixed GEMM takes.
static uint16_t to_bf16(float x) {
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    return static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

static double from_bf16(uint16_t x) {
    const uint32_t bits = static_cast<uint32_t>(x) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// ra3_gemm with every mix of f32 and bf16 storage for a, b, c and the bias (transposes, a batch,
// odd K for the bf16 pairs of the dot-product path) against double loops on the widened values;
// a bf16 c against the reference rounded once (within one bf16 ulp).
static void test_gemm_mixed(std::mt19937& rng, int m, int n, int k) {
    const int batch = 2;
    const float alpha = 0.75f, beta = 0.5f;
    for (int mix = 0; mix < 16; ++mix)
        for (int ta = 0; ta < 2; ++ta)
            for (int tb = 0; tb < 2; ++tb) {
                const bool a16 = mix & 1, b16 = mix & 2, c16 = mix & 4, bias16 = mix & 8;
                auto af = random_vector(size_t(batch) * m * k, rng), bf = random_vector(size_t(batch) * k * n, rng);
                auto cf = random_vector(size_t(batch) * m * n, rng), biasf = random_vector(n, rng);
                // Operands as stored, and their exact values.
                std::vector<uint16_t> a16v(af.size()), b16v(bf.size()), c16v(cf.size()), bias16v(biasf.size());
                std::vector<double> av(af.size()), bv(bf.size()), cv(cf.size()), biasv(biasf.size());
                auto store = [](std::vector<float>& f, std::vector<uint16_t>& h, std::vector<double>& v, bool half) {
                    for (size_t i = 0; i < f.size(); ++i) {
                        h[i] = to_bf16(f[i]);
                        v[i] = half ? from_bf16(h[i]) : f[i];
                    }
                };
                store(af, a16v, av, a16);
                store(bf, b16v, bv, b16);
                store(cf, c16v, cv, c16);
                store(biasf, bias16v, biasv, bias16);
                std::vector<double> want(cf.size());
                for (int bi = 0; bi < batch; ++bi)
                    for (int i = 0; i < m; ++i)
                        for (int j = 0; j < n; ++j) {
                            double sum = 0;
                            for (int p = 0; p < k; ++p)
                                sum += av[size_t(bi) * m * k + (ta ? size_t(p) * m + i : size_t(i) * k + p)] *
                                       bv[size_t(bi) * k * n + (tb ? size_t(j) * k + p : size_t(p) * n + j)];
                            const size_t idx = size_t(bi) * m * n + size_t(i) * n + j;
                            const double exact = alpha * sum + beta * cv[idx] + biasv[j];
                            want[idx] = c16 ? from_bf16(to_bf16(static_cast<float>(exact))) : exact;
                        }
                const ra3_dtype F = RA3_DTYPE_F32, H = RA3_DTYPE_BF16;
                const ra3_status st = ra3_gemm(batch, m, n, k, ta, tb, alpha, a16 ? (const void*)a16v.data() : af.data(), a16 ? H : F, int64_t(m) * k,
                                               b16 ? (const void*)b16v.data() : bf.data(), b16 ? H : F, int64_t(k) * n, beta,
                                               c16 ? (void*)c16v.data() : cf.data(), c16 ? H : F, int64_t(m) * n,
                                               bias16 ? (const void*)bias16v.data() : biasf.data(), bias16 ? H : F);
                CHECK(st == RA3_OK, "ra3_gemm status %d: %s", st, ra3_last_error());
                std::vector<float> got(cf.size());
                for (size_t i = 0; i < got.size(); ++i) got[i] = c16 ? static_cast<float>(from_bf16(c16v[i])) : cf[i];
                const double err = rel_error(got, want);
                CHECK(err < (c16 ? 4e-3 : 1e-5), "ra3_gemm %dx%dx%d mix %d ta=%d tb=%d rel error %g", m, n, k, mix, ta, tb, err);
            }
}

// Shapes: one K slice; the small-M and the packed path across several K slices, where a bf16 C
// must still be rounded once, after the last. Then an unknown dtype is refused.
static void test_gemm_mixed(std::mt19937& rng) {
    std::printf("ra3_gemm: bf16 x bf16 on %s\n", ra3_gemm_bf16_dot_products() ? "AVX512-BF16 dot products" : "widened f32 FMAs");
    const int shapes[][3] = {{19, 45, 37}, {5, 45, 600}, {19, 45, 600}};
    for (const auto& shape : shapes) test_gemm_mixed(rng, shape[0], shape[1], shape[2]);
    float x = 0;
    CHECK(ra3_gemm(1, 1, 1, 1, 0, 0, 1, &x, static_cast<ra3_dtype>(7), 0, &x, RA3_DTYPE_F32, 0, 0, &x, RA3_DTYPE_F32, 0, nullptr, RA3_DTYPE_F32) ==
              RA3_ERR_INVALID_ARGUMENT,
          "an unknown dtype was accepted");
}

static void test_softmax_and_cross_entropy(std::mt19937& rng) {
    const int rows = 9, cols = 37;
    auto x = random_vector(size_t(rows) * cols, rng);
    std::vector<float> y(x.size());
    CHECK(ra3_softmax_forward_f32(rows, cols, x.data(), y.data()) == RA3_OK, "softmax: %s", ra3_last_error());
    std::vector<int32_t> targets(rows);
    for (int r = 0; r < rows; ++r) targets[r] = r == 4 ? -1 : (r * 7) % cols;
    std::vector<float> losses(rows);
    CHECK(ra3_cross_entropy_forward_f32(rows, cols, x.data(), targets.data(), losses.data()) == RA3_OK, "ce: %s",
          ra3_last_error());
    for (int r = 0; r < rows; ++r) {
        double sum = 0, mx = -INFINITY;
        for (int i = 0; i < cols; ++i) mx = std::fmax(mx, x[r * cols + i]);
        for (int i = 0; i < cols; ++i) sum += std::exp(double(x[r * cols + i]) - mx);
        for (int i = 0; i < cols; ++i) {
            const double want = std::exp(double(x[r * cols + i]) - mx) / sum;
            CHECK(std::fabs(y[r * cols + i] - want) < 1e-6, "softmax[%d,%d] %g vs %g", r, i, y[r * cols + i], want);
        }
        const double want_loss = targets[r] < 0 ? 0.0 : mx + std::log(sum) - x[r * cols + targets[r]];
        CHECK(std::fabs(losses[r] - want_loss) < 1e-5, "loss[%d] %g vs %g", r, losses[r], want_loss);
    }

    // One row across exp's whole float range (e^0 down to below e^-87, where the vectorised exp
    // gives 0 and libm a subnormal), a masked -inf and a row of 8k + 3: every probability within a
    // relative 2e-6 of double precision where it is a normal float.
    const int wide = 8 * 13 + 3;
    std::vector<float> xs(wide), ys(wide);
    for (int i = 0; i < wide; ++i) xs[i] = 4.0f - 0.9731f * float(i);
    xs[17] = -INFINITY;
    CHECK(ra3_softmax_forward_f32(1, wide, xs.data(), ys.data()) == RA3_OK, "softmax: %s", ra3_last_error());
    double total = 0;
    for (int i = 0; i < wide; ++i) total += std::exp(double(xs[i]) - 4.0);
    for (int i = 0; i < wide; ++i) {
        const double want = std::exp(double(xs[i]) - 4.0) / total;
        CHECK(want < 1.2e-38 ? std::fabs(ys[i]) <= 1.2e-38 : std::fabs(ys[i] - want) <= 2e-6 * want, "softmax of the wide row [%d] %g vs %g", i,
              ys[i], want);
    }
}

// Causal softmax attention in double precision, straight from the definition: for query row i of
// head h, p_j = softmax_j(q_i . k_j / sqrt(d)) over keys j <= i of kv head h / (hq / hkv) (and
// j > i - window with a sliding window), out_i = sum_j p_j v_j. Rows at or past lengths[b] are left
// 0 (what the flash kernel documents).
struct AttentionReference {
    std::vector<double> out, probs, lse;  // [b, t, hq, d], [b, hq, t, t], [b, hq, t]
};

static AttentionReference attention_reference(int b, int t, int hq, int hkv, int d, const std::vector<float>& q,
                                              const std::vector<float>& k, const std::vector<float>& v,
                                              const std::vector<int>& lengths, int window = 0) {
    AttentionReference r{std::vector<double>(q.size()), std::vector<double>(size_t(b) * hq * t * t),
                         std::vector<double>(size_t(b) * hq * t)};
    for (int bi = 0; bi < b; ++bi)
        for (int h = 0; h < hq; ++h)
            for (int i = 0; i < lengths[bi]; ++i) {
                const int g = h / (hq / hkv);
                const int first = window == 0 ? 0 : std::max(0, i - window + 1);
                std::vector<double> logits(i + 1);
                double mx = -INFINITY, sum = 0;
                for (int j = first; j <= i; ++j) {
                    double x = 0;
                    for (int c = 0; c < d; ++c)
                        x += double(q[((size_t(bi) * t + i) * hq + h) * d + c]) * k[((size_t(bi) * t + j) * hkv + g) * d + c];
                    logits[j] = x / std::sqrt(double(d));
                    mx = std::fmax(mx, logits[j]);
                }
                for (int j = first; j <= i; ++j) sum += std::exp(logits[j] - mx);
                r.lse[(size_t(bi) * hq + h) * t + i] = mx + std::log(sum);
                for (int j = first; j <= i; ++j) {
                    const double p = std::exp(logits[j] - mx) / sum;
                    r.probs[((size_t(bi) * hq + h) * t + i) * t + j] = p;
                    for (int c = 0; c < d; ++c)
                        r.out[((size_t(bi) * t + i) * hq + h) * d + c] += p * v[((size_t(bi) * t + j) * hkv + g) * d + c];
                }
            }
    return r;
}

static void test_attention(std::mt19937& rng) {
    // t = 70 spans more than one key tile of the flash kernel; the second sequence is padded.
    const int b = 2, t = 70, hq = 4, hkv = 2, d = 5;
    auto q = random_vector(size_t(b) * t * hq * d, rng);
    auto k = random_vector(size_t(b) * t * hkv * d, rng);
    auto v = random_vector(size_t(b) * t * hkv * d, rng);
    const auto full = attention_reference(b, t, hq, hkv, d, q, k, v, {t, t});
    std::vector<float> out(q.size()), probs(size_t(b) * hq * t * t);
    CHECK(ra3_attention_forward_f32(b, t, hq, hkv, d, q.data(), k.data(), v.data(), out.data(), probs.data()) ==
              RA3_OK,
          "attention: %s", ra3_last_error());
    CHECK(rel_error(out, full.out) < 1e-6, "attention output rel error %g", rel_error(out, full.out));
    CHECK(rel_error(probs, full.probs) < 1e-6, "attention probabilities rel error %g", rel_error(probs, full.probs));

    const std::vector<int> lengths{t, 41};
    const auto padded = attention_reference(b, t, hq, hkv, d, q, k, v, lengths);
    const std::vector<int32_t> lengths32(lengths.begin(), lengths.end());
    std::vector<float> lse(size_t(b) * hq * t);
    std::fill(out.begin(), out.end(), 7.0f);  // padded rows must be written as 0, not left alone
    CHECK(ra3_flash_attention_forward_f32(b, t, hq, hkv, d, 0, q.data(), k.data(), v.data(), lengths32.data(), out.data(),
                                          lse.data()) == RA3_OK,
          "flash attention: %s", ra3_last_error());
    CHECK(rel_error(out, padded.out) < 1e-6, "flash attention output rel error %g", rel_error(out, padded.out));
    CHECK(rel_error(lse, padded.lse) < 1e-6, "flash attention lse rel error %g", rel_error(lse, padded.lse));

    // A sliding window of 9 keys: every row past the 9th loses its earliest keys.
    const int window = 9;
    const auto windowed = attention_reference(b, t, hq, hkv, d, q, k, v, lengths, window);
    CHECK(ra3_flash_attention_forward_f32(b, t, hq, hkv, d, window, q.data(), k.data(), v.data(), lengths32.data(),
                                          out.data(), lse.data()) == RA3_OK,
          "windowed flash attention: %s", ra3_last_error());
    CHECK(rel_error(out, windowed.out) < 1e-6, "windowed flash attention output rel error %g", rel_error(out, windowed.out));
    CHECK(rel_error(lse, windowed.lse) < 1e-6, "windowed flash attention lse rel error %g", rel_error(lse, windowed.lse));
    CHECK(rel_error(out, padded.out) > 1e-3, "the window changed nothing (rel %g)", rel_error(out, padded.out));
}

static void test_errors() {
    float x = 0;
    CHECK(ra3_gemm_f32(1, -2, 3, 4, 0, 0, 1, &x, 0, &x, 0, 0, &x, 0, nullptr) == RA3_ERR_INVALID_ARGUMENT,
          "negative m accepted");
    CHECK(std::strstr(ra3_last_error(), "m=-2") != nullptr, "message does not name m: %s", ra3_last_error());
    CHECK(ra3_attention_forward_f32(1, 4, 3, 2, 8, &x, &x, &x, &x, &x) == RA3_ERR_INVALID_ARGUMENT,
          "hq not a multiple of hkv accepted");
    CHECK(std::strstr(ra3_last_error(), "hq=3") != nullptr, "message does not name hq: %s", ra3_last_error());
    int32_t target = 10;
    CHECK(ra3_cross_entropy_forward_f32(1, 4, &x, &target, &x) == RA3_ERR_INVALID_ARGUMENT, "target out of range");
    CHECK(ra3_softmax_forward_f32(1, 1, &x, &x) == RA3_OK, "valid call failed");
    CHECK(ra3_last_error()[0] == '\0', "a successful call leaves an error message: %s", ra3_last_error());
}

int main() {
    std::mt19937 rng(1234);
    CHECK(std::strlen(ra3_version()) > 0, "empty version");
    test_gemm(rng);
    test_gemm_mixed(rng);
    test_gemm_blocking(rng);
    test_softmax_and_cross_entropy(rng);
    test_attention(rng);
    test_errors();
    std::printf("ra3_native %s: %d failure(s)\n", ra3_version(), failures);
    return failures == 0 ? 0 : 1;
}
