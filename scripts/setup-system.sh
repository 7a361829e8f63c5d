#!/usr/bin/env bash
# Installs the Debian packages the project needs (run as root, or with sudo available).
# Idempotent: packages already present are left alone.
#   scripts/setup-system.sh          what the system needs to build and run
#   scripts/setup-system.sh --test   also what the tests need: headless Chromium and its
#                                    WebDriver (VKB's browser tests), Python's selenium and openai
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
  node-d3               # the d3 v5 bundle VKB's page draws with (served from /usr/share/nodejs/d3)
)
if [ "${1:-}" = "--test" ]; then
  packages+=(
    chromium              # VKB's browser tests and benchmark, headless
    chromium-driver       # WebDriver for it
  )
  # Selenium from PyPI for the python3 on PATH (the tests run `python3`).
  if ! python3 -c "import selenium" 2>/dev/null; then
    echo "Installing Python's selenium"
    python3 -m pip install -q selenium 2>&1 | grep -v "Running pip as the 'root' user" || true
    python3 -c "import selenium" || { echo "could not install selenium for $(command -v python3)" >&2; exit 1; }
  fi
  # OpenAI's Python package: the inference gateway's OpenAI-compatible front is tested with it.
  if ! python3 -c "import openai" 2>/dev/null; then
    echo "Installing Python's openai"
    python3 -m pip install -q openai 2>&1 | grep -v "Running pip as the 'root' user" || true
    python3 -c "import openai" || { echo "could not install openai for $(command -v python3)" >&2; exit 1; }
  fi
fi

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
