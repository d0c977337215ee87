#!/usr/bin/env bash
# apt-install.sh COMMAND PACKAGE WHY: installs the Debian package PACKAGE when COMMAND is missing
# (COMMAND may also be the absolute path of a file the package installs, for a package without
# a command of its own), with apt-get as root (a fresh CI or developer machine). Elsewhere it says
# what to install and exits 1, leaving the caller to decide whether that is fatal.
set -euo pipefail
command=$1 package=$2 why=$3
if command -v "$command" > /dev/null || [[ "$command" == /* && -e "$command" ]]; then
  exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get > /dev/null; then
  echo "installing $package ($why)"
  apt-get update -qq > /dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" > /dev/null
else
  echo "warning: $command is missing and cannot be installed here (needs root and apt-get):" >&2
  echo "         install the Debian package '$package' ($why)" >&2
  exit 1
fi
