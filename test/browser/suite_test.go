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

// Package browser drives the web console (internal/console) in a real headless Chromium against
// the real kube-apiserver and hookline's in-process manager: what a user clicks is what is tested,
// CSP, cookies and RBAC included.
package browser

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"go.uber.org/zap/zapcore"

	"github.com/hookline/hookline/controllers"
	"github.com/hookline/hookline/internal/controlplane"
	"github.com/hookline/hookline/internal/testsupport"
)

// RequireBrowserEnv makes a missing Chromium an error instead of a skip: make test-browser sets it.
const RequireBrowserEnv = "HOOKLINE_REQUIRE_BROWSER"

// testClientID is the manager's default client id, which receivers echo.
const testClientID = "hookline-browser-test"

var (
	env      *controlplane.Env
	k8s      client.Client
	chromium string
)

// findChromium returns $HOOKLINE_CHROMIUM or the first Chromium on PATH (hack/chromium.sh installs
// Debian's chromium package).
func findChromium() string {
	if p := os.Getenv("HOOKLINE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	if chromium = findChromium(); chromium == "" {
		msg := "no Chromium found (hack/chromium.sh installs Debian's chromium; or set HOOKLINE_CHROMIUM)"
		if os.Getenv(RequireBrowserEnv) == "1" {
			fmt.Fprintln(os.Stderr, msg)
			return 1
		}
		fmt.Printf("SKIP: this package's tests need a browser: %s\n", msg)
		return 0
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(zapcore.ErrorLevel)))
	return testsupport.RunWithManager(m, time.Second, controllers.Options{
		DefaultClientID:         testClientID,
		VerificationsPerAccount: 10,
		RetryBase:               200 * time.Millisecond,
		RetryMax:                2 * time.Second,
		ThrottleRetry:           100 * time.Millisecond,
		MaxConcurrentReconciles: 4,
	}, func(s testsupport.ManagerSuite) { env, k8s = s.Env, s.Client })
}

// tenantRules is what a tenant's RoleBinding grants in its own namespace: its webhooks, their
// delivery logs, replays and test notifications, and reading the Events about them.
var tenantRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"hookline.io"}, Resources: []string{"webhooks"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
	{APIGroups: []string{"hookline.io"}, Resources: []string{"webhooks/deliveries", "webhooks/payloads"}, Verbs: []string{"get"}},
	{APIGroups: []string{"hookline.io"}, Resources: []string{"webhooks/test"}, Verbs: []string{"create"}},
	{APIGroups: []string{"hookline.io"}, Resources: []string{"webhookreplays"}, Verbs: []string{"get", "list", "watch", "create"}},
	{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"get", "list", "watch"}},
}
