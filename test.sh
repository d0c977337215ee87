#!/usr/bin/env bash
# Runs every test: the .NET tests (every op on every backend against TorchSharp float64, the
# model, the sandbox and the evaluation harness) and the native ctest suite (C ABI checks and the
# C host examples). Builds and installs whatever is missing on the way: NuGet packages are
# restored by dotnet, ra3_native is built by CMake, bubblewrap (the sandbox) comes from apt.
set -euo pipefail
cd "$(dirname "$0")"
tools/install-sandbox.sh
cmake -S . -B build/native -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/native -j "$(nproc)"
(cd build/native && ctest --output-on-failure)
dotnet build RA3.sln -c Release
dotnet test RA3.sln -c Release --no-build
