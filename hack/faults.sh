#!/usr/bin/env bash
# Runs hookline's fault suite (test/faults, and the hostile-receiver test of dispatcher/) and prints
# its figures.
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
# Misbehaving receivers (flapping, hanging, resetting, endless or huge bodies, dripping bytes, huge
# headers) against one in-process dispatcher, next to healthy webhooks.
hostile=$(mktemp)
trap 'rm -f "$report" "$hostile"' EXIT
go test -count=1 -timeout 10m -v -run '^TestHostileReceiversCannotHurtOthers$' ./dispatcher/ >"$hostile" 2>&1 || status=$?
grep -E '^(--- |ok|FAIL|panic)' "$hostile" | grep -v '^    ' || true
echo
echo "Fault suite ($mode), $(( $(date +%s) - start )) s on $(nproc) cores:"
echo "| scenario | posts | acknowledged | expected deliveries | delivered | duplicates | order breaks | notes |"
echo "|---|---|---|---|---|---|---|---|"
cat "$report"
echo
echo "Hostile receivers:"
grep -E 'hostile phase:|streaming receivers wrote|heap in use|dispatcher: [0-9]+ attempts|goroutines:' "$hostile" | sed -E 's/^ *hostile_receivers_test.go:[0-9]+: /  /'
exit $status
