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

// Package testsupport holds what several test suites need: the in-process manager and checks of
// Kubernetes Events. It is imported by tests only.
package testsupport

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/hookline/hookline/controllers"
	"github.com/hookline/hookline/internal/attest"
	"github.com/hookline/hookline/internal/cachetrim"
	"github.com/hookline/hookline/internal/controlplane"
	"github.com/hookline/hookline/internal/netguard"
	"github.com/hookline/hookline/internal/testsupport/freeport"
	"github.com/hookline/hookline/internal/verify"
)

// HTTPTestRoots returns a pool trusting the certificate every httptest TLS server presents.
func HTTPTestRoots() (*x509.CertPool, *x509.Certificate) {
	probe := httptest.NewTLSServer(nil)
	defer probe.Close()
	pool := x509.NewCertPool()
	pool.AddCert(probe.Certificate())
	return pool, probe.Certificate()
}

// LoopbackGuard is the SSRF guard of the test suites: the defaults, with 127.0.0.0/8 and ::1
// allowed, where httptest receivers listen. Everything else the defaults block stays blocked.
func LoopbackGuard() *netguard.Guard {
	return netguard.New(netguard.Policy{Allowed: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
	}})
}

// attestationSecret is the attestation key of every manager and dispatcher the test suites run, in
// process or as processes; tests that forge status do not use it.
var attestationSecret = bytes.Repeat([]byte("hookline-test-attestation-key/"), 2)

// AttestationKey returns the test suites' attestation key.
func AttestationKey() *attest.Key {
	k, err := attest.New(attestationSecret)
	if err != nil {
		panic(err)
	}
	return k
}

// AttestationKeyFile writes the test suites' attestation key to a file in dir, for
// --attestation-key-file, and returns its path.
func AttestationKeyFile(dir string) (string, error) {
	path := filepath.Join(dir, "attestation.key")
	return path, os.WriteFile(path, attestationSecret, 0o600)
}

// StartManager runs hookline's Webhook reconciler in process against env until ctx ends; done
// receives the manager's result. http URLs and loopback receivers (LoopbackGuard) are allowed and
// roots are trusted.
func StartManager(ctx context.Context, env *controlplane.Env, roots *x509.CertPool, verifyTimeout time.Duration, opts controllers.Options, requests *APIRequests) (done <-chan error, err error) {
	mgr, err := ctrl.NewManager(requests.Config(env.Config), ctrl.Options{
		Scheme:  env.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Client:  client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Cache:   cache.Options{DefaultTransform: cachetrim.Transform}, // as cmd/manager's
	})
	if err != nil {
		return nil, err
	}
	r := &controllers.WebhookReconciler{
		Client:      mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		Recorder:    mgr.GetEventRecorder("hookline-manager"),
		Verifier:    verify.New(verify.Config{Timeout: verifyTimeout, AllowHTTP: true, RootCAs: roots, Guard: LoopbackGuard()}),
		Attestation: AttestationKey(),
		Clock:       clock.RealClock{},
		Options:     opts,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	ch := make(chan error, 1)
	go func() { ch <- mgr.Start(ctx) }()
	return ch, nil
}

// ManagerSuite is what RunWithManager started: the control plane, a client of it, the
// certificate every httptest TLS server presents (the manager trusts it), and the manager's
// requests to the API server.
type ManagerSuite struct {
	Env       *controlplane.Env
	Client    client.Client
	TrustedCA *x509.Certificate
	Requests  *APIRequests
}

// APIRequests counts the requests a client made to the API server, by method and path, for tests
// that bound how much load something puts on the API server.
type APIRequests struct {
	mu     sync.Mutex
	counts map[string]int
}

// Count returns how many requests with method were made to a path starting with prefix.
func (a *APIRequests) Count(method, prefix string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for k, c := range a.counts {
		if m, path, _ := strings.Cut(k, " "); m == method && strings.HasPrefix(path, prefix) {
			n += c
		}
	}
	return n
}

// Config returns a copy of cfg whose requests a counts (cfg itself when a is nil).
func (a *APIRequests) Config(cfg *rest.Config) *rest.Config {
	if a == nil {
		return cfg
	}
	out := rest.CopyConfig(cfg)
	out.Wrap(a.wrap)
	return out
}

func (a *APIRequests) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		a.mu.Lock()
		if a.counts == nil {
			a.counts = map[string]int{}
		}
		a.counts[r.Method+" "+r.URL.Path]++
		a.mu.Unlock()
		return rt.RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// RunWithManager is the body of a TestMain that needs the real API server with hookline's manager
// in process: it starts both (StartManager with verifyTimeout and opts), hands them to setup (which
// sets the package's variables), runs m and stops both. It returns m's exit code, or 1 when the
// start failed (the reason on stderr).
func RunWithManager(m *testing.M, verifyTimeout time.Duration, opts controllers.Options, setup func(ManagerSuite)) int {
	env, err := controlplane.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	c, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	roots, trusted := HTTPTestRoots()
	requests := &APIRequests{}
	setup(ManagerSuite{Env: env, Client: c, TrustedCA: trusted, Requests: requests})
	ctx, cancel := context.WithCancel(context.Background())
	done, err := StartManager(ctx, env, roots, verifyTimeout, opts, requests)
	if err != nil {
		cancel()
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
	}
	return code
}

// ExpectEvent waits for an events.k8s.io Event about obj with the given type and reason.
func ExpectEvent(t *testing.T, c client.Client, obj client.Object, eventType, reason string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		list := &eventsv1.EventList{}
		g.Expect(c.List(context.Background(), list, client.InNamespace(obj.GetNamespace()))).To(Succeed())
		found := false
		for _, e := range list.Items {
			if e.Regarding.UID == obj.GetUID() && e.Type == eventType && e.Reason == reason {
				found = true
			}
		}
		g.Expect(found).To(BeTrue(), "no %s event %q for %s", eventType, reason, obj.GetName())
	}).WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
}

// FreeAddr returns a 127.0.0.1 address with a port nobody listens on at the moment, for a process
// the test starts and must know the address of in advance (see freeport.Addr).
func FreeAddr(t testing.TB) string {
	t.Helper()
	return freeport.Addr(t)
}

// AwkwardStrings are what a string field may hold and an encoder must get right: escapes, markup,
// controls, unicode, line separators, invalid UTF-8.
var AwkwardStrings = []string{
	"",
	"plain",
	`quote " backslash \ slash /`,
	"<script>alert('x')</script> & more",
	"tab\t newline\n return\r backspace\b formfeed\f nul\x00 unit\x1f del\x7f",
	"é ü 漢字 🚀 \u00a0",
	"line\u2028separator\u2029paragraph",
	"bad \xff\xfe utf-8 \xc3",
	"truncated rune \xe2\x82",
	`{"xAdobeSignClientId":"CBJCHBCAABAAjA3h4eHyw4Ry1-dQFN_3xe8kAUkaEJ4z"}`,
	"https://hooks.example.com/a?b=1&c=<2>",
}
