#!/usr/bin/env bash
# Installs the Debian packages the project needs (run as root, or with sudo available).
# Idempotent: packages already present are left alone.
set -euo pipefail

packages=(
  libleveldb-dev        # graph store
  libsqlite3-dev        # budget service, inference caches
  libcurl4-openssl-dev  # inference gateway's provider calls
  protobuf-compiler     # protoc, for scripts/generate-protos.sh
  protobuf-c-compiler   # protoc-c, for the C interop test
  libprotobuf-c-dev     # libprotobuf-c, for the C interop test
  build-essential       # cc for the C interop test
  curl                  # health checks in scripts
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "Debian packages: all present."
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
