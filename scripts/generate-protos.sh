#!/usr/bin/env bash
# Regenerates Shared/KBProto/Generated from Protos/ with protoc-gen-swift built from the
# swift-protobuf dependency (the version Package.swift pins). Run from anywhere; idempotent.
#   scripts/generate-protos.sh           regenerate
#   scripts/generate-protos.sh --check   regenerate, then fail if the committed code differs
set -euo pipefail
cd "$(dirname "$0")/.."

command -v protoc >/dev/null || { echo "protoc is missing: apt-get install protobuf-compiler" >&2; exit 1; }
swift build --product protoc-gen-swift >/dev/null
plugin="$(swift build --show-bin-path)/protoc-gen-swift"

out=Shared/KBProto/Generated
rm -f "$out"/*.pb.swift
mkdir -p "$out"
# One Swift file per proto, named after its path (kb/graph/v1/graph.proto -> kb_graph_v1_graph.pb.swift).
(cd Protos && find . -name '*.proto' | sort | sed 's|^\./||') | while read -r proto; do
  protoc -I Protos --plugin=protoc-gen-swift="$plugin" \
    --swift_opt=Visibility=Public --swift_opt=FileNaming=PathToUnderscores \
    --swift_out="$out" "$proto"
done

if [ "${1:-}" = "--check" ]; then
  if ! git diff --quiet --exit-code -- "$out" || [ -n "$(git ls-files --others --exclude-standard -- "$out")" ]; then
    echo "Generated protobuf code is out of date: run scripts/generate-protos.sh and commit the result." >&2
    git status --short -- "$out" >&2
    exit 1
  fi
  echo "Generated protobuf code is current."
fi
