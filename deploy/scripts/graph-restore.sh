#!/usr/bin/env bash
# Restores the graph store from a backup made by graph-backup.sh (or a folder from `ukb backup`):
#   kb down                                          # restore refuses while graph-store runs
#   deploy/scripts/graph-restore.sh /var/backups/knowledge-system/graph-db_YYYYmmdd_HHMMSS.tar.gz
#   kb up --detach && ukb verify && ukb query --stats
# The backup is verified before it replaces anything; the replaced store is kept beside it as
# .data/knowledge-graph/leveldb.pre-restore.<time>.
set -euo pipefail
BACKUP="${1:?usage: graph-restore.sh BACKUP.tar.gz|BACKUP_DIR}"
UKB="${KB_BIN_DIR:-.build/release}/ukb"
command -v "$UKB" >/dev/null 2>&1 || UKB=ukb

if [ -d "$BACKUP" ]; then
  "$UKB" restore "$BACKUP"
  exit 0
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
tar xzf "$BACKUP" -C "$WORK"
SNAPSHOT="$(find "$WORK" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
"$UKB" restore "$SNAPSHOT"
echo "graph store restored from $BACKUP; start it (kb up) and check with: ukb verify && ukb query --stats"
