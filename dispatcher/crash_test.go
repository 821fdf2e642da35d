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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/deliverylog"
	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/dispatcher/payload"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/deliveries"
	"github.com/hookline/hookline/internal/echo"
	"github.com/hookline/hookline/internal/testsupport"
)

// dispatcherProc is one run of the real dispatcher binary.
type dispatcherProc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, valid once done is closed
	log  string        // file holding its stdout and stderr
}

// startDispatcherProc starts bin with the test's flags (and extra ones) and waits until its ingest
// API answers.
func startDispatcherProc(t *testing.T, bin, tokens, dataDir, logFile string, extra ...string) *dispatcherProc {
	t.Helper()
	p := launchDispatcherProc(t, bin, tokens, dataDir, logFile, extra...)
	NewWithT(t).Eventually(func(g Gomega) {
		select {
		case <-p.done:
			StopTrying(fmt.Sprintf("the dispatcher exited early: %v", p.err)).Now()
		default:
		}
		resp, err := http.Get("http://" + p.addr + "/healthz")
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	}).WithTimeout(60*time.Second).WithPolling(50*time.Millisecond).Should(Succeed(), "the dispatcher at %s never became healthy", p.addr)
	return p
}

// launchDispatcherProc starts bin with the test's flags (and extra ones).
func launchDispatcherProc(t *testing.T, bin, tokens, dataDir, logFile string, extra ...string) *dispatcherProc {
	t.Helper()
	g := NewWithT(t)
	addr := testsupport.FreeAddr(t)
	out, err := os.Create(logFile)
	g.Expect(err).NotTo(HaveOccurred())
	key, err := testsupport.AttestationKeyFile(t.TempDir())
	g.Expect(err).NotTo(HaveOccurred())
	cmd := exec.Command(bin,
		"--kubeconfig", cp.Kubeconfig,
		"--tokens-file", tokens,
		"--attestation-key-file", key,
		"--data-dir", dataDir,
		"--listen-address", addr,
		"--metrics-bind-address", "0",
		"--health-probe-bind-address", "0",
		"--allow-http",
		"--allowed-cidrs", "127.0.0.0/8,::1/128",
		"--default-client-id", testClientID,
		"--status-interval", "200ms",
		"--delivery-timeout", "2s",
		"--retry-base", "200ms",
		"--retry-cap", "1s",
	)
	cmd.Args = append(cmd.Args, extra...)
	cmd.Stdout, cmd.Stderr = out, out
	g.Expect(cmd.Start()).To(Succeed())
	p := &dispatcherProc{cmd: cmd, addr: addr, done: make(chan struct{}), log: logFile}
	go func() {
		p.err = cmd.Wait()
		_ = out.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("dispatcher output (%s):\n%s", logFile, b)
		}
	})
	return p
}

