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

package deliverylog

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookline/hookline/dispatcher/payload"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/deliveries"
)

const (
	testUID     = "0b9e6a4c-6c1d-4d53-9f51-6a2b7f1f0a01"
	testAccount = "acc-1"
)

type fixture struct {
	st  *store.Store
	log *Log
	reg *prometheus.Registry
	ctx context.Context
}

// newFixture starts an embedded JetStream (the store's), the log on it and its writer.
func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	return newFixtureWithQueue(t, cfg, func(st *store.Store) Queue { return st })
}

// newFixtureWithQueue is newFixture with the log reading the store's queues through queue.
func newFixtureWithQueue(t testing.TB, cfg Config, queue func(*store.Store) Queue) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AccountOf == nil {
		cfg.AccountOf = func(uid string) (string, bool) { return testAccount, uid == testUID }
	}
	reg := prometheus.NewRegistry()
	l, err := New(ctx, st.JetStream(), queue(st), cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	l.Start(ctx)
	t.Cleanup(func() {
		cancel()
		st.Close()
	})
	return &fixture{st: st, log: l, reg: reg, ctx: ctx}
}

var benchGather = flag.Bool("gather", true, "BenchmarkAppend: gather records into messages (as the dispatcher does)")

func nid(event string) string { return payload.NotificationID(testUID, testAccount, event) }

// rec is an attempt record of event ev (sequence seq) created at created.
func rec(ev string, seq uint64, created time.Time, state deliveries.State, attempt, status int, reason string) deliveries.Record {
	return deliveries.Record{
		Kind: deliveries.KindAttempt, WebhookUID: testUID, Namespace: "tenant-a", Name: "orders",
		NotificationID: nid(ev), EventSeq: seq, EventID: ev, EventName: "AGREEMENT_ACTION_COMPLETED",
		Created: created, At: time.Now(), State: state, Attempt: attempt, DurationMillis: 12,
		Reason: reason, HTTPStatus: status, Response: `{"xAdobeSignClientId":"abc"}`, BytesSent: 2048,
	}
}

