#!/usr/bin/env bash
# hack/gotest.sh: go test "$@", and when it fails, the failures again at the end of the output.
#
# The integration packages log a great deal (the manager's and the dispatcher's loggers write to
# stderr), so a failing test's own lines can sit thousands of lines above the end, where a CI log
# that keeps only its tail loses them. This prints every "--- FAIL" block (the test's name and its
# indented messages, at most 40 lines each), every panic (30 lines) and the failed packages once
# more, after everything else.
set -uo pipefail

out=$(mktemp)
trap 'rm -f "$out"' EXIT

go test "$@" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
	echo
	echo "=== hack/gotest.sh: the failures above, repeated (go test exited $status)"
	awk '
		/^[ \t]*--- FAIL/ { n = 40; any = 0; print; next }
		/^panic: / { n = 30; any = 1; print; next }
		/^FAIL[ \t]/ { n = 0; print; next }
		n > 0 && (any || /^[ \t]/) { n--; print; next }
		{ n = 0 }
	' "$out"
fi
exit "$status"
