#!/usr/bin/env bash
# Mutation testing of the managed code whose arithmetic decides results (the tests issue's measure
# of the suite): Stryker.NET 5.1 mutates the modules below, runs the tests that cover each mutant
# (its per-test coverage), and counts the mutants no test notices. Not part of CI: on 2 cores a
# small module takes minutes, the Train modules hours (their covering tests train models).
#
#   tools/mutation-test.sh                    every project below
#   tools/mutation-test.sh RA3.Model          the named ones
#   tools/mutation-test.sh RA3.Train:PassAtK,LineTokens   some modules of a project
#
# One Stryker run per entry: a project and the test project that exercises its modules (the
# E-step's exact inference lives in RA3.Model and is exercised by RA3.Train's tests). Its initial
# test run is the whole test project (Stryker's --test-case-filter breaks that run with these NUnit
# tests). Reports (HTML, JSON) and Stryker's log (its progress, which it prints only to a
# terminal) go to bench/mutation/<project>-by-<test project>/. The last lines print each module's
# score, killed / (killed + survived + not covered), timeouts counted as killed, as Stryker does.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet tool restore >/dev/null

# project ; test project ; module=file ...
projects=(
  "RA3.Model;RA3.Model.Tests;Sampler=**/Generation/Sampler.cs"
  "RA3.Kernels;RA3.Kernels.Tests;ElboKernel=**/Cpu/ElboKernel.cs ReferenceOps=**/Reference/*.cs"
  "RA3.Model;RA3.Train.Tests;SegmentationInference=**/Inference/SegmentationInference.cs"
  "RA3.Train;RA3.Train.Tests;PassAtK=**/Evaluation/PassAtK.cs Rewards=**/Midtraining/Rewards.cs LineTokens=**/Midtraining/LineTokens.cs PolicyGradient=**/Midtraining/PolicyGradient.cs"
)

declare -A wanted=()  # project -> its chosen modules (empty: all of them)
for arg in "$@"; do
  if [[ $arg == *:* ]]; then wanted[${arg%%:*}]="${arg#*:}"; wanted[${arg%%:*}]="${wanted[${arg%%:*}]//,/ }"; else wanted[$arg]=""; fi
done
declare -A found=()    # project -> whether an entry had a chosen module
runs=()
for entry in "${projects[@]}"; do
  IFS=';' read -r project tests modules <<<"$entry"
  if [[ $# -gt 0 && ! -v wanted[$project] ]]; then continue; fi
  if [[ -n "${wanted[$project]:-}" ]]; then
    chosen=""
    for m in $modules; do [[ " ${wanted[$project]} " =~ " ${m%%=*} " ]] && chosen+="$m "; done
    [[ -n "$chosen" ]] || continue
    modules="$chosen"
  fi
  found[$project]=1
  runs+=("$project;$tests;$modules")
done
for project in "${!wanted[@]}"; do
  [[ -v found[$project] ]] || { echo "no module among '${wanted[$project]}' in $project (see the list at the top of $0)" >&2; exit 2; }
done

for entry in "${runs[@]}"; do
  IFS=';' read -r project tests modules <<<"$entry"
  out="$PWD/bench/mutation/$project-by-$tests"
  rm -rf "$out"
  mkdir -p "$out"
  mutate=()
  for m in $modules; do mutate+=(--mutate "${m#*=}"); done
  echo "== $project: $modules"
  (cd "tests/$tests" && dotnet dotnet-stryker --project "$project.csproj" --configuration Release "${mutate[@]}" \
      --reporter json --reporter html --reporter progress --log-to-file --concurrency "$(nproc)" --output "$out" --skip-version-check) | tail -n 2
  python3 - "$out/reports/mutation-report.json" $modules <<'EOF'
import collections, fnmatch, json, sys
files = json.load(open(sys.argv[1]))["files"]
for spec in sys.argv[2:]:
    name, glob = spec.split("=", 1)
    counts = collections.Counter(m["status"] for path, f in files.items() if fnmatch.fnmatch(path, "*" + glob.replace("**/", "/")) for m in f["mutants"])
    killed = counts["Killed"] + counts["Timeout"]
    scored = killed + counts["Survived"] + counts["NoCoverage"]
    print(f"{name}: mutation score {100 * killed / max(scored, 1):.1f}% ({killed} of {scored}: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")")
EOF
done
