#!/usr/bin/env bash
# Installs the Debian packages softkvm needs, skipping those already present so a
# repeat run costs one dpkg-query. Runs as root (apt-get) or via sudo when available.
# `deps.sh fuzz` installs what the fuzz build needs as well (clang and libFuzzer).
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build pkg-config binutils
  libzydis-dev libcli11-dev libfmt-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libsqlite3-dev sqlite3 libfuse3-dev fuse3
  qemu-system-x86 clang-format bc cpio jq
  libxbyak-dev
)
if [ "${1:-}" = fuzz ]; then
  PKGS+=(clang libfuzzer-14-dev)
fi
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
