#!/usr/bin/env bash
# Installs bubblewrap, which isolates model-written programs (src/RA3.Train/Sandbox), when it is
# missing: with apt-get as root (a fresh CI or developer machine). Elsewhere it says what to do;
# the sandbox then runs with resource limits only and says so, and its tests fail saying why.
set -euo pipefail
if command -v bwrap > /dev/null; then
  exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get > /dev/null; then
  echo "installing bubblewrap (the sandbox for model-written code)"
  apt-get update -qq > /dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap > /dev/null
else
  echo "warning: bubblewrap is not installed and cannot be installed here (needs root and apt-get):" >&2
  echo "         install the 'bubblewrap' package, or model-written code runs with limits only" >&2
fi
