#!/usr/bin/env bash
# tools/pack.sh OUT_DIR: the NuGet packages into OUT_DIR: RA3.Kernels, RA3.Model, RA3.Tool (the ra3
# command, PackAsTool) and RA3.Native.linux-x64 (libra3_native.so under runtimes/linux-x64/native).
# The packaged library is built apart, in build/native-portable, without -march=native, so that
# the packages run on any x86-64 Linux; the solution itself is built as usual first.
set -euo pipefail
out=$(realpath -m "${1:?usage: tools/pack.sh OUT_DIR}")
cd "$(dirname "$0")/.."
portable=$PWD/build/native-portable
cmake -S . -B "$portable" -DCMAKE_BUILD_TYPE=Release -DRA3_NATIVE_ARCH=OFF -DRA3_CUDA=OFF -DRA3_ENGINE=OFF > /dev/null
cmake --build "$portable" --target ra3_native -j "$(nproc)"
dotnet build RA3.sln -c Release --nologo -v quiet
# --no-build: the packages take the assemblies just built; only the native library's path differs.
dotnet pack RA3.sln -c Release --no-build --nologo -v quiet -o "$out" -p:RA3NativeBuildDir="$portable"
ls "$out"
