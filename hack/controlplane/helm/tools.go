//go:build tools

// Package helm pins the helm CLI built by hack/controlplane/build.sh.
package helm

import _ "helm.sh/helm/v3/cmd/helm"
