#!/usr/bin/env bash
# The guide's nightly backup job ("Backup Procedures"), mapped onto `kb backup`:
#   deploy/scripts/backup-knowledge-system.sh [BACKUP_DIR]
#     → BACKUP_DIR/knowledge-system_YYYYmmdd_HHMMSS/ (graph-db_…, qdrant_…, analytics_….db,
#       inference-cache_…, manifest.json with counts and SHA-256 of every file)
# Every store is copied online by its own service while the system serves. BACKUP_DIR must be the
# services' backup folder or inside it (KB_BACKUP_DIR; by default `backups` beside the data
# directory): the services write nowhere else. Backups older than RETENTION_DAYS (30) are removed.
# Needs `kb` on PATH or in KB_BIN_DIR (default .build/release).
set -euo pipefail
DEFAULT_DIR="${KB_BACKUP_DIR:-$(dirname "$(realpath -m "${KB_DATA_DIR:-.data}")")/backups}"
BACKUP_DIR="${1:-$DEFAULT_DIR}"
RETENTION_DAYS="${RETENTION_DAYS:-30}"
KB="${KB_BIN_DIR:-.build/release}/kb"
command -v "$KB" >/dev/null 2>&1 || KB=kb

echo "Starting knowledge system backup at $(date -u +%Y%m%d_%H%M%S)"
mkdir -p "$BACKUP_DIR"
"$KB" backup "$(cd "$BACKUP_DIR" && pwd -P)"

echo "Removing backups older than $RETENTION_DAYS days..."
find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -type d -name 'knowledge-system_*' -mtime "+$RETENTION_DAYS" -exec rm -rf {} +
echo "Backup completed successfully at $(date -u)"
