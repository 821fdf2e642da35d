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
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/echo"
)

// TestKill9DuringRecoverSendsNothingTwice runs the real dispatcher binary: a webhook is
// auto-disabled, events come while it is disabled (lost), it is reactivated and a WebhookReplay
// recovers the lost events; the process gets SIGKILL while the receiver holds one of the replayed
// notifications, and a new process on the same data directory finishes the replay. Every lost
// event is delivered, in order; the replay queues nothing twice: only what any crash re-sends (the
// notification whose answer the killed process never heard, and the last ones it had settled but not
// yet removed from the queue) arrives again, with the same id.
func TestKill9DuringRecoverSendsNothingTwice(t *testing.T) {
	const (
		account   = "acc-replay-kill"
		lostCount = 150
		killAt    = 40 // replayed notifications taken before the SIGKILL
	)
	g := NewWithT(t)
	dir := t.TempDir()
	bin, tokens := buildDispatcherProc(t, dir)

	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	var (
		healthy   atomic.Bool
		mu        sync.Mutex
		outcomes  []bool      // per POST, in order: answered with success
		answered  []time.Time // and when
		killedAt  time.Time
		replayed  atomic.Int64
		killArmed atomic.Bool
		killNow   func()
	)
	rc.set(func(w http.ResponseWriter, r *http.Request) {
		ok := healthy.Load()
		if ok && killArmed.Load() {
			if replayed.Add(1) == killAt {
				// The receiver has the notification; the dispatcher dies before it hears so.
				mu.Lock()
				killedAt = time.Now()
				mu.Unlock()
				killNow()
				ok = false
			} else {
				// A receiver taking 50 ms per answer: the replay's deliveries before the kill
				// span two seconds, most of them far longer before it than the log gathers.
				time.Sleep(slowAnswer)
			}
		}
		mu.Lock()
		outcomes = append(outcomes, ok)
		answered = append(answered, time.Now())
		mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set(echo.Header, r.Header.Get(echo.Header))
		w.WriteHeader(http.StatusOK)
	})
	wh := createActiveWebhook(t, ns, "recover", accountSpec(rc.URL))

	// The first process auto-disables a failing webhook within a second; the next ones keep
	// Acrobat Sign's 72 hours, so that nothing recovered expires while the test restarts them.
	disabling := []string{"--drop-after", "400ms", "--disable-after", "100ms", "--retry-base", "50ms", "--retry-cap", "100ms",
		"--max-retries", "1"}
	replaying := []string{"--replay-poll-interval", "100ms"}
	dataDir := filepath.Join(dir, "data")
	first := startDispatcherProc(t, bin, tokens, dataDir, filepath.Join(dir, "dispatcher-1.log"), disabling...)
	t.Cleanup(func() { first.kill(t, syscall.SIGKILL, 10*time.Second) })
	httpc := &http.Client{Timeout: 10 * time.Second}
	post := func(addr, id string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/events", bytes.NewReader(event(id, account)))
		g.Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpc.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusAccepted))
	}

	// The receiver fails until the webhook is auto-disabled. Events posted before the process
	// routes to the webhook are not queued: post until one reaches the receiver.
	n := 0
	g.Eventually(func() int {
		n++
		post(first.addr, fmt.Sprintf("before-%d", n))
		return len(rc.got())
	}).WithTimeout(30*time.Second).WithPolling(200*time.Millisecond).Should(BeNumerically(">", 0), "the dispatcher never attempted a delivery")
	g.Eventually(func(g Gomega) {
		g.Expect(getWebhook(g, wh).Status.State).To(Equal(hooklinev1.ObservedDisabled))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// Times travel in whole seconds: the lost events are all accepted from the next one on, the
	// ones before (dropped with the disabled webhook's queue, or lost too) before it.
	since := time.Now().Truncate(time.Second).Add(time.Second)
	g.Eventually(func() bool { return !time.Now().Before(since) }).WithTimeout(2 * time.Second).WithPolling(10 * time.Millisecond).Should(BeTrue())
	for i := range lostCount {
		post(first.addr, fmt.Sprintf("lost-%03d", i))
	}
	first.kill(t, syscall.SIGTERM, 30*time.Second)

	second := startDispatcherProc(t, bin, tokens, dataDir, filepath.Join(dir, "dispatcher-2.log"), replaying...)
	t.Cleanup(func() { second.kill(t, syscall.SIGKILL, 10*time.Second) })
	healthy.Store(true)
	reactivate(t, wh)
	before := len(rc.got())

	killNow = func() {
		if err := second.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Errorf("SIGKILL: %v", err)
		}
		<-second.done
	}
	killArmed.Store(true)
	rp := createReplay(t, ns, "recover-lost", hooklinev1.WebhookReplaySpec{WebhookName: "recover",
		Since: &metav1.Time{Time: since}, States: []hooklinev1.ReplayState{hooklinev1.ReplayLost}})
	g.Eventually(second.done).WithTimeout(60*time.Second).Should(BeClosed(), "the dispatcher was not killed")
	t.Logf("SIGKILL after %d replayed notifications reached the receiver", len(rc.got())-before)

	third := startDispatcherProc(t, bin, tokens, dataDir, filepath.Join(dir, "dispatcher-3.log"), replaying...)
	t.Cleanup(func() { third.kill(t, syscall.SIGTERM, 30*time.Second) })
	got := waitCompleted(t, rp, 2*time.Minute)
	g.Expect(got.Status.Matched).To(BeEquivalentTo(lostCount))
	g.Expect(got.Status.Queued).To(BeEquivalentTo(lostCount))
	g.Expect(got.Status.Delivered).To(BeEquivalentTo(lostCount))
	g.Expect(got.Status.Failed).To(BeEquivalentTo(0))

	mu.Lock()
	succeeded := append([]bool(nil), outcomes...)
	at := append([]time.Time(nil), answered...)
	killed := killedAt
	mu.Unlock()
	posts := rc.got()
	delivered := map[string]int{}
	var order []string          // first successful deliveries
	recent := map[string]bool{} // delivered shortly before the kill
	resent, afterKill, longBefore := 0, false, 0
	for i := before; i < len(posts); i++ {
		p := decodePost(t, posts[i])
		g.Expect(p.eventID).To(HavePrefix("lost-"), "only lost events are replayed")
		if !succeeded[i] {
			resent++
			afterKill = true
			continue
		}
		if !afterKill {
			if killed.Sub(at[i]) <= settledAtKill {
				recent[p.eventID] = true
			} else {
				longBefore++
			}
		}
		if delivered[p.eventID] == 0 {
			order = append(order, p.eventID)
		}
		delivered[p.eventID]++
	}
	g.Expect(resent).To(Equal(1), "only the notification in flight at the kill answered anything but success")
	g.Expect(delivered).To(HaveLen(lostCount))
	// The replay queued each notification once, also across the kill: had the new process queued
	// them again, everything delivered before the kill would arrive twice. A note settled but not
	// yet removed from its queue at the kill (a removal is batched and waits for the log) is not
	// sent again either: the new process finds its record in the log (deliver/resume.go). What
	// may still arrive twice is a settlement whose record the log had not stored at the kill: the
	// deliveries of the last moments before it (the log gathers records for up to 200 ms).
	g.Expect(longBefore).To(BeNumerically(">=", killAt/3), "deliveries well before the kill, which must not come again")
	again := 0
	for id, c := range delivered {
		if c > 1 {
			again++
			g.Expect(recent[id]).To(BeTrue(), "%s, delivered well before the kill, was delivered %d times by one replay", id, c)
			g.Expect(c).To(Equal(2), "%s delivered %d times", id, c)
		}
	}
	for i, id := range order {
		g.Expect(id).To(Equal(fmt.Sprintf("lost-%03d", i)), "replayed in the original order")
	}
	t.Logf("%d lost notifications recovered across a SIGKILL after %d (%d of them more than %s before it); %d delivered again (settled, its record not yet stored at the kill)",
		lostCount, longBefore+len(recent), longBefore, settledAtKill, again)
}

const (
	// settledAtKill bounds how long before the process died a notification may have been
	// delivered and still have no stored record: the log gathers a webhook's records for 200 ms
	// (deliverylog.Config.Gather) and stores them within milliseconds, less so on a loaded
	// machine.
	settledAtKill = time.Second
	// slowAnswer is the receiver's time per replayed notification: 40 of them take 2 s, so that
	// most were delivered long before the kill.
	slowAnswer = 50 * time.Millisecond
)