// buildDispatcherProc builds the dispatcher binary into dir and writes a tokens file there whose
// token may post for every account; it returns both paths.
func buildDispatcherProc(t *testing.T, dir string) (bin, tokens string) {
	t.Helper()
	bin = filepath.Join(dir, "dispatcher")
	build := exec.Command("go", "build", "-o", bin, "./cmd/dispatcher")
	build.Dir = cp.Root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the dispatcher: %v\n%s", err, out)
	}
	tokens = filepath.Join(dir, "tokens.yaml")
	raw, err := yaml.Marshal(ingest.TokenFile{Tokens: []ingest.TokenEntry{{Name: "test", Token: testToken, Accounts: []string{"*"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokens, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return bin, tokens
}

// kill sends sig and waits until the process has exited.
func (p *dispatcherProc) kill(t *testing.T, sig os.Signal, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("signalling the dispatcher: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Errorf("the dispatcher did not exit within %s of %v; killing it", timeout, sig)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// createActiveWebhook creates a webhook and waits until the manager made it Active. The dispatcher
// under test runs in its own process, so unlike stack.activeWebhook this cannot look at its
// routing table.
func createActiveWebhook(t *testing.T, ns, name string, spec hooklinev1.WebhookSpec) *hooklinev1.Webhook {
	t.Helper()
	wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
	g := NewWithT(t)
	g.Expect(k8s.Create(context.Background(), wh)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(wh), wh)).To(Succeed())
		g.Expect(wh.Status.State).To(Equal(hooklinev1.ObservedActive))
	}).WithTimeout(20 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	return wh
}

// expectQueuedOrOnRecord opens the data directory of a killed dispatcher and checks the delivery
// log's promise: every acknowledged event's notification is still in its queue or on record (a
// settled notification leaves its queue only once its record is stored), and every notification
// the receiver took is on record as delivered unless it is still queued (then it is sent again).
func expectQueuedOrOnRecord(t *testing.T, dataDir, uid, account string, acked []string, posts []crashPost) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: dataDir})
	g.Expect(err).NotTo(HaveOccurred())
	defer st.Close()
	notes, err := st.LoadNotes(ctx, uid, 1, 1<<20)
	g.Expect(err).NotTo(HaveOccurred())
	queued := map[string]bool{}
	for _, n := range notes {
		queued[n.EventID] = true
	}
	l, err := deliverylog.New(ctx, st.JetStream(), st, deliverylog.Config{MaxAge: 7 * 24 * time.Hour, MaxBytes: 1 << 30}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	state := map[string]deliveries.State{} // newest record per notification
	g.Expect(l.Scan(ctx, uid, time.Time{}, func(r deliveries.Record) error {
		state[r.NotificationID] = r.State
		return nil
	})).To(Succeed())
	var lost []string
	for _, id := range acked {
		if !queued[id] && state[payload.NotificationID(uid, account, id)] == "" {
			lost = append(lost, id)
		}
	}
	g.Expect(lost).To(BeEmpty(), "acknowledged events neither queued nor on record after SIGKILL")
	for _, p := range posts {
		if p.ok && strings.HasPrefix(p.eventID, "crash-") && !queued[p.eventID] {
			g.Expect(state[p.notificationID]).To(Equal(deliveries.StateDelivered), "event %s was taken by the receiver and left its queue", p.eventID)
		}
	}
	t.Logf("after SIGKILL: %d acknowledged events, %d still queued, %d notifications on record", len(acked), len(notes), len(state))
}

// crashPost is one POST the receiver got, decoded.
type crashPost struct {
	eventID        string // "" when the body is not an agreement notification
	notificationID string
	ok             bool // the receiver answered success
}

// TestKill9LosesNoAcknowledgedEvent runs the real dispatcher binary, kills it with SIGKILL while
// events are being posted, a backlog waits for a slow and flaky receiver, a notification's retry
// state is stored and another notification is in flight, then restarts it on the same data
// directory: every event answered 202 is delivered, re-deliveries keep their webhookNotificationId,
// and first deliveries follow ingest order.
func TestKill9LosesNoAcknowledgedEvent(t *testing.T) {
	const (
		account   = "acc-crash"
		total     = 300
		killAfter = 100 // acknowledged events before the SIGKILL
		maxFailed = 3   // posts that may fail against the dead process before the poster waits
		drained   = 15  // deliveries from the backlog before the kill
	)
	g := NewWithT(t)
	dir := t.TempDir()

	// 1. The real binary and its tokens file.
	bin, tokens := buildDispatcherProc(t, dir)

	// 3. A namespace bound to the account, a receiver, an Active webhook.
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	// Every POST is answered by one handler that records its outcome in call order; the dispatcher
	// has at most one attempt in flight per webhook (and the killed process is dead before the
	// next one starts), so outcomes[i] is the answer to the i-th POST of rc.got().
	var (
		flaky     atomic.Bool
		calls     atomic.Int64
		inFlight  atomic.Int64
		overlap   atomic.Bool
		outMu     sync.Mutex
		outcomes  []bool
		killArmed atomic.Bool
		killNow   func() // set before killArmed
	)
	rc.set(func(w http.ResponseWriter, r *http.Request) {
		if inFlight.Add(1) > 1 {
			overlap.Store(true)
		}
		defer inFlight.Add(-1)
		n := calls.Add(1)
		ok := true
		if flaky.Load() {
			time.Sleep(5 * time.Millisecond) // a slow receiver: the dispatcher builds a backlog
			ok = n%3 != 0
		}
		outMu.Lock()
		outcomes = append(outcomes, ok)
		outMu.Unlock()
		if ok && killArmed.CompareAndSwap(true, false) {
			// The receiver has taken this notification; the dispatcher dies before it hears so.
			killNow()
		}
		if !ok {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set(echo.Header, r.Header.Get(echo.Header))
		w.WriteHeader(http.StatusOK)
	})
	wh := createActiveWebhook(t, ns, "crash", accountSpec(rc.URL))

	// decode pairs the receiver's POSTs with their outcomes.
	decode := func() []crashPost {
		posts := rc.got()
		outMu.Lock()
		answered := append([]bool(nil), outcomes...)
		outMu.Unlock()
		out := make([]crashPost, 0, len(posts))
		for i, p := range posts {
			if p.Method != http.MethodPost {
				continue
			}
			var body struct {
				NotificationID string `json:"webhookNotificationId"`
				Agreement      struct {
					ID string `json:"id"`
				} `json:"agreement"`
			}
			d := crashPost{}
			if json.Unmarshal(p.Body, &body) == nil {
				d.eventID = strings.TrimPrefix(body.Agreement.ID, "agr-")
				d.notificationID = body.NotificationID
			}
			// A POST whose handler has not recorded its answer yet is not (yet) a success.
			d.ok = i < len(answered) && answered[i]
			out = append(out, d)
		}
		return out
	}

	// 4. The dispatcher process; a warm-up event proves that it routes to the webhook.
	dataDir := filepath.Join(dir, "data")
	first := startDispatcherProc(t, bin, tokens, dataDir, filepath.Join(dir, "dispatcher-1.log"))
	t.Cleanup(func() { first.kill(t, syscall.SIGKILL, 10*time.Second) }) // in case the test fails before the kill
	httpc := &http.Client{Timeout: 10 * time.Second}
	post := func(addr, id string) (int, error) {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/events", bytes.NewReader(event(id, account)))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpc.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}
	// Warm-up events are delivered in order (FIFO per webhook): once the latest one is delivered,
	// no earlier one is left in flight. A warm-up posted before the webhook was routable is never
	// queued, so a new one is posted while the latest stays undelivered for a while.
	warm, polls := 0, 0
	g.Eventually(func() bool {
		if warm > 0 {
			for _, p := range decode() {
				if p.eventID == fmt.Sprintf("warm-%d", warm) && p.ok {
					return true
				}
			}
		}
		if polls++; warm == 0 || polls%20 == 0 {
			warm++
			code, err := post(first.addr, fmt.Sprintf("warm-%d", warm))
			if err != nil || code != http.StatusAccepted {
				t.Logf("warm-up %d: %d %v", warm, code, err)
			}
		}
		return false
	}).WithTimeout(30*time.Second).WithPolling(100*time.Millisecond).Should(BeTrue(), "the dispatcher never delivered a warm-up event")
	warmPosts := len(decode())

	// 5. A slow, flaky receiver during the load.
	flaky.Store(true)

	// 6. The load, from one goroutine. It pauses after killAfter acknowledged events while the
	// receiver drains some of the backlog, and resumes just before the SIGKILL, so that a post is
	// likely in flight when it lands.
	var (
		ackMu     sync.Mutex
		acked     = map[string]bool{}
		ackOrder  []string
		failed    []string
		sent      int
		unexpect  []string
		hundred   = make(chan struct{})
		resume    = make(chan struct{})
		restarted = make(chan string) // the new process's address
		finished  = make(chan struct{})
	)
	go func() {
		defer close(finished)
		addr := first.addr
		nFailed := 0
		for i := 0; i < total; i++ {
			id := "crash-" + strconv.Itoa(i)
			code, err := post(addr, id)
			ackMu.Lock()
			sent++
			switch {
			case err != nil:
				failed = append(failed, id)
				nFailed++
			case code == http.StatusAccepted:
				acked[id] = true
				ackOrder = append(ackOrder, id)
			default:
				unexpect = append(unexpect, fmt.Sprintf("%s: %d", id, code))
			}
			pause := len(ackOrder) == killAfter && code == http.StatusAccepted
			ackMu.Unlock()
			if pause {
				close(hundred)
				<-resume
			}
			if nFailed == maxFailed && addr == first.addr {
				// The process is gone: wait for its successor.
				select {
				case addr = <-restarted:
				case <-time.After(2 * time.Minute):
					return
				}
			}
		}
	}()

	g.Eventually(hundred).WithTimeout(60*time.Second).Should(BeClosed(), "%d events were not acknowledged", killAfter)
	// Once some of the backlog is delivered and the head has just failed (its retry state is stored),
	// the kill is armed: the head's retry is taken by the receiver, and while the dispatcher waits
	// for the answer the posts resume and the process gets SIGKILL. That notification must be
	// delivered again after the restart, with the same webhookNotificationId.
	g.Eventually(func(g Gomega) {
		n := 0
		posts := decode()
		for _, p := range posts {
			if p.ok && strings.HasPrefix(p.eventID, "crash-") {
				n++
			}
		}
		g.Expect(n).To(BeNumerically(">=", drained), "deliveries from the backlog")
		g.Expect(posts[len(posts)-1].ok).To(BeFalse(), "the last attempt failed")
	}).WithTimeout(30*time.Second).WithPolling(2*time.Millisecond).Should(Succeed(), "the backlog does not drain")
	killNow = func() {
		close(resume)
		if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Errorf("SIGKILL: %v", err)
		}
		select {
		case <-first.done:
		case <-time.After(10 * time.Second):
			t.Errorf("the dispatcher survived SIGKILL for 10s")
		}
	}
	killArmed.Store(true)
	g.Eventually(first.done).WithTimeout(30*time.Second).Should(BeClosed(), "the dispatcher was not killed")
	beforeKill := decode()[warmPosts:]
	ackMu.Lock()
	t.Logf("SIGKILL after %d acknowledged events (%d posts so far)", len(ackOrder), sent)
	ackedBeforeKill := append([]string(nil), ackOrder...)
	ackMu.Unlock()
	expectQueuedOrOnRecord(t, dataDir, string(wh.UID), account, ackedBeforeKill, beforeKill)

	// Restart on the same data directory; then the receiver recovers and the rest of the load goes
	// to the new process.
	second := startDispatcherProc(t, bin, tokens, dataDir, filepath.Join(dir, "dispatcher-2.log"))
	t.Cleanup(func() { second.kill(t, syscall.SIGTERM, 30*time.Second) })
	flaky.Store(false)
	select {
	case restarted <- second.addr:
	case <-finished:
		// Every event was posted before the poster saw the process die (it cannot happen with
		// killAfter < total unless posts failed for another reason).
	}
	g.Eventually(finished).WithTimeout(2*time.Minute).Should(BeClosed(), "the poster did not finish")

	ackMu.Lock()
	defer ackMu.Unlock()
	g.Expect(unexpect).To(BeEmpty(), "posts answered neither 202 nor a connection error")
	g.Expect(len(failed)).To(BeNumerically("<=", maxFailed), "posts that failed: %v", failed)

	// 7. Every acknowledged event is delivered at least once; re-deliveries keep their
	// notification id; first attempts follow ingest order.
	var (
		delivered  map[string]int // successful deliveries per event
		duplicates int
		retries    int
	)
	g.Eventually(func(g Gomega) {
		delivered = map[string]int{}
		for _, p := range decode()[warmPosts:] {
			if p.ok && strings.HasPrefix(p.eventID, "crash-") {
				delivered[p.eventID]++
			}
		}
		var missing []string
		for _, id := range ackOrder {
			if delivered[id] == 0 {
				missing = append(missing, id)
			}
		}
		g.Expect(missing).To(BeEmpty(), "acknowledged events never delivered")
	}).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

	posts := decode()[warmPosts:]
	notificationOf := map[string]string{}
	lastIndex := -1
	for i, p := range posts {
		if !strings.HasPrefix(p.eventID, "crash-") {
			g.Expect(p.eventID).To(HavePrefix("warm-"), "POST %d carries an unknown event", i)
			continue
		}
		g.Expect(p.notificationID).NotTo(BeEmpty(), "POST %d (%s) has no webhookNotificationId", i, p.eventID)
		if nid, seen := notificationOf[p.eventID]; seen {
			g.Expect(p.notificationID).To(Equal(nid), "POST %d re-delivers %s with another webhookNotificationId", i, p.eventID)
			continue
		}
		notificationOf[p.eventID] = p.notificationID
		idx, err := strconv.Atoi(strings.TrimPrefix(p.eventID, "crash-"))
		g.Expect(err).NotTo(HaveOccurred())
		if idx <= lastIndex {
			t.Errorf("POST %d is the first delivery of %s but %s was first delivered before it: out of ingest order",
				i, p.eventID, "crash-"+strconv.Itoa(lastIndex))
		}
		lastIndex = max(lastIndex, idx)
	}
	for _, p := range posts {
		if !p.ok && strings.HasPrefix(p.eventID, "crash-") {
			retries++
		}
	}
	for _, n := range delivered {
		duplicates += n - 1
	}
	// Distinct notification ids: one per event.
	ids := map[string]string{}
	for ev, nid := range notificationOf {
		if other, clash := ids[nid]; clash {
			t.Errorf("events %s and %s share webhookNotificationId %s", ev, other, nid)
		}
		ids[nid] = ev
	}
	g.Expect(overlap.Load()).To(BeFalse(), "the receiver saw concurrent POSTs for one webhook")
	// The notification the receiver took while the dispatcher died is sent again.
	g.Expect(beforeKill).NotTo(BeEmpty())
	killed := beforeKill[len(beforeKill)-1]
	g.Expect(killed.ok).To(BeTrue(), "the POST in flight at the kill")
	again := 0
	for _, p := range posts[len(beforeKill):] {
		if p.eventID == killed.eventID {
			again++
		}
	}
	g.Expect(again).To(BeNumerically(">=", 1), "%s was in flight at the SIGKILL and never sent again", killed.eventID)
	unackedDelivered := 0
	for id := range delivered {
		if !acked[id] {
			unackedDelivered++
		}
	}
	t.Logf("sent %d, acknowledged %d, failed (not acknowledged) %v, delivered %d distinct (%d of them not acknowledged), "+
		"duplicates %d, failed attempts %d, POSTs %d (%d before the kill; in flight at the kill: %s)",
		sent, len(ackOrder), failed, len(delivered), unackedDelivered, duplicates, retries, len(posts),
		len(beforeKill), describeLast(beforeKill))
}

func describeLast(posts []crashPost) string {
	if len(posts) == 0 {
		return "none"
	}
	p := posts[len(posts)-1]
	if p.ok {
		return p.eventID + " answered 200"
	}
	return p.eventID + " answered 500"
}

// A dispatcher whose read API cannot listen exits with the reason, rather than run without the API
// its Service and users expect (it used to log the error and go on delivering).
func TestDispatcherExitsWhenTheReadAPICannotListen(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	bin, tokens := buildDispatcherProc(t, dir)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = taken.Close() }()

	logFile := filepath.Join(dir, "dispatcher.log")
	p := launchDispatcherProc(t, bin, tokens, filepath.Join(dir, "data"), logFile,
		"--api-bind-address", taken.Addr().String(), "--api-allow-plain-http")
	t.Cleanup(func() { p.kill(t, syscall.SIGKILL, 10*time.Second) })
	g.Eventually(p.done).WithTimeout(60*time.Second).Should(BeClosed(), "the dispatcher kept running without its read API")
	g.Expect(p.err).To(HaveOccurred(), "exit status")
	out, err := os.ReadFile(logFile)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(out)).To(ContainSubstring("--api-bind-address " + taken.Addr().String()))
	g.Expect(string(out)).To(ContainSubstring("address already in use"))
}
