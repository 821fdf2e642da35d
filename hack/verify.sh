#!/usr/bin/env bash
# make verify: regenerate every generated file and fail if any differs from the tree as it is, and
# fail on unformatted Go code or an untidy go.mod. Works with uncommitted changes too: it compares
# against the working tree, not against git.
set -euo pipefail
cd "$(dirname "$0")/.."

generated=(config/crd/bases config/rbac/role.yaml config/rbac/dispatcher/role.yaml api/v1alpha1/zz_generated.deepcopy.go docs/reference.md
  docs/reference-webhookreplay.md
  charts/hookline/templates/crds charts/hookline/files/manager-rules.yaml charts/hookline/files/dispatcher-rules.yaml
  charts/hookline/templates/policies)
snap=$(mktemp -d)
trap 'rm -rf "$snap"' EXIT
for p in "${generated[@]}"; do
  [ -e "$p" ] && cp -r --parents "$p" "$snap/"
done

make -s manifests generate docs >/dev/null
hack/helm-sync.sh

status=0
for p in "${generated[@]}"; do
  if ! diff -r -u "$snap/$p" "$p" >/dev/null 2>&1; then
    echo "make verify: $p is out of date; run 'make manifests generate docs helm-sync' and commit the result:"
    diff -r -u "$snap/$p" "$p" | head -40 || true
    status=1
  fi
done

unformatted=$(gofmt -l $(git ls-files '*.go'; git ls-files --others --exclude-standard '*.go') 2>/dev/null || true)
if [ -n "$unformatted" ]; then
  echo "make verify: gofmt needed for:"; echo "$unformatted"; status=1
fi
for mod in . hack/tools hack/controlplane/kube hack/controlplane/etcd hack/controlplane/helm; do
  if ! (cd "$mod" && go mod tidy -diff >/dev/null 2>&1); then
    echo "make verify: go.mod/go.sum in $mod are not tidy; run 'go mod tidy' there"; status=1
  fi
done
hack/controlplane/gen-kube-mod.sh --check || status=1
[ $status -eq 0 ] && echo "make verify: clean"
exit $status
