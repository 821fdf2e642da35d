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

// Package faults is hookline's fault suite: real processes (kube-apiserver, etcd, manager,
// dispatchers, NATS servers) on 127.0.0.1, a load generator and a checking receiver. Each scenario
// breaks something under load and proves that every acknowledged event is delivered, in order per
// webhook, and counts the duplicates (which must carry the original webhookNotificationId).
//
// The quick variant runs in make test; HOOKLINE_FAULTS=full (make faults) runs the long one and
// HOOKLINE_FAULTS_REPORT=<file> collects the figures; HOOKLINE_FAULTS_LOGS=1 prints every process's
// output even when the test passes.
package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/internal/controlplane"
	"github.com/hookline/hookline/internal/echo"
	"github.com/hookline/hookline/internal/tenancy"
	"github.com/hookline/hookline/internal/testsupport"
)

const (
	clientID = "hookline-faults"
	token    = "faults-token-0123456789-all-accounts"
)

var (
	cp   *controlplane.Env
	k8s  client.Client
	bins struct{ manager, dispatcher, nats string }
	// full selects the long variant (make faults).
	full = os.Getenv("HOOKLINE_FAULTS") == "full"
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
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
	dir, err := os.MkdirTemp("", "hookline-faults-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	for _, b := range []struct {
		out *string
		pkg string
	}{
		{&bins.manager, "./cmd/manager"},
		{&bins.dispatcher, "./cmd/dispatcher"},
		// The NATS server's own command, from the module the dispatcher embeds.
		{&bins.nats, "github.com/nats-io/nats-server/v2"},
	} {
		*b.out = filepath.Join(dir, filepath.Base(strings.TrimSuffix(b.pkg, "/v2")))
		build := exec.Command("go", "build", "-o", *b.out, b.pkg)
		build.Dir = cp.Root
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", b.pkg, err, out)
			return 1
		}
	}
	return m.Run()
}

// proc is one running process of the suite.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  string
}

// startProc starts bin with args, its output in a log file that the test prints when it fails.
func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	dir := os.Getenv("HOOKLINE_FAULTS_LOGDIR") // kept after the test, for a closer look
	if dir == "" {
		dir = t.TempDir()
	}
	logFile := filepath.Join(dir, name+".log")
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logFile}
	go func() {
		p.err = cmd.Wait()
		_ = out.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill(t, syscall.SIGKILL)
		if t.Failed() || os.Getenv("HOOKLINE_FAULTS_LOGS") != "" {
			b, _ := os.ReadFile(logFile)
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("%s output (tail):\n%s", name, b)
		}
	})
	return p
}

// kill sends sig and waits until the process has exited.
func (p *proc) kill(t *testing.T, sig syscall.Signal) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not exit within 30s of %v", p.name, sig)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitHTTP waits until url answers with want.
func waitHTTP(t *testing.T, p *proc, rawURL string, want int, timeout time.Duration) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		if p != nil && p.exited() {
			StopTrying(fmt.Sprintf("%s exited: %v", p.name, p.err)).Now()
		}
		resp, err := http.Get(rawURL)
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(want))
	}).WithTimeout(timeout).WithPolling(50*time.Millisecond).Should(Succeed(), "%s never answered %d", rawURL, want)
}

