// cuda_bench.cpp - checks every CUDA kernel of ra3_native against the library's CPU kernels on fresh
// random inputs, then times the CUDA kernels at the shapes of bench/gpu/README.md.
//
//   ra3_cuda_bench [--check] [--bench] [--only WORD] [--out FILE.json] [--seed N]
//   (--only runs the checks and timings whose group is WORD: gemm, attention, segment or elbo)
//
// Checks: the bf16 kernels get inputs rounded to bf16, and the CPU reference (f32) gets the same
// rounded values, so the error measured is the kernel's own (bf16 products and outputs). Outputs are
// poisoned (NaN) before each run, so an element the kernel never writes fails the check; gradient
// buffers start random, so the accumulate convention is checked too. Error = ||gpu - cpu|| / ||cpu||.
// Timing: CUDA events around each call, median of the repeats after warm-up calls.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "ra3.h"

namespace {

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "FATAL: %s\n", what.c_str());
    std::exit(2);
}

void ok(ra3_status status, const char* call) {
    if (status != RA3_OK) fail(std::string(call) + " -> " + std::to_string(status) + ": " + ra3_last_error());
}
#define OK(call) ok((call), #call)

void cuda_ok(cudaError_t status, const char* call) {
    if (status != cudaSuccess) fail(std::string(call) + ": " + cudaGetErrorString(status));
}

std::mt19937_64 rng;

std::vector<float> randn(size_t count, float scale = 1.0f) {
    std::normal_distribution<float> normal(0.0f, scale);
    std::vector<float> x(count);
    for (auto& v : x) v = normal(rng);
    return x;
}

uint16_t to_bf16(float x) {
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    if (std::isnan(x)) return 0x7fc0;
    bits += 0x7fff + ((bits >> 16) & 1);  // round to nearest even
    return static_cast<uint16_t>(bits >> 16);
}

float from_bf16(uint16_t h) {
    const uint32_t bits = uint32_t(h) << 16;
    float x;
    std::memcpy(&x, &bits, 4);
    return x;
}

/** Rounds x to bf16 in place and returns the bit patterns. */
std::vector<uint16_t> round_bf16(std::vector<float>& x) {
    std::vector<uint16_t> h(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
        h[i] = to_bf16(x[i]);
        x[i] = from_bf16(h[i]);
    }
    return h;
}

std::vector<float> widen(const std::vector<uint16_t>& h) {
    std::vector<float> x(h.size());
    for (size_t i = 0; i < h.size(); ++i) x[i] = from_bf16(h[i]);
    return x;
}

/** Device memory from the library's pool. */
class Buffer {
public:
    Buffer() = default;
    explicit Buffer(size_t bytes) : bytes_(bytes) { OK(ra3_cuda_malloc(static_cast<int64_t>(bytes), &ptr_)); }
    template <typename T>
    explicit Buffer(const std::vector<T>& host) : Buffer(host.size() * sizeof(T)) {
        upload(host);
    }
    ~Buffer() {
        if (ptr_) ra3_cuda_free(ptr_);
    }
    Buffer(Buffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr; }
    Buffer& operator=(Buffer&& o) noexcept {
        std::swap(ptr_, o.ptr_);
        std::swap(bytes_, o.bytes_);
        return *this;
    }
    template <typename T>
    T* as() const { return static_cast<T*>(ptr_); }
    template <typename T>
    void upload(const std::vector<T>& host) {
        if (host.size() * sizeof(T) != bytes_) fail("upload size mismatch");
        OK(ra3_cuda_memcpy(ptr_, host.data(), static_cast<int64_t>(bytes_)));
    }
    template <typename T>
    std::vector<T> download() const {
        std::vector<T> host(bytes_ / sizeof(T));
        OK(ra3_cuda_memcpy(host.data(), ptr_, static_cast<int64_t>(bytes_)));
        return host;
    }
    void poison() const { cuda_ok(cudaMemset(ptr_, 0xff, bytes_), "cudaMemset"); }  // NaN in f32 and bf16

private:
    void* ptr_ = nullptr;
    size_t bytes_ = 0;
};

// ---- checks ----------------------------------------------------------------------------------

int failures = 0;
std::vector<std::string> results_json;

