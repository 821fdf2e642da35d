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

package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/nats-io/nats.go"
)

// Routing is recorded per intake, not per event: a thousand events marked concurrently leave one
// key in HOOKLINE_ROUTED (a key per event cost nats-server about 290 bytes of memory each for the
// dedupe window). The record says exactly which events are routed, across a restart, and a re-post
// routed by another intake (here: the next run) is recorded with a marker of its own.
func TestRoutedIsOneRecordPerIntake(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	const n = 1000
	seqs := make([]uint64, n)
	for i := range n {
		seq, dup, err := s.PutEvent(ctx, EventKey("acc", fmt.Sprint(i)), []byte(`{}`), time.Now())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(dup).To(BeFalse())
		seqs[i] = seq
	}
	// Every event but the multiples of 7 is routed, concurrently, as the ingest API's requests are.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		if i%7 == 0 {
			continue
		}
		wg.Go(func() { errs <- s.MarkRouted(ctx, EventKey("acc", fmt.Sprint(i)), seqs[i]) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		g.Expect(err).NotTo(HaveOccurred())
	}
	keys, err := s.routed.ListKeys(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	var all []string
	for k := range keys.Keys() {
		all = append(all, k)
	}
	g.Expect(all).To(ConsistOf(s.rt.id), "one record, no key per event")

	check := func(s *Store) {
		for i := range n {
			routed, err := s.Routed(ctx, EventKey("acc", fmt.Sprint(i)), seqs[i])
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(routed).To(Equal(i%7 != 0), "event %d", i)
		}
	}
	check(s)
	s.Close()

	s = open(t, dir)
	defer s.Close()
	check(s)
	// The next run completes the routing of event 0 (its re-post): not its own intake's event.
	g.Expect(s.MarkRouted(ctx, EventKey("acc", "0"), seqs[0])).To(Succeed())
	routed, err := s.Routed(ctx, EventKey("acc", "0"), seqs[0])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(routed).To(BeTrue())
}

// A record never claims an event whose publish has not answered yet: one that began before a
// routed event's was stored may get a lower sequence, and the record's Hi would cover it. So the
// mark of the later event waits until the earlier publish answers, and the record then lists it as
// pending.
func TestRoutedWaitsForPublishesInProgress(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	r := newRouted(s.js, s.routed, time.Hour)
	slow := r.begin() // gets 5 below
	fast := r.begin()
	r.end(fast, nil, "", 6, false, nil)
	done := make(chan error, 1)
	go func() {
		ok, err := r.markRouted(ctx, 6)
		if err == nil && !ok {
			err = fmt.Errorf("event 6 was not this intake's to mark")
		}
		done <- err
	}()
	g.Consistently(done).WithTimeout(300*time.Millisecond).ShouldNot(Receive(), "saved while a lower sequence may be unknown")
	expectRecord(g, r, map[uint64]bool{6: false})

	r.end(slow, nil, "", 5, false, nil)
	g.Eventually(done).WithTimeout(5 * time.Second).Should(Receive(BeNil()))
	expectRecord(g, r, map[uint64]bool{5: false, 6: true, 7: false})
}

// expectRecord checks what r's saved record says of each event.
func expectRecord(g Gomega, r *routed, want map[uint64]bool) {
	for seq, w := range want {
		routed, err := r.isRouted(context.Background(), r.id, seq)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(routed).To(Equal(w), "event %d", seq)
	}
}

// A publish that had no answer (a timeout) may still have stored the event. It holds the record
// below it until it is published again under its message id, which tells its sequence; the event
// is then listed as pending, as no one routed it.
func TestRoutedFindsWhereAnUnansweredPublishWent(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	r := newRouted(s.js, s.routed, time.Hour)

	lost := r.begin()
	loseAnswer(r, lost) // never reached the server

	later := r.begin()
	seq, dup, err := s.PutEvent(ctx, EventKey("acc", "later"), []byte(`{}`), time.Now())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dup).To(BeFalse())
	r.end(later, nil, "", seq, false, nil)
	ok, err := r.markRouted(ctx, seq)
	g.Expect(ok).To(BeTrue())
	g.Expect(err).NotTo(HaveOccurred())

	// The retry stored the lost event after "later".
	m, err := s.events.GetLastMsgForSubject(ctx, eventsSubject)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(m.Data)).To(Equal(`{"lost":true}`))
	g.Expect(m.Sequence).To(BeNumerically(">", seq))
	expectRecord(g, r, map[uint64]bool{m.Sequence: false, seq: true}) // found, and pending
}

// A record lists at most maxPending events not routed, so that it stays far below JetStream's
// largest message when routing fails for many events. Past it the record stops below the excess and
// an event above is marked on its own: still recorded, never lost.
func TestRoutedRecordIsBounded(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	s.rt.maxPending = 3
	seqs := make([]uint64, 6)
	for i := range seqs {
		seq, _, err := s.PutEvent(ctx, EventKey("acc", fmt.Sprint(i)), []byte(`{}`), time.Now())
		g.Expect(err).NotTo(HaveOccurred())
		seqs[i] = seq
	}
	// Only the last is routed: five listed as not routed, more than the record holds.
	g.Expect(s.MarkRouted(ctx, EventKey("acc", "5"), seqs[5])).To(Succeed())
	for i, want := range []bool{false, false, false, false, false, true} {
		routed, err := s.Routed(ctx, EventKey("acc", fmt.Sprint(i)), seqs[i])
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(routed).To(Equal(want), "event %d", i)
	}
	e, err := s.routed.Get(ctx, s.rt.id)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(e.Value())).To(Equal(fmt.Sprintf(`{"hi":%d,"pending":[%d,%d,%d]}`, seqs[3]-1, seqs[0], seqs[1], seqs[2])))
	_, err = s.routed.Get(ctx, EventKey("acc", "5"))
	g.Expect(err).NotTo(HaveOccurred(), "the event above the record has a marker of its own")
}

// A mark already waiting behind a publish in progress is not stranded when that publish then has no
// answer: the waiter publishes it again and the record moves on.
func TestRoutedWaiterRetriesAPublishThatLostItsAnswer(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	r := newRouted(s.js, s.routed, time.Hour)
	lost := r.begin()
	later := r.begin()
	seq, _, err := s.PutEvent(ctx, EventKey("acc", "later"), []byte(`{}`), time.Now())
	g.Expect(err).NotTo(HaveOccurred())
	r.end(later, nil, "", seq, false, nil)
	done := make(chan error, 1)
	go func() {
		_, err := r.markRouted(ctx, seq)
		done <- err
	}()
	g.Consistently(done).WithTimeout(200 * time.Millisecond).ShouldNot(Receive())

	loseAnswer(r, lost)
	g.Eventually(done).WithTimeout(5 * time.Second).Should(Receive(BeNil()))
	m, err := s.events.GetLastMsgForSubject(ctx, eventsSubject)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(m.Data)).To(Equal(`{"lost":true}`))
	expectRecord(g, r, map[uint64]bool{m.Sequence: false, seq: true})
}

// loseAnswer ends publish tok of event {"lost":true} as a timeout would: no answer, and nothing
// stored yet.
func loseAnswer(r *routed, tok uint64) {
	msg := &nats.Msg{Subject: eventsSubject, Header: nats.Header{}, Data: []byte(`{"lost":true}`)}
	msg.Header.Set(intakeHeader, r.id)
	r.end(tok, msg, EventKey("acc", "lost"), 0, false, nats.ErrTimeout)
}
