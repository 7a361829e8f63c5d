#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs the system: installs the Debian packages, builds every
# executable in release mode, and starts all services with `kb up` (Ctrl-C stops them).
# Pass --detach to leave them running in the background (`kb down` stops them).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-system.sh
swift build -c release
exec "$(swift build -c release --show-bin-path)/kb" up "$@"