func (f *fixture) storedMsgs(t testing.TB) uint64 {
	t.Helper()
	info, err := f.log.stream.Info(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func (f *fixture) metric(t testing.TB, name string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func ids(items []deliveries.Notification) []string {
	out := make([]string, len(items))
	for i, n := range items {
		out[i] = n.NotificationID
	}
	return out
}

func TestAppendBarrierAttempts(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{})
	created := time.Now().Add(-time.Minute)
	f.log.Append(rec("ev-a", 1, created, deliveries.StateRetrying, 1, 500, "HTTPError"))
	f.log.Append(rec("ev-b", 2, created, deliveries.StateDelivered, 1, 200, "Delivered"))
	f.log.Append(rec("ev-a", 1, created, deliveries.StateRetrying, 2, 0, "Timeout"))
	f.log.Append(rec("ev-a", 1, created, deliveries.StateDelivered, 3, 200, "Delivered"))
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	// Barrier waited for JetStream: the records are stored now, not eventually (gathered into
	// one message: one webhook's, appended together).
	g.Expect(f.storedMsgs(t)).To(Equal(uint64(1)))

	al, err := f.log.Attempts(f.ctx, testUID, nid("ev-a"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(al.Records).To(HaveLen(3))
	for i, r := range al.Records {
		g.Expect(r.Attempt).To(Equal(i+1), "oldest first")
	}
	g.Expect(al.Notification.State).To(Equal(deliveries.StateDelivered))
	g.Expect(al.Notification.Attempts).To(Equal(3))
	g.Expect(al.Notification.Reason).To(Equal("Delivered"))
	g.Expect(al.Notification.HTTPStatus).To(Equal(200))
	g.Expect(al.Notification.EventID).To(Equal("ev-a"))
	g.Expect(al.Records[0].Response).To(Equal(`{"xAdobeSignClientId":"abc"}`))

	_, err = f.log.Attempts(f.ctx, testUID, nid("ev-none"))
	g.Expect(err).To(MatchError(ErrNotFound))
	_, err = f.log.Attempts(f.ctx, "other-webhook", nid("ev-a"))
	g.Expect(err).To(MatchError(ErrNotFound))
	// A uid that would be a wildcard subject reads nothing.
	_, err = f.log.Attempts(f.ctx, "*", nid("ev-a"))
	g.Expect(err).To(MatchError(ErrNotFound))

	var scanned []int
	g.Expect(f.log.Scan(f.ctx, testUID, time.Time{}, func(r deliveries.Record) error {
		scanned = append(scanned, r.Attempt)
		return nil
	})).To(Succeed())
	g.Expect(scanned).To(Equal([]int{1, 1, 2, 3}))
	g.Expect(f.metric(t, "hookline_delivery_log_records_total")).To(BeEquivalentTo(4))
	g.Expect(f.metric(t, "hookline_delivery_log_bytes_total")).To(BeNumerically(">", 4*300))
	g.Expect(f.metric(t, "hookline_delivery_log_messages_total")).To(BeEquivalentTo(1), "one webhook's records appended together: one message")
	g.Expect(f.metric(t, "hookline_delivery_log_stored_messages")).To(BeEquivalentTo(1))
	g.Expect(f.metric(t, "hookline_delivery_log_stored_bytes")).To(BeNumerically(">", 4*300))
	g.Expect(f.metric(t, "hookline_delivery_log_write_errors_total")).To(BeEquivalentTo(0))
}

// ScanFrom continues where it stopped: a second call reads only what was written since, and only
// the webhook's own records among the others'.
func TestScanFromContinues(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{})
	created := time.Now().Add(-time.Minute)
	other := rec("ev-x", 9, created, deliveries.StateDelivered, 1, 200, "Delivered")
	other.WebhookUID = "another-webhook"
	f.log.Append(rec("ev-a", 1, created, deliveries.StateRetrying, 1, 500, "HTTPError"))
	f.log.Append(other)
	f.log.Append(rec("ev-a", 1, created, deliveries.StateDelivered, 2, 200, "Delivered"))
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	var seqs []uint64
	collect := func(seq uint64, r deliveries.Record) error {
		g.Expect(r.WebhookUID).To(Equal(testUID))
		seqs = append(seqs, seq)
		return nil
	}
	next, err := f.log.ScanFrom(f.ctx, testUID, time.Now().Add(-time.Hour), 0, collect)
	g.Expect(err).NotTo(HaveOccurred())
	// The webhook's two records were gathered into one message, written before the other's.
	g.Expect(seqs).To(Equal([]uint64{1, 1}))
	g.Expect(next).To(Equal(uint64(3)))

	f.log.Append(other)
	f.log.Append(rec("ev-b", 2, created, deliveries.StateDelivered, 1, 200, "Delivered"))
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	seqs = nil
	next, err = f.log.ScanFrom(f.ctx, testUID, time.Time{}, next, collect)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(seqs).To(Equal([]uint64{4}))
	g.Expect(next).To(Equal(uint64(5)))
	// Nothing new: nothing read, the same place.
	seqs = nil
	next, err = f.log.ScanFrom(f.ctx, testUID, time.Time{}, next, collect)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(seqs).To(BeEmpty())
	g.Expect(next).To(Equal(uint64(5)))
}

// A record JetStream refuses is published again until it is stored: the failure is counted and
// Barrier keeps waiting meanwhile.
func TestFailedWritesAreRetriedNotDropped(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{})
	js := f.st.JetStream()
	g.Expect(js.DeleteStream(f.ctx, Stream)).To(Succeed())
	for i := range 3 {
		f.log.Append(rec(fmt.Sprintf("ev-%d", i), uint64(i+1), time.Now(), deliveries.StateDelivered, 1, 200, "Delivered"))
	}
	g.Eventually(func() float64 { return f.metric(t, "hookline_delivery_log_write_errors_total") }).
		WithTimeout(10 * time.Second).WithPolling(20 * time.Millisecond).Should(BeNumerically(">=", 1))
	short, cancel := context.WithTimeout(f.ctx, 100*time.Millisecond)
	defer cancel()
	g.Expect(f.log.Barrier(short)).To(MatchError(context.DeadlineExceeded), "nothing is stored yet")

	_, err := New(f.ctx, js, nil, Config{}, nil) // the stream again
	g.Expect(err).NotTo(HaveOccurred())
	wait, cancel2 := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel2()
	g.Expect(f.log.Barrier(wait)).To(Succeed())
	g.Expect(f.storedMsgs(t)).To(Equal(uint64(1)), "the three records gathered into one message")
	var got []string
	g.Expect(f.log.Scan(f.ctx, testUID, time.Time{}, func(r deliveries.Record) error {
		got = append(got, r.EventID)
		return nil
	})).To(Succeed())
	g.Expect(got).To(ConsistOf("ev-0", "ev-1", "ev-2"))
}

// ScanMany reads several webhooks' records in one pass, in stream order, and nothing of the others
// (nor of a uid that would be a wildcard subject).
func TestScanManyReadsSeveralWebhooksInOnePass(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{})
	for i, uid := range []string{"wh-a", "wh-b", "wh-c", "wh-a", "wh-b", "wh-c"} {
		r := rec(fmt.Sprintf("ev-%d", i), uint64(i+1), time.Now(), deliveries.StateDelivered, 1, 200, "Delivered")
		r.WebhookUID = uid
		f.log.Append(r)
	}
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	var got []string
	g.Expect(f.log.ScanMany(f.ctx, []string{"wh-a", "wh-b", "*"}, time.Time{}, func(r deliveries.Record) error {
		got = append(got, r.WebhookUID+"/"+r.EventID)
		return nil
	})).To(Succeed())
	// Each webhook's records in their order; gathered per webhook, the webhooks' messages in the
	// order of their first records.
	g.Expect(got).To(Equal([]string{"wh-a/ev-0", "wh-a/ev-3", "wh-b/ev-1", "wh-b/ev-4"}))
}

// Tail hands over the newest records of every webhook, oldest first: at most the limit, and only
// those stored within the window before the newest.
func TestTailReadsTheNewestRecords(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{})
	tail := func(within time.Duration, limit int) []string {
		var got []string
		g.Expect(f.log.Tail(f.ctx, within, limit, func(r deliveries.Record) { got = append(got, r.WebhookUID+"/"+r.EventID) })).To(Succeed())
		return got
	}
	g.Expect(tail(time.Hour, 10)).To(BeEmpty(), "an empty log")
	for i, uid := range []string{"wh-a", "wh-b", "wh-c", "wh-a", "wh-b", "wh-c"} {
		r := rec(fmt.Sprintf("ev-%d", i), uint64(i+1), time.Now(), deliveries.StateDelivered, 1, 200, "Delivered")
		r.WebhookUID = uid
		f.log.Append(r)
	}
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	g.Expect(tail(time.Hour, 100)).To(Equal([]string{"wh-a/ev-0", "wh-a/ev-3", "wh-b/ev-1", "wh-b/ev-4", "wh-c/ev-2", "wh-c/ev-5"}))
	g.Expect(tail(time.Hour, 3)).To(Equal([]string{"wh-b/ev-4", "wh-c/ev-2", "wh-c/ev-5"}), "the newest three records, not messages")
	g.Expect(tail(time.Hour, 0)).To(BeEmpty())

	// Records stored a while after the others: a window shorter than the pause leaves the others out.
	start := time.Now()
	g.Eventually(func() time.Duration { return time.Since(start) }).WithPolling(10 * time.Millisecond).Should(BeNumerically(">", 200*time.Millisecond))
	f.log.Append(rec("late", 7, time.Now(), deliveries.StateDelivered, 1, 200, "Delivered"))
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	g.Expect(tail(100*time.Millisecond, 100)).To(Equal([]string{testUID + "/late"}))
	g.Expect(tail(time.Hour, 100)).To(HaveLen(7))
}

