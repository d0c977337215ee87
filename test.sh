#!/usr/bin/env bash
# Runs every test: the .NET tests (every op on every backend against TorchSharp float64, the
# model, the sandbox and the evaluation harness, data-parallel training on two ranks under
# mpirun) and the ctest suite (the C ABI's checks, the C hosts, the engine's C API from C and
# Python against ra3 score, a host built against the installed CMake package, the NuGet packages
# installed and used). Builds and installs whatever is missing on the way: NuGet packages are
# restored by dotnet, ra3_native and libra3_engine are built by CMake, bubblewrap (the sandbox),
# clang (NativeAOT's linker), pkg-config and Open MPI come from apt.
set -euo pipefail
cd "$(dirname "$0")"
tools/install-sandbox.sh
tools/install-embedding-tools.sh
tools/install-mpi.sh
cmake -S . -B build/native -DCMAKE_BUILD_TYPE=Release -DRA3_ENGINE=ON >/dev/null
cmake --build build/native -j "$(nproc)"
dotnet build RA3.sln -c Release
(cd build/native && ctest --output-on-failure)
dotnet test RA3.sln -c Release --no-build
