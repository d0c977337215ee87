"""PyTorch peers of bench/gpu/cuda_bench.cpp, timed on the same GPU in the same call.

Writes the same JSON result lines as cuda_bench (kind "time", impl "torch-..."), with the same
names, so table.py can pair them. Timing: CUDA events, median of 20 after 3 warm-up calls.
"""
import argparse
import json
import math

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def time_ms(body, repeats=20, warmup=3):
    for _ in range(warmup):
        body()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        body()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[repeats // 2]


results = []


def record(impl, name, ms, tflops=0.0, extra_mb=-1.0):
    results.append({"kind": "time", "impl": impl, "name": name, "ms": ms, "tflops": tflops, "extra_mb": extra_mb})
    extra = f"  {extra_mb:8.1f} MB extra" if extra_mb >= 0 else ""
    print(f"time  {impl:12s} {name:48s} {ms:9.4f} ms  {tflops:7.1f} TFLOP/s{extra}", flush=True)


def bench_gemm():
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    ms = time_ms(lambda: a @ b.T)
    record("torch", "gemm bf16 8192^3", ms, 2 * n**3 / ms / 1e9)


def bench_attention(batch, heads, t, d):
    shape = f"B{batch} H{heads} T{t} D{d}"
    flops = 4 * batch * heads * t * t * d / 2
    q, k, v, dout = (torch.randn(batch, heads, t, d, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    q.requires_grad_(), k.requires_grad_(), v.requires_grad_()
    for backend, impl in ((SDPBackend.FLASH_ATTENTION, "torch-flash"), (SDPBackend.CUDNN_ATTENTION, "torch-cudnn")):
        try:
            with sdpa_kernel(backend):
                def fwd():
                    with torch.no_grad():
                        F.scaled_dot_product_attention(q, k, v, is_causal=True)

                def both():
                    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                    out.backward(dout)

                f = time_ms(fwd)
                record(impl, f"attention fwd {shape}", f, flops / f / 1e9)
                fb = time_ms(both)
                record(impl, f"attention fwd+bwd {shape}", fb, 3.5 * flops / fb / 1e9)
        except RuntimeError as error:  # a backend that does not take this shape
            print(f"skip  {impl} {shape}: {error}".splitlines()[0], flush=True)


def bench_segment(tokens, d, v):
    n, lines = 4, 64
    l = tokens // n
    shape = f"{tokens} tok d{d} V{v}"
    h = torch.randn(tokens, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    w = (torch.randn(v, d, device="cuda", dtype=torch.bfloat16) * 0.05).requires_grad_()
    targets = torch.randint(0, v, (tokens,), device="cuda")
    line_ids = torch.randint(-1, lines, (tokens,), device="cuda")
    dscores = torch.randn(n * lines, device="cuda")
    seq = torch.arange(tokens, device="cuda") // l
    keep = line_ids >= 0
    slot = (seq * lines + line_ids.clamp(min=0))[keep]

    def scores():
        logp = torch.log_softmax((h @ w.T).float(), dim=-1)
        picked = logp.gather(1, targets[:, None]).squeeze(1)
        return torch.zeros(n * lines, device="cuda").index_add(0, slot, picked[keep])

    def fwd():
        with torch.no_grad():
            scores()

    def both():
        scores().backward(dscores)

    def extra_mb(body):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        body()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 1e6

    flops = 2 * tokens * d * v
    f = time_ms(fwd)
    record("torch", f"segment fwd {shape}", f, flops / f / 1e9, extra_mb(fwd))
    h.grad = w.grad = None
    fb = time_ms(both)
    record("torch", f"segment fwd+bwd {shape}", fb, 4 * flops / fb / 1e9, extra_mb(both))


def elbo_log_z(seg, pt, act, span):
    """The spec's recursion, plainly: a loop over lines, vectorised over traces and abstractions."""
    batch, states, t = seg.shape  # states = t + 1
    seg_t = seg.transpose(1, 2)  # [B, line, abstraction]
    j = torch.arange(states + 1, device=seg.device)
    neg = torch.tensor(-math.inf, device=seg.device)
    f = torch.full((batch, states + 1), -math.inf, device=seg.device)
    f = torch.where(j == 0, torch.tensor(act, device=seg.device), f)
    f = torch.where(j == 1, pt[:, :1], f)
    pad = torch.full((batch, 1), -math.inf, device=seg.device)
    for i in range(1, t):
        x = f + torch.cat([seg_t[:, i - 1], pad], dim=1)
        x = torch.where(j <= i, x, neg)
        into = torch.logsumexp(x, dim=1, keepdim=True)
        live = (j <= i) & ((j == 0) | (span == 0) | (j >= i + 2 - span))
        f = torch.where(live, x + act, neg)
        f = torch.where(j == i + 1, into + pt[:, i : i + 1], f)
    x = torch.where(j <= t, f + torch.cat([seg_t[:, t - 1], pad], dim=1), neg)
    return torch.logsumexp(x, dim=1)


def bench_elbo(batch, t, span):
    seg = (torch.rand(batch, t + 1, t, device="cuda") * -2.95 - 0.05).requires_grad_()
    pt = (torch.rand(batch, t, device="cuda") * -2.95 - 0.05).requires_grad_()
    act = math.log(0.9)

    def both():
        elbo_log_z(seg, pt, act, span).sum().backward()

    ms = time_ms(both, repeats=5, warmup=1)
    record("torch", f"elbo fwd+bwd B{batch} T{t} span{span}", ms)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}", flush=True)
    bench_gemm()
    bench_attention(8, 12, 1024, 64)
    bench_attention(4, 16, 4096, 128)
    bench_segment(4096, 512, 32000)
    bench_segment(4096, 512, 50257)
    bench_elbo(64, 256, 16)
    bench_elbo(64, 256, 0)
    with open(args.out, "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
