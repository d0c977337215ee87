#!/usr/bin/env bash
# packages_test.sh WORK_DIR (ctest nuget_packages): the NuGet packages as a user gets them. Packs
# them into WORK_DIR/feed (tools/pack.sh), installs the ra3 tool from that folder into a tool path
# of its own and runs `ra3 info` and `ra3 score` on a fixture, then builds tests/packaging/consumer
# against RA3.Model and RA3.Native.linux-x64 from the same folder and runs its forward pass.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(realpath -m "${1:?usage: packages_test.sh WORK_DIR}")
shared=${RA3_SHARED:-$repo/../shared}
model=$shared/fixtures/hf/llama-tiny
[[ -f $model/config.json ]] || { echo "the fixtures are not at $shared/fixtures/hf (set RA3_SHARED to the folder holding fixtures/)" >&2; exit 1; }
version=$(dotnet msbuild "$repo/src/RA3.Kernels" -getProperty:Version)
rm -rf "$work" && mkdir -p "$work"
"$repo/tools/pack.sh" "$work/feed"

# Only this feed, and restored packages in folders of this test: the machine's NuGet cache would
# serve a package of the same version from an earlier run instead of the one just packed. The
# packages' own dependencies (ILGPU, Microsoft.ML.Tokenizers, ...) are read from that cache, which
# building the repository filled.
cache=$(dotnet nuget locals global-packages --list | sed 's/^global-packages: //')
cat > "$work/nuget.config" <<XML
<configuration>
  <packageSources><clear /><add key="packed" value="$work/feed" /></packageSources>
  <fallbackPackageFolders><add key="machine" value="$cache" /></fallbackPackageFolders>
</configuration>
XML
export NUGET_PACKAGES=$work/packages

dotnet tool install RA3.Tool --version "$version" --tool-path "$work/tool" --configfile "$work/nuget.config"
"$work/tool/ra3" info | tee "$work/info.txt"
grep -q "^ra3 $version" "$work/info.txt" || { echo "ra3 info does not say version $version" >&2; exit 1; }
grep -q "^native: ra3_native $version" "$work/info.txt" || { echo "the installed tool did not load its ra3_native" >&2; exit 1; }
"$work/tool/ra3" score --model "$model" --ids "$model/reference.safetensors" --out "$work/scores.safetensors" | tee "$work/score.txt"
python3 - "$work/score.txt" "$model/reference.safetensors" <<'PY'
import json, struct, sys
printed = float(open(sys.argv[1]).read().split()[2])
data = open(sys.argv[2], "rb").read()
(size,) = struct.unpack("<Q", data[:8])
start, _ = json.loads(data[8:8 + size])["loss"]["data_offsets"]
(want,) = struct.unpack("<f", data[8 + size + start:8 + size + start + 4])
sys.exit(0 if abs(printed - want) <= 1e-5 else f"ra3 score printed {printed}, transformers' loss is {want}")
PY

cp -r "$repo/tests/packaging/consumer" "$work/consumer"
dotnet restore "$work/consumer" --configfile "$work/nuget.config" -p:RA3Version="$version"
dotnet build "$work/consumer" -c Release --no-restore --nologo -v quiet -p:RA3Version="$version"
dotnet "$work/consumer/bin/Release/net10.0/Consumer.dll" "$model"
echo "packages: the tool and a consumer of the libraries work from $work/feed"
