#!/usr/bin/env bash
# The guide's weekly "Backup Verification", mapped onto `kb verify-backup`:
#   deploy/scripts/verify-backups.sh [BACKUP_DIR | BACKUP_DIR/knowledge-system_<date>]
# Takes the newest knowledge-system_* backup in BACKUP_DIR (default KB_BACKUP_DIR, or `backups`
# beside the data directory), checks every file's SHA-256 against its manifest, restores each
# store into a scratch folder with its own service on free loopback ports (never the live
# system), runs the stores' integrity checks and compares their counts with the manifest.
# Prints PASS or FAIL and exits 0 or 1.
set -euo pipefail
DEFAULT_DIR="${KB_BACKUP_DIR:-$(dirname "$(realpath -m "${KB_DATA_DIR:-.data}")")/backups}"
TARGET="${1:-$DEFAULT_DIR}"
KB="${KB_BIN_DIR:-.build/release}/kb"
command -v "$KB" >/dev/null 2>&1 || KB=kb

if [ -f "$TARGET/manifest.json" ]; then
  BACKUP="$TARGET"
else
  BACKUP="$(find "$TARGET" -mindepth 1 -maxdepth 1 -type d -name 'knowledge-system_*' -exec test -f '{}/manifest.json' ';' -print | sort | tail -n 1)"
  [ -n "$BACKUP" ] || { echo "FAIL: no knowledge-system_* backup with a manifest in $TARGET"; exit 1; }
fi
if "$KB" verify-backup "$BACKUP"; then
  echo "PASS: Backup verification successful for $(basename "$BACKUP")"
else
  echo "FAIL: Backup verification failed for $(basename "$BACKUP")"
  exit 1
fi
