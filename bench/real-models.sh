#!/usr/bin/env bash
# Real-model measurements (the real-models issue; not part of CI): a Qwen2.5-Coder-0.5B-shaped model
# (random weights, the real Qwen tokenizer) scoring and training on this machine's Python standard
# library — f32 and bf16 weights, with and without activation recomputation — one RA3 mid-training
# round per dtype with each phase's throughput and peak memory, and, with --7b (or alone with
# --only-7b), a Qwen2.5-Coder-7B-shaped bf16 folder (15 GB) loading and scoring. Each run is its own process
# under /usr/bin/time, so its peak resident memory is its own. Prints a markdown table (also
# $OUT/table.md). Run it on a quiet machine: tokens/s are absolute figures.
#   bash bench/real-models.sh [--7b | --only-7b]        OUT=runs/real-models by default
set -euo pipefail
cd "$(dirname "$0")/.."
with7b=false
with05b=true
case "${1:-}" in
  --7b) with7b=true ;;
  --only-7b) with05b=false ;;
  "") ;;
  *) echo "usage: bash bench/real-models.sh [--7b | --only-7b]" >&2; exit 2 ;;
esac
OUT="${OUT:-runs/real-models}"
TOKENIZER="${RA3_SHARED:-../shared}/fixtures/tokenizers/qwen3"
mkdir -p "$OUT"
dotnet build src/RA3.Train -c Release -v quiet --nologo > "$OUT/build.log"
RA3=(dotnet src/RA3.Train/bin/Release/net10.0/ra3.dll)  # an array, so /usr/bin/time can run it
table="$OUT/table.md"
{
  echo "$(date -u +%F) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GB; ra3 $(git rev-parse --short HEAD)"
  echo
  echo "| run | peak RSS (GB) | wall (s) | tokens/s | GFLOP/s (6·N + attention) |"
  echo "|---|---:|---:|---:|---:|"
} > "$table"

# measure NAME CMD...: peak RSS and wall time of one process.
measure() {
  local name="$1"
  shift
  /usr/bin/time -f '%M %e' -o "$OUT/$name.time" "$@" > "$OUT/$name.log" 2>&1 || { tail -5 "$OUT/$name.log"; exit 1; }
}
rss() { awk '{printf "%.2f", $1 / 1048576}' "$OUT/$1.time"; }
wall() { awk '{printf "%.0f", $2}' "$OUT/$1.time"; }

python3 - "$OUT/text.py" <<'PY'
import inspect, json, sys
sys.stdout = open(sys.argv[1], "w")
print(inspect.getsource(json))
PY

# The 7B-shaped folder: made once (random bf16 weights), then loaded and scored on ~1k tokens.
score_7b() {
  if [[ ! -f "$OUT/qwen7b/model.safetensors.index.json" ]]; then
    measure init-7b "${RA3[@]}" init --model-config bench/configs/qwen2.5-coder-7b.json --out "$OUT/qwen7b" --tokenizer "$TOKENIZER"
    echo "| init 7B (bf16, $(du -sh "$OUT/qwen7b" | cut -f1)) | $(rss init-7b) | $(wall init-7b) | | |" >> "$table"
  fi
  head -c 4000 "$OUT/text.py" > "$OUT/short.py"
  measure score-7b "${RA3[@]}" score --model "$OUT/qwen7b" --text "$OUT/short.py" --out "$OUT/scores-7b.safetensors"
  echo "| load + score 7B bf16 (~1k tokens) | $(rss score-7b) | $(wall score-7b) | | |" >> "$table"
}
if ! $with05b; then
  score_7b
  cat "$table"
  exit 0
fi

if [[ ! -f "$OUT/qwen05/model.safetensors" ]]; then
  "${RA3[@]}" init --model-config bench/configs/qwen2.5-coder-0.5b.json --out "$OUT/qwen05" --tokenizer "$TOKENIZER" > "$OUT/init-0.5b.log"
fi
params=$(sed -n 's/^wrote .*: \([0-9,]*\) parameters.*/\1/p' "$OUT/init-0.5b.log" | tr -d ,)

# Scoring: json/__init__.py of this machine's Python, one document (3,645 Qwen tokens).
for dtype in f32 bf16; do
  measure "score-0.5b-$dtype" "${RA3[@]}" score --model "$OUT/qwen05" --text "$OUT/text.py" --dtype "$dtype" --out "$OUT/scores-$dtype.safetensors"
  echo "| score 0.5B, $dtype | $(rss score-0.5b-$dtype) | $(wall score-0.5b-$dtype) | | |" >> "$table"
