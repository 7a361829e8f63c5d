#!/usr/bin/env bash
# Restores the budget database from a backup made by budget-backup.sh (stop the service first):
#   kb down   (or stop budget-service)
#   deploy/scripts/budget-restore.sh BACKUP_DIR/analytics_<date>.db.gz
#   kb up --detach && kb budget verify
# The backup is integrity-checked before anything is replaced; the replaced database is kept
# beside it as knowledge.db.pre-restore.<time>. Refuses (exit 75) while budget-service runs.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 analytics_<date>.db[.gz]" >&2; exit 64; }
KB="${KB_BIN_DIR:-.build/release}/kb"
command -v "$KB" >/dev/null 2>&1 || KB=kb
SOURCE="$1"
if [[ "$SOURCE" == *.gz ]]; then
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  gunzip -c "$SOURCE" > "$WORK/restore.db"
  SOURCE="$WORK/restore.db"
fi
"$KB" budget restore "$SOURCE"
