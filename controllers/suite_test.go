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

package controllers_test

import (
	"context"
	"crypto/x509"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/go-logr/logr"

	"go.uber.org/zap/zapcore"

	"github.com/hookline/hookline/controllers"
	"github.com/hookline/hookline/internal/controlplane"
	"github.com/hookline/hookline/internal/tenancy"
	"github.com/hookline/hookline/internal/testsupport"
)

// Settings of the manager under test: real durations scaled down so failure paths take moments.
const (
	testClientID      = "hookline-test-client"
	testVerifyTimeout = time.Second
)

var (
	env *controlplane.Env
	k8s client.Client
	// trustedCA is the certificate of every httptest TLS server; the manager trusts it.
	trustedCA *x509.Certificate
	// managerRequests counts the manager's requests to the API server.
	managerRequests *testsupport.APIRequests
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(logr.New(teeSink{zap.New(zap.UseDevMode(true), zap.Level(zapLevel())).GetSink(), managerLogs.Logger().GetSink()}))
	return testsupport.RunWithManager(m, testVerifyTimeout, controllers.Options{
		DefaultClientID:         testClientID,
		VerificationsPerAccount: 10,
		RetryBase:               200 * time.Millisecond,
		RetryMax:                2 * time.Second,
		ThrottleRetry:           100 * time.Millisecond,
		MaxConcurrentReconciles: 32,
	}, func(s testsupport.ManagerSuite) {
		env, k8s, trustedCA, managerRequests = s.Env, s.Client, s.TrustedCA, s.Requests
	})
}

func zapLevel() zapcore.Level {
	if os.Getenv("HOOKLINE_TEST_VERBOSE") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.ErrorLevel
}

// newNamespace creates a namespace with a generated name, bound to account (and group) when given.
func newNamespace(t testing.TB, account, group string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "hookline-test-", Labels: map[string]string{}}}
	if account != "" {
		ns.Labels[tenancy.AccountLabel] = account
	}
	if group != "" {
		ns.Labels[tenancy.GroupLabel] = group
	}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}
