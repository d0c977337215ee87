"""Pairs cuda_bench's results with torch_reference's by name and prints the comparison table.

ratio = peer ms / ours ms, so above 1.0 means ours is faster. Markdown, ready for bench/RESULTS.md.
"""
import json
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def main(ours_path, torch_path):
    ours, peer = load(ours_path), load(torch_path)
    checks = [r for r in ours["results"] if r["kind"] == "check"]
    failed = [c for c in checks if not c["pass"]]
    print(f"\n{ours['device']}: {len(checks)} kernel checks against the CPU kernels, {len(failed)} failed")
    for c in failed:
        print(f"  FAIL {c['name']}: rel.err {c['error']:.3e} > {c['tolerance']:.0e}")
    print("\n| what | ours ms | peer | peer ms | ratio (peer/ours) | ours TFLOP/s | ours extra MB | peer extra MB |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for r in (r for r in ours["results"] if r["kind"] == "time"):
        peers = [p for p in peer["results"] if p["name"] == r["name"]] or [{"impl": "-", "ms": float("nan"), "extra_mb": -1}]
        for p in peers:
            ratio = p["ms"] / r["ms"]
            tflops = f"{r['tflops']:.0f}" if r["tflops"] > 0 else ""
            ours_mb = f"{r['extra_mb']:.0f}" if r["extra_mb"] >= 0 else ""
            peer_mb = f"{p['extra_mb']:.0f}" if p.get("extra_mb", -1) >= 0 else ""
            print(f"| {r['name']} | {r['ms']:.4f} | {p['impl']} | {p['ms']:.4f} | {ratio:.2f}x | {tflops} | {ours_mb} | {peer_mb} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
