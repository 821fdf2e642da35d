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
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"k8s.io/utils/clock"

	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/echo"
)

// A fan-out of one event whose bodies cannot be trimmed (1.5 MiB outside the resource object) to
// ten webhooks of one account: the account may have 30 attempts in flight, but each holds a copy
// of the body, so they take turns within LargeBodyBytes (3 MiB: two at a time). Every webhook
// still gets its notification.
func TestLargeBodiesTakeTurns(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	g.Expect(err).NotTo(HaveOccurred())
	defer st.Close()

	rc := newHeldReceiver(t)
	srv, gate, inFlight, most, delivered := rc.srv, rc.gate, &rc.inFlight, &rc.most, &rc.delivered
	// (with 6 MiB of turns only one body fitted, and the second came from the first's timeout)
	e := largeTurnsEngine(t, ctx, st)

	attachment := strings.Repeat("x", 3<<19)
	raw := fmt.Appendf(nil, `{"id":"big","event":"AGREEMENT_CREATED","accountId":"acc","resource":{"type":"AGREEMENT","id":"a-1"},`+
		`"notification":{"attachment":%q,"agreement":{"id":"a-1","name":"n","status":"s"}}}`, attachment)
	_, err = ingest.Parse(raw)
	g.Expect(err).NotTo(HaveOccurred())
	seq, _, err := st.PutEvent(ctx, store.EventKey("acc", "big"), raw, time.Now())
	g.Expect(err).NotTo(HaveOccurred())

	const webhooks = 10
	var items []store.Enqueue
	for i := range webhooks {
		uid := fmt.Sprintf("wh-%d", i)
		e.Upsert(Webhook{UID: uid, Name: uid, AccountID: "acc", URL: srv.URL, ClientID: "c", Scope: "ACCOUNT", Deliverable: true})
		items = append(items, store.Enqueue{UID: uid, Note: store.Note{EventSeq: seq, Created: time.Now()}})
	}
	storeAndEnqueue(t, ctx, st, e, items)

	g.Eventually(inFlight.Load).WithTimeout(10 * time.Second).Should(BeEquivalentTo(2))
	g.Consistently(inFlight.Load).WithTimeout(300*time.Millisecond).Should(BeEquivalentTo(2), "a third large body was built")
	for range webhooks {
		gate <- struct{}{}
	}
	g.Eventually(delivered.Load).WithTimeout(10 * time.Second).Should(BeEquivalentTo(webhooks))
	g.Expect(most.Load()).To(BeEquivalentTo(2))
}

// One account holds at most half of the large-body memory: its receivers holding every request
// (as long as the attempt's timeout allows) cannot make another account's large notifications
// wait for them. The whole bounds every account's together.
func TestOneAccountHoldsHalfTheLargeBodies(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	g.Expect(err).NotTo(HaveOccurred())
	defer st.Close()

	var held atomic.Int64
	gate := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		held.Add(1)
		<-gate
		w.Header().Set(echo.Header, r.Header.Get(echo.Header))
	}))
	defer slow.Close()
	defer close(gate)
	var otherDelivered atomic.Int64
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		otherDelivered.Add(1)
		w.Header().Set(echo.Header, r.Header.Get(echo.Header))
	}))
	defer fast.Close()

	// 4 MiB of large bodies: two 1.5 MiB bodies fit, one per account.
	e := New(Config{Policy: DefaultPolicy(), AccountConcurrency: 30, EventCacheBytes: 1 << 20, LargeBodyBytes: 4 << 20},
		st, NewSender(time.Minute, true, nil, loopback), clock.RealClock{}, logr.Discard(), nil)
	g.Expect(e.Start(ctx)).To(Succeed())
	bigEvent := func(account string) uint64 {
		raw := fmt.Appendf(nil, `{"id":"big","event":"AGREEMENT_CREATED","accountId":%q,"resource":{"type":"AGREEMENT","id":"a-1"},`+
			`"notification":{"attachment":%q,"agreement":{"id":"a-1","name":"n","status":"s"}}}`, account, strings.Repeat("x", 3<<19))
		seq, _, err := st.PutEvent(ctx, store.EventKey(account, "big"), raw, time.Now())
		g.Expect(err).NotTo(HaveOccurred())
		return seq
	}
	enqueue := func(account, url string, webhooks int) {
		seq := bigEvent(account)
		var items []store.Enqueue
		for i := range webhooks {
			uid := fmt.Sprintf("%s-%d", account, i)
			e.Upsert(Webhook{UID: uid, Name: uid, AccountID: account, URL: url, ClientID: "c", Scope: "ACCOUNT", Deliverable: true})
			items = append(items, store.Enqueue{UID: uid, Note: store.Note{EventSeq: seq, Created: time.Now()}})
		}
		storeAndEnqueue(t, ctx, st, e, items)
	}
	enqueue("greedy", slow.URL, 10)
	g.Eventually(held.Load).WithTimeout(10 * time.Second).Should(BeEquivalentTo(1))
	g.Consistently(held.Load).WithTimeout(300*time.Millisecond).Should(BeEquivalentTo(1), "one account held more than half")
	enqueue("other", fast.URL, 1)
	g.Eventually(otherDelivered.Load).WithTimeout(10*time.Second).Should(BeEquivalentTo(1), "the other account's large notification waited")

	// The whole still bounds them all: two more accounts at the slow receiver, one body each, find
	// room for one of them only (two 1.5 MiB bodies within 4 MiB).
	enqueue("second", slow.URL, 1)
	enqueue("third", slow.URL, 1)
	g.Eventually(held.Load).WithTimeout(10 * time.Second).Should(BeEquivalentTo(2))
	g.Consistently(held.Load).WithTimeout(300*time.Millisecond).Should(BeEquivalentTo(2), "more large bodies at once than the whole allows")
}

