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

package dispatcher_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/controllers"
	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/controlplane"
	"github.com/hookline/hookline/internal/echo"
	"github.com/hookline/hookline/internal/tenancy"
	"github.com/hookline/hookline/internal/testsupport"
)

const (
	testClientID = "hookline-dispatcher-test"
	testToken    = "test-token-0123456789-all-accounts"
)

var (
	cp    *controlplane.Env
	k8s   client.Client
	roots *x509.CertPool
)

func TestMain(m *testing.M) { os.Exit(runSuite(m)) }

func runSuite(m *testing.M) int {
	level := zapcore.ErrorLevel
	if os.Getenv("HOOKLINE_TEST_VERBOSE") != "" {
		level = zapcore.DebugLevel
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(level)))
	var err error
	if cp, err = controlplane.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = cp.Stop() }()
	if k8s, err = client.New(cp.Config, client.Options{Scheme: cp.Scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	roots, _ = testsupport.HTTPTestRoots()
	// The real manager verifies endpoints and makes webhooks Active.
	ctx, cancel := context.WithCancel(context.Background())
	done, err := testsupport.StartManager(ctx, cp, roots, 2*time.Second, controllers.Options{
		DefaultClientID: testClientID, VerificationsPerAccount: 10, RetryBase: 100 * time.Millisecond,
		RetryMax: time.Second, ThrottleRetry: 100 * time.Millisecond, MaxConcurrentReconciles: 16,
		CertificateResync: time.Second}, nil)
	if err != nil {
		cancel()
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	cancel()
	<-done //nolint:errcheck // the dispatcher stopped; its result was logged
	return code
}

// stack is one dispatcher, in process, watching only its test's namespaces.
type stack struct {
	reg    *prometheus.Registry
	app    *dispatcher.App
	url    string
	dir    string
	cancel context.CancelFunc
	done   <-chan error
	srv    *httptest.Server
}

type stackOptions struct {
	namespaces []string
	clock      clock.Clock
	dir        string // reuse a data directory (restart)
	mutate     func(*dispatcher.Config)
	tokens     []ingest.TokenEntry      // besides testToken's, which may post for every account
	requests   *testsupport.APIRequests // counts the dispatcher's requests to the API server
}

// fastPolicy keeps Acrobat Sign's proportions (1 min → 12 h → 72 h → 7 d) scaled so that tests
// with a real clock never wait long.
func fastConfig() dispatcher.Config {
	return dispatcher.Config{
		Engine: deliver.Config{
			Policy:             deliver.DefaultPolicy(),
			AccountConcurrency: 30,
		},
		DeliveryTimeout:    2 * time.Second,
		AllowHTTP:          true,
		RootCAs:            roots,
		Guard:              testsupport.LoopbackGuard(),
		StatusInterval:     200 * time.Millisecond,
		DefaultClientID:    testClientID,
		Attestation:        testsupport.AttestationKey(),
		SecretResync:       300 * time.Millisecond,
		SyncWorkers:        4,
		MetricsAddress:     "0",
		ProbeAddress:       "0",
		Registry:           prometheus.NewRegistry(),
		SkipNameValidation: true,
		AccountQuota:       dispatcher.DefaultAccountQuota,
		// Tests run many replays in one namespace one after another: the budget of log reads is
		// TestReplayReadsKeepANamespaceToItsBudget's subject.
		ReplayLogReadsPerMinute: 6000,
		ReplayLogReadBurst:      1000,
	}
}

func startStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	cfg := fastConfig()
	cfg.Namespaces = o.namespaces
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	cfg.Store = store.Config{DataDir: o.dir}
	reg := prometheus.NewRegistry()
	cfg.Registry = reg
	if o.mutate != nil {
		o.mutate(&cfg)
	}
	clk := o.clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	app, err := dispatcher.NewApp(logr.NewContext(ctx, ctrl.Log.WithName(t.Name())), o.requests.Config(cp.Config), cfg, clk)
	if err != nil {
		cancel()
		t.Fatalf("starting dispatcher: %v", err)
	}
	tokens, err := ingest.StaticTokens(append([]ingest.TokenEntry{{Name: "test", Token: testToken, Accounts: []string{"*"}}}, o.tokens...)...)
	if err != nil {
		t.Fatal(err)
	}
	app.Ingest.Tokens = tokens
	done, err := app.Run(ctx)
	if err != nil {
		cancel()
		t.Fatalf("running dispatcher: %v", err)
	}
	srv := httptest.NewServer(dispatcher.NewIngestServer("", app.Ingest, app.Ready).Handler)
	s := &stack{app: app, url: srv.URL, dir: o.dir, cancel: cancel, done: done, srv: srv, reg: reg}
	t.Cleanup(s.stop)
	return s
}

func (s *stack) stop() {
	if s.cancel == nil {
		return
	}
	s.srv.Close()
	s.cancel()
	<-s.done //nolint:errcheck // stopped; how does not matter to a restart
	s.cancel = nil
}

// postWith sends an event with token and returns the status code and body.
func (s *stack) postWith(t *testing.T, token string, body []byte) (int, []byte) {
	t.Helper()
	code, b, _ := s.postFull(t, token, body)
	return code, b
}

// postFull sends an event with token and returns the status code, body and header of the answer.
func (s *stack) postFull(t *testing.T, token string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.url+"/v1/events", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// dispatcherConfig is the configuration tests adjust.
type dispatcherConfig = dispatcher.Config

// mustPost posts and expects 202.
func (s *stack) mustPost(t *testing.T, body []byte) {
	t.Helper()
	s.mustPostWith(t, testToken, body)
}

// mustPostWith posts with token and expects 202.
func (s *stack) mustPostWith(t *testing.T, token string, body []byte) {
	t.Helper()
	code, b := s.postWith(t, token, body)
	if code != http.StatusAccepted {
		t.Fatalf("post: %d %s", code, b)
	}
}

// delivery is one request a receiver got.
type delivery struct {
	Method   string
	Path     string
	ClientID string
	Body     []byte
	At       time.Time
	Certs    int
	Header   http.Header
}

// receiver records requests; its behaviour can change at any time. GETs (verification) are answered
// with the echo unless the behaviour says otherwise.
type receiver struct {
	*httptest.Server
	gets   atomic.Int64
	mu     sync.Mutex
	posts  []delivery
	answer func(w http.ResponseWriter, r *http.Request) // for POSTs
	now    func() time.Time
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{answer: echoOK, now: time.Now}
	rc.Server = httptest.NewServer(rc)
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		rc.gets.Add(1)
		echoOK(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	d := delivery{Method: r.Method, Path: r.URL.Path, ClientID: r.Header.Get(echo.Header), Body: body, Header: r.Header.Clone()}
	if r.TLS != nil {
		d.Certs = len(r.TLS.PeerCertificates)
	}
	rc.mu.Lock()
	d.At = rc.now()
	rc.posts = append(rc.posts, d)
	answer := rc.answer
	rc.mu.Unlock()
	answer(w, r)
}

func (rc *receiver) set(answer func(http.ResponseWriter, *http.Request)) {
	rc.mu.Lock()
	rc.answer = answer
	rc.mu.Unlock()
}

func (rc *receiver) got() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.posts...)
}

func echoOK(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(echo.Header, r.Header.Get(echo.Header))
	w.WriteHeader(http.StatusOK)
}

func fail500(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }

func newNamespace(t *testing.T, account, group string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "dispatch-", Labels: map[string]string{}}}
	if account != "" {
		ns.Labels[tenancy.AccountLabel] = account
	}
	if group != "" {
		ns.Labels[tenancy.GroupLabel] = group
	}
	NewWithT(t).Expect(k8s.Create(context.Background(), ns)).To(Succeed())
	return ns.Name
}

