#!/usr/bin/env bash
# Runs every test: the .NET tests (every op on every backend against TorchSharp float64) and
# the native ctest suite (C ABI checks and the C host example). Builds whatever is missing on
# the way: NuGet packages are restored by dotnet, ra3_native is built by CMake.
set -euo pipefail
cd "$(dirname "$0")"
cmake -S . -B build/native -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/native -j "$(nproc)"
(cd build/native && ctest --output-on-failure)
dotnet build RA3.sln -c Release
dotnet test RA3.sln -c Release --no-build