// attestationKeyFile writes the key that the suite's managers and dispatchers share.
func attestationKeyFile(t *testing.T) string {
	t.Helper()
	path, err := testsupport.AttestationKeyFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// startManager runs the manager binary on a kubeconfig and waits until its probes answer (its
// probe server bounds request headers: a header beyond 64 KiB gets 431).
func startManager(t *testing.T, kubeconfig string) *proc {
	t.Helper()
	probes := testsupport.FreeAddr(t)
	p := startProc(t, "manager", bins.manager,
		"--kubeconfig", kubeconfig,
		"--attestation-key-file", attestationKeyFile(t),
		"--metrics-bind-address", "0", "--health-probe-bind-address", probes,
		"--allow-http", "--allowed-cidrs", "127.0.0.0/8",
		"--default-client-id", clientID,
		"--verification-retry-base", "100ms", "--verification-retry-max", "1s",
	)
	waitHTTP(t, p, "http://"+probes+"/readyz", http.StatusOK, time.Minute)
	req, err := http.NewRequest(http.MethodGet, "http://"+probes+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Padding", strings.Repeat("x", 72<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("the manager's probe server answered %d to a 72 KiB header, want 431", resp.StatusCode)
	}
	return p
}

// dispatcherOpts says how to run one dispatcher process.
type dispatcherOpts struct {
	name, kubeconfig, listen, probes string
	dataDir                          string   // embedded JetStream
	natsURL                          string   // external cluster (then dataDir is unused)
	extra                            []string // more flags
}

func startDispatcher(t *testing.T, o dispatcherOpts) *proc {
	t.Helper()
	args := []string{
		"--kubeconfig", o.kubeconfig,
		"--tokens-file", tokensFile(t),
		"--attestation-key-file", attestationKeyFile(t),
		"--listen-address", o.listen,
		"--metrics-bind-address", "0",
		"--health-probe-bind-address", cmpOr(o.probes, "0"),
		"--allow-http", "--allowed-cidrs", "127.0.0.0/8",
		"--default-client-id", clientID,
		"--status-interval", "500ms",
		"--delivery-timeout", "2s",
		"--retry-base", "200ms", "--retry-cap", "1s",
	}
	if o.natsURL != "" {
		args = append(args, "--nats-url", o.natsURL, "--nats-replicas", "3")
	} else {
		args = append(args, "--data-dir", o.dataDir)
	}
	return startProc(t, o.name, bins.dispatcher, append(args, o.extra...)...)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// tokensFile writes the ingest tokens file of one dispatcher.
func tokensFile(t *testing.T) string {
	raw, err := yaml.Marshal(ingest.TokenFile{Tokens: []ingest.TokenEntry{{Name: "faults", Token: token, Accounts: []string{"*"}}}})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(f, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// boundNamespace creates a namespace bound to account.
func boundNamespace(t *testing.T, account string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "faults-", Labels: map[string]string{tenancy.AccountLabel: account}}}
	NewWithT(t).Expect(k8s.Create(context.Background(), ns)).To(Succeed())
	return ns.Name
}

// activeWebhooks creates one ACCOUNT-scope webhook per name, each on its own path of rc, and waits
// until the manager made them Active.
func activeWebhooks(t *testing.T, ns string, rc *checker, names ...string) []*hooklinev1.Webhook {
	t.Helper()
	g := NewWithT(t)
	out := make([]*hooklinev1.Webhook, 0, len(names))
	for _, name := range names {
		wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: hooklinev1.WebhookSpec{
			URL: rc.URL + "/" + name, Scope: hooklinev1.ScopeAccount, Events: []hooklinev1.EventName{"AGREEMENT_ALL"},
		}}
		g.Expect(k8s.Create(context.Background(), wh)).To(Succeed())
		out = append(out, wh)
	}
	for _, wh := range out {
		g.Eventually(func(g Gomega) {
			g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(wh), wh)).To(Succeed())
			g.Expect(wh.Status.State).To(Equal(hooklinev1.ObservedActive))
		}).WithTimeout(60*time.Second).WithPolling(100*time.Millisecond).Should(Succeed(), "webhook %s never became Active", wh.Name)
	}
	return out
}

// checker is a receiver that acknowledges everything and records, per webhook (URL path), every
// delivery's event id and webhookNotificationId.
type checker struct {
	*httptest.Server
	mu     sync.Mutex
	events map[string][]string          // path → event ids in arrival order
	at     map[string][]time.Time       // path → when each of events arrived
	ids    map[string]map[string]string // path → event id → first webhookNotificationId
	bad    []string                     // deliveries that broke a rule
}

func newChecker(t *testing.T) *checker {
	return newCheckerBehind(t, func(rc http.Handler) http.Handler { return rc })
}

