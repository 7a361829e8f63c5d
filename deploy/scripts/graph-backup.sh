#!/usr/bin/env bash
# Online backup of the graph store, as the operations guide's backup job expects:
#   deploy/scripts/graph-backup.sh [BACKUP_DIR]   → BACKUP_DIR/graph-db_YYYYmmdd_HHMMSS.tar.gz
# The running graph-store writes a consistent snapshot (ukb backup), which is then verified by
# count and packed. Needs `ukb` on PATH or in KB_BIN_DIR (default .build/release).
set -euo pipefail
# BACKUP_DIR must be the services' backup folder (KB_BACKUP_DIR; by default `backups` beside the
# data directory): the service writes only inside it and refuses any other path.
DEFAULT_DIR="${KB_BACKUP_DIR:-$(dirname "$(realpath -m "${KB_DATA_DIR:-.data}")")/backups}"
mkdir -p "${1:-$DEFAULT_DIR}"
BACKUP_DIR="$(cd "${1:-$DEFAULT_DIR}" && pwd -P)"
UKB="${KB_BIN_DIR:-.build/release}/ukb"
command -v "$UKB" >/dev/null 2>&1 || UKB=ukb
DATE="$(date +%Y%m%d_%H%M%S)"
SNAPSHOT="$BACKUP_DIR/graph-db_$DATE"

"$UKB" backup "$SNAPSHOT"
"$UKB" query --stats > "$SNAPSHOT/stats.txt"
tar czf "$SNAPSHOT.tar.gz" -C "$BACKUP_DIR" "graph-db_$DATE"
rm -rf "$SNAPSHOT"
echo "graph backup: $SNAPSHOT.tar.gz"