// storeAndEnqueue stores items' notes and hands them to e, as the intake does.
func storeAndEnqueue(t *testing.T, ctx context.Context, st *store.Store, e *Engine, items []store.Enqueue) {
	t.Helper()
	res, err := st.EnqueueAll(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		n := items[i].Note
		n.Seq = r.Seq
		e.Enqueue(items[i].UID, n)
	}
}

// countingStore counts the reads of large events (the store's reserve told) made without a
// reserve: an attempt reading one must hold its turn.
type countingStore struct {
	*store.Store
	unreserved atomic.Int64
}

func (c *countingStore) GetEventWithin(ctx context.Context, seq uint64, reserve func(int64) error) ([]byte, time.Time, error) {
	reserved := false
	raw, created, err := c.Store.GetEventWithin(ctx, seq, func(size int64) error {
		reserved = true
		if reserve == nil {
			return nil
		}
		return reserve(size)
	})
	if reserve == nil && reserved {
		c.unreserved.Add(1)
	}
	return raw, created, err
}

// Ten webhooks of one account, each with a large event of its own at its queue's head (the
// producer's attack: an event per route, each near the largest accepted), at a receiver that holds
// every request: the account's attempts may be 30 at once, but an attempt takes its turn before it
// reads its large event, and those waiting for a turn hold no event meanwhile. Before, every
// attempt read its event first and held it while it waited: ten events in memory where the turns
// allow two (up to 30 × 25 MB for one account).
func TestAttemptsWaitingForALargeTurnHoldNoEvent(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opened, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	g.Expect(err).NotTo(HaveOccurred())
	defer opened.Close()
	st := &countingStore{Store: opened}

	rc := newHeldReceiver(t)
	srv, gate, inFlight, delivered := rc.srv, rc.gate, &rc.inFlight, &rc.delivered
	e := largeTurnsEngine(t, ctx, st)

	const webhooks = 10
	var items []store.Enqueue
	for i := range webhooks {
		id := fmt.Sprintf("big-%d", i)
		raw := fmt.Appendf(nil, `{"id":%q,"event":"AGREEMENT_CREATED","accountId":"acc","resource":{"type":"AGREEMENT","id":"a-1"},`+
			`"notification":{"attachment":%q,"agreement":{"id":"a-1","name":"n","status":"s"}}}`, id, strings.Repeat(string(rune('a'+i)), 3<<19))
		_, err = ingest.Parse(raw)
		g.Expect(err).NotTo(HaveOccurred())
		seq, _, err := st.PutEvent(ctx, store.EventKey("acc", id), raw, time.Now())
		g.Expect(err).NotTo(HaveOccurred())
		uid := fmt.Sprintf("wh-%d", i)
		e.Upsert(Webhook{UID: uid, Name: uid, AccountID: "acc", URL: srv.URL, ClientID: "c", Scope: "ACCOUNT", Deliverable: true})
		items = append(items, store.Enqueue{UID: uid, Note: store.Note{EventSeq: seq, Created: time.Now()}})
	}
	storeAndEnqueue(t, ctx, st.Store, e, items)

	g.Eventually(inFlight.Load).WithTimeout(10 * time.Second).Should(BeEquivalentTo(2))
	g.Consistently(inFlight.Load).WithTimeout(300*time.Millisecond).Should(BeEquivalentTo(2), "a third large body was built")
	for range webhooks {
		gate <- struct{}{}
	}
	g.Eventually(delivered.Load).WithTimeout(10 * time.Second).Should(BeEquivalentTo(webhooks))
	g.Expect(e.largeHeldPeak.Load()).To(BeEquivalentTo(2), "large events held: by the two with a turn only")
	g.Expect(st.unreserved.Load()).To(BeZero(), "every large event was read within a turn taken before")
}

// heldReceiver holds every request until gate lets one go, counting the requests held (inFlight,
// and their most at once) and answered.
type heldReceiver struct {
	srv                       *httptest.Server
	gate                      chan struct{}
	inFlight, most, delivered atomic.Int64
}

// newHeldReceiver starts a heldReceiver, stopped when the test ends (every request let go first).
func newHeldReceiver(t *testing.T) *heldReceiver {
	rc := &heldReceiver{gate: make(chan struct{})}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := rc.inFlight.Add(1)
		for m := rc.most.Load(); n > m && !rc.most.CompareAndSwap(m, n); m = rc.most.Load() {
		}
		_, _ = io.Copy(io.Discard, r.Body)
		<-rc.gate
		rc.inFlight.Add(-1)
		rc.delivered.Add(1)
		w.Header().Set(echo.Header, r.Header.Get(echo.Header))
	}))
	t.Cleanup(rc.srv.Close)
	t.Cleanup(func() { close(rc.gate) })
	return rc
}

// largeTurnsEngine starts an engine on st with 8 MiB of large turns, 4 MiB for one account: two
// 1.5 MiB events or bodies at once, not three. The sends' timeout is longer than the tests, so that
// a third cannot come from a timed-out one.
func largeTurnsEngine(t *testing.T, ctx context.Context, st QueueStore) *Engine {
	e := New(Config{Policy: DefaultPolicy(), AccountConcurrency: 30, EventCacheBytes: 1 << 20, LargeBodyBytes: 8 << 20},
		st, NewSender(time.Minute, true, nil, loopback), clock.RealClock{}, logr.Discard(), nil)
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return e
}
