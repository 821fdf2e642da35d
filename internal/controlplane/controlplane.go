/*
Copyright 2026 The hookline Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package controlplane starts the real kube-apiserver and etcd that hack/controlplane builds into bin/,
// with hookline's CRDs installed, for controller and end-to-end tests and for make run.
package controlplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// Env is a running control plane.
type Env struct {
	// Root is the repository root.
	Root string
	// Bin holds kube-apiserver, etcd, kubectl and helm.
	Bin string
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Scheme knows the built-in types and hookline's.
	Scheme *runtime.Scheme
	// Kubeconfig is the path of a kubeconfig file for kubectl and helm.
	Kubeconfig string

	env *envtest.Environment
	dir string
}

// RepoRoot finds the repository root by walking up from the working directory to go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "PROJECT")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.mod + PROJECT) not found")
		}
		dir = parent
	}
}

// RequireEnv names the environment variable that makes missing control-plane binaries an error in
// tests too: make test and make test-integration set it (and CI=true does the same), so they never
// pass by skipping.
const RequireEnv = "HOOKLINE_REQUIRE_CONTROLPLANE"

// Start boots etcd and kube-apiserver from bin/ (or $HOOKLINE_BIN) and installs the CRDs of
// config/crd/bases. Missing binaries are an error that says how to build them; in a test binary
// (a suite's TestMain calls Start first) without $HOOKLINE_REQUIRE_CONTROLPLANE=1 or CI=true they
// instead end the package's tests with a SKIP line and status 0, so `go test ./...` on a fresh
// clone runs the unit tests and skips the integration suites.
func Start() (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	bin := binDir(root)
	if err := missing(bin); err != nil {
		if skippable() {
			fmt.Printf("SKIP: this package's tests need a control plane: %v\n", err)
			os.Exit(0)
		}
		return nil, err
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(hooklinev1.AddToScheme(scheme))

	env := &envtest.Environment{
		BinaryAssetsDirectory: bin,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting control plane: %w", err)
	}
	e := &Env{Root: root, Bin: bin, Config: cfg, Scheme: scheme, env: env}
	if e.dir, err = os.MkdirTemp("", "hookline-testenv-"); err != nil {
		_ = env.Stop()
		return nil, err
	}
	admin, err := env.AddUser(envtest.User{Name: "hookline-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("adding admin user: %w", err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		_ = e.Stop()
		return nil, err
	}
	e.Kubeconfig = filepath.Join(e.dir, "kubeconfig")
	if err := os.WriteFile(e.Kubeconfig, kubeconfig, 0o600); err != nil {
		_ = e.Stop()
		return nil, err
	}
	return e, nil
}

// SkipIfMissing skips t when the control-plane binaries are absent and the run does not require
// them (see Start); for a test that calls Start itself rather than from TestMain.
func SkipIfMissing(t testing.TB) {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := missing(binDir(root)); err != nil && skippable() {
		t.Skipf("needs a control plane: %v", err)
	}
}

func binDir(root string) string {
	if bin := os.Getenv("HOOKLINE_BIN"); bin != "" {
		return bin
	}
	return filepath.Join(root, "bin")
}

func missing(bin string) error {
	for _, b := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return fmt.Errorf("%s not found in %s: run 'make controlplane' (make test and make test-integration do it for you)", b, bin)
		}
	}
	return nil
}

// skippable: a test binary whose run does not require the control plane.
func skippable() bool {
	return testing.Testing() && os.Getenv(RequireEnv) != "1" && os.Getenv("CI") != "true"
}

// Stop shuts the control plane down and removes temporary files.
func (e *Env) Stop() error {
	err := e.env.Stop()
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
	return err
}