// newCheckerBehind is a checker whose requests go through the handler wrap returns first.
func newCheckerBehind(t *testing.T, wrap func(rc http.Handler) http.Handler) *checker {
	rc := &checker{events: map[string][]string{}, at: map[string][]time.Time{}, ids: map[string]map[string]string{}}
	rc.Server = httptest.NewServer(wrap(rc))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *checker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(echo.Header, r.Header.Get(echo.Header))
	if r.Method != http.MethodPost {
		return // intent verification
	}
	var body struct {
		NotificationID string `json:"webhookNotificationId"`
		Agreement      struct {
			ID string `json:"id"`
		} `json:"agreement"`
	}
	raw, _ := io.ReadAll(r.Body)
	path := strings.TrimPrefix(r.URL.Path, "/")
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err := json.Unmarshal(raw, &body); err != nil || body.NotificationID == "" {
		rc.bad = append(rc.bad, fmt.Sprintf("%s: undecodable delivery %.100q", path, raw))
		return
	}
	id := strings.TrimPrefix(body.Agreement.ID, "agr-")
	rc.events[path] = append(rc.events[path], id)
	rc.at[path] = append(rc.at[path], time.Now())
	if rc.ids[path] == nil {
		rc.ids[path] = map[string]string{}
	}
	if first, seen := rc.ids[path][id]; !seen {
		rc.ids[path][id] = body.NotificationID
	} else if first != body.NotificationID {
		rc.bad = append(rc.bad, fmt.Sprintf("%s: event %s re-delivered with webhookNotificationId %s, first %s", path, id, body.NotificationID, first))
	}
}

// deliveries is the number of POSTs received, all webhooks together.
func (rc *checker) deliveries() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, evs := range rc.events {
		n += len(evs)
	}
	return n
}

// load posts events of one account, one at a time (so that ack order is ingest order), each until
// it is acknowledged: a failed post is retried with the same id against the next address, which
// is safe because ingest is idempotent.
type load struct {
	account string
	addrs   []string
	pace    time.Duration
	limit   int // events to post; 0 = until stopped

	mu       sync.Mutex
	acked    []string
	posts    int
	failures int
	rejected []string

	stop chan struct{}
	done chan struct{}
}