double rel_error(const std::vector<float>& got, const std::vector<float>& want) {
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        const double d = double(got[i]) - want[i];
        if (std::isnan(got[i])) return INFINITY;
        num += d * d;
        den += double(want[i]) * want[i];
    }
    return std::sqrt(num / std::max(den, 1e-300));
}

void report_check(const std::string& name, double error, double tolerance) {
    const bool pass = error <= tolerance;
    if (!pass) ++failures;
    std::printf("check %-52s rel.err %.3e  (tol %.0e)  %s\n", name.c_str(), error, tolerance, pass ? "ok" : "FAIL");
    char line[256];
    std::snprintf(line, sizeof line, "{\"kind\":\"check\",\"name\":\"%s\",\"error\":%.4e,\"tolerance\":%.1e,\"pass\":%s}", name.c_str(), error,
                  tolerance, pass ? "true" : "false");
    results_json.push_back(line);
}

void check_gemm() {
    for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb) {
            const int m = 300, n = 200, k = 96, batch = 2;
            auto a = randn(size_t(batch) * m * k), b = randn(size_t(batch) * k * n), c = randn(size_t(batch) * m * n);
            auto ah = round_bf16(a), bh = round_bf16(b);
            std::vector<float> want = c;
            OK(ra3_gemm_f32(batch, m, n, k, ta, tb, 0.5f, a.data(), int64_t(m) * k, b.data(), int64_t(k) * n, 1.0f, want.data(), int64_t(m) * n,
                            nullptr));
            Buffer da(ah), db(bh), dc(c);
            OK(ra3_cuda_gemm_bf16(batch, m, n, k, ta, tb, 0.5f, da.as<uint16_t>(), int64_t(m) * k, db.as<uint16_t>(), int64_t(k) * n, 1.0f,
                                  dc.as<void>(), 0, int64_t(m) * n));
            report_check("gemm bf16->f32 ta=" + std::to_string(ta) + " tb=" + std::to_string(tb), rel_error(dc.download<float>(), want), 1e-5);

            // f32 on the TF32 tensor cores, with the bias epilogue, against unrounded inputs.
            auto a32 = randn(size_t(batch) * m * k), b32 = randn(size_t(batch) * k * n), bias = randn(n);
            std::vector<float> want32 = c;
            OK(ra3_gemm_f32(batch, m, n, k, ta, tb, 0.5f, a32.data(), int64_t(m) * k, b32.data(), int64_t(k) * n, 1.0f, want32.data(),
                            int64_t(m) * n, bias.data()));
            Buffer ga(a32), gb(b32), gc(c), gbias(bias);
            OK(ra3_cuda_gemm_f32(batch, m, n, k, ta, tb, 0.5f, ga.as<float>(), int64_t(m) * k, gb.as<float>(), int64_t(k) * n, 1.0f, gc.as<float>(),
                                 int64_t(m) * n, gbias.as<float>()));
            report_check("gemm tf32+bias ta=" + std::to_string(ta) + " tb=" + std::to_string(tb), rel_error(gc.download<float>(), want32), 2e-3);
        }
}

