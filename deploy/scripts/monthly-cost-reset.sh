#!/usr/bin/env bash
# Runbook 1 of the operations guide, "Monthly Cost Reset" (run on the 1st of every month):
#   deploy/scripts/monthly-cost-reset.sh [REPORT_DIR]
# Asks the running budget-service to archive the finished month (POST /internal/budget/reset:
# the events move to the archive table in one transaction; running it twice archives nothing
# more), then writes last month's report as text and JSON into REPORT_DIR (default
# /var/lib/knowledge/reports). Uses KB_BUDGET_SERVICE_ADMIN_URL (default http://127.0.0.1:9104),
# KB_AUTH_TOKEN when set, and `kb` from KB_BIN_DIR (default .build/release) or PATH.
set -euo pipefail
REPORT_DIR="${1:-/var/lib/knowledge/reports}"
ADMIN="${KB_BUDGET_SERVICE_ADMIN_URL:-http://127.0.0.1:9104}"
KB="${KB_BIN_DIR:-.build/release}/kb"
command -v "$KB" >/dev/null 2>&1 || KB=kb
AUTH=()
[ -n "${KB_AUTH_TOKEN:-}" ] && AUTH=(-H "Authorization: Bearer $KB_AUTH_TOKEN")

echo "Performing monthly cost reset..."
curl -fsS -X POST "${AUTH[@]}" "$ADMIN/internal/budget/reset"
echo

LAST_MONTH="$(date -u -d "$(date -u +%Y-%m-01) -1 month" +%Y-%m)"
FIRST="$LAST_MONTH-01"
LAST="$(date -u -d "$FIRST +1 month -1 day" +%Y-%m-%d)"
mkdir -p "$REPORT_DIR"
"$KB" budget report --period custom --from "$FIRST" --to "$LAST" > "$REPORT_DIR/cost-report-$LAST_MONTH.txt"
"$KB" budget report --period custom --from "$FIRST" --to "$LAST" --json > "$REPORT_DIR/cost-report-$LAST_MONTH.json"
echo "Monthly report: $REPORT_DIR/cost-report-$LAST_MONTH.txt"
echo "Monthly cost reset completed"
