#!/usr/bin/env bash
# The operations guide's Runbook 3 (rebuild-qdrant-index.sh) against vector-search's
# Qdrant-compatible port: snapshot, optimizer status, forced optimisation (index repair), wait,
# then a timed search with a vector of the collection's dimension.
#   deploy/scripts/rebuild-qdrant-index.sh COLLECTION   (knowledge_384 or knowledge_1536)
# QDRANT_URL defaults to http://localhost:6333 (KB_VECTOR_QDRANT_PORT); KB_AUTH_TOKEN is sent
# as `api-key`; the snapshot lands in vector-search's KB_BACKUP_DIR.
set -euo pipefail
COLLECTION="${1:?usage: rebuild-qdrant-index.sh COLLECTION}"
QDRANT_URL="${QDRANT_URL:-http://localhost:6333}"
AUTH=()
[ -n "${KB_AUTH_TOKEN:-}" ] && AUTH=(-H "api-key: $KB_AUTH_TOKEN")

echo "Rebuilding Qdrant index for $COLLECTION..."
echo "Creating snapshot..."
curl -sf "${AUTH[@]}" -X POST "$QDRANT_URL/collections/$COLLECTION/snapshots" | jq -r '"snapshot: " + .result.name'

echo "Current optimizer status:"
curl -sf "${AUTH[@]}" "$QDRANT_URL/collections/$COLLECTION" | jq -c '.result.optimizer_status'

echo "Forcing optimization..."
curl -sf "${AUTH[@]}" -X POST "$QDRANT_URL/collections/$COLLECTION/optimizers" \
  -H 'Content-Type: application/json' \
  -d '{"optimizers_config": {"indexing_threshold": 0, "memmap_threshold": 0}}' >/dev/null

echo "Monitoring optimization progress..."
for _ in $(seq 1 600); do
  STATUS=$(curl -sf "${AUTH[@]}" "$QDRANT_URL/collections/$COLLECTION" | jq -r '.result.optimizer_status.ok')
  if [ "$STATUS" = "true" ]; then
    echo "Optimization completed"
    break
  fi
  echo "Still optimizing..."
  sleep 1
done
[ "$STATUS" = "true" ] || { echo "ERROR: still optimizing after 10 minutes" >&2; exit 1; }

echo "Testing search performance..."
SIZE=$(curl -sf "${AUTH[@]}" "$QDRANT_URL/collections/$COLLECTION" | jq -r '.result.config.params.vectors.size')
VECTOR=$(jq -cn --argjson n "$SIZE" '[range($n)] | map(. % 7 / 10 + 0.1)')
LATENCY=$(curl -sf "${AUTH[@]}" -w '%{time_total}' -o /dev/null -X POST \
  "$QDRANT_URL/collections/$COLLECTION/points/search" \
  -H 'Content-Type: application/json' \
  -d "{\"vector\": $VECTOR, \"limit\": 10}")
echo "Search latency: ${LATENCY}s"
if (( $(echo "$LATENCY > 0.5" | bc -l) )); then
  echo "WARNING: Search latency still high after rebuild"
else
  echo "SUCCESS: Index rebuild completed successfully"
fi