void check_attention(int d, int batch, int t, int hq, int hkv, const std::vector<int32_t>& lengths) {
    const size_t nq = size_t(batch) * t * hq * d, nk = size_t(batch) * t * hkv * d;
    auto q = randn(nq), k = randn(nk), v = randn(nk), dout = randn(nq);
    auto dq0 = randn(nq, 0.1f), dk0 = randn(nk, 0.1f), dv0 = randn(nk, 0.1f);
    auto qh = round_bf16(q), kh = round_bf16(k), vh = round_bf16(v), doh = round_bf16(dout);
    auto dqh = round_bf16(dq0), dkh = round_bf16(dk0), dvh = round_bf16(dv0);
    std::vector<float> out(nq), lse(size_t(batch) * hq * t);
    OK(ra3_flash_attention_forward_f32(batch, t, hq, hkv, d, 0, q.data(), k.data(), v.data(), lengths.data(), out.data(), lse.data()));
    std::vector<float> dq = dq0, dk = dk0, dv = dv0;
    OK(ra3_flash_attention_backward_f32(batch, t, hq, hkv, d, 0, q.data(), k.data(), v.data(), lengths.data(), out.data(), lse.data(), dout.data(),
                                        dq.data(), dk.data(), dv.data()));

    Buffer gq(qh), gk(kh), gv(vh), gdo(doh), glen(lengths), gout(nq * 2), glse(lse.size() * 4), gdq(dqh), gdk(dkh), gdv(dvh);
    gout.poison();
    glse.poison();
    OK(ra3_cuda_flash_attention_forward_bf16(batch, t, hq, hkv, d, gq.as<uint16_t>(), gk.as<uint16_t>(), gv.as<uint16_t>(), glen.as<int32_t>(),
                                             gout.as<uint16_t>(), glse.as<float>()));
    OK(ra3_cuda_flash_attention_backward_bf16(batch, t, hq, hkv, d, gq.as<uint16_t>(), gk.as<uint16_t>(), gv.as<uint16_t>(), glen.as<int32_t>(),
                                              gout.as<uint16_t>(), glse.as<float>(), gdo.as<uint16_t>(), gdq.as<uint16_t>(), gdk.as<uint16_t>(),
                                              gdv.as<uint16_t>()));
    OK(ra3_cuda_synchronize());
    const std::string tag = " D" + std::to_string(d) + " B" + std::to_string(batch) + " T" + std::to_string(t) + " Hq" + std::to_string(hq) +
                            " Hkv" + std::to_string(hkv);
    report_check("attention fwd out" + tag, rel_error(widen(gout.download<uint16_t>()), out), 1e-2);
    report_check("attention fwd lse" + tag, rel_error(glse.download<float>(), lse), 1e-3);
    report_check("attention bwd dq" + tag, rel_error(widen(gdq.download<uint16_t>()), dq), 2e-2);
    report_check("attention bwd dk" + tag, rel_error(widen(gdk.download<uint16_t>()), dk), 2e-2);
    report_check("attention bwd dv" + tag, rel_error(widen(gdv.download<uint16_t>()), dv), 2e-2);
}

void check_segment(int n, int l, int d, int v, int lines) {
    const size_t rows = size_t(n) * l;
    auto h = randn(rows * d), w = randn(size_t(v) * d, 0.5f);
    auto hh = round_bf16(h), wh = round_bf16(w);
    std::uniform_int_distribution<int32_t> target(0, v - 1), line(-1, lines - 1);
    std::vector<int32_t> targets(rows), line_ids(rows);
    for (size_t r = 0; r < rows; ++r) {
        targets[r] = target(rng);
        line_ids[r] = line(rng);
    }
    std::vector<float> scores(size_t(n) * lines), lse(rows);
    OK(ra3_segment_scores_forward_f32(n, l, d, v, lines, h.data(), w.data(), targets.data(), line_ids.data(), scores.data(), lse.data()));
    auto dscores = randn(scores.size());
    auto dh = randn(rows * d, 0.1f), dw = randn(size_t(v) * d, 0.1f);
    Buffer gh(hh), gw(wh), gt(targets), gl(line_ids), gs(scores.size() * 4), glse(rows * 4), gds(dscores), gdh(dh), gdw(dw);
    gs.poison();
    glse.poison();
    OK(ra3_segment_scores_backward_f32(n, l, d, v, lines, h.data(), w.data(), targets.data(), line_ids.data(), lse.data(), dscores.data(),
                                       dh.data(), dw.data()));
    OK(ra3_cuda_segment_scores_forward_bf16(n, l, d, v, lines, gh.as<uint16_t>(), gw.as<uint16_t>(), gt.as<int32_t>(), gl.as<int32_t>(),
                                            gs.as<float>(), glse.as<float>()));
    OK(ra3_cuda_segment_scores_backward_bf16(n, l, d, v, lines, gh.as<uint16_t>(), gw.as<uint16_t>(), gt.as<int32_t>(), gl.as<int32_t>(),
                                             glse.as<float>(), gds.as<float>(), gdh.as<float>(), gdw.as<float>()));
    OK(ra3_cuda_synchronize());
    const std::string tag = " n" + std::to_string(n) + " l" + std::to_string(l) + " d" + std::to_string(d) + " V" + std::to_string(v);
    report_check("segment scores" + tag, rel_error(gs.download<float>(), scores), 1e-4);
    report_check("segment lse" + tag, rel_error(glse.download<float>(), lse), 1e-5);
    report_check("segment dh" + tag, rel_error(gdh.download<float>(), dh), 1e-2);
    report_check("segment dw" + tag, rel_error(gdw.download<float>(), dw), 1e-2);
}

