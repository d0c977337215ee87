#!/usr/bin/env bash
# Nsight Compute on one group of CUDA kernels (after bench/gpu/run.sh has built build-gpu):
#   bench/gpu/profile.sh elbo [ncu section ...]
# Profiles one launch of each kernel whose name contains the group's word, with warp-state,
# scheduler, occupancy and speed-of-light sections unless sections are given.
set -euo pipefail
cd "$(dirname "$0")/../.."
group="$1"; shift
sections=("$@")
[[ ${#sections[@]} -gt 0 ]] || sections=(SpeedOfLight Occupancy SchedulerStats WarpStateStats LaunchStats)
NCU="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)"
args=()
for s in "${sections[@]}"; do args+=(--section "$s"); done
"$NCU" --kernel-name "regex:${group}" --launch-skip 2 --launch-count 1 "${args[@]}" build-gpu/ra3_cuda_bench --bench --only "$group"
