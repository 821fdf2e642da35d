//go:build tools

// Package kube pins the control-plane commands built by hack/controlplane/build.sh.
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
