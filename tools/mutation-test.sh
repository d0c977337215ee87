#!/usr/bin/env bash
# Mutation testing of the managed code whose arithmetic decides results (the tests issue's measure
# of the suite): Stryker.NET mutates one module at a time, runs the tests that cover each mutant,
# and counts the mutants no test notices. Not part of CI: on 2 cores it takes from minutes (a small
# module) to hours (all of them).
#
#   tools/mutation-test.sh                 every module below
#   tools/mutation-test.sh PassAtK Sampler the named ones
#
# Each module's reports (HTML, JSON) go to bench/mutation/<module>/; the last lines print its score,
# killed / (killed + survived + not covered), with timeouts counted as killed, as Stryker does.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet tool restore >/dev/null

# module ; project (under src/) ; test project (under tests/) ; files to mutate ; tests to run
modules=(
  "PassAtK;RA3.Train;RA3.Train.Tests;**/Evaluation/PassAtK.cs;FullyQualifiedName~EvaluationTests"
  "Rewards;RA3.Train;RA3.Train.Tests;**/Midtraining/Rewards.cs;FullyQualifiedName~MidtrainingTests"
  "SegmentationInference;RA3.Train;RA3.Train.Tests;**/Midtraining/SegmentationInference.cs;FullyQualifiedName~MidtrainingTests"
  "LineTokens;RA3.Train;RA3.Train.Tests;**/Midtraining/LineTokens.cs;FullyQualifiedName~MidtrainingTests|FullyQualifiedName~EmLoopTests.Rollouts"
  "PolicyGradient;RA3.Train;RA3.Train.Tests;**/Midtraining/PolicyGradient.cs;FullyQualifiedName~EmLoopTests&FullyQualifiedName!~EmRound&FullyQualifiedName!~Rlvr"
  "Sampler;RA3.Model;RA3.Model.Tests;**/Generation/Sampler.cs;FullyQualifiedName~SamplerTests"
  "ElboKernel;RA3.Kernels;RA3.Kernels.Tests;**/Cpu/ElboKernel.cs;FullyQualifiedName~ElboTests"
  "ReferenceOps;RA3.Kernels;RA3.Kernels.Tests;**/Reference/*.cs;FullyQualifiedName~OpTests|FullyQualifiedName~ElboTests|FullyQualifiedName~SegmentScoreTests|FullyQualifiedName~FlashAttentionTests"
)

wanted=("$@")
for entry in "${modules[@]}"; do
  IFS=';' read -r name project tests mutate filter <<<"$entry"
  if [[ ${#wanted[@]} -gt 0 && ! " ${wanted[*]} " =~ " $name " ]]; then continue; fi
  out="bench/mutation/$name"
  rm -rf "$out"
  mkdir -p "$out"
  echo "== $name: mutating $mutate in $project, running $filter"
  (cd "tests/$tests" && dotnet dotnet-stryker --project "$project.csproj" --configuration Release \
      --mutate "$mutate" --test-case-filter "$filter" --reporter json --reporter html --reporter progress \
      --concurrency "$(nproc)" --output "$OLDPWD/$out" --skip-version-check) | tail -n 3
  report=$(find "$out" -name mutation-report.json | head -n 1)
  python3 - "$report" "$name" <<'EOF'
import collections, json, sys
report, name = sys.argv[1], sys.argv[2]
counts = collections.Counter(m["status"] for f in json.load(open(report))["files"].values() for m in f["mutants"])
killed = counts["Killed"] + counts["Timeout"]
scored = killed + counts["Survived"] + counts["NoCoverage"]
print(f"{name}: mutation score {100 * killed / max(scored, 1):.1f}% ({killed} killed of {scored}; "
      + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")")
EOF
done