// The ELBO kernel variant under check and timing (--variant N; 1 is the default kernel).
int elbo_variant = 1;

void check_elbo(int batch, int t, int span) {
    const size_t table = size_t(t + 1) * t;
    std::uniform_real_distribution<float> u(-3.0f, -0.05f);
    std::vector<float> seg(batch * table), pt(size_t(batch) * t);
    for (auto& x : seg) x = u(rng);
    for (auto& x : pt) x = u(rng) - 1.0f;
    std::uniform_int_distribution<int32_t> len(1, t);
    std::vector<int32_t> lengths(batch);
    for (int b = 0; b < batch; ++b) lengths[b] = b == 0 ? t : (b == 1 ? 1 : len(rng));
    const float act = std::log(0.9f);
    std::vector<float> z(batch), post(pt.size()), marg(seg.size());
    OK(ra3_elbo_forward_backward_f32(batch, t, seg.data(), pt.data(), act, lengths.data(), span, z.data(), post.data(), marg.data()));
    Buffer gseg(seg), gpt(pt), glen(lengths), gz(z.size() * 4), gpost(post.size() * 4), gmarg(marg.size() * 4);
    gz.poison();
    gpost.poison();
    gmarg.poison();
    OK(ra3_cuda_elbo_forward_backward_variant_f32(elbo_variant, batch, t, gseg.as<float>(), gpt.as<float>(), act, glen.as<int32_t>(), span,
                                                  gz.as<float>(), gpost.as<float>(), gmarg.as<float>()));
    OK(ra3_cuda_synchronize());
    const std::string tag = " B" + std::to_string(batch) + " T" + std::to_string(t) + " span" + std::to_string(span) + " variant" + std::to_string(elbo_variant);
    report_check("elbo log_z" + tag, rel_error(gz.download<float>(), z), 1e-5);
    report_check("elbo think posterior" + tag, rel_error(gpost.download<float>(), post), 1e-4);
    report_check("elbo line marginals" + tag, rel_error(gmarg.download<float>(), marg), 1e-4);
}

// ---- timing ----------------------------------------------------------------------------------

/** Median milliseconds of body over repeats, after warm-up calls; events on the library's (default) stream. */
double time_ms(const std::function<void()>& body, int repeats = 20, int warmup = 3) {
    for (int i = 0; i < warmup; ++i) body();
    cudaEvent_t start, stop;
    cuda_ok(cudaEventCreate(&start), "cudaEventCreate");
    cuda_ok(cudaEventCreate(&stop), "cudaEventCreate");
    std::vector<float> ms(repeats);
    for (int i = 0; i < repeats; ++i) {
        cuda_ok(cudaEventRecord(start), "cudaEventRecord");
        body();
        cuda_ok(cudaEventRecord(stop), "cudaEventRecord");
        cuda_ok(cudaEventSynchronize(stop), "cudaEventSynchronize");
        cuda_ok(cudaEventElapsedTime(&ms[i], start, stop), "cudaEventElapsedTime");
    }
    OK(ra3_cuda_synchronize());
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    std::sort(ms.begin(), ms.end());
    return ms[repeats / 2];
}

void record(const std::string& name, double ms, double tflops, double extra_mb = -1) {
    std::printf("time  %-52s %9.4f ms", name.c_str(), ms);
    if (tflops > 0) std::printf("  %7.1f TFLOP/s", tflops);
    if (extra_mb >= 0) std::printf("  %8.1f MB extra", extra_mb);
    std::printf("\n");
    char line[256];
    std::snprintf(line, sizeof line, "{\"kind\":\"time\",\"impl\":\"ra3\",\"name\":\"%s\",\"ms\":%.5f,\"tflops\":%.2f,\"extra_mb\":%.1f}",
                  name.c_str(), ms, tflops, extra_mb);
    results_json.push_back(line);
}

Buffer random_bf16(size_t count, float scale = 1.0f) {
    auto x = randn(count, scale);
    return Buffer(round_bf16(x));
}

