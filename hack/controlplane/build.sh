#!/usr/bin/env bash
# Builds kube-apiserver, kubectl, etcd and helm from the Go module proxy into bin/ (no binary downloads).
# Each binary is rebuilt only when its pinned version or module changes; Go's build cache makes a
# rebuild after a clean checkout cheap once the first build has run on the machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${BIN_DIR:-$root/bin}
# shellcheck source=versions.env
source "$here/versions.env"
mkdir -p "$bin"

# build <module dir> <output name> <package> [ldflags]
build() {
  local mod=$1 out=$2 pkg=$3 ldflags=${4:-}
  local stamp="$bin/.$out.stamp"
  local want
  want=$(cat "$here/$mod/go.mod" "$here/$mod/go.sum" "$here/versions.env" | sha256sum | cut -d' ' -f1)
  if [[ -x "$bin/$out" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  echo "hack/controlplane: building $out ($pkg)" >&2
  local start=$SECONDS
  (cd "$here/$mod" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/$out" "$pkg")
  echo "$want" > "$stamp"
  echo "hack/controlplane: built $out in $((SECONDS - start))s" >&2
}

minor=${KUBE_VERSION#*.}; minor=${minor%%.*}
kver="-X k8s.io/component-base/version.gitVersion=v$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
kver="$kver -X k8s.io/client-go/pkg/version.gitVersion=v$KUBE_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

targets=${*:-etcd kube-apiserver kubectl helm}
for t in $targets; do
  case $t in
    etcd) build etcd etcd go.etcd.io/etcd/server/v3 ;;
    kube-apiserver) build kube kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$kver" ;;
    kubectl) build kube kubectl k8s.io/kubernetes/cmd/kubectl "$kver" ;;
    helm) build helm helm helm.sh/helm/v3/cmd/helm "-X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION" ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
done