func startLoad(account string, addrs []string, limit int, pace time.Duration) *load {
	l := &load{account: account, addrs: addrs, limit: limit, pace: pace, stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

func (l *load) run() {
	defer close(l.done)
	httpc := &http.Client{Timeout: 10 * time.Second}
	cur := 0
	for i := 0; l.limit == 0 || i < l.limit; i++ {
		id := fmt.Sprintf("%s-%07d", l.account, i)
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			code, err := post(httpc, l.addrs[cur], id, l.account)
			l.mu.Lock()
			l.posts++
			switch {
			case err == nil && code == http.StatusAccepted:
				l.acked = append(l.acked, id)
			case err == nil && code < 500:
				l.rejected = append(l.rejected, fmt.Sprintf("%s: %d", id, code))
			default:
				l.failures++
			}
			l.mu.Unlock()
			if err == nil && code < 500 {
				break
			}
			// The dispatcher is down or standing by: try the next one after a short pause.
			cur = (cur + 1) % len(l.addrs)
			select {
			case <-l.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		if l.pace > 0 {
			select {
			case <-l.stop:
				return
			case <-time.After(l.pace):
			}
		}
	}
}

func post(httpc *http.Client, addr, id, account string) (int, error) {
	body, _ := json.Marshal(map[string]any{
		"id": id, "event": "AGREEMENT_ACTION_COMPLETED", "accountId": account,
		"initiator": map[string]string{"userId": "u-1"},
		"resource":  map[string]string{"type": "AGREEMENT", "id": "agr-" + id},
		"notification": map[string]any{
			"event": "AGREEMENT_ACTION_COMPLETED", "eventDate": "2026-11-25T10:00:00Z",
			"agreement": map[string]any{"id": "agr-" + id, "name": "Contract " + id, "status": "OUT_FOR_SIGNATURE"},
		},
	})
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

func (l *load) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// waitAcked waits until n events are acknowledged.
func (l *load) waitAcked(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	NewWithT(t).Eventually(l.ackedCount).WithTimeout(timeout).WithPolling(20*time.Millisecond).Should(BeNumerically(">=", n), "acknowledged events")
}

// finish stops an endless load, or waits for a limited one to post everything.
func (l *load) finish(t *testing.T, timeout time.Duration) {
	t.Helper()
	if l.limit == 0 {
		close(l.stop)
	}
	select {
	case <-l.done:
	case <-time.After(timeout):
		close(l.stop)
		<-l.done
		t.Errorf("the load did not finish within %s", timeout)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.rejected) > 0 {
		t.Errorf("events rejected: %v", l.rejected[:min(len(l.rejected), 5)])
	}
}

// figures is what a scenario reports.
type figures struct {
	scenario                                string
	posts, acked, expected, delivered, dups int
	orderBreaks                             int
	note                                    string
}

// verify waits until every acknowledged event reached every webhook, then checks per-webhook order
// of first deliveries against ack order and that duplicates kept their webhookNotificationId.
func verify(t *testing.T, scenario string, rc *checker, l *load, hooks []string, timeout time.Duration) figures {
	t.Helper()
	g := NewWithT(t)
	l.mu.Lock()
	acked := slices.Clone(l.acked)
	f := figures{scenario: scenario, posts: l.posts, acked: len(acked), expected: len(acked) * len(hooks)}
	l.mu.Unlock()
	rank := make(map[string]int, len(acked))
	for i, id := range acked {
		rank[id] = i
	}
	missing := func() (n int, sample []string) {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		for _, h := range hooks {
			for _, id := range acked {
				if _, ok := rc.ids[h][id]; !ok {
					n++
					if len(sample) < 5 {
						sample = append(sample, h+"/"+id)
					}
				}
			}
		}
		return n, sample
	}
	g.Eventually(func() int { n, _ := missing(); return n }).WithTimeout(timeout).WithPolling(200*time.Millisecond).Should(BeZero(),
		func() string {
			n, s := missing()
			return fmt.Sprintf("%d acknowledged notifications never delivered, e.g. %v", n, s)
		})

	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, h := range hooks {
		seen := map[string]bool{}
		last := -1
		for _, id := range rc.events[h] {
			if seen[id] {
				f.dups++
				continue
			}
			seen[id] = true
			r, ok := rank[id]
			if !ok {
				continue // posted but never acknowledged (the load stopped mid-post): may arrive
			}
			if r < last {
				f.orderBreaks++
				if f.orderBreaks <= 5 {
					t.Errorf("%s: %s delivered after a later event", h, id)
				}
			}
			last = max(last, r)
		}
		f.delivered += len(seen)
	}
	g.Expect(rc.bad).To(BeEmpty())
	g.Expect(f.orderBreaks).To(BeZero(), "per-webhook order")
	return f
}

// report logs the figures and appends them to $HOOKLINE_FAULTS_REPORT.
func report(t *testing.T, f figures) {
	line := fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %d | %s |", f.scenario, f.posts, f.acked, f.expected, f.delivered, f.dups, f.orderBreaks, f.note)
	t.Log("figures: scenario | posts | acknowledged | expected deliveries | delivered | duplicates | order breaks | notes")
	t.Log("figures: " + line)
	if file := os.Getenv("HOOKLINE_FAULTS_REPORT"); file != "" {
		fh, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Error(err)
			return
		}
		defer func() { _ = fh.Close() }()
		_, _ = fmt.Fprintln(fh, line)
	}
}

// tcpProxy stands between components and a server (the API server, a NATS node), so that a test
// can take the server away from them (refused connections, cut streams) and give it back, without
// restarting it.
type tcpProxy struct {
	target, addr string
	mu           sync.Mutex
	l            net.Listener
	conns        map[net.Conn]struct{}
}

// newAPIProxy is a proxy to the API server, up.
func newAPIProxy(t *testing.T) *tcpProxy {
	u, err := url.Parse(cp.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	return newTCPProxy(t, u.Host)
}

// newTCPProxy is a proxy to target (host:port), up.
func newTCPProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{target: target, addr: testsupport.FreeAddr(t), conns: map[net.Conn]struct{}{}}
	p.up(t)
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) up(t *testing.T) {
	t.Helper()
	var l net.Listener
	var err error
	// The port was ours a moment ago; a lingering socket may hold it briefly.
	NewWithT(t).Eventually(func() error { l, err = net.Listen("tcp", p.addr); return err }).WithTimeout(10 * time.Second).Should(Succeed())
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *tcpProxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	if p.l == nil { // went down meanwhile
		p.mu.Unlock()
		_ = c.Close()
		_ = up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
	_, _ = io.Copy(c, up)
	_ = c.Close()
}

// down refuses new connections and cuts the open ones.
func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		_ = p.l.Close()
		p.l = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
}

// kubeconfig writes a kubeconfig that reaches the API server through the proxy.
func (p *tcpProxy) kubeconfig(t *testing.T) string {
	raw, err := os.ReadFile(cp.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(cp.Config.Host)
	out := strings.ReplaceAll(string(raw), u.Host, p.addr)
	if out == string(raw) {
		t.Fatal(errors.New("the kubeconfig does not name the API server's address"))
	}
	f := filepath.Join(t.TempDir(), "kubeconfig-proxied")
	if err := os.WriteFile(f, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