void bench_gemm() {
    const int n = 8192;
    Buffer a = random_bf16(size_t(n) * n), b = random_bf16(size_t(n) * n), c(size_t(n) * n * 2);
    const double ms = time_ms([&] {
        OK(ra3_cuda_gemm_bf16(1, n, n, n, 0, 1, 1.0f, a.as<uint16_t>(), 0, b.as<uint16_t>(), 0, 0.0f, c.as<void>(), 1, 0));
    });
    record("gemm bf16 8192^3", ms, 2.0 * n * n * double(n) / ms / 1e9);
}

void bench_attention(int batch, int hq, int t, int d) {
    const size_t count = size_t(batch) * t * hq * d;
    Buffer q = random_bf16(count), k = random_bf16(count), v = random_bf16(count), dout = random_bf16(count);
    Buffer out(count * 2), lse(size_t(batch) * hq * t * 4), dq(count * 2), dk(count * 2), dv(count * 2);
    auto fwd = [&] {
        OK(ra3_cuda_flash_attention_forward_bf16(batch, t, hq, hq, d, q.as<uint16_t>(), k.as<uint16_t>(), v.as<uint16_t>(), nullptr,
                                                 out.as<uint16_t>(), lse.as<float>()));
    };
    auto bwd = [&] {
        OK(ra3_cuda_flash_attention_backward_bf16(batch, t, hq, hq, d, q.as<uint16_t>(), k.as<uint16_t>(), v.as<uint16_t>(), nullptr,
                                                  out.as<uint16_t>(), lse.as<float>(), dout.as<uint16_t>(), dq.as<uint16_t>(), dk.as<uint16_t>(),
                                                  dv.as<uint16_t>()));
    };
    const double flops = 4.0 * batch * hq * double(t) * t * d / 2;
    const std::string shape = "B" + std::to_string(batch) + " H" + std::to_string(hq) + " T" + std::to_string(t) + " D" + std::to_string(d);
    const double f = time_ms(fwd);
    record("attention fwd " + shape, f, flops / f / 1e9);
    const double fb = time_ms([&] {
        fwd();
        bwd();
    });
    record("attention fwd+bwd " + shape, fb, 3.5 * flops / fb / 1e9);
}

void bench_segment(int tokens, int d, int v) {
    const int n = 4, l = tokens / n, lines = 64;
    Buffer h = random_bf16(size_t(tokens) * d), w = random_bf16(size_t(v) * d, 0.05f);
    std::uniform_int_distribution<int32_t> target(0, v - 1), line(-1, lines - 1);
    std::vector<int32_t> targets(tokens), ids(tokens);
    for (int r = 0; r < tokens; ++r) {
        targets[r] = target(rng);
        ids[r] = line(rng);
    }
    Buffer gt(targets), gl(ids), scores(size_t(n) * lines * 4), lse(size_t(tokens) * 4), dscores(randn(size_t(n) * lines)),
        dh(size_t(tokens) * d * 4), dw(size_t(v) * d * 4);
    auto fwd = [&] {
        OK(ra3_cuda_segment_scores_forward_bf16(n, l, d, v, lines, h.as<uint16_t>(), w.as<uint16_t>(), gt.as<int32_t>(), gl.as<int32_t>(),
                                                scores.as<float>(), lse.as<float>()));
    };
    auto bwd = [&] {
        OK(ra3_cuda_segment_scores_backward_bf16(n, l, d, v, lines, h.as<uint16_t>(), w.as<uint16_t>(), gt.as<int32_t>(), gl.as<int32_t>(),
                                                 lse.as<float>(), dscores.as<float>(), dh.as<float>(), dw.as<float>()));
    };
    auto extra_mb = [&](const std::function<void()>& body) {  // pool high-water mark during body, over what was in use before
        OK(ra3_cuda_synchronize());
        int64_t now = 0, peak = 0;
        OK(ra3_cuda_pool_usage(&now, &peak, 1));
        body();
        OK(ra3_cuda_synchronize());
        OK(ra3_cuda_pool_usage(&now, &peak, 0));
        return double(peak - now) / 1e6;
    };
    const std::string shape = std::to_string(tokens) + " tok d" + std::to_string(d) + " V" + std::to_string(v);
    const double flops = 2.0 * tokens * double(d) * v;
    const double f = time_ms(fwd);
    record("segment fwd " + shape, f, flops / f / 1e9, extra_mb(fwd));
    auto both = [&] {
        fwd();
        bwd();
    };
    const double fb = time_ms(both);
    record("segment fwd+bwd " + shape, fb, 4.0 * flops / fb / 1e9, extra_mb(both));
}

