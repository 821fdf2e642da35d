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

package deliver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"k8s.io/utils/clock"

	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/echo"
)

// A rebinding cancels what the queue holds of the old binding as it comes up (nothing is sent of
// it under the new one), counts what it cancelled, lets the attempt in flight complete without
// retrying it, and keeps the new binding across a restart; what is queued afterwards is delivered
// normally.
func TestRebindCancelsTheQueueAndTheAttemptInFlight(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	st, err := store.Open(ctx, store.Config{DataDir: dir})
	g.Expect(err).NotTo(HaveOccurred())

	release := make(chan struct{})
	var once sync.Once
	releaseHeld := func() { once.Do(func() { close(release) }) }
	defer releaseHeld()
	var mu sync.Mutex
	var got []string
	ok := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Agreement struct{ ID string } `json:"agreement"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		got = append(got, body.Agreement.ID)
		first, succeed := len(got) == 1, ok
		mu.Unlock()
		if first {
			<-release
		}
		if !succeed {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set(echo.Header, r.Header.Get(echo.Header))
	}))
	defer srv.Close()
	posts := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), got...) }

	pol := DefaultPolicy()
	pol.RetryBase, pol.RetryCap = 10*time.Millisecond, 20*time.Millisecond
	e := New(Config{Policy: pol}, st, NewSender(time.Minute, true, nil, loopback), clock.RealClock{}, logr.Discard(), nil)
	g.Expect(e.Start(ctx)).To(Succeed())
	const uid = "wh-rebind"
	a, b := Binding{AccountID: "acc-a"}, Binding{AccountID: "acc-b"}
	wh := Webhook{UID: uid, Name: "wh", AccountID: a.AccountID, URL: srv.URL, ClientID: "c", Scope: "ACCOUNT", Deliverable: true}
	g.Expect(e.Rebind(ctx, uid, a)).To(Succeed())
	e.Upsert(wh)
	enqueue := func(id, account string) {
		raw := fmt.Appendf(nil, `{"id":%q,"event":"AGREEMENT_CREATED","accountId":%q,"resource":{"type":"AGREEMENT","id":"a-%s"},"notification":{"agreement":{"id":"a-%s","name":"n","status":"s"}}}`, id, account, id, id)
		ev, err := ingest.Parse(raw)
		g.Expect(err).NotTo(HaveOccurred())
		seq, _, err := st.PutEvent(ctx, account+"/"+id, raw, time.Now())
		g.Expect(err).NotTo(HaveOccurred())
		e.CacheEvent(seq, ev, time.Now(), len(raw), uid)
		res, err := st.EnqueueAll(ctx, []store.Enqueue{{UID: uid, Note: store.Note{EventSeq: seq, Created: time.Now()}}})
		g.Expect(err).NotTo(HaveOccurred())
		e.Enqueue(uid, store.Note{Seq: res[0].Seq, EventSeq: seq, Created: time.Now()})
	}
	for _, id := range []string{"1", "2", "3"} {
		enqueue(id, a.AccountID)
	}
	g.Eventually(posts).WithTimeout(5 * time.Second).Should(Equal([]string{"a-1"}))

	// Rebound while a-1 is in flight: nothing is removed yet; a-1 is left to its attempt.
	g.Expect(e.Rebind(ctx, uid, a)).To(Succeed()) // the same binding changes nothing
	s, _ := e.Status(uid)
	g.Expect(s.Pending).To(Equal(int64(3)))
	g.Expect(e.Rebind(ctx, uid, b)).To(Succeed())
	s, _ = e.Status(uid)
	g.Expect(s.Binding).To(Equal(b))
	g.Expect(s.Rebound.From).To(Equal(a))
	g.Expect(s.Rebound.To).To(Equal(b))

	// a-1 fails: cancelled, not retried; a-2 and a-3 are cancelled as they come up, unsent.
	releaseHeld()
	g.Eventually(func() int64 { s, _ := e.Status(uid); return s.Cancelled }).WithTimeout(5 * time.Second).Should(Equal(int64(3)))
	s, _ = e.Status(uid)
	g.Expect(s.Pending).To(BeZero())
	g.Expect(s.Rebound.Cancelled).To(Equal(int64(3)))
	g.Expect(s.ConsecutiveFailures).To(BeZero())
	g.Expect(s.Rebound.At.IsZero()).To(BeFalse(), "no attempt of the new binding yet")
	g.Expect(posts()).To(Equal([]string{"a-1"}))
	g.Eventually(func() uint64 { queues, _ := st.Queues(ctx); return queues[uid] }).WithTimeout(5*time.Second).Should(BeZero(), "and leave the store")

	// What the new binding queues is delivered, and only that.
	mu.Lock()
	ok = true
	mu.Unlock()
	wh.AccountID = b.AccountID
	e.Upsert(wh)
	enqueue("4", b.AccountID)
	g.Eventually(func() int64 { s, _ := e.Status(uid); return s.Delivered }).WithTimeout(5 * time.Second).Should(Equal(int64(1)))
	g.Consistently(posts).WithTimeout(200 * time.Millisecond).Should(Equal([]string{"a-1", "a-4"}))
	s, _ = e.Status(uid)
	g.Expect(s.Rebound.At.IsZero()).To(BeTrue(), "an attempt supersedes the report of the rebinding")

	// The binding is saved: a new engine on the same store knows it before any Upsert.
	g.Expect(e.persist(ctx, uid)).To(Succeed())
	e2 := New(Config{Policy: pol}, st, NewSender(time.Minute, true, nil, loopback), clock.RealClock{}, logr.Discard(), nil)
	g.Expect(e2.Start(ctx)).To(Succeed())
	got2, known := e2.Binding(uid)
	g.Expect(known).To(BeTrue())
	g.Expect(got2).To(Equal(b))
	cancel()
	e.Wait()
	e2.Wait()
	st.Close()
}

// confirmingSource is a BindingSource answering with the namespace's binding now, counting its
// calls.
type confirmingSource struct {
	mu    sync.Mutex
	now   Binding
	bound bool
	calls int
}

func (s *confirmingSource) confirm(context.Context, Webhook) (Binding, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return s.now, s.bound, nil
}

func (s *confirmingSource) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// queueEvent stores a note for uid of an event of account with the given id, as Intake.Accept does.
func (r *rig) queueEvent(uid, account, id string) {
	r.t.Helper()
	raw := fmt.Appendf(nil, `{"id":%q,"event":"AGREEMENT_CREATED","accountId":%q,"resource":{"type":"AGREEMENT","id":%q},"notification":{"agreement":{"id":%q,"name":"n","status":"OUT_FOR_SIGNATURE"}}}`,
		id, account, id, id)
	seq := r.st.putEvent(raw, r.clk.Now())
	r.e.Enqueue(uid, r.st.enqueue(uid, store.Note{EventSeq: seq, Created: r.clk.Now()}))
}

// TestALaggingOwnerKeepsTheNewBindingsNotes: the owner of a queue whose namespace was bound to
// another account, not told yet (its informer lags), finds a note another dispatcher routed under
// the new binding. It asks the namespace instead of cancelling the note as another binding's
// (which lost an event after its 202), waits while its own view is behind, and sends it once it is
// rebound. A namespace found unbound holds the note as well.
func TestALaggingOwnerKeepsTheNewBindingsNotes(t *testing.T) {
	r := newRig(t, Config{}, nil)
	src := &confirmingSource{now: Binding{AccountID: "acct-new"}}
	r.e.ConfirmBindingsWith(src.confirm)
	r.e.Upsert(r.webhook("wh", "acct-old"))
	r.g.Expect(r.e.Rebind(context.Background(), "wh", Binding{AccountID: "acct-old"})).To(Succeed())

	r.queueEvent("wh", "acct-new", "n-1")
	r.g.Eventually(src.count).Should(Equal(1))
	r.idle()
	r.at(r.clk.Now().Add(time.Second)) // still unbound: asked again, held again
	r.g.Eventually(src.count).Should(Equal(2))
	r.idle()
	r.g.Expect(r.status("wh").Cancelled).To(BeZero())
	r.g.Expect(r.rx.sends()).To(BeEmpty())

	// Bound as the note says: the webhook's reconcile (asked by the source) rebinds the engine, and the
	// next attempt sends the note.
	src.mu.Lock()
	src.bound = true
	src.mu.Unlock()
	r.at(r.clk.Now().Add(time.Second))
	r.g.Eventually(src.count).Should(Equal(3))
	r.idle()
	r.g.Expect(r.status("wh").Cancelled).To(BeZero(), "a note of the namespace's binding now is not cancelled")
	r.g.Expect(r.rx.sends()).To(BeEmpty())
	r.g.Expect(r.e.Rebind(context.Background(), "wh", Binding{AccountID: "acct-new"})).To(Succeed())
	r.e.Upsert(r.webhook("wh", "acct-new"))
	r.at(r.clk.Now().Add(time.Second))
	r.g.Eventually(func() int64 { return r.status("wh").Delivered }).Should(BeEquivalentTo(1))
	r.g.Expect(r.status("wh").Cancelled).To(BeZero())
	r.g.Expect(src.count()).To(Equal(3), "a note of the binding known is sent without asking")
}

// TestOldBindingsNotesAreCancelledAfterOneConfirmation: notes of the previous binding are cancelled
// once the namespace's binding is confirmed, one read covering every note stored before it; a note
// stored after it is confirmed again.
func TestOldBindingsNotesAreCancelledAfterOneConfirmation(t *testing.T) {
	r := newRig(t, Config{}, nil)
	src := &confirmingSource{now: Binding{AccountID: "acct-new"}, bound: true}
	r.e.ConfirmBindingsWith(src.confirm)
	held := r.webhook("wh", "acct-new")
	held.Deliverable = false // until the three are stored: all stored before the confirmation
	r.e.Upsert(held)
	r.g.Expect(r.e.Rebind(context.Background(), "wh", Binding{AccountID: "acct-new"})).To(Succeed())

	for _, id := range []string{"o-1", "o-2", "o-3"} {
		r.queueEvent("wh", "acct-old", id)
	}
	r.e.Upsert(r.webhook("wh", "acct-new"))
	r.g.Eventually(func() int64 { return r.status("wh").Cancelled }).Should(BeEquivalentTo(3))
	r.g.Expect(src.count()).To(Equal(1))

	r.queueEvent("wh", "acct-old", "o-4")
	r.g.Eventually(func() int64 { return r.status("wh").Cancelled }).Should(BeEquivalentTo(4))
	r.g.Expect(src.count()).To(Equal(2))
	r.idle()
	r.g.Expect(r.rx.sends()).To(BeEmpty())
}

// TestARebindingDuringTheReadIsJudgedBeforeCancelling: an attempt whose namespace was rebound while
// it read its event does not cancel it on the spot when bindings are confirmed (the note may have
// been stored after the new binding was read): the next attempt confirms, and cancels it then.
func TestARebindingDuringTheReadIsJudgedBeforeCancelling(t *testing.T) {
	r, reading := readingUnderTheOldBinding(t, "acct-old")
	src := &confirmingSource{now: Binding{AccountID: "acct-new"}, bound: true}
	r.e.ConfirmBindingsWith(src.confirm)
	r.g.Expect(r.e.Rebind(context.Background(), "wh", Binding{AccountID: "acct-new"})).To(Succeed())
	r.e.Upsert(r.webhook("wh", "acct-new"))
	r.st.mu.Lock()
	r.st.getting = nil
	r.st.mu.Unlock()
	close(reading)
	r.idle()
	r.g.Expect(r.status("wh").Cancelled).To(BeZero(), "not judged yet")
	r.g.Expect(src.count()).To(BeZero())
	r.at(r.clk.Now().Add(time.Second))
	r.g.Eventually(func() int64 { return r.status("wh").Cancelled }).Should(BeEquivalentTo(1))
	r.g.Expect(src.count()).To(Equal(1))
	r.g.Expect(r.rx.sends()).To(BeEmpty())
}
