#!/usr/bin/env bash
# Runs hookline's fault suite (test/faults) and prints its figures as a table.
#   HOOKLINE_FAULTS=full (default here) — long variant: 20,000 events per kill scenario, 60 s API outage
#   HOOKLINE_FAULTS=quick — the variant make test runs
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${HOOKLINE_FAULTS:-full}
report=$(mktemp)
trap 'rm -f "$report"' EXIT
start=$(date +%s)
status=0
HOOKLINE_FAULTS=$mode HOOKLINE_FAULTS_REPORT=$report \
  go test -count=1 -timeout 60m -v ./test/faults/ | grep -E '^(=== RUN|--- |ok|FAIL|panic)' || status=$?
echo
echo "Fault suite ($mode), $(( $(date +%s) - start )) s on $(nproc) cores:"
echo "| scenario | posts | acknowledged | expected deliveries | delivered | duplicates | order breaks | notes |"
echo "|---|---|---|---|---|---|---|---|"
cat "$report"
exit $status
