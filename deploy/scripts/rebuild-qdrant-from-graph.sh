#!/usr/bin/env bash
# The operations guide's "Qdrant Collection Corruption" procedure (rebuild-qdrant-from-graph.sh):
# rebuild the vector collections from the graph store. The guide deleted the collections, exported
# the graph and re-imported it with embeddings by hand, leaving search empty in between; here the
# inference gateway's indexer re-embeds every entity into a new collection that replaces
# knowledge_384 (and knowledge_1536, when an OpenAI key is configured) only when complete, so
# search keeps answering from the old one until the swap.
#   deploy/scripts/rebuild-qdrant-from-graph.sh [--team TEAM]
# KB is the launcher (default: `kb` on PATH); it finds the gateway's admin port and vector-search
# as every `kb` command does (KB_INFERENCE_GATEWAY_ADMIN_PORT, KB_VECTOR_SEARCH_ADDR, KB_AUTH_TOKEN).
set -euo pipefail
KB="${KB:-kb}"

echo "Rebuilding Qdrant collections from Graph Database..."
"$KB" vectors rebuild-from-graph "$@"
"$KB" vectors describe knowledge_384
echo "Qdrant rebuild completed"
