#!/usr/bin/env bash
# Runs every test: unit, integration (real service processes on loopback), fault, and the
# protobuf-c interop test. Executables are built first because the tests start them.
set -euo pipefail
cd "$(dirname "$0")/.."

swift build --build-tests
swift test --skip-build "$@"