func TestNotificationsStatesFiltersAndPending(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{})
	t0 := time.Now().Add(-10 * time.Minute)
	old := time.Now().Add(-time.Hour)
	// Queued: ev-4 (attempted once, still queued) and ev-5 (never attempted, queued long ago).
	_, err := f.st.EnqueueAll(f.ctx, []store.Enqueue{
		{UID: testUID, Note: store.Note{EventSeq: 5, Created: old, EventID: "ev-5", EventName: "AGREEMENT_CREATED"}},
		{UID: testUID, Note: store.Note{EventSeq: 4, Created: t0.Add(3 * time.Second), EventID: "ev-4", EventName: "AGREEMENT_ACTION_COMPLETED"}},
		{UID: "another-webhook", Note: store.Note{EventSeq: 7, Created: old, EventID: "ev-7"}},
	})
	g.Expect(err).NotTo(HaveOccurred())
	f.log.Append(rec("ev-1", 1, t0, deliveries.StateRetrying, 1, 503, "HTTPError"))
	f.log.Append(rec("ev-1", 1, t0, deliveries.StateDelivered, 2, 200, "Delivered"))
	dropped := rec("ev-2", 2, t0.Add(time.Second), deliveries.StateDropped, 9, 0, "Timeout")
	f.log.Append(dropped)
	f.log.Append(deliveries.Record{Kind: deliveries.KindLost, WebhookUID: testUID, NotificationID: nid("ev-3"), EventSeq: 3,
		EventID: "ev-3", EventName: "AGREEMENT_CREATED", Created: t0.Add(2 * time.Second), At: time.Now(), State: deliveries.StateLost, Reason: "WebhookDisabled"})
	f.log.Append(rec("ev-4", 4, t0.Add(3*time.Second), deliveries.StateRetrying, 1, 404, "HTTPError"))
	// Another webhook's records stay out.
	other := rec("ev-9", 9, t0, deliveries.StateDelivered, 1, 200, "Delivered")
	other.WebhookUID = "another-webhook"
	f.log.Append(other)
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	// ev-6 is queued after every record was written: the newest.
	_, err = f.st.EnqueueAll(f.ctx, []store.Enqueue{{UID: testUID, Note: store.Note{EventSeq: 6, Created: time.Now(), EventID: "ev-6", EventName: "AGREEMENT_CREATED"}}})
	g.Expect(err).NotTo(HaveOccurred())

	list, err := f.log.Notifications(f.ctx, testUID, deliveries.Query{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(list.Incomplete).To(BeFalse())
	g.Expect(list.Next).To(BeEmpty())
	g.Expect(ids(list.Items)).To(Equal([]string{nid("ev-6"), nid("ev-4"), nid("ev-3"), nid("ev-2"), nid("ev-1"), nid("ev-5")}))
	byID := map[string]deliveries.Notification{}
	for _, n := range list.Items {
		byID[n.EventID] = n
	}
	g.Expect(byID["ev-6"].State).To(Equal(deliveries.StatePending))
	g.Expect(byID["ev-6"].EventName).To(Equal("AGREEMENT_CREATED"))
	g.Expect(byID["ev-5"].State).To(Equal(deliveries.StatePending))
	g.Expect(byID["ev-5"].Attempts).To(Equal(0))
	g.Expect(byID["ev-4"].State).To(Equal(deliveries.StateRetrying), "queued but attempted: its record says so")
	g.Expect(byID["ev-4"].HTTPStatus).To(Equal(404))
	g.Expect(byID["ev-3"].State).To(Equal(deliveries.StateLost))
	g.Expect(byID["ev-3"].Reason).To(Equal("WebhookDisabled"))
	g.Expect(byID["ev-2"].State).To(Equal(deliveries.StateDropped))
	g.Expect(byID["ev-1"].State).To(Equal(deliveries.StateDelivered))
	g.Expect(byID["ev-1"].Attempts).To(Equal(2))
	g.Expect(byID["ev-1"].Reason).To(Equal("Delivered"))
	g.Expect(byID["ev-1"].Created.Equal(t0)).To(BeTrue())

	query := func(q deliveries.Query) []string {
		l, err := f.log.Notifications(f.ctx, testUID, q)
		g.Expect(err).NotTo(HaveOccurred())
		return ids(l.Items)
	}
	g.Expect(query(deliveries.Query{States: []deliveries.State{deliveries.StatePending}})).To(Equal([]string{nid("ev-6"), nid("ev-5")}))
	g.Expect(query(deliveries.Query{States: []deliveries.State{deliveries.StateDropped, deliveries.StateLost}})).To(Equal([]string{nid("ev-3"), nid("ev-2")}))
	g.Expect(query(deliveries.Query{EventNames: []string{"AGREEMENT_CREATED"}})).To(Equal([]string{nid("ev-6"), nid("ev-3"), nid("ev-5")}))
	g.Expect(query(deliveries.Query{NotificationIDs: []string{nid("ev-5"), nid("ev-1")}})).To(Equal([]string{nid("ev-1"), nid("ev-5")}))
	g.Expect(query(deliveries.Query{EventIDs: []string{"ev-2"}})).To(Equal([]string{nid("ev-2")}))
	g.Expect(query(deliveries.Query{Since: t0.Add(time.Second), Until: t0.Add(3 * time.Second)})).To(Equal([]string{nid("ev-4"), nid("ev-3"), nid("ev-2")}))
	g.Expect(query(deliveries.Query{Until: t0})).To(Equal([]string{nid("ev-1"), nid("ev-5")}))
	g.Expect(query(deliveries.Query{Limit: 2})).To(Equal([]string{nid("ev-6"), nid("ev-4")}))

	// A queued notification without a record: its summary, no records.
	al, err := f.log.Attempts(f.ctx, testUID, nid("ev-5"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(al.Records).To(BeEmpty())
	g.Expect(al.Notification.State).To(Equal(deliveries.StatePending))
	g.Expect(al.Notification.EventID).To(Equal("ev-5"))
}

func TestPaginationIsConsistentWhileRecordsArrive(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{})
	const n = 120
	base := time.Now().Add(-time.Hour)
	for i := range n {
		ev := fmt.Sprintf("ev-%03d", i)
		f.log.Append(rec(ev, uint64(i+1), base.Add(time.Duration(i)*time.Second), deliveries.StateRetrying, 1, 500, "HTTPError"))
	}
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())

	// After the first page: every notification gets a newer record (it would move to the top),
	// and new notifications come.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	startWriting := func() {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ev := fmt.Sprintf("ev-%03d", i%n)
				f.log.Append(rec(ev, uint64(i%n+1), base.Add(time.Duration(i%n)*time.Second), deliveries.StateDelivered, 2, 200, "Delivered"))
				nev := fmt.Sprintf("new-%d", i)
				f.log.Append(rec(nev, uint64(1000+i), time.Now(), deliveries.StateRetrying, 1, 500, "HTTPError"))
				if i%20 == 0 {
					_ = f.log.Barrier(f.ctx)
				}
			}
		})
	}
	seen := map[string]int{}
	var order []string
	pages := 0
	q := deliveries.Query{Limit: 25}
	for {
		list, err := f.log.Notifications(f.ctx, testUID, q)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(list.Incomplete).To(BeFalse())
		pages++
		if pages == 1 {
			startWriting()
		}
		for _, it := range list.Items {
			seen[it.EventID]++
			order = append(order, it.EventID)
			g.Expect(it.State).To(Equal(deliveries.StateRetrying), "the state as of the first page")
		}
		if list.Next == "" {
			break
		}
		q.Cursor = list.Next
	}
	close(stop)
	wg.Wait()
	g.Expect(pages).To(BeNumerically(">=", 5))
	g.Expect(seen).To(HaveLen(n), "every notification of the snapshot, none of the later ones")
	for ev, c := range seen {
		g.Expect(c).To(Equal(1), "%s listed %d times", ev, c)
	}
	for i := range n {
		g.Expect(order[i]).To(Equal(fmt.Sprintf("ev-%03d", n-1-i)), "newest first")
	}
}

