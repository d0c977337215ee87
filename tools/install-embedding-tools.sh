#!/usr/bin/env bash
# Installs what building and testing the embedding packages needs beyond the .NET SDK, g++ and
# CMake: clang, with which NativeAOT links the engine's C API (libra3_engine, src/RA3.CApi), and
# pkg-config, with which the install-tree test builds a host from ra3.pc. Fails when it cannot.
set -euo pipefail
here=$(dirname "$0")
"$here/apt-install.sh" clang clang "NativeAOT links the engine's C API with it"
"$here/apt-install.sh" pkg-config pkg-config "the install-tree test builds a host with it"
