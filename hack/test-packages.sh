#!/usr/bin/env bash
# Prints the packages of one test set, derived from the import graph so a new package lands in the
# right set by itself:
#   integration  packages whose tests depend on internal/controlplane (a real kube-apiserver and etcd
#                from bin/, and the hookline binaries the suites start), and hack/image, whose test
#                builds and links the three release binaries (minutes when the build cache is cold)
#   unit         every other package with tests: seconds each, no control plane, run with -race
# Usage: hack/test-packages.sh unit|integration
set -euo pipefail
cd "$(dirname "$0")/.."
case ${1:-} in
  unit) want=0 ;;
  integration) want=1 ;;
  *) echo "usage: $0 unit|integration" >&2; exit 2 ;;
esac
mod=$(go list -m)
go list -test -f '{{.ImportPath}} {{join .Deps " "}}' ./... |
  awk -v cp="$mod/internal/controlplane" -v image="$mod/hack/image.test" -v want="$want" '$1 ~ /\.test$/ {
    integ = ($1 == image)
    for (i = 2; i <= NF; i++) if ($i == cp) integ = 1
    if (integ == want) print substr($1, 1, length($1) - 5)
  }' | sort
