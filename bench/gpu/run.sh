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
# The .NET side: CudaBackend against CpuBackend through the public ops and the model code, and the
# GPT-2 124M training step on the GPU. RA3_GPU_CHECK_DLL names a published RA3.GpuCheck.dll (a
# machine with a .NET runtime but no SDK); with an SDK it is built here.
if [[ $# -eq 0 ]]; then
  export RA3_NATIVE_LIB="$PWD/build-gpu/libra3_native.so"
  # The op tests' device fixtures (float64 references), written where TorchSharp is (README).
  export RA3_DEVICE_FIXTURES="${RA3_DEVICE_FIXTURES:-$PWD/.device/fixtures}"
  if [[ -n "${RA3_GPU_CHECK_DLL:-}" ]]; then
    dotnet "$RA3_GPU_CHECK_DLL" --out "$OUT/gpucheck.json" 2>&1 | tee "$OUT/dotnet.log" || status=1
  elif command -v dotnet > /dev/null && dotnet --list-sdks | grep -q .; then
    dotnet run --project bench/gpu/RA3.GpuCheck -c Release -- --out "$OUT/gpucheck.json" 2>&1 | tee "$OUT/dotnet.log" || status=1
  else
    echo "NOT RUN: the CudaBackend check needs .NET (set RA3_GPU_CHECK_DLL; bench/gpu/README.md)" | tee "$OUT/dotnet.log"
    status=1
  fi
fi
if [[ " $* " != *" --check "* || " $* " == *" --bench "* ]]; then
  PYTHONUNBUFFERED=1 python3 bench/gpu/torch_reference.py --out "$OUT/torch.json" 2>&1 | tee "$OUT/torch.log" || status=1
  PYTHONUNBUFFERED=1 timeout 240 python3 bench/gpu/torch_gpt2.py --out "$OUT/torch_gpt2.json" 2>&1 | tee "$OUT/torch_gpt2.log" || status=1
  python3 bench/gpu/table.py --ours "$OUT/ours.json" "$OUT/gpucheck.json" --peers "$OUT/torch.json" "$OUT/torch_gpt2.json" | tee "$OUT/table.md"
fi
exit $status
