#!/usr/bin/env bash
# Runbook 2 of the operations guide, "Emergency Budget Freeze" (run when the budget is exhausted
# unexpectedly):
#   deploy/scripts/emergency-budget-freeze.sh "reason" [INCIDENT_DIR]
# Freezes the budget (POST /internal/budget/freeze): every paid provider is refused from now on,
# local models keep running. Logs the incident and writes an incident report with the last 24
# hours' costs into INCIDENT_DIR (default /var/lib/knowledge/incidents). Undo with
# `kb budget unfreeze` (or POST /internal/budget/unfreeze). Set KB_INCIDENT_WEBHOOK to also post
# the notice to a Slack-style webhook. Uses KB_BUDGET_SERVICE_ADMIN_URL (default
# http://127.0.0.1:9104), KB_AUTH_TOKEN when set, and `kb` from KB_BIN_DIR or PATH.
set -euo pipefail
REASON="${1:-budget exhausted unexpectedly}"
INCIDENT_DIR="${2:-/var/lib/knowledge/incidents}"
ADMIN="${KB_BUDGET_SERVICE_ADMIN_URL:-http://127.0.0.1:9104}"
KB="${KB_BIN_DIR:-.build/release}/kb"
command -v "$KB" >/dev/null 2>&1 || KB=kb
AUTH=()
[ -n "${KB_AUTH_TOKEN:-}" ] && AUTH=(-H "Authorization: Bearer $KB_AUTH_TOKEN")

echo "Activating emergency budget freeze..."
BODY="$(python3 -c 'import json,sys; print(json.dumps({"reason": sys.argv[1]}))' "$REASON")"
curl -fsS -X POST "${AUTH[@]}" -H 'Content-Type: application/json' -d "$BODY" "$ADMIN/internal/budget/freeze"
echo

if [ -n "${KB_INCIDENT_WEBHOOK:-}" ]; then
  curl -fsS -X POST -H 'Content-Type: application/json' \
    -d '{"text": "EMERGENCY: knowledge system budget freeze activated. Paid providers refused, local models only."}' \
    "$KB_INCIDENT_WEBHOOK" || echo "warning: the webhook did not accept the notice" >&2
fi

mkdir -p "$INCIDENT_DIR"
echo "$(date -u +%FT%TZ): Emergency budget freeze activated: $REASON" >> "$INCIDENT_DIR/knowledge-incidents.log"
REPORT="$INCIDENT_DIR/$(date -u +%Y-%m-%d)-budget-freeze.md"
{
  echo "# Budget Freeze Incident"
  echo
  echo "**Date**: $(date -u)"
  echo "**Severity**: P2"
  echo "**Action**: paid providers refused (local-only inference)"
  echo "**Reason**: $REASON"
  echo
  echo "## Budget at the freeze"
  echo '```'
  "$KB" budget status
  echo '```'
  echo
  echo "## Costs of the last 24 hours"
  echo '```'
  "$KB" budget report --period day
  echo '```'
  echo
  echo "## Next Steps"
  echo "1. Review the cost spike above (kb budget events, kb budget report --period week)"
  echo "2. Identify expensive operations"
  echo "3. Adjust the budget (kb budget set-limit) or optimize usage"
  echo "4. Re-enable paid providers when safe: kb budget unfreeze"
} > "$REPORT"
echo "Incident report: $REPORT"
echo "Emergency budget freeze completed"