// Queued notifications without a record and recorded ones, interleaved in time and with another
// webhook's notes between them, page by page: each once, newest first.
func TestQueuedAndRecordedInterleaved(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{})
	const n = 2400 // 1,600 notes: the queue is read back in more than one chunk
	var want []string
	for i := range n {
		ev := fmt.Sprintf("ev-%04d", i)
		switch i % 3 {
		case 0:
			_, err := f.st.EnqueueAll(f.ctx, []store.Enqueue{
				{UID: testUID, Note: store.Note{EventSeq: uint64(i + 1), Created: time.Now(), EventID: ev, EventName: "AGREEMENT_CREATED"}},
				{UID: "another-webhook", Note: store.Note{EventSeq: uint64(i + 1), Created: time.Now(), EventID: ev}},
			})
			g.Expect(err).NotTo(HaveOccurred())
		default:
			f.log.Append(rec(ev, uint64(i+1), time.Now(), deliveries.StateRetrying, 1, 500, "HTTPError"))
			g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
		}
		want = append([]string{ev}, want...)
	}
	var got []string
	q := deliveries.Query{Limit: 150}
	for {
		list, err := f.log.Notifications(f.ctx, testUID, q)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(list.Incomplete).To(BeFalse())
		for _, it := range list.Items {
			got = append(got, it.EventID)
			if it.State == deliveries.StatePending {
				g.Expect(it.NotificationID).To(Equal(nid(it.EventID)))
			}
		}
		if list.Next == "" {
			break
		}
		q.Cursor = list.Next
	}
	g.Expect(got).To(Equal(want))
}

func TestCursorsAreAuthenticated(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{})
	for i := range 5 {
		f.log.Append(rec(fmt.Sprintf("ev-%d", i), uint64(i+1), time.Now(), deliveries.StateDelivered, 1, 200, "Delivered"))
	}
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	q := deliveries.Query{Limit: 2, States: []deliveries.State{deliveries.StateDelivered}}
	list, err := f.log.Notifications(f.ctx, testUID, q)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(list.Next).NotTo(BeEmpty())

	next := q
	next.Cursor = list.Next
	_, err = f.log.Notifications(f.ctx, testUID, next)
	g.Expect(err).NotTo(HaveOccurred())
	// The page size may change between pages; the selection may not.
	next.Limit = 3
	_, err = f.log.Notifications(f.ctx, testUID, next)
	g.Expect(err).NotTo(HaveOccurred())

	other := next
	other.States = []deliveries.State{deliveries.StateDropped}
	_, err = f.log.Notifications(f.ctx, testUID, other)
	g.Expect(err).To(MatchError(ErrBadCursor))
	_, err = f.log.Notifications(f.ctx, "another-webhook", next)
	g.Expect(err).To(MatchError(ErrBadCursor), "a cursor is not valid for another webhook")

	for i := range len(list.Next) {
		tampered := []byte(list.Next)
		if tampered[i] == 'A' {
			tampered[i] = 'B'
		} else {
			tampered[i] = 'A'
		}
		bad := next
		bad.Cursor = string(tampered)
		_, err = f.log.Notifications(f.ctx, testUID, bad)
		g.Expect(err).To(MatchError(ErrBadCursor), "cursor changed at %d", i)
	}
	for _, c := range []string{"x", "!!!", strings.Repeat("A", 80)} {
		bad := next
		bad.Cursor = c
		_, err = f.log.Notifications(f.ctx, testUID, bad)
		g.Expect(err).To(MatchError(ErrBadCursor))
	}
	// Another log's key (another cluster) does not sign the same cursors.
	g2 := newFixture(t, Config{CursorKey: []byte("another key")})
	_, err = g2.log.Notifications(g2.ctx, testUID, next)
	g.Expect(err).To(MatchError(ErrBadCursor))
}

