"""Pairs our results with the PyTorch peers' by name and prints the comparison table.

  table.py --ours cuda_bench.json gpucheck.json --peers torch.json torch_gpt2.json

ratio = peer ms / ours ms, so above 1.0 means ours is faster. Markdown, ready for bench/RESULTS.md.
A missing file (a step that failed) is reported and left out.
"""
import argparse
import json
import os


def load(paths):
    results, devices = [], set()
    for path in paths:
        if not os.path.exists(path):
            print(f"(missing {path}: its step failed)")
            continue
        try:
            with open(path) as f:
                data = json.load(f)
        except ValueError as error:
            print(f"(unreadable {path}: {error})")
            continue
        devices.add(data.get("device", "?"))
        results += data["results"]
    return results, devices


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ours", nargs="+", required=True)
    parser.add_argument("--peers", nargs="+", required=True)
    args = parser.parse_args()
    ours, devices = load(args.ours)
    peers, _ = load(args.peers)
    checks = [r for r in ours if r["kind"] == "check"]
    failed = [c for c in checks if not c["pass"]]
    print(f"\n{', '.join(sorted(devices))}: {len(checks)} kernel checks against the CPU kernels, {len(failed)} failed")
    for c in failed:
        print(f"  FAIL {c['name']}: rel.err {c['error']:.3e} > {c['tolerance']:.0e}")
    print("\n| what | ours ms | peer | peer ms | ratio (peer/ours) | ours TFLOP/s | ours extra MB | peer extra MB |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for r in (r for r in ours if r["kind"] == "time"):
        matched = [p for p in peers if p["name"] == r["name"]] or [{"impl": "-", "ms": float("nan"), "extra_mb": -1}]
        for p in matched:
            ratio = p["ms"] / r["ms"]
            tflops = f"{r['tflops']:.0f}" if r.get("tflops", 0) > 0 else ""
            ours_mb = f"{r['extra_mb']:.0f}" if r.get("extra_mb", -1) >= 0 else ""
            peer_mb = f"{p['extra_mb']:.0f}" if p.get("extra_mb", -1) >= 0 else ""
            print(f"| {r['name']} | {r['ms']:.4f} | {p['impl']} | {p['ms']:.4f} | {ratio:.2f}x | {tflops} | {ours_mb} | {peer_mb} |")


if __name__ == "__main__":
    main()
