#!/usr/bin/env bash
# Online backup of the budget database, as the operations guide's backup job names it:
#   deploy/scripts/budget-backup.sh [BACKUP_DIR]   → BACKUP_DIR/analytics_YYYYmmdd_HHMMSS.db.gz
# The running budget-service writes a consistent copy (SQLite's online backup API, `kb budget
# backup`), which is integrity-checked by the service and compressed. Restore with
# deploy/scripts/budget-restore.sh. Needs `kb` on PATH or in KB_BIN_DIR (default .build/release).
set -euo pipefail
# BACKUP_DIR must be the services' backup folder (KB_BACKUP_DIR; by default `backups` beside the
# data directory): the service writes only inside it and refuses any other path.
DEFAULT_DIR="${KB_BACKUP_DIR:-$(dirname "$(realpath -m "${KB_DATA_DIR:-.data}")")/backups}"
mkdir -p "${1:-$DEFAULT_DIR}"
BACKUP_DIR="$(cd "${1:-$DEFAULT_DIR}" && pwd -P)"
KB="${KB_BIN_DIR:-.build/release}/kb"
command -v "$KB" >/dev/null 2>&1 || KB=kb
FILE="$BACKUP_DIR/analytics_$(date +%Y%m%d_%H%M%S).db"

"$KB" budget backup "$FILE"
gzip "$FILE"
echo "budget backup: $FILE.gz"
