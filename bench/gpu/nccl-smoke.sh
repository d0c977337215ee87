#!/usr/bin/env bash
# NCCL smoke test on a GPU machine (issue 17, item 4), world size 1 (one GPU is lent at a time):
# a short ra3 pretrain on the cuda backend under mpirun, so that NcclCommunicator loads
# libnccl.so.2, takes its unique id over MPI, creates its communicator on the backend's stream and
# all-reduces the gradients every step; the run must end and its final weights must be finite.
# Needs ra3_native built with CUDA (bench/gpu/run.sh builds build-gpu/), Open MPI
# (tools/install-mpi.sh), NCCL 2 and a Release build of ra3. Logs go to $OUT or ./runs/gpu.
# Not yet run: no GPU machine was lent to the session that wrote it.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-runs/gpu}"
mkdir -p "$OUT"
export RA3_NATIVE_LIB="$PWD/build-gpu/libra3_native.so"
ra3=$PWD/src/RA3.Train/bin/Release/net10.0/ra3
root=(); [[ "$(id -u)" == 0 ]] && root=(--allow-run-as-root)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$ra3" tasks --out "$work/tasks" > /dev/null
mpirun "${root[@]}" -np 1 -x RA3_NATIVE_LIB "$ra3" pretrain --backend cuda --data "$work/tasks/pretrain.jsonl" \
  --steps 20 --save-every 10 --eval-every 10 --out "$work/run" < /dev/null 2>&1 | tee "$OUT/nccl-smoke.log"
grep -q "NCCL" "$OUT/nccl-smoke.log" || { echo "FAILED: the run did not say it used NCCL" | tee -a "$OUT/nccl-smoke.log"; exit 1; }
python3 - "$work/run/final/model.safetensors" <<'PY' | tee -a "$OUT/nccl-smoke.log"
import json, math, struct, sys, array
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
bad = []
for name, t in header.items():
    if name == "__metadata__" or t["dtype"] != "F32":
        continue
    values = array.array("f", data[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]])
    if not all(math.isfinite(v) for v in values):
        bad.append(name)
print("FAILED: non-finite tensors " + ", ".join(bad) if bad else "ok: NCCL world-size-1 run finished with finite weights")
sys.exit(1 if bad else 0)
PY