void bench_elbo(int batch, int t, int span) {
    const size_t table = size_t(t + 1) * t;
    std::uniform_real_distribution<float> u(-3.0f, -0.05f);
    std::vector<float> seg(batch * table), pt(size_t(batch) * t);
    for (auto& x : seg) x = u(rng);
    for (auto& x : pt) x = u(rng);
    std::vector<int32_t> lengths(batch, t);
    Buffer gseg(seg), gpt(pt), glen(lengths), z(size_t(batch) * 4), post(pt.size() * 4), marg(seg.size() * 4);
    const double ms = time_ms([&] {
        OK(ra3_cuda_elbo_forward_backward_variant_f32(elbo_variant, batch, t, gseg.as<float>(), gpt.as<float>(), std::log(0.9f),
                                                      glen.as<int32_t>(), span, z.as<float>(), post.as<float>(), marg.as<float>()));
    });
    record("elbo fwd+bwd B" + std::to_string(batch) + " T" + std::to_string(t) + " span" + std::to_string(span) +
               (elbo_variant == 1 ? std::string() : " variant " + std::to_string(elbo_variant)),
           ms, 0);
}

}  // namespace

int main(int argc, char** argv) {
    bool do_check = false, do_bench = false;
    const char* out = nullptr;
    std::string only;
    unsigned long long seed = std::random_device{}();
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--check") do_check = true;
        else if (a == "--bench") do_bench = true;
        else if (a == "--out" && i + 1 < argc) out = argv[++i];
        else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
        else if (a == "--only" && i + 1 < argc) only = argv[++i];
        else if (a == "--variant" && i + 1 < argc) elbo_variant = std::atoi(argv[++i]);
        else fail("usage: ra3_cuda_bench [--check] [--bench] [--only WORD] [--variant N (the ELBO kernel's, 1-4)] [--out FILE.json] [--seed N]");
    }
    if (!do_check && !do_bench) do_check = do_bench = true;
    rng.seed(seed);
    if (ra3_cuda_device_count() < 1) fail("no CUDA device visible to ra3_native (built with CUDA? driver present?)");
    char name[256];
    OK(ra3_cuda_device_name(0, name, sizeof name));
    OK(ra3_cuda_set_device(0));
    std::printf("ra3_native %s (ABI %d) on %s, seed %llu, %d CPU threads for the references\n", ra3_version(), ra3_abi_version(), name, seed,
                ra3_cpu_threads());

    auto group = [&](const char* name) { return only.empty() || only == name; };
    if (do_check) {
        if (group("gemm")) check_gemm();
        if (group("attention")) {
            check_attention(64, 2, 300, 4, 2, {300, 217});
            check_attention(128, 2, 200, 2, 1, {133, 200});
            check_attention(64, 1, 1024, 2, 2, {1024});
        }
        if (group("segment")) {
            check_segment(3, 200, 64, 1000, 20);
            check_segment(2, 300, 128, 40000, 16);
        }
        if (group("elbo")) {
            check_elbo(5, 300, 0);
            check_elbo(4, 300, 16);
            if (elbo_variant != 4) check_elbo(3, 1500, 0);  // variant 4 holds at most 16 x 32 states
        }
        std::printf("checks: %d failed\n", failures);
    }
    if (do_bench) {
        if (group("gemm")) bench_gemm();
        if (group("attention")) {
            bench_attention(8, 12, 1024, 64);
            bench_attention(4, 16, 4096, 128);
        }
        if (group("segment")) {
            bench_segment(4096, 512, 32000);
            bench_segment(4096, 512, 50257);
        }
        if (group("elbo")) {
            bench_elbo(64, 256, 16);
            bench_elbo(64, 256, 0);
        }
    }
    if (out) {
        FILE* f = std::fopen(out, "w");
        if (!f) fail(std::string("cannot write ") + out);
        std::fprintf(f, "{\"device\":\"%s\",\"seed\":%llu,\"results\":[\n", name, seed);
        for (size_t i = 0; i < results_json.size(); ++i) std::fprintf(f, "%s%s\n", results_json[i].c_str(), i + 1 < results_json.size() ? "," : "");
        std::fprintf(f, "]}\n");
        std::fclose(f);
    }
    return failures == 0 ? 0 : 1;
}