func TestReadBoundMarksIncomplete(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{MaxRead: 10, Batch: 1}) // the bound counts records; here one per message
	created := time.Now()
	f.log.Append(rec("ev-long", 100, created, deliveries.StateRetrying, 1, 500, "HTTPError"))
	for i := range 30 {
		f.log.Append(rec(fmt.Sprintf("ev-%d", i), uint64(i+1), time.Now(), deliveries.StateDelivered, 1, 200, "Delivered"))
	}
	f.log.Append(rec("ev-long", 100, created, deliveries.StateDelivered, 2, 200, "Delivered"))
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	list, err := f.log.Notifications(f.ctx, testUID, deliveries.Query{States: []deliveries.State{deliveries.StateDropped}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(list.Incomplete).To(BeTrue())
	g.Expect(list.Items).To(BeEmpty())

	// Its newest record is read, its first is beyond the bound.
	al, err := f.log.Attempts(f.ctx, testUID, nid("ev-long"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(al.Incomplete).To(BeTrue())
	g.Expect(al.Records).To(HaveLen(1))
	g.Expect(al.Notification.State).To(Equal(deliveries.StateDelivered))
	g.Expect(al.Notification.Attempts).To(Equal(2))
	al, err = f.log.Attempts(f.ctx, testUID, nid("ev-29"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(al.Incomplete).To(BeFalse(), "its first attempt was read")
	g.Expect(al.Records).To(HaveLen(1))
	// Entirely beyond the bound.
	_, err = f.log.Attempts(f.ctx, testUID, nid("ev-0"))
	g.Expect(err).To(MatchError(ErrNotFound))
}

func TestRetentionRemovesOldRecords(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{MaxAge: time.Second})
	for i := range 10 {
		f.log.Append(rec(fmt.Sprintf("ev-%d", i), uint64(i+1), time.Now(), deliveries.StateDelivered, 1, 200, "Delivered"))
	}
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	g.Expect(f.metric(t, "hookline_delivery_log_records_total")).To(BeEquivalentTo(10))
	msgs := f.metric(t, "hookline_delivery_log_messages_total")
	g.Expect(f.metric(t, "hookline_delivery_log_stored_messages")).To(Equal(msgs))
	g.Eventually(func() float64 { return f.metric(t, "hookline_delivery_log_removed_messages_total") }).
		WithTimeout(15 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(msgs))
	g.Expect(f.metric(t, "hookline_delivery_log_stored_messages")).To(BeEquivalentTo(0))
	_, err := f.log.Attempts(f.ctx, testUID, nid("ev-1"))
	g.Expect(err).To(MatchError(ErrNotFound))
	list, err := f.log.Notifications(f.ctx, testUID, deliveries.Query{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(list.Items).To(BeEmpty())
}

// BenchmarkAppend measures the writer: records per second through Append and Barrier, and the
// bytes each typical attempt record takes (JSON, and in the stream with JetStream's overhead),
// gathered 32 to a message (one busy webhook; -gather=false: a message each, as for a webhook
// with fewer than one notification per 200 ms).
func BenchmarkAppend(b *testing.B) {
	cfg := Config{}
	if !*benchGather {
		cfg.Gather = -1
	}
	f := newFixture(b, cfg)
	// A typical attempt: a UUID event id, the client-id echo as the answer.
	r := rec("3f2b8c4e-9d1a-4e6b-8f0c-2a7d5e9b1c34", 1, time.Now(), deliveries.StateDelivered, 1, 200, "Delivered")
	r.DurationMillis = 87
	r.Response = `{"xAdobeSignClientId":"CBJCHBCAABAAjA3h4eHyw4Ry1-dQFN_3xe8kAUkaEJ4z"}`
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		r.EventSeq = uint64(i)
		f.log.Append(r)
	}
	if err := f.log.Barrier(f.ctx); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	info, err := f.log.stream.Info(f.ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	b.ReportMetric(f.metric(b, "hookline_delivery_log_bytes_total")/float64(b.N), "json-bytes/record")
	b.ReportMetric(float64(info.State.Bytes)/float64(b.N), "stored-bytes/record")
	b.ReportMetric(float64(b.N)/float64(info.State.Msgs), "records/message")
	b.Logf("typical attempt record: %.0f bytes JSON, %.0f bytes stored (%d records in %d messages)",
		f.metric(b, "hookline_delivery_log_bytes_total")/float64(b.N), float64(info.State.Bytes)/float64(b.N), b.N, info.State.Msgs)
}

// A notification queued at the first page and attempted (and removed from its queue) before a
// later page is listed on the later page as it was: pending, at its place.
func TestPendingAtSnapshotStaysPending(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{})
	old := time.Now().Add(-time.Hour)
	res, err := f.st.EnqueueAll(f.ctx, []store.Enqueue{{UID: testUID, Note: store.Note{EventSeq: 1, Created: old, EventID: "ev-p", EventName: "AGREEMENT_CREATED"}}})
	g.Expect(err).NotTo(HaveOccurred())
	for i := range 3 {
		f.log.Append(rec(fmt.Sprintf("ev-%d", i), uint64(10+i), time.Now(), deliveries.StateDelivered, 1, 200, "Delivered"))
	}
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	list, err := f.log.Notifications(f.ctx, testUID, deliveries.Query{Limit: 3})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ids(list.Items)).To(Equal([]string{nid("ev-2"), nid("ev-1"), nid("ev-0")}))

	// Delivered now: its record is written, then its note leaves the queue (the engine's order).
	f.log.Append(rec("ev-p", 1, old, deliveries.StateDelivered, 1, 200, "Delivered"))
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	g.Expect(f.st.Remove(f.ctx, testUID, res[0].Seq)).To(Succeed())

	next, err := f.log.Notifications(f.ctx, testUID, deliveries.Query{Limit: 3, Cursor: list.Next})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ids(next.Items)).To(Equal([]string{nid("ev-p")}))
	g.Expect(next.Items[0].State).To(Equal(deliveries.StatePending))
	g.Expect(next.Next).To(BeEmpty())
	// A new listing shows it delivered, at the top.
	fresh, err := f.log.Notifications(f.ctx, testUID, deliveries.Query{Limit: 1})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fresh.Items[0].EventID).To(Equal("ev-p"))
	g.Expect(fresh.Items[0].State).To(Equal(deliveries.StateDelivered))
}

// queueHook is a Queue that runs before once, ahead of the first read of the queue.
type queueHook struct {
	Queue
	once   sync.Once
	before func()
}

func (q *queueHook) LoadNotes(ctx context.Context, uid string, from uint64, limit int) ([]store.Note, error) {
	q.once.Do(func() {
		if q.before != nil {
			q.before()
		}
	})
	return q.Queue.LoadNotes(ctx, uid, from, limit)
}

// A notification delivered after a request took its snapshot of the log but before it read the
// queue is gone from the queue, and its record is newer than the snapshot: the request reads the
// records stored meanwhile once the queue is read, and lists it (pending, as it was at the
// snapshot); its attempts are found too.
func TestDeliveredWhileTheQueueIsReadIsListed(t *testing.T) {
	g := NewWithT(t)
	hook := &queueHook{}
	f := newFixtureWithQueue(t, Config{}, func(st *store.Store) Queue { hook.Queue = st; return hook })
	created := time.Now().Add(-time.Minute)
	deliver := func(ev string, seq uint64) func() {
		res, err := f.st.EnqueueAll(f.ctx, []store.Enqueue{{UID: testUID, Note: store.Note{EventSeq: seq, Created: created, EventID: ev, EventName: "AGREEMENT_CREATED"}}})
		g.Expect(err).NotTo(HaveOccurred())
		return func() {
			// The engine's order: the record stored, then the note removed.
			f.log.Append(rec(ev, seq, created, deliveries.StateDelivered, 1, 200, "Delivered"))
			g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
			g.Expect(f.st.Remove(f.ctx, testUID, res[0].Seq)).To(Succeed())
		}
	}
	f.log.Append(rec("ev-0", 1, created.Add(-time.Minute), deliveries.StateDelivered, 1, 200, "Delivered"))
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())

	hook.before = deliver("ev-1", 2)
	list, err := f.log.Notifications(f.ctx, testUID, deliveries.Query{})
	g.Expect(err).NotTo(HaveOccurred())
	// ev-0 by its record's time (now), ev-1 by its creation, a minute ago.
	g.Expect(ids(list.Items)).To(Equal([]string{nid("ev-0"), nid("ev-1")}))
	g.Expect(list.Items[1].State).To(Equal(deliveries.StatePending), "as it was when the listing began")
	g.Expect(list.Incomplete).To(BeFalse())

	// The attempts of a notification delivered while they are looked for.
	hook.once, hook.before = sync.Once{}, deliver("ev-2", 3)
	al, err := f.log.Attempts(f.ctx, testUID, nid("ev-2"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(al.Notification.State).To(Equal(deliveries.StateDelivered))
	g.Expect(al.Records).To(HaveLen(1))
	g.Expect(al.Records[0].HTTPStatus).To(Equal(200))
}

// The first page of a long log reads its end only, not the whole log.
func TestFirstPageReadsTheEndOfALongLog(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{MaxRead: 3000})
	for i := range 6000 {
		r := rec(fmt.Sprintf("ev-%d", i), uint64(i+1), time.Now(), deliveries.StateDelivered, 1, 200, "Delivered")
		if i%2 == 1 {
			r.WebhookUID = "another-webhook"
		}
		f.log.Append(r)
	}
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	list, err := f.log.Notifications(f.ctx, testUID, deliveries.Query{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(list.Incomplete).To(BeFalse())
	g.Expect(list.Items).To(HaveLen(50))
	g.Expect(list.Items[0].EventID).To(Equal("ev-5998"))
	g.Expect(list.Items[49].EventID).To(Equal("ev-5900"))
	g.Expect(list.Next).NotTo(BeEmpty())
}

// BenchmarkRead measures the read side on a log of 200,000 records, three in four the webhook's:
// the first page, the twentieth, one filtered to nothing (read to the bound), and the attempts of
// a notification 60,000 of its records back.
func BenchmarkRead(b *testing.B) {
	f := newFixture(b, Config{})
	const n = 200_000
	start := time.Now()
	for i := range n {
		r := rec(fmt.Sprintf("ev-%d", i/2), uint64(i/2+1), start, deliveries.StateRetrying, 1, 500, "HTTPError")
		if i%4 == 3 {
			r.WebhookUID = "another-webhook"
		}
		f.log.Append(r)
	}
	if err := f.log.Barrier(f.ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("first-page", func(b *testing.B) {
		for b.Loop() {
			if _, err := f.log.Notifications(f.ctx, testUID, deliveries.Query{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("page-20", func(b *testing.B) {
		q := deliveries.Query{}
		for range 19 {
			l, err := f.log.Notifications(f.ctx, testUID, q)
			if err != nil {
				b.Fatal(err)
			}
			q.Cursor = l.Next
		}
		for b.Loop() {
			l, err := f.log.Notifications(f.ctx, testUID, q)
			if err != nil || len(l.Items) != 50 || l.Incomplete {
				b.Fatal(err, len(l.Items), l.Incomplete)
			}
		}
	})
	b.Run("filtered-to-nothing", func(b *testing.B) {
		for b.Loop() {
			l, err := f.log.Notifications(f.ctx, testUID, deliveries.Query{States: []deliveries.State{deliveries.StateDropped}})
			if err != nil || len(l.Items) != 0 {
				b.Fatal(err)
			}
		}
	})
	b.Run("attempts-60k-records-back", func(b *testing.B) {
		for b.Loop() {
			if al, err := f.log.Attempts(f.ctx, testUID, nid("ev-60000")); err != nil || len(al.Records) != 2 || al.Incomplete {
				b.Fatal(err)
			}
		}
	})
}

// The stream is created through Config.Patiently when one is given: a dispatcher taking over while
// the NATS cluster elects leaders retries the creation instead of exiting. A failure that outlasts
// the patience is New's error.
func TestNewCreatesTheStreamPatiently(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{})
	js := f.st.JetStream()
	tries := 0
	flaky := func(ctx context.Context, create func(context.Context) error) error {
		for {
			tries++
			if tries < 3 {
				continue // as if the stream had no leader yet: this try is not made
			}
			return create(ctx)
		}
	}
	_, err := New(f.ctx, js, nil, Config{Patiently: flaky}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tries).To(Equal(3), "the creation went through Patiently")

	gaveUp := errors.New("no leader within the patience")
	_, err = New(f.ctx, js, nil, Config{Patiently: func(context.Context, func(context.Context) error) error { return gaveUp }}, nil)
	g.Expect(err).To(MatchError(gaveUp))
}

// The writer gathers each webhook's records into one message: until its tick (BarrierAtTick waits
// for it), a batch of Config.Batch records, Config.Buffer records held, or a Barrier.
func TestRecordsGatherPerWebhook(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{Gather: time.Hour, Batch: 3, Buffer: 8})
	other := func(ev string, seq uint64) deliveries.Record {
		r := rec(ev, seq, time.Now(), deliveries.StateDelivered, 1, 200, "Delivered")
		r.WebhookUID = "another-webhook"
		return r
	}
	f.log.Append(rec("ev-1", 1, time.Now(), deliveries.StateDelivered, 1, 200, "Delivered"))
	f.log.Append(other("ev-2", 2))
	short, cancel := context.WithTimeout(f.ctx, 200*time.Millisecond)
	defer cancel()
	g.Expect(f.log.BarrierAtTick(short)).To(MatchError(context.DeadlineExceeded), "gathered until the tick, an hour away")
	g.Expect(f.storedMsgs(t)).To(BeZero())
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	g.Expect(f.storedMsgs(t)).To(Equal(uint64(2)), "one message per webhook")
	g.Expect(f.log.BarrierAtTick(f.ctx)).To(Succeed(), "nothing held: at once")

	// Seven records of one webhook: two full batches go out by themselves.
	for i := range 7 {
		f.log.Append(rec(fmt.Sprintf("ev-b%d", i), uint64(10+i), time.Now(), deliveries.StateDelivered, 1, 200, "Delivered"))
	}
	g.Eventually(f.storedMsgs).WithArguments(t).Should(Equal(uint64(4)))
	g.Consistently(f.storedMsgs).WithArguments(t).WithTimeout(200 * time.Millisecond).Should(Equal(uint64(4)))
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	g.Expect(f.storedMsgs(t)).To(Equal(uint64(5)))

	// Records of many webhooks: once Buffer of them are held, all go out.
	for i := range 8 {
		f.log.Append(other(fmt.Sprintf("ev-c%d", i), uint64(20+i)))
		r := rec(fmt.Sprintf("ev-d%d", i), uint64(30+i), time.Now(), deliveries.StateDelivered, 1, 200, "Delivered")
		r.WebhookUID = fmt.Sprintf("webhook-%d", i)
		f.log.Append(r)
	}
	g.Eventually(f.storedMsgs).WithArguments(t).Should(BeNumerically(">=", uint64(5+8)))
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	g.Expect(f.metric(t, "hookline_delivery_log_records_total")).To(BeEquivalentTo(2 + 7 + 16))
	g.Expect(f.metric(t, "hookline_delivery_log_messages_total")).To(BeEquivalentTo(f.storedMsgs(t)))
	var got []string
	g.Expect(f.log.Scan(f.ctx, testUID, time.Time{}, func(r deliveries.Record) error {
		got = append(got, r.EventID)
		return nil
	})).To(Succeed())
	g.Expect(got).To(Equal([]string{"ev-1", "ev-b0", "ev-b1", "ev-b2", "ev-b3", "ev-b4", "ev-b5", "ev-b6"}))
}

// Records of one message are read in their order: the later record of a notification gives its
// state, and notifications whose newest records share a message are listed, and paged through, by
// their place in it.
func TestRecordsOfOneMessageKeepTheirOrder(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{Gather: time.Hour})
	created := time.Now().Add(-time.Minute)
	f.log.Append(rec("ev-a", 1, created, deliveries.StateRetrying, 1, 500, "HTTPError"))
	f.log.Append(rec("ev-b", 2, created, deliveries.StateDelivered, 1, 200, "Delivered"))
	f.log.Append(rec("ev-a", 1, created, deliveries.StateDelivered, 2, 200, "Delivered"))
	f.log.Append(rec("ev-c", 3, created, deliveries.StateRetrying, 1, 503, "HTTPError"))
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	g.Expect(f.storedMsgs(t)).To(Equal(uint64(1)))

	list, err := f.log.Notifications(f.ctx, testUID, deliveries.Query{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ids(list.Items)).To(Equal([]string{nid("ev-c"), nid("ev-a"), nid("ev-b")}))
	g.Expect(list.Items[1].State).To(Equal(deliveries.StateDelivered))
	g.Expect(list.Items[1].Attempts).To(Equal(2))
	g.Expect(list.Items[1].HTTPStatus).To(Equal(200))

	var paged []string
	q := deliveries.Query{Limit: 1}
	for range 4 {
		page, err := f.log.Notifications(f.ctx, testUID, q)
		g.Expect(err).NotTo(HaveOccurred())
		paged = append(paged, ids(page.Items)...)
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	g.Expect(paged).To(Equal(ids(list.Items)), "pages of one, through one message")

	al, err := f.log.Attempts(f.ctx, testUID, nid("ev-a"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(al.Records).To(HaveLen(2))
	g.Expect(al.Records[0].Attempt).To(Equal(1))
	g.Expect(al.Notification.State).To(Equal(deliveries.StateDelivered))
}

// Config.MaxRead bounds records, not messages: a read of messages of 32 records stops at the
// bound.
func TestReadBoundCountsRecords(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{MaxRead: 40})
	for i := range 100 {
		f.log.Append(rec(fmt.Sprintf("ev-%d", i), uint64(i+1), time.Now(), deliveries.StateDelivered, 1, 200, "Delivered"))
	}
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	g.Expect(f.storedMsgs(t)).To(Equal(uint64(4)))
	list, err := f.log.Notifications(f.ctx, testUID, deliveries.Query{States: []deliveries.State{deliveries.StateDropped}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(list.Incomplete).To(BeTrue(), "100 records to read against a bound of 40")
	// The window is read forward: the first two messages (64 records) spend the bound.
	_, err = f.log.Attempts(f.ctx, testUID, nid("ev-70"))
	g.Expect(err).To(MatchError(ErrNotFound), "its message is past the bound")
}

// Without gathering (--delivery-log-gather=0) each record goes out at once, in a message of its own.
func TestNoGathering(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{Gather: -1})
	for i := range 3 {
		f.log.Append(rec(fmt.Sprintf("ev-%d", i), uint64(i+1), time.Now(), deliveries.StateDelivered, 1, 200, "Delivered"))
	}
	g.Eventually(f.storedMsgs).WithArguments(t).Should(Equal(uint64(3)))
	short, cancel := context.WithTimeout(f.ctx, 5*time.Second)
	defer cancel()
	g.Expect(f.log.BarrierAtTick(short)).To(Succeed(), "nothing is ever held for a tick")
}

// Tail reads windows back from the end until they hold the limit, whether messages hold one
// record or many.
func TestTailAcrossWindows(t *testing.T) {
	for _, gather := range []time.Duration{0, -1} {
		g := NewWithT(t)
		f := newFixture(t, Config{Gather: gather})
		for i := range 300 {
			f.log.Append(rec(fmt.Sprintf("ev-%d", i), uint64(i+1), time.Now(), deliveries.StateDelivered, 1, 200, "Delivered"))
		}
		g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
		var got, want []string
		g.Expect(f.log.Tail(f.ctx, time.Hour, 70, func(r deliveries.Record) { got = append(got, r.EventID) })).To(Succeed())
		for i := 230; i < 300; i++ {
			want = append(want, fmt.Sprintf("ev-%d", i))
		}
		g.Expect(got).To(Equal(want), "gather %s", gather)
	}
}

// A hostile receiver cannot forge a record by answering with a line break and a record of its
// own: records are one per line, and every string in a record is JSON-escaped.
func TestAnswerCannotForgeARecord(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{Gather: time.Hour})
	forged := "\n" + `{"kind":"attempt","webhookUid":"` + testUID + `","webhookNotificationId":"` + nid("ev-forged") + `","state":"delivered"}` + "\n"
	r := rec("ev-a", 1, time.Now(), deliveries.StateRetrying, 1, 500, "HTTPError")
	r.Response, r.Message = forged, forged
	f.log.Append(r)
	f.log.Append(rec("ev-b", 2, time.Now(), deliveries.StateDelivered, 1, 200, "Delivered"))
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	g.Expect(f.storedMsgs(t)).To(Equal(uint64(1)), "both records in one message")
	list, err := f.log.Notifications(f.ctx, testUID, deliveries.Query{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ids(list.Items)).To(ConsistOf(nid("ev-a"), nid("ev-b")))
	al, err := f.log.Attempts(f.ctx, testUID, nid("ev-a"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(al.Records).To(HaveLen(1))
	g.Expect(al.Records[0].Response).To(Equal(forged))
}

// A batch stays under maxMessage bytes: the record that would cross it opens the next message.
// A record that cannot be encoded leaves its batch as it was.
func TestBatchesStayUnderTheMessageBound(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{Gather: time.Hour})
	big := strings.Repeat("x", 20<<10) // three fit in a message, four do not
	for i := range 7 {
		r := rec(fmt.Sprintf("ev-%d", i), uint64(i+1), time.Now(), deliveries.StateRetrying, 1, 500, "HTTPError")
		r.Response = big
		f.log.Append(r)
		if i == 4 {
			bad := rec("ev-bad", 99, time.Now(), deliveries.StateDelivered, 1, 200, "Delivered")
			bad.At = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) // JSON cannot hold it
			f.log.Append(bad)
		}
	}
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	g.Expect(f.storedMsgs(t)).To(Equal(uint64(3)), "3 + 3 + 1 records")
	g.Expect(f.metric(t, "hookline_delivery_log_write_errors_total")).To(BeEquivalentTo(1))
	for seq := uint64(1); seq <= 3; seq++ {
		m, err := f.log.stream.GetMsg(f.ctx, seq)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(len(m.Data)).To(BeNumerically("<=", maxMessage))
		for line := range strings.SplitSeq(string(m.Data), "\n") {
			g.Expect(json.Valid([]byte(line))).To(BeTrue(), "message %d: %.80q", seq, line)
		}
	}
	var got []string
	g.Expect(f.log.Scan(f.ctx, testUID, time.Time{}, func(r deliveries.Record) error {
		g.Expect(r.Response).To(Equal(big))
		got = append(got, r.EventID)
		return nil
	})).To(Succeed())
	g.Expect(got).To(Equal([]string{"ev-0", "ev-1", "ev-2", "ev-3", "ev-4", "ev-5", "ev-6"}))
}

// A window of a read that holds none of the webhook's records still tells that every record
// before it is older than its first message, also when that message was removed (trims remove
// messages from the middle of the log): the next message's time stands for it. Without that, a
// read with a time filter kept reading windows back to the log's start.
func TestAWindowWhoseFirstMessageWasRemovedStillBoundsTheRead(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{Gather: -1})
	const others = 40
	for i := range others {
		r := rec(fmt.Sprintf("other-%d", i), uint64(i+1), time.Now(), deliveries.StateDelivered, 1, 200, "Delivered")
		r.WebhookUID = "other-webhook"
		f.log.Append(r)
	}
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	g.Expect(f.storedMsgs(t)).To(Equal(uint64(others)))

	r, err := f.log.newReader(f.ctx, testUID)
	g.Expect(err).NotTo(HaveOccurred())
	r.recSpan = 10 // the window is sequences 31 to 40
	g.Expect(f.log.stream.DeleteMsg(f.ctx, 31)).To(Succeed())
	next, err := f.log.stream.GetMsg(f.ctx, 32)
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(r.extendRecords(f.ctx, time.Time{}, func(*deliveries.Record, uint64, uint32, time.Time) {})).To(Succeed())
	g.Expect(r.recDone).To(BeFalse())
	g.Expect(r.hasHorizon).To(BeTrue(), "the horizon is known")
	g.Expect(r.recHorizon).To(BeTemporally("==", next.Time))
}

// A listing since a duration ago (the read API's since=2h, the CLI's --since) pages through the
// same range: its times are counted from the first page's, which the cursor keeps. They were
// resolved at each request, so every next page's filters differed from its cursor's and the
// page was refused as a tampered cursor (found by a review helper).
func TestRelativeTimesPage(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{})
	for i := range 3 {
		f.log.Append(rec(fmt.Sprintf("old-%d", i), uint64(i+1), time.Now().Add(-3*time.Hour), deliveries.StateDelivered, 1, 200, "Delivered"))
	}
	for i := range 5 {
		f.log.Append(rec(fmt.Sprintf("new-%d", i), uint64(i+10), time.Now(), deliveries.StateDelivered, 1, 200, "Delivered"))
	}
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	ago, zero := 2*time.Hour, time.Duration(0)
	q := deliveries.Query{Limit: 2, SinceAgo: &ago, UntilAgo: &zero}
	var got []string
	for page := 0; page < 5; page++ {
		// As the read API does: a duration is also resolved against its request's time.
		q.Since, q.Until = time.Now().Add(-ago), time.Now()
		list, err := f.log.Notifications(f.ctx, testUID, q)
		g.Expect(err).NotTo(HaveOccurred(), "page %d", page+1)
		for _, n := range list.Items {
			got = append(got, n.EventID)
		}
		if list.Next == "" {
			break
		}
		q.Cursor = list.Next
	}
	g.Expect(got).To(Equal([]string{"new-4", "new-3", "new-2", "new-1", "new-0"}))

	// The cursor is still bound to the range: another duration is another listing.
	other := 3 * time.Hour
	q.SinceAgo = &other
	_, err := f.log.Notifications(f.ctx, testUID, q)
	g.Expect(err).To(MatchError(ErrBadCursor))
}

// BarrierFor publishes the gathered records of the webhooks it names, and only those: the intake
// waits for the records of notifications lost to auto-disabled webhooks before its 202, and a
// Barrier there published every webhook's records at each such event, one message each.
func TestBarrierForPublishesOnlyItsWebhooks(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{Gather: time.Hour})
	other := func(ev string, seq uint64) deliveries.Record {
		r := rec(ev, seq, time.Now(), deliveries.StateDelivered, 1, 200, "Delivered")
		r.WebhookUID = "another-webhook"
		return r
	}
	f.log.Append(other("ev-o1", 1))
	f.log.Append(rec("ev-1", 2, time.Now(), deliveries.StateLost, 0, 0, "WebhookDisabled"))
	f.log.Append(other("ev-o2", 3))
	g.Expect(f.log.BarrierFor(f.ctx, testUID)).To(Succeed())
	g.Expect(f.storedMsgs(t)).To(Equal(uint64(1)), "only the named webhook's message")
	var got []string
	g.Expect(f.log.Scan(f.ctx, testUID, time.Time{}, func(r deliveries.Record) error {
		got = append(got, r.EventID)
		return nil
	})).To(Succeed())
	g.Expect(got).To(Equal([]string{"ev-1"}))
	g.Consistently(f.storedMsgs).WithArguments(t).WithTimeout(200*time.Millisecond).Should(Equal(uint64(1)), "the other webhook's records still gather")

	// Nothing gathered for it: released behind what was published before.
	g.Expect(f.log.BarrierFor(f.ctx, "no-such-webhook")).To(Succeed())
	g.Expect(f.log.BarrierFor(f.ctx)).To(Succeed(), "no webhook: nothing to wait for")
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	g.Expect(f.storedMsgs(t)).To(Equal(uint64(2)), "the other webhook's two records in one message")
}

// BenchmarkAppendWithLostEvents: concurrent intakes, each event routed to ten healthy webhooks (of
// a hundred) and lost to one auto-disabled webhook, whose record the intake waits for before its
// 202. With a Barrier per event every webhook's gathered records went out at each event; with
// BarrierFor the healthy webhooks' keep gathering. Compare records/message (healthy) and
// records/s: go test ./dispatcher/deliverylog -run '^$' -bench AppendWithLostEvents
func BenchmarkAppendWithLostEvents(b *testing.B) {
	for _, scoped := range []bool{false, true} {
		name := map[bool]string{false: "Barrier", true: "BarrierFor"}[scoped]
		b.Run(name, func(b *testing.B) {
			f := newFixture(b, Config{})
			r := rec("3f2b8c4e-9d1a-4e6b-8f0c-2a7d5e9b1c34", 1, time.Now(), deliveries.StateDelivered, 1, 200, "Delivered")
			const disabled = "disabled-webhook"
			var next atomic.Uint64
			b.SetParallelism(16) // intakes at once, per GOMAXPROCS
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					for w := range 10 {
						rr := r
						rr.EventSeq, rr.WebhookUID = i, fmt.Sprintf("webhook-%02d", (int(i)*10+w)%100)
						f.log.Append(rr)
					}
					lost := r
					lost.EventSeq, lost.WebhookUID, lost.State, lost.Kind = i, disabled, deliveries.StateLost, deliveries.KindLost
					f.log.Append(lost)
					var err error
					if scoped {
						err = f.log.BarrierFor(f.ctx, disabled)
					} else {
						err = f.log.Barrier(f.ctx)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			if err := f.log.Barrier(f.ctx); err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			info, err := f.log.stream.Info(f.ctx)
			if err != nil {
				b.Fatal(err)
			}
			lostMsgs, err := f.log.stream.Info(f.ctx, jetstream.WithSubjectFilter(subject(disabled)))
			if err != nil {
				b.Fatal(err)
			}
			healthyMsgs := info.State.Msgs - lostMsgs.State.Subjects[subject(disabled)]
			b.ReportMetric(float64(11*b.N)/elapsed.Seconds(), "records/s")
			b.ReportMetric(float64(10*b.N)/float64(healthyMsgs), "healthy-records/message")
		})
	}
}

// Starts is the time of the log's oldest record, whatever webhook it is of (zero when empty).
func TestStartsIsTheOldestRecord(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, Config{Gather: -1})
	starts, err := f.log.Starts(f.ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(starts.IsZero()).To(BeTrue(), "an empty log")
	before := time.Now()
	f.log.Append(rec("ev-1", 1, time.Now(), deliveries.StateDelivered, 1, 200, "Delivered"))
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	after := time.Now()
	r := rec("ev-2", 2, time.Now(), deliveries.StateDelivered, 1, 200, "Delivered")
	r.WebhookUID = "another-webhook"
	f.log.Append(r)
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	starts, err = f.log.Starts(f.ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(starts).To(BeTemporally(">=", before.Add(-time.Second)))
	g.Expect(starts).To(BeTemporally("<=", after))
}