// activeWebhook creates a webhook and waits until the manager made it Active and the dispatcher
// routes to it.
func (s *stack) activeWebhook(t *testing.T, ns, name string, spec hooklinev1.WebhookSpec) *hooklinev1.Webhook {
	t.Helper()
	wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
	g := NewWithT(t)
	g.Expect(k8s.Create(context.Background(), wh)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(wh), wh)).To(Succeed())
		g.Expect(wh.Status.State).To(Equal(hooklinev1.ObservedActive))
	}).WithTimeout(20 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	s.waitRouted(t, wh)
	return wh
}

// waitRouted waits until the dispatcher's routing table holds wh.
func (s *stack) waitRouted(t *testing.T, wh *hooklinev1.Webhook) {
	t.Helper()
	NewWithT(t).Eventually(func() bool {
		for _, tg := range s.app.Table.Targets() {
			if tg.UID == string(wh.UID) {
				return true
			}
		}
		return false
	}).WithTimeout(10*time.Second).WithPolling(10*time.Millisecond).Should(BeTrue(), "the dispatcher does not route to %s", wh.Name)
}

// stackWithWebhook starts a stack configured by mutate with an Active webhook "orders" of a new
// namespace bound to account, delivering to a new receiver.
func stackWithWebhook(t *testing.T, account string, mutate func(*dispatcher.Config)) (*stack, string, *receiver, *hooklinev1.Webhook) {
	t.Helper()
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: mutate})
	return s, ns, rc, s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
}

func accountSpec(url string, events ...hooklinev1.EventName) hooklinev1.WebhookSpec {
	if len(events) == 0 {
		events = []hooklinev1.EventName{"AGREEMENT_ALL", "WIDGET_ALL", "MEGASIGN_ALL", "LIBRARY_DOCUMENT_ALL", "ENVELOPE_ALL"}
	}
	return hooklinev1.WebhookSpec{URL: url, Scope: hooklinev1.ScopeAccount, Events: events}
}

// event builds an agreement event for account.
func event(id, account string) []byte {
	return mustJSON(map[string]any{
		"id": id, "event": "AGREEMENT_ACTION_COMPLETED", "accountId": account, "groupId": "grp-1",
		"initiator": map[string]string{"userId": "u-1"},
		"resource":  map[string]string{"type": "AGREEMENT", "id": "agr-" + id},
		"notification": map[string]any{
			"event": "AGREEMENT_ACTION_COMPLETED", "eventDate": "2026-11-25T10:00:00Z",
			"agreement": map[string]any{"id": "agr-" + id, "name": "Contract " + id, "status": "OUT_FOR_SIGNATURE"},
		},
	})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func getWebhook(g Gomega, wh *hooklinev1.Webhook) *hooklinev1.Webhook {
	out := &hooklinev1.Webhook{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(wh), out)).To(Succeed())
	return out
}

func condition(wh *hooklinev1.Webhook, t string) *metav1.Condition {
	return meta.FindStatusCondition(wh.Status.Conditions, t)
}

func deref(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

// metric returns the value of an unlabelled counter or gauge, or the sum over a labelled one.
func (s *stack) metric(t *testing.T, name string) float64 {
	t.Helper()
	families, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}