done

# Training: B 2 x T 512, 4 steps, AdamW; tokens/s over the run's steps from metrics.jsonl (its last record).
for run in "f32" "f32 --recompute" "bf16" "bf16 --recompute"; do
  read -r -a options <<< "$run"
  name="train-0.5b-${options[0]}${options[1]:+-recompute}"
  rm -rf "$OUT/$name"
  measure "$name" "${RA3[@]}" pretrain --init "$OUT/qwen05" --tokenizer "$TOKENIZER" --out "$OUT/$name" --seq-len 512 --batch 2 --steps 4 --warmup 1 \
    --eval-every 1000 --save-every 1000 --dtype "${options[@]}"
  tps=$(python3 -c "import json; print(round([json.loads(l) for l in open('$OUT/$name/metrics.jsonl')][-1]['tokens_per_s']))")
  flops=$(python3 -c "print(round(($tps) * (6 * $params + 6 * 24 * 512 * 14 * 64) / 1e9, 1))")
  echo "| train 0.5B B2 T512, $run | $(rss $name) | $(wall $name) | $tps | $flops |" >> "$table"
done

# One RA3 round on real Python (8 standard-library functions of at most 20 lines, G = 2, 2 M-step
# steps): each phase's throughput from the round's summary and its peak RSS, sampled every 0.5 s
# and assigned to the phase whose output does not exist yet.
python3 - "$OUT/functions.jsonl" <<'PY'
import inspect, json, sys, textwrap, json.decoder, json.encoder, string, shlex
out = []
for module in (textwrap, json.decoder, json.encoder, string, shlex):
    for _, f in inspect.getmembers(module, inspect.isfunction):
        if f.__module__ != module.__name__:
            continue
        src = textwrap.dedent(inspect.getsource(f))
        if 5 <= src.count("\n") <= 20 and len(out) < 8:
            out.append(src)
with open(sys.argv[1], "w") as fh:
    for text in out:
        fh.write(json.dumps({"text": text}) + "\n")
PY
phase_of() {
  local round="$1/round-1"
  if [[ -e "$round/summary.json" ]]; then echo done
  elif [[ -e "$round/inference.json" ]]; then echo mstep
  elif [[ -e "$round/estep/candidates.json" ]]; then echo scoring
  else echo estep; fi
}
for dtype in f32 bf16; do
  name="midtrain-0.5b-$dtype"
  rm -rf "$OUT/$name"
  "${RA3[@]}" midtrain --method ra3 --init "$OUT/qwen05" --tokenizer "$TOKENIZER" --data "$OUT/functions.jsonl" \
    --out "$OUT/$name" --rounds 1 --G 2 --traces-per-step 8 --mstep-steps 2 --mstep-batch 2 --max-lines 20 --dtype "$dtype" > "$OUT/$name.log" 2>&1 &
  pid=$!
  : > "$OUT/$name.rss"
  while kill -0 "$pid" 2> /dev/null; do
    kb=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2> /dev/null || true)
    [[ -n "$kb" ]] && echo "$(phase_of "$OUT/$name") $kb" >> "$OUT/$name.rss"
    sleep 0.5
  done
  wait "$pid" || { tail -5 "$OUT/$name.log"; exit 1; }
  python3 - "$OUT/$name" "$dtype" >> "$table" <<'PY'
import json, sys
run, dtype = sys.argv[1], sys.argv[2]
s = json.load(open(f"{run}/round-1/summary.json"))
peak = {}
for line in open(f"{run}.rss"):
    phase, kb = line.split()
    peak[phase] = max(peak.get(phase, 0), int(kb))
gb = lambda p: f"{peak.get(p, 0) / 1048576:.2f}"
print(f"| RA3 round 0.5B, {dtype}: E-step rollouts | {gb('estep')} | | {s['rollout_tokens_per_s']:.0f} | |")
print(f"| RA3 round 0.5B, {dtype}: candidate scoring | {gb('scoring')} | | {s['candidate_scoring_tokens_per_s']:.0f} | |")
print(f"| RA3 round 0.5B, {dtype}: M-step | {gb('mstep')} | | {s['mstep_tokens_per_s']:.0f} | |")
PY
done

if $with7b; then
  score_7b
fi
cat "$table"
