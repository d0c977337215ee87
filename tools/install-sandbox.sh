#!/usr/bin/env bash
# Installs bubblewrap, which isolates model-written programs (src/RA3.Train/Sandbox), when it is
# missing. Where it cannot, the sandbox runs with resource limits only and says so, and its tests
# fail saying why.
set -euo pipefail
"$(dirname "$0")/apt-install.sh" bwrap bubblewrap "the sandbox for model-written code" ||
  echo "         without it model-written code runs with limits only" >&2
