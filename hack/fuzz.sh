#!/usr/bin/env bash
# hack/fuzz.sh: run every Go fuzz target of the repository, one after another, and print a table of
# package, target, executions, new interesting inputs and result. Exits non-zero if any target fails.
#
#   FUZZTIME          fuzzing budget per target (go test -fuzztime), default 10s; a count such as
#                     20000x has no wall-clock deadline (make test uses one, see below)
#   FUZZPARALLEL      fuzz worker processes per target (go test -parallel), default 2
#   FUZZMINIMIZETIME  time per minimization attempt (go test -fuzzminimizetime), default 1s: with
#                     Go's 60s default, minimizing each new input from a 4 KB sample stalls the
#                     workers (no executions counted) for most of a short run
#
# Targets are found by reading the *_test.go files, not with `go test -list`, which would run every
# package's TestMain (the controllers suite starts a kube-apiserver just to list nothing).
# A failing input is written by Go to <package>/testdata/fuzz/<target>/; keep it as a regression
# seed only together with the fix.
#
# Go 1.26's fuzz coordinator has a race at the end of a duration budget (go.dev/issue/75804, fixed in
# Go 1.27): when the -fuzztime deadline fires while a worker is still answering, the target fails with
# a bare "context deadline exceeded" and no input is written. A run that fails exactly so is reported
# as "PASS (deadline race, go#75804)", not as a failure; any other failure, and every failure that
# writes an input, still fails. Count budgets (Nx) do not take that path at all.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-10s}
FUZZPARALLEL=${FUZZPARALLEL:-2}
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-1s}

module=$(awk '$1 == "module" { print $2; exit }' go.mod)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# "<dir> <target>" per fuzz target, sorted: func FuzzXxx(f *testing.F) in a _test.go file.
find . \( -name .git -o -name bin -o -name .run -o -name testdata -o -name vendor -o -name node_modules \) -prune \
  -o -type f -name '*_test.go' -print0 |
  xargs -0 -r grep -HE '^func Fuzz[A-Za-z0-9_]*\([A-Za-z_][A-Za-z0-9_]* \*testing\.F\)' |
  while IFS= read -r hit; do
    file=${hit%%:*}
    name=${hit#*:func }
    printf '%s %s\n' "$(dirname "$file")" "${name%%(*}"
  done | sort -u >"$work/targets"

if [ ! -s "$work/targets" ]; then
  echo "fuzz.sh: no fuzz targets found" >&2
  exit 1
fi

# last <log> <ERE with one group>: the group's value on the last matching line, or "?".
last() {
  local v
  v=$(sed -nE "s/$2/\\1/p" "$1" | tail -n 1)
  echo "${v:-?}"
}

# deadline_race <log>: the run failed only by go.dev/issue/75804: the single failure message is
# "context deadline exceeded", printed right under the target's "--- FAIL" (called only when no
# input was written).
deadline_race() {
  [ "$(grep -c -- '^--- FAIL' "$1")" = 1 ] &&
    grep -A1 -- '^--- FAIL' "$1" | tail -n 1 | grep -qx '[[:space:]]*context deadline exceeded'
}

start=$SECONDS
failed=0
rows=()
while read -r dir target; do
  pkg=$module${dir#.}
  log="$work/$target.log"
  echo "=== $pkg $target (fuzztime $FUZZTIME, $FUZZPARALLEL workers)"
  result=PASS
  if ! (cd "$dir" && go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" \
    -fuzzminimizetime "$FUZZMINIMIZETIME" -parallel "$FUZZPARALLEL" .) 2>&1 | tee "$log"; then
    input=$(last "$log" '.*Failing input written to (.*)$')
    if [ "$input" != "?" ]; then
      result="FAIL (${dir#./}/$input)"
      failed=1
    elif deadline_race "$log"; then
      result="PASS (deadline race, go#75804)"
    else
      result=FAIL
      failed=1
    fi
  fi
  # Go prints e.g. "fuzz: elapsed: 10s, execs: 123456 (12345/sec), new interesting: 3 (total: 40)".
  execs=$(last "$log" '^fuzz: elapsed: .*, execs: ([0-9]+) .*')
  interesting=$(last "$log" '^fuzz: elapsed: .*, new interesting: ([0-9]+) .*')
  rows+=("$pkg|$target|$execs|$interesting|$result")
done <"$work/targets"

echo
{
  echo "PACKAGE|TARGET|EXECS|NEW INTERESTING|RESULT"
  printf '%s\n' "${rows[@]}"
} | awk -F'|' '
  { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } n = NR; nf = NF }
  END {
    for (r = 1; r <= n; r++) {
      line = ""
      for (i = 1; i <= nf; i++) {
        fmt = (i == 3 || i == 4) ? "%" w[i] "s" : "%-" w[i] "s"
        line = line (i > 1 ? "  " : "") sprintf(fmt, cell[r, i])
      }
      sub(/ +$/, "", line)
      print line
    }
  }'
echo "${#rows[@]} fuzz targets, FUZZTIME=$FUZZTIME each, in $((SECONDS - start))s"
exit "$failed"
