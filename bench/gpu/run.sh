#!/usr/bin/env bash
# The GPU machine's one script: builds ra3_native with CUDA, checks every CUDA kernel against the
# CPU kernels, times ours and PyTorch's peers on the same GPU, and prints the comparison table.
# Logs and JSON go to $OUT (the device tool's output folder) or ./runs/gpu.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-runs/gpu}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv | tee "$OUT/gpu.csv"
nvcc --version | tail -1
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DRA3_CUDA=ON > "$OUT/cmake.log" 2>&1 || { cat "$OUT/cmake.log"; exit 1; }
cmake --build build-gpu -j"$(nproc)" --target ra3_cuda_bench 2>&1 | tee "$OUT/build.log" | grep -E "error|warning|spill" || true
test -x build-gpu/ra3_cuda_bench || { tail -40 "$OUT/build.log"; exit 1; }
status=0
build-gpu/ra3_cuda_bench "$@" --out "$OUT/ours.json" 2>&1 | tee "$OUT/ours.log" || status=$?
if [[ " $* " != *" --check "* || " $* " == *" --bench "* ]]; then
  PYTHONUNBUFFERED=1 python3 bench/gpu/torch_reference.py --out "$OUT/torch.json" 2>&1 | tee "$OUT/torch.log"
  python3 bench/gpu/table.py "$OUT/ours.json" "$OUT/torch.json" | tee "$OUT/table.md"
fi
exit $status
