#!/usr/bin/env bash
# Data-parallel throughput on this machine (issue 17, item 4): one pre-training run — the default
# 9.6M-parameter Llama (C 384, 6 layers), global batch 8 × 256 tokens — timed three ways:
# 1 rank × 1 thread, 1 rank × 2 threads (the managed worker pool), 2 ranks × 1 thread (mpirun,
# the gradients all-reduced over Open MPI's shared memory). Prints a Markdown table of tokens/s
# (rank 0's, over the training loop, as metrics.jsonl records it at the last step) and the scaling
# efficiency against 1 rank × 1 thread, with the machine's load before and after: figures taken
# under a load above the core count are the neighbours' as much as ours.
#   bench/data-parallel.sh [STEPS]   (default 24; needs a Release build and tools/install-mpi.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-24}
ra3=$PWD/src/RA3.Train/bin/Release/net10.0/ra3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=(); [[ "$(id -u)" == 0 ]] && root=(--allow-run-as-root)
"$ra3" tasks --out "$work/tasks" > /dev/null
args=(pretrain --data "$work/tasks/pretrain.jsonl" --steps "$steps" --eval-every 1000000 --save-every 1000000)

# tokens/s of a finished run: the last metrics line's.
rate() { tail -n 1 "$1/metrics.jsonl" | python3 -c 'import json, sys; print(json.load(sys.stdin)["tokens_per_s"])'; }

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
RA3_CPU_THREADS=1 "$ra3" "${args[@]}" --out "$work/r1t1" > /dev/null
RA3_CPU_THREADS=2 "$ra3" "${args[@]}" --out "$work/r1t2" > /dev/null
mpirun "${root[@]}" -np 2 -x RA3_CPU_THREADS=1 "$ra3" "${args[@]}" --out "$work/r2t1" < /dev/null > /dev/null
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
base=$(rate "$work/r1t1")
echo
echo "| configuration | tokens/s | speed-up | efficiency (speed-up / cores) |"
echo "|---|---:|---:|---:|"
for run in r1t1:"1 rank × 1 thread":1 r1t2:"1 rank × 2 threads":2 r2t1:"2 ranks × 1 thread":2; do
  IFS=: read -r dir name cores <<< "$run"
  python3 -c "r = $(rate "$work/$dir"); print(f'| $name | {r:,.0f} | {r / $base:.2f} | {r / $base / $cores:.0%} |')"
done
