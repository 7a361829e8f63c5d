#!/usr/bin/env bash
# The guide's "Full System Recovery", mapped onto kb:
#   deploy/scripts/disaster-recovery.sh BACKUP_DATE        (YYYYmmdd_HHMMSS, as in knowledge-system_<date>)
#   deploy/scripts/disaster-recovery.sh /path/to/knowledge-system_<date>
# 1. stop every service (kb down)  2. restore every store from the backup (kb restore: checks
# the whole backup first, refuses while anything runs, keeps what was there as
# <store>.pre-restore.<date>)  3. start (kb up --detach)  4. verify: every service healthy
# (kb status), the graph's indexes agree with its records (ukb verify), the budget ledger
# (kb budget verify), the counts (ukb query --stats).
# To rehearse the whole procedure with its timings (the RTO) on a staging system: kb drill --yes.
set -euo pipefail
BACKUP_DATE="${1:?usage: disaster-recovery.sh BACKUP_DATE|BACKUP_FOLDER}"
BACKUP_DIR="${KB_BACKUP_DIR:-$(dirname "$(realpath -m "${KB_DATA_DIR:-.data}")")/backups}"
BIN="${KB_BIN_DIR:-.build/release}"
KB="$BIN/kb"; command -v "$KB" >/dev/null 2>&1 || KB=kb
UKB="$BIN/ukb"; command -v "$UKB" >/dev/null 2>&1 || UKB=ukb
if [ -d "$BACKUP_DATE" ]; then BACKUP="$BACKUP_DATE"; else BACKUP="$BACKUP_DIR/knowledge-system_$BACKUP_DATE"; fi
[ -f "$BACKUP/manifest.json" ] || { echo "ERROR: $BACKUP is not a backup made by kb backup (no manifest.json)" >&2; exit 1; }

echo "Starting disaster recovery from $BACKUP"
echo "1. Stopping services..."
"$KB" down
echo "2. Restoring every store (checked before anything is replaced)..."
"$KB" restore "$BACKUP"
echo "3. Starting services..."
"$KB" up --detach
echo "4. Verifying..."
"$KB" status || { echo "ERROR: a service is not healthy" >&2; exit 1; }
"$UKB" verify || { echo "ERROR: Graph database integrity check failed" >&2; exit 1; }
"$KB" budget verify || { echo "ERROR: budget ledger integrity check failed" >&2; exit 1; }
"$UKB" query --stats
echo "Disaster recovery completed successfully! Recovered from backup: $(basename "$BACKUP")"
