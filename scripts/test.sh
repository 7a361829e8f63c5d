#!/usr/bin/env bash
# Runs every test: unit, integration (real service processes on loopback), fault, and the
# protobuf-c interop test. Executables are built first because the tests start them.
set -euo pipefail
cd "$(dirname "$0")/.."

# The browser tests need headless Chromium, its driver and selenium; the inference gateway's
# real-model test needs llama.cpp's server and SmolLM2 (all installed when missing).
scripts/setup-system.sh --test
# Installed above, so the real-model test must run: it fails rather than skips when they are missing.
export KB_REQUIRE_REAL_MODEL="${KB_REQUIRE_REAL_MODEL:-1}"
# Prometheus, promtool, kubernetes-validate and the container tools (podman, runc, debootstrap,
# podman-compose) are installed above, so the deployment tests (Tests/DeployTests) must run: they
# fail rather than skip when one is missing.
export KB_REQUIRE_DEPLOY_TOOLS="${KB_REQUIRE_DEPLOY_TOOLS:-1}"
# (kubectl excepted: without it the kustomize tests skip, saying why.)
swift build --build-tests
# One test at a time: the suites start many processes (services, ukb, kb, a C client) and on a
# two-core machine running them all at once starved timing-sensitive tests and, twice, left the
# run waiting forever. Serial, the whole run takes about 5 minutes on 2 idle cores (19 under
# heavy load, 294 tests). The timeout turns any
# future hang into a failure instead of a stalled CI job.
timeout 2400 swift test --skip-build --no-parallel "$@"
