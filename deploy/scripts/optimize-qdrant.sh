#!/usr/bin/env bash
# The operations guide's optimize-qdrant.sh against vector-search's Qdrant-compatible port:
#   deploy/scripts/optimize-qdrant.sh [COLLECTION…]   (default knowledge_384 knowledge_1536)
# `POST /collections/NAME/optimizers` starts an index repair (tombstones relinked and freed);
# the script waits until `optimizer_status.ok` is true. QDRANT_URL defaults to Qdrant's own
# address, http://localhost:6333 (KB_VECTOR_QDRANT_PORT); KB_AUTH_TOKEN is sent as `api-key`.
set -euo pipefail
QDRANT_URL="${QDRANT_URL:-http://localhost:6333}"
AUTH=()
[ -n "${KB_AUTH_TOKEN:-}" ] && AUTH=(-H "api-key: $KB_AUTH_TOKEN")
[ $# -gt 0 ] || set -- knowledge_384 knowledge_1536

echo "Optimizing Qdrant collections..."
for COLLECTION in "$@"; do
  curl -sf "${AUTH[@]}" -X POST "$QDRANT_URL/collections/$COLLECTION/optimizers" \
    -H 'Content-Type: application/json' \
    -d '{"optimizers_config": {"indexing_threshold": 20000, "memmap_threshold": 50000}}' >/dev/null
  for _ in $(seq 1 600); do
    STATUS=$(curl -sf "${AUTH[@]}" "$QDRANT_URL/collections/$COLLECTION" | jq -r '.result.optimizer_status.ok')
    [ "$STATUS" = "true" ] && break
    sleep 1
  done
  [ "$STATUS" = "true" ] || { echo "ERROR: $COLLECTION is still optimizing after 10 minutes" >&2; exit 1; }
  echo "$COLLECTION optimized"
done
