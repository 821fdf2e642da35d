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
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	. "github.com/onsi/gomega/gstruct"

	"github.com/hookline/hookline/dispatcher/partition"
	"github.com/hookline/hookline/dispatcher/payload"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/deliveries"
)

// accountIn returns an account whose webhooks fall in partition p of n.
func accountIn(p, n int) string {
	for i := 0; ; i++ {
		if a := fmt.Sprintf("acct-%d", i); partition.Of(a, n) == p {
			return a
		}
	}
}

// peers are partitioned engines sharing one store and one clock, each with its own receiver,
// announcing to each other as dispatchers do over NATS.
type peers struct {
	*rig
	engines []*Engine
	rxs     []*memReceiver
}

func newPeers(t *testing.T, n, parts int, more ...func(*Config)) *peers {
	p := &peers{rig: newRig(t, Config{}, nil)}
	p.stop() // the rig's own engine is not a peer: only its store, clock and helpers are used
	for range n {
		rx := newMemReceiver(p.clk)
		i := len(p.engines)
		cfg := Config{Policy: DefaultPolicy(), Partitions: parts, Announce: func(_ int, uid string, note store.Note) {
			for j, other := range p.engines {
				if j != i {
					other.Arrived(uid, note)
				}
			}
		}}
		for _, m := range more {
			m(&cfg)
		}
		e := New(cfg, p.st, rx, p.clk, logr.Discard(), nil)
		p.engines = append(p.engines, e)
		p.rxs = append(p.rxs, rx)
		ctx, cancel := context.WithCancel(context.Background())
		p.g.Expect(e.Start(ctx)).To(Succeed())
		t.Cleanup(func() { cancel(); e.Wait() })
	}
	return p
}

// upsert tells every peer of wh, as every dispatcher's Syncer does.
func (p *peers) upsert(wh Webhook) {
	for _, e := range p.engines {
		e.Upsert(wh)
	}
}

// TestPartitionsDeliverEachQueueOnceAndHandOver: with two engines owning two partitions each, every
// notification is sent by the owner of its webhook's account only, whichever engine it was queued
// through; a partition given up is taken over with its state (a failing streak and the retry it
// waits for), and its queue goes on in order.
func TestPartitionsDeliverEachQueueOnceAndHandOver(t *testing.T) {
	p := newPeers(t, 2, 4)
	a, b := p.engines[0], p.engines[1]
	a.Acquire(0, nextToken())
	a.Acquire(1, nextToken())
	b.Acquire(2, nextToken())
	b.Acquire(3, nextToken())
	accounts := []string{accountIn(0, 4), accountIn(1, 4), accountIn(2, 4), accountIn(3, 4)}
	for i, acct := range accounts {
		p.upsert(p.webhook(fmt.Sprintf("wh%d", i), acct))
	}
	p.g.Eventually(func() bool { return a.Owns("wh0") && a.Owns("wh1") && b.Owns("wh2") && b.Owns("wh3") }).Should(BeTrue())
	p.g.Expect(a.Owns("wh2")).To(BeFalse())
	p.rxs[0].setFailing("wh1", true)

	// Everything is queued through a, as if one replica took every event in.
	for i, acct := range accounts {
		p.e = a
		p.queue(fmt.Sprintf("wh%d", i), acct, 3, p.t0)
	}
	delivered := func(e *Engine, uid string) int64 { st, _ := e.Status(uid); return st.Delivered }
	p.g.Eventually(func() []int64 {
		return []int64{delivered(a, "wh0"), delivered(b, "wh2"), delivered(b, "wh3")}
	}).Should(Equal([]int64{3, 3, 3}))
	p.g.Eventually(func() int64 { st, _ := a.Status("wh1"); return st.ConsecutiveFailures }).Should(BeEquivalentTo(1))
	p.g.Expect(p.rxs[0].notes("wh2")).To(BeEmpty(), "b's webhooks are not sent by a")
	p.g.Expect(p.rxs[1].notes("wh0")).To(BeEmpty(), "a's webhooks are not sent by b")
	p.g.Expect(p.rxs[1].notes("wh2")).To(Equal([]string{"wh2-1", "wh2-2", "wh2-3"}))
	_, known := b.Status("wh0")
	p.g.Expect(known).To(BeFalse(), "b reports nothing for a webhook it does not deliver")

	// a gives partition 1 up; b takes it over with the failing streak and the retry time.
	retryAt := p.next("wh1")
	p.e = a
	p.g.Expect(retryAt).NotTo(BeZero())
	a.Release(context.Background(), 1)
	p.g.Expect(a.Owns("wh1")).To(BeFalse())
	b.Acquire(1, nextToken())
	p.g.Eventually(func() bool { return b.Owns("wh1") }).Should(BeTrue())
	st, _ := b.Status("wh1")
	p.g.Expect(st.ConsecutiveFailures).To(BeEquivalentTo(1))
	p.g.Expect(st.Pending).To(BeEquivalentTo(3))
	p.e = b
	p.g.Expect(p.next("wh1")).To(Equal(retryAt), "the retry keeps its time")
	p.at(retryAt)
	p.g.Eventually(func() int64 { return delivered(b, "wh1") }).Should(BeEquivalentTo(3))
	p.g.Expect(p.rxs[1].notes("wh1")).To(Equal([]string{"wh1-1", "wh1-2", "wh1-3"}))
	p.g.Expect(p.rxs[0].notes("wh1")).To(Equal([]string{"wh1-1"}), "a tried the head once, before it gave the partition up")
}

// TestReleaseWaitsForAttemptsInFlight: giving a partition up returns only once its attempts in
// flight have settled and what they delivered is removed from the queues, so that the next owner
// never sends beside them (the account's cap holds across dispatchers) and does not send again
// what they delivered (seen as a duplicate of every attempt in flight at a clean stop).
func TestReleaseWaitsForAttemptsInFlight(t *testing.T) {
	p := newPeers(t, 1, 2)
	e := p.engines[0]
	p.rxs[0].hold = true
	e.Acquire(0, nextToken())
	acct := accountIn(0, 2)
	p.upsert(p.webhook("wh", acct))
	p.g.Eventually(func() bool { return e.Owns("wh") }).Should(BeTrue())
	p.e = e
	p.queue("wh", acct, 2, p.t0)
	p.g.Eventually(func() int { return p.rxs[0].inFlightOf(acct) }).Should(Equal(1))

	// The store is slow to remove what was delivered: the release waits for that too.
	open := p.st.holdRemovals(t) // the purge waits
	done := make(chan struct{})
	go func() { defer close(done); e.Release(context.Background(), 0) }()
	p.g.Consistently(done).WithTimeout(100 * time.Millisecond).ShouldNot(BeClosed())
	p.rxs[0].release()
	p.g.Consistently(done).WithTimeout(100*time.Millisecond).ShouldNot(BeClosed(), "the delivered note is still queued")
	open()
	p.g.Eventually(done).Should(BeClosed())
	p.g.Expect(p.st.queued("wh")).To(Equal(1), "the next owner does not find the delivered note")
	p.g.Expect(p.rxs[0].notes("wh")).To(Equal([]string{"wh-1"}), "nothing new started once the release began")
	rec, _ := p.st.saved("wh")
	p.g.Expect(rec.Status.Delivered).To(BeEquivalentTo(1), "the state is saved for the next owner")
	p.g.Expect(rec.Status.Pending).To(BeEquivalentTo(1))
}

// TestReleaseCutsRequestsStillInFlight: a release whose wait ends (the partition's stop timeout,
// a fifth of the lease's TTL, is shorter than the delivery timeout) cuts what is still sending
// before it returns and the lease goes: the request went on beside the next owner's attempt of
// the same webhook, two at once for one webhook and up to 60 for an account across the two (found
// by a review helper). The cut attempt is not the receiver's failure; the next owner sends it
// again, with the same id.
func TestReleaseCutsRequestsStillInFlight(t *testing.T) {
	p := newPeers(t, 2, 2)
	a, b := p.engines[0], p.engines[1]
	p.rxs[0].hold = true
	a.Acquire(0, nextToken())
	acct := accountIn(0, 2)
	p.upsert(p.webhook("wh", acct))
	p.g.Eventually(func() bool { return a.Owns("wh") }).Should(BeTrue())
	p.e = a
	p.queue("wh", acct, 2, p.t0)
	p.g.Eventually(func() int { return p.rxs[0].inFlightOf(acct) }).Should(Equal(1))

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	a.Release(ctx, 0)
	p.g.Expect(p.rxs[0].inFlightOf(acct)).To(BeZero(), "the old owner's request is cut before its lease goes")
	rec, _ := p.st.saved("wh")
	p.g.Expect(rec.Status.ConsecutiveFailures).To(BeZero(), "a cut request is not the receiver's failure")

	b.Acquire(0, nextToken())
	p.g.Eventually(func() bool { return b.Owns("wh") }).Should(BeTrue())
	p.e = b
	if next := p.next("wh"); !next.IsZero() {
		p.at(next) // the cut attempt is tried again a moment later, as one the dispatcher could not make
	}
	p.g.Eventually(func() []string { return p.rxs[1].notes("wh") }).Should(Equal([]string{"wh-1", "wh-2"}))
	p.g.Expect(p.rxs[0].notes("wh")).To(Equal([]string{"wh-1"}))
	st, _ := b.Status("wh")
	p.g.Expect(st.ConsecutiveFailures).To(BeZero())
}

// TestArrivalForDisabledWebhookIsLost: a note another dispatcher queued for a webhook this engine
// knows is auto-disabled is counted as lost and removed, not delivered after a reactivation.
func TestArrivalForDisabledWebhookIsLost(t *testing.T) {
	acct := accountIn(0, 2)
	p := newPeers(t, 1, 2)
	raw, _ := json.Marshal(record{Status: Status{Disabled: true, Binding: Binding{AccountID: acct}}})
	_, err := p.st.PutState(context.Background(), "wh", raw, 0)
	p.g.Expect(err).NotTo(HaveOccurred())
	e := p.engines[0]
	p.upsert(p.webhook("wh", acct))
	e.Acquire(0, nextToken())
	p.g.Eventually(func() bool { return e.Owns("wh") }).Should(BeTrue())
	n := p.st.enqueue("wh", store.Note{EventSeq: p.st.putEvent([]byte(`{}`), p.t0), Created: p.t0})
	e.Arrived("wh", n)
	p.g.Eventually(func() int { return p.st.queued("wh") }).Should(BeZero())
	st, _ := e.Status("wh")
	p.g.Expect(st.Dropped).To(BeEquivalentTo(1))
	p.g.Expect(p.rxs[0].sends()).To(BeEmpty())
}

// TestNoAttemptStartsPastTheLease: once a partition's lease no longer covers new attempts (its
// owner could not renew it: another dispatcher may take it over), nothing is sent for it, whatever
// is queued, until the lease is renewed.
func TestNoAttemptStartsPastTheLease(t *testing.T) {
	p := newPeers(t, 1, 2)
	e := p.engines[0]
	acct := accountIn(0, 2)
	e.Extend(0, p.t0.Add(time.Second))
	e.Acquire(0, nextToken())
	p.upsert(p.webhook("wh", acct))
	p.g.Eventually(func() bool { return e.Owns("wh") }).Should(BeTrue())
	p.e = e
	p.queue("wh", acct, 1, p.t0)
	p.g.Eventually(func() []string { return p.rxs[0].notes("wh") }).Should(Equal([]string{"wh-1"}))

	p.at(p.t0.Add(2 * time.Second)) // the lease ran out
	p.queue("wh", acct, 2, p.t0.Add(2*time.Second))
	p.g.Consistently(func() []string { return p.rxs[0].notes("wh") }).WithTimeout(300*time.Millisecond).Should(HaveLen(1), "nothing sent past the lease")

	e.Extend(0, p.t0.Add(time.Hour)) // renewed
	p.g.Eventually(func() []string { return p.rxs[0].notes("wh") }).Should(HaveLen(3), "held back, then sent once renewed")
}

// TestTheStandbyLeaseBoundsAttemptsToo: an engine that is not partitioned (the standby mode) is
// extended by the delivery lease as partition 0, and starts nothing past it either: a process
// paused past its lease's deadline must not send before it notices and exits.
func TestTheStandbyLeaseBoundsAttemptsToo(t *testing.T) {
	r := newRig(t, Config{}, nil)
	r.e.Extend(0, r.t0.Add(time.Second))
	r.e.Upsert(r.webhook("wh", "acct"))
	r.queue("wh", "acct", 1, r.t0)
	r.g.Eventually(func() []string { return r.rx.notes("wh") }).Should(Equal([]string{"wh-1"}))

	r.at(r.t0.Add(2 * time.Second))
	r.queue("wh", "acct", 1, r.t0.Add(2*time.Second))
	r.g.Consistently(func() []string { return r.rx.notes("wh") }).WithTimeout(300*time.Millisecond).Should(HaveLen(1), "nothing sent past the lease")
	r.e.Extend(0, r.t0.Add(time.Hour))
	r.g.Eventually(func() []string { return r.rx.notes("wh") }).Should(HaveLen(2))
}

// holdEventReads makes every event read wait until the returned func is called, and waits until
// n reads are waiting or done.
func (p *peers) holdEventReads() (reading func(n int), open func()) {
	gate := make(chan struct{})
	p.st.mu.Lock()
	p.st.getting = gate
	p.st.mu.Unlock()
	reading = func(n int) {
		p.g.Eventually(func() int { p.st.mu.Lock(); defer p.st.mu.Unlock(); return p.st.gets }).Should(Equal(n))
	}
	open = func() {
		p.st.mu.Lock()
		p.st.getting = nil
		p.st.mu.Unlock()
		close(gate)
	}
	return reading, open
}

// releasedWhileReading has the first engine own partition 0 and attempt one note of webhook "wh"
// there, and gives the partition up while the attempt reads its event (Release waits for it
// only so long). The returned func lets the read go on.
func (p *peers) releasedWhileReading() (open func()) {
	a := p.engines[0]
	acct := accountIn(0, 2)
	p.upsert(p.webhook("wh", acct))
	p.takeOver(a)
	reading, open := p.holdEventReads()
	p.e = a
	p.queue("wh", acct, 1, p.t0)
	reading(1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	a.Release(ctx, 0)
	return open
}

// takeOver has e acquire partition 0 and waits until it delivers webhook "wh".
func (p *peers) takeOver(e *Engine) {
	e.Acquire(0, nextToken())
	p.g.Eventually(func() bool { return e.Owns("wh") }).Should(BeTrue())
}

// TestAnAttemptHeldBeforeSendingSendsNothingOnceThePartitionMoved: an attempt scheduled under the
// lease but held before it sends (a slow event read, the large bodies' turn) sends nothing once
// its partition was given up and taken over by another engine, or once its lease ran out
// meanwhile: only a request already sent may be repeated by the next owner.
func TestAnAttemptHeldBeforeSendingSendsNothingOnceThePartitionMoved(t *testing.T) {
	t.Run("released", func(t *testing.T) {
		p := newPeers(t, 2, 2)
		b := p.engines[1]
		open := p.releasedWhileReading()
		p.takeOver(b)
		open()
		p.g.Eventually(func() []string { return p.rxs[1].notes("wh") }).Should(Equal([]string{"wh-1"}))
		p.g.Consistently(func() []string { return p.rxs[0].notes("wh") }).WithTimeout(300*time.Millisecond).
			Should(BeEmpty(), "the old owner sends nothing once the partition moved")
	})
	t.Run("claimed again", func(t *testing.T) {
		// Given up and taken back by the same engine while the attempt reads its event: the
		// queue is claimed anew (another dispatcher may have sent its head meanwhile), and only
		// the new claim's attempt sends.
		p := newPeers(t, 1, 2)
		a := p.engines[0]
		open := p.releasedWhileReading()
		p.takeOver(a)
		open()
		p.g.Eventually(func() []string { return p.rxs[0].notes("wh") }).Should(Equal([]string{"wh-1"}))
		p.g.Consistently(func() []string { return p.rxs[0].notes("wh") }).WithTimeout(300*time.Millisecond).
			Should(HaveLen(1), "the old claim's attempt sends nothing")
	})
	t.Run("lease ran out", func(t *testing.T) {
		p := newPeers(t, 1, 2)
		e := p.engines[0]
		acct := accountIn(0, 2)
		e.Extend(0, p.t0.Add(time.Second))
		e.Acquire(0, nextToken())
		p.upsert(p.webhook("wh", acct))
		p.g.Eventually(func() bool { return e.Owns("wh") }).Should(BeTrue())
		reading, open := p.holdEventReads()
		p.e = e
		p.queue("wh", acct, 1, p.t0)
		reading(1)

		p.at(p.t0.Add(2 * time.Second)) // the lease runs out while the event is read
		open()
		p.g.Consistently(func() []string { return p.rxs[0].notes("wh") }).WithTimeout(300*time.Millisecond).
			Should(BeEmpty(), "nothing sent past the lease")
		e.Extend(0, p.t0.Add(time.Hour)) // renewed
		p.at(p.t0.Add(4 * time.Second))  // past the retry's second
		p.g.Eventually(func() []string { return p.rxs[0].notes("wh") }).Should(Equal([]string{"wh-1"}))
	})
}

// storedRecord reads uid's saved state.
func (p *peers) storedRecord(uid string) (record, uint64) {
	raw, rev, err := p.st.GetState(context.Background(), uid)
	p.g.Expect(err).NotTo(HaveOccurred())
	var rec record
	p.g.Expect(json.Unmarshal(raw, &rec)).To(Succeed())
	return rec, rev
}

// TestStateWritesAreFenced: the state an owner saves carries its partition's fencing token. A
// write of a previous owner that arrives late (its connection to NATS was lost, and the client
// sent it again after reconnecting) cannot take the state back: the new owner's next save finds
// it and writes over it. And an owner that no longer knows it lost the partition stops delivering
// the queue once it finds a later owner's state, instead of writing over it.
func TestStateWritesAreFenced(t *testing.T) {
	p := newPeers(t, 2, 2)
	a, b := p.engines[0], p.engines[1]
	acct := accountIn(0, 2)
	ctx := context.Background()
	ta := nextToken()
	a.Acquire(0, ta)
	p.upsert(p.webhook("wh", acct))
	p.g.Eventually(func() bool { return a.Owns("wh") }).Should(BeTrue())
	since := p.t0.Add(-time.Hour)
	p.g.Expect(a.NoteProblemMailed(ctx, "wh", since)).To(Succeed())
	saved, revA := p.storedRecord("wh")
	p.g.Expect(saved.Token).To(Equal(ta))

	// b takes the partition over while a, cut off, still believes it owns it.
	tb := nextToken()
	b.Acquire(0, tb)
	p.g.Eventually(func() bool { return b.Owns("wh") }).Should(BeTrue())
	// a's last save lands late, at the revision b read, before b saved anything: a stale
	// snapshot that says the webhook is auto-disabled.
	late := saved
	late.Status.Disabled = true
	raw, err := json.Marshal(late)
	p.g.Expect(err).NotTo(HaveOccurred())
	_, err = p.st.PutState(ctx, "wh", raw, revA)
	p.g.Expect(err).NotTo(HaveOccurred())

	// b's next save writes over it: the state is b's again.
	p.g.Expect(b.NoteProblemMailed(ctx, "wh", since.Add(time.Minute))).To(Succeed())
	rec, _ := p.storedRecord("wh")
	p.g.Expect(rec.Token).To(Equal(tb))
	p.g.Expect(rec.Status.Disabled).To(BeFalse(), "the late snapshot does not stay")
	p.g.Expect(b.Owns("wh")).To(BeTrue())

	// a saves again: it finds b's state, writes nothing and stops delivering the queue.
	p.g.Expect(a.NoteProblemMailed(ctx, "wh", since.Add(2*time.Minute))).To(Succeed())
	rec, _ = p.storedRecord("wh")
	p.g.Expect(rec.Token).To(Equal(tb))
	p.g.Expect(rec.Status.ProblemMailed).To(BeTemporally("==", since.Add(time.Minute)), "b's state, not a's")
	p.g.Expect(a.Owns("wh")).To(BeFalse(), "a no longer delivers a queue a later owner saved")
}

// A dispatcher that is not partitioned (the standby mode's deliverer) writes over a state it finds
// changed, whatever token it carries: a partitioned member's late write (a rollout between the
// modes) must not freeze the webhook's state for good.
func TestTheStandbyModeWritesOverALateTokenedState(t *testing.T) {
	r := newRig(t, Config{}, nil)
	ctx := context.Background()
	r.e.Upsert(r.webhook("wh", "acct"))
	since := r.t0.Add(-time.Hour)
	r.g.Expect(r.e.NoteProblemMailed(ctx, "wh", since)).To(Succeed())
	_, rev, err := r.st.GetState(ctx, "wh")
	r.g.Expect(err).NotTo(HaveOccurred())
	late, err := json.Marshal(record{Status: Status{Disabled: true}, Token: 99})
	r.g.Expect(err).NotTo(HaveOccurred())
	_, err = r.st.PutState(ctx, "wh", late, rev)
	r.g.Expect(err).NotTo(HaveOccurred())

	for i := 1; i <= 2; i++ {
		at := since.Add(time.Duration(i) * time.Minute)
		r.g.Expect(r.e.NoteProblemMailed(ctx, "wh", at)).To(Succeed())
		raw, _, err := r.st.GetState(ctx, "wh")
		r.g.Expect(err).NotTo(HaveOccurred())
		var rec record
		r.g.Expect(json.Unmarshal(raw, &rec)).To(Succeed())
		r.g.Expect(rec.Status.ProblemMailed).To(BeTemporally("==", at), "save %d", i)
		r.g.Expect(rec.Status.Disabled).To(BeFalse())
	}
}

// TestStopLetsTheAttemptsInFlightFinish: a clean stop starts nothing new, lets the attempt in flight
// finish and settles it, so whoever delivers next does not send it again (a rollout's
// duplicates); an attempt that outlasts Config.StopGrace is cancelled and stays queued.
func TestStopLetsTheAttemptsInFlightFinish(t *testing.T) {
	for _, finishes := range []bool{true, false} {
		t.Run(fmt.Sprintf("finishes=%v", finishes), func(t *testing.T) {
			r := newRig(t, Config{StopGrace: 200 * time.Millisecond}, nil)
			r.rx.hold = true
			r.e.Upsert(r.webhook("wh", "acct"))
			r.queue("wh", "acct", 2, r.t0)
			r.g.Eventually(func() int { return r.rx.inFlightOf("acct") }).Should(Equal(1))

			r.cancel()
			stopped := make(chan struct{})
			go func() { defer close(stopped); r.e.Wait() }()
			if finishes {
				r.g.Consistently(stopped).WithTimeout(100 * time.Millisecond).ShouldNot(BeClosed())
				r.rx.release()
			}
			r.g.Eventually(stopped).Should(BeClosed())
			if finishes {
				r.g.Expect(r.rx.notes("wh")).To(Equal([]string{"wh-1"}), "nothing new started")
				r.g.Expect(r.st.queued("wh")).To(Equal(1), "the delivered note is settled")
			} else {
				r.g.Expect(r.st.queued("wh")).To(Equal(2), "the cancelled attempt's note stays")
			}
		})
	}
}

// tokens hands out fencing tokens as the partitions' lease bucket does: each higher than the last.
var tokens atomic.Uint64

func nextToken() uint64 { return tokens.Add(1) }

// TestReleaseWaitsForHoldsAndRefusesNewOnes: notes stored for a queue outside the intake (a
// replay's batch, under Hold) are all stored before a partition given up is saved and its lease
// goes, so that the next owner, which reads the queue afresh, finds them; and no hold is granted
// for a partition being given up, another engine's, or one whose lease lapsed.
func TestReleaseWaitsForHoldsAndRefusesNewOnes(t *testing.T) {
	p := newPeers(t, 1, 2)
	e := p.engines[0]
	e.Acquire(0, nextToken())
	p.upsert(p.webhook("wh", accountIn(0, 2)))
	p.upsert(p.webhook("elsewhere", accountIn(1, 2)))
	p.g.Eventually(func() bool { return e.Owns("wh") }).Should(BeTrue())
	_, ok := e.Hold("elsewhere")
	p.g.Expect(ok).To(BeFalse(), "another engine's partition")
	_, ok = e.Hold("unknown")
	p.g.Expect(ok).To(BeFalse(), "a webhook the engine does not know")

	release, ok := e.Hold("wh")
	p.g.Expect(ok).To(BeTrue())
	done := make(chan struct{})
	go func() { defer close(done); e.Release(context.Background(), 0) }()
	p.g.Consistently(done).WithTimeout(200*time.Millisecond).ShouldNot(BeClosed(), "the release waits for the hold")
	_, ok = e.Hold("wh")
	p.g.Expect(ok).To(BeFalse(), "no hold for a partition being given up")
	release()
	release() // a second call changes nothing
	p.g.Eventually(done).Should(BeClosed())
	_, ok = e.Hold("wh")
	p.g.Expect(ok).To(BeFalse(), "given up")

	e.Acquire(0, nextToken())
	p.g.Eventually(func() bool { return e.Owns("wh") }).Should(BeTrue())
	e.Extend(0, p.t0.Add(time.Second))
	p.at(p.t0.Add(2 * time.Second))
	_, ok = e.Hold("wh")
	p.g.Expect(ok).To(BeFalse(), "past the lease another dispatcher may have taken the partition over")
}

// TestTheStandbyModeFindsNotesItWasNotToldOf: a dispatcher of the standby mode, like a partitioned
// one, delivers a note stored for one of its queues without its knowing (by a previous lease
// holder paused past its lease, which stored it after this one had read the queues) at its next
// recount, rather than only when another note for that webhook arrives.
func TestTheStandbyModeFindsNotesItWasNotToldOf(t *testing.T) {
	r := newRig(t, Config{}, nil)
	r.e.Upsert(r.webhook("wh", "acct"))
	raw := []byte(`{"id":"late","event":"AGREEMENT_CREATED","accountId":"acct","resource":{"type":"AGREEMENT","id":"late"},"notification":{"agreement":{"id":"late","name":"n","status":"OUT_FOR_SIGNATURE"}}}`)
	r.st.enqueue("wh", store.Note{EventSeq: r.st.putEvent(raw, r.t0), Created: r.t0}) // the engine is not told
	r.g.Consistently(func() []string { return r.rx.notes("wh") }).WithTimeout(200 * time.Millisecond).Should(BeEmpty())
	r.g.Eventually(func() []string { r.recount(); return r.rx.notes("wh") }).Should(Equal([]string{"late"}))
}

// sharedLog is one delivery log for every peer: what one appends, the others' Tail reads.
type sharedLog struct{ fakeRecorder }

func (l *sharedLog) Tail(_ context.Context, _ time.Duration, _ int, fn func(deliveries.Record)) error {
	for _, r := range l.all() {
		fn(r)
	}
	return nil
}

// TestAnAttemptFailingAfterItsPartitionMovedLeavesItsNoteToTheNextOwner: an attempt still in flight
// when its partition was given up (the release waits only so long, then cuts it, and waits for the
// cut only so long: here its transport is stuck), and failing after, is not recorded as settled,
// and the next owner sends its note again. Before, it was recorded as cancelled, as for a
// cancellation: the next owner, reading the log's newest records at its start, took the note for
// settled and removed it unsent — a notification of an Active webhook lost on a rollout.
func TestAnAttemptFailingAfterItsPartitionMovedLeavesItsNoteToTheNextOwner(t *testing.T) {
	cutWait := releaseCutWait
	releaseCutWait = 50 * time.Millisecond
	t.Cleanup(func() { releaseCutWait = cutWait })
	log := &sharedLog{}
	p := newPeers(t, 2, 2, func(c *Config) { c.Recorder = log })
	a, b := p.engines[0], p.engines[1]
	acct := accountIn(0, 2)
	p.rxs[0].hold, p.rxs[0].stuck = true, true
	p.rxs[0].setFailing("wh", true)
	p.upsert(p.webhook("wh", acct))
	p.takeOver(a)
	p.e = a
	p.queue("wh", acct, 1, p.t0)
	p.g.Eventually(func() int { return p.rxs[0].inFlightOf(acct) }).Should(Equal(1))

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	a.Release(ctx, 0) // gives up waiting for the attempt
	p.rxs[0].release()
	p.g.Eventually(func() int { return p.rxs[0].inFlightOf(acct) }).Should(BeZero())
	p.g.Consistently(func() []deliveries.Record { return log.all() }).WithTimeout(100*time.Millisecond).Should(BeEmpty(),
		"the failure after the hand-over, of a request the dispatcher cut, settles nothing")

	p.takeOver(b)
	p.e = b
	if next := p.next("wh"); !next.IsZero() {
		p.at(next)
	}
	p.g.Eventually(func() []string { return p.rxs[1].notes("wh") }).Should(Equal([]string{"wh-1"}), "sent again by the next owner")
}

// TestARebindingKeepsTheNewBindingsNotes: a queue holding notes of its namespace's old binding and,
// behind them, one of the new binding (active-active: another dispatcher already routed under it
// when this one, the owner, learnt of the change) sends nothing of the old and delivers the new.
// Before, the rebinding purged the queue up to its last note and cancelled the new binding's,
// acknowledged for an Active webhook.
func TestARebindingKeepsTheNewBindingsNotes(t *testing.T) {
	r := newRig(t, Config{}, nil)
	wh := r.webhook("wh", "acct-old")
	wh.Deliverable = false
	r.e.Upsert(wh)
	r.g.Expect(r.e.Rebind(context.Background(), "wh", Binding{AccountID: "acct-old"})).To(Succeed())
	r.queue("wh", "acct-old", 2, r.t0)
	r.queue("wh", "acct-new", 1, r.t0)

	r.g.Expect(r.e.Rebind(context.Background(), "wh", Binding{AccountID: "acct-new"})).To(Succeed())
	wh = r.webhook("wh", "acct-new")
	r.e.Upsert(wh)
	r.g.Eventually(func() int64 { return r.status("wh").Delivered }).Should(BeEquivalentTo(1))
	r.idle()
	st := r.status("wh")
	r.g.Expect(st).To(And(HaveField("Cancelled", BeEquivalentTo(2)), HaveField("Pending", BeZero())))
	r.g.Expect(r.rx.sends()).To(HaveLen(1))
	r.g.Eventually(func() int { return r.st.queued("wh") }).Should(BeZero())
}

// TestANoteArrivingForAnInactiveWebhookIsCancelled: a note another dispatcher stored for a webhook
// set INACTIVE (it routed the event before it saw the change) is cancelled, recorded so, at the
// next recount, not kept and sent once the webhook is ACTIVE again, which is a new start.
func TestANoteArrivingForAnInactiveWebhookIsCancelled(t *testing.T) {
	rec := &fakeRecorder{}
	r := newRig(t, Config{Recorder: rec}, nil)
	wh := r.webhook("wh", "acct")
	wh.Deliverable, wh.Inactive = false, true
	r.e.Upsert(wh)
	raw := []byte(`{"id":"late","event":"AGREEMENT_CREATED","accountId":"acct","resource":{"type":"AGREEMENT","id":"late"},"notification":{"agreement":{"id":"late","name":"n","status":"OUT_FOR_SIGNATURE"}}}`)
	r.e.Arrived("wh", r.st.enqueue("wh", store.Note{EventSeq: r.st.putEvent(raw, r.t0), Created: r.t0}))

	r.g.Eventually(func() int { r.recount(); return r.st.queued("wh") }).Should(BeZero())
	r.g.Expect(rec.all()).To(ConsistOf(MatchFields(IgnoreExtras, Fields{
		"Kind": Equal(deliveries.KindCancelled), "State": Equal(deliveries.StateCancelled), "Reason": Equal(ReasonInactive), "EventID": Equal("late"),
	})))

	wh.Deliverable, wh.Inactive = true, false
	r.e.Upsert(wh)
	r.g.Consistently(func() []string { return r.rx.notes("wh") }).WithTimeout(300 * time.Millisecond).Should(BeEmpty())
}

// recount moves the clock on by a recount interval (the loader's timer may have been set after the
// clock last moved, so a test steps until what it waits for happens).
func (r *rig) recount() { r.at(r.clk.Now().Add(recountInterval)) }

// TestARecountDoesNotCountAnAutoDisablesNotesAgain: the notes an auto-disable recorded as dropped
// with the queue wait for the acker's purge; a recount meanwhile does not count and record them a
// second time, as lost.
func TestARecountDoesNotCountAnAutoDisablesNotesAgain(t *testing.T) {
	r, rec, disable := disablingRig(t, 0)
	open := r.st.holdRemovals(t) // the purge waits
	disable()
	r.g.Eventually(func() int { return len(rec.all()) }).Should(Equal(3)) // one attempt, two dropped with the queue
	r.g.Expect(r.status("wh").Dropped).To(BeEquivalentTo(3))
	r.g.Consistently(func() int { r.recount(); return len(rec.all()) }).WithTimeout(300*time.Millisecond).Should(Equal(3), "%+v", rec.all())
	r.g.Expect(r.status("wh").Dropped).To(BeEquivalentTo(3))
	open()
	r.g.Eventually(func() int { return r.st.queued("wh") }).Should(BeZero())
}

// TestARecountsCancellationSparesAWebhookActiveAgain: a recount decides to cancel an INACTIVE
// webhook's stored notes, and the cancellation runs a moment later; it cancels only if the webhook
// is still INACTIVE then: set ACTIVE meanwhile, the webhook keeps what was queued since (new events
// of an Active webhook).
func TestARecountsCancellationSparesAWebhookActiveAgain(t *testing.T) {
	rec := &fakeRecorder{}
	r := newRig(t, Config{Recorder: rec}, nil)
	wh := r.webhook("wh", "acct")
	wh.Deliverable, wh.Inactive = false, true
	r.e.Upsert(wh)
	r.queue("wh", "acct", 1, r.t0)
	r.g.Expect(r.e.cancel(context.Background(), "wh", true)).To(Succeed())
	r.g.Expect(r.st.queued("wh")).To(BeZero(), "still INACTIVE: cancelled")
	r.g.Expect(rec.all()).To(HaveLen(1))

	wh.Inactive = false // ACTIVE again (held: nothing is sent meanwhile)
	r.e.Upsert(wh)
	r.queue("wh", "acct", 1, r.t0)
	r.g.Expect(r.e.cancel(context.Background(), "wh", true)).To(Succeed())
	r.g.Expect(r.st.queued("wh")).To(Equal(1), "ACTIVE again: kept")
	r.g.Expect(rec.all()).To(HaveLen(1))
}

// TestReleaseWaitsForACancellation: a partition given up while one of its queues is being cancelled
// (its notes recorded and removed) is let go once the cancellation is over, not before (the next
// owner would load notes about to be removed) and not only at its deadline.
func TestReleaseWaitsForACancellation(t *testing.T) {
	p := newPeers(t, 1, 2)
	e := p.engines[0]
	acct := accountIn(0, 2)
	wh := p.webhook("wh", acct)
	wh.Deliverable = false // held: nothing is sent meanwhile
	p.upsert(wh)
	p.takeOver(e)
	p.e = e
	p.queue("wh", acct, 1, p.t0)
	open := p.st.holdRemovals(t) // the purge waits
	cancelled := make(chan error, 1)
	go func() { cancelled <- e.Cancel(context.Background(), "wh") }()
	p.g.Eventually(func() int64 { st, _ := e.Status("wh"); return st.Cancelled }).Should(BeEquivalentTo(1))

	released := make(chan struct{})
	go func() { defer close(released); e.Release(context.Background(), 0) }()
	p.g.Consistently(released).WithTimeout(200 * time.Millisecond).ShouldNot(BeClosed())
	open()
	p.g.Eventually(cancelled).Should(Receive(BeNil()))
	p.g.Eventually(released).Should(BeClosed())
}

// TestAnAutoDisableThatCouldNotRecordSendsNothingItDropped: when the log cannot store what an
// auto-disable dropped, the loader records the rest as lost (in order) before the webhook may be
// reactivated (Reactivate answers ErrCancelling meanwhile: the Syncer tries again); a reactivation
// then never sends what was counted as dropped. Before, it was reactivated at once and the next
// recount sent the dropped notes.
func TestAnAutoDisableThatCouldNotRecordSendsNothingItDropped(t *testing.T) {
	r, rec, disable := disablingRig(t, 1) // a read-ahead of one: the dropped notes are in the store only
	rec.failing.Store(true)               // the log cannot store the drop's records
	disable()
	rec.failing.Store(false)
	r.g.Eventually(func() error { _, err := r.e.Reactivate(context.Background(), "wh", "again"); return err }).Should(Succeed())
	r.rx.setFailing("wh", false)
	r.g.Consistently(func() []string { r.recount(); return r.rx.notes("wh") }).WithTimeout(300*time.Millisecond).
		Should(Equal([]string{"wh-1"}), "only the attempt that failed")
}

// TestAnUnrecordedAutoDisableIsFinishedEvenOnceItsNotesAreGone: the store failing both the
// recording of an auto-disable and the loader's loss of the rest, and the queue's notes gone
// meanwhile, the next recount still finishes it: the webhook can be reactivated, not refused for
// good (the Syncer would ask every second).
func TestAnUnrecordedAutoDisableIsFinishedEvenOnceItsNotesAreGone(t *testing.T) {
	r, _, disable := disablingRig(t, 1)
	var once sync.Once
	r.st.mu.Lock()
	r.st.loaded = func(string) { // after the head's load: the recording's and the loader's reads fail
		once.Do(func() { r.st.mu.Lock(); r.st.loadErr = errors.New("store unavailable"); r.st.mu.Unlock() })
	}
	r.st.mu.Unlock()
	disable()
	r.g.Eventually(func() error { _, err := r.e.Reactivate(context.Background(), "wh", "again"); return err }).Should(MatchError(ErrCancelling))

	r.st.mu.Lock()
	r.st.loadErr = nil
	delete(r.st.notes, "wh") // gone meanwhile (retention, a purge)
	r.st.mu.Unlock()
	r.g.Eventually(func() error {
		r.recount()
		_, err := r.e.Reactivate(context.Background(), "wh", "again")
		return err
	}).Should(Succeed())
}

// disablingRig is a rig whose webhook "wh" (account "acc", never delivered, its receiver failing, no
// retries) holds three queued notes, not sent yet; disable makes it deliverable, so that the first
// drop auto-disables it, and waits until it has. memQueue is the read-ahead (0: the default).
func disablingRig(t *testing.T, memQueue int) (r *rig, rec *fakeRecorder, disable func()) {
	policy := DefaultPolicy()
	policy.MaxRetries = 0
	rec = &fakeRecorder{}
	r = newRig(t, Config{Policy: policy, Recorder: rec, MemQueue: memQueue}, nil)
	r.rx.setFailing("wh", true)
	wh := r.webhook("wh", "acc")
	wh.LastVerified = time.Time{} // never delivered: the first drop disables
	wh.Deliverable = false
	r.e.Upsert(wh)
	r.queue("wh", "acc", 3, r.t0)
	return r, rec, func() {
		wh.Deliverable = true
		r.e.Upsert(wh)
		r.g.Eventually(func() bool { return r.status("wh").Disabled }).Should(BeTrue())
	}
}

// TestACancellationLeavesWhatItCouldNotReadQueued: a cancellation records the queue's notes from the
// store's index, which may not show yet a note another dispatcher stored a moment ago; it removes
// only what it recorded, and the next recount cancels the rest once it shows. Before, the queue
// was removed up to its last note, and that note left with no record after its 202.
func TestACancellationLeavesWhatItCouldNotReadQueued(t *testing.T) {
	rec := &fakeRecorder{}
	r := newRig(t, Config{Recorder: rec, MemQueue: 1}, nil)
	wh := r.webhook("wh", "acct")
	wh.Deliverable, wh.Inactive = false, true
	r.e.Upsert(wh)
	r.queue("wh", "acct", 3, r.t0)
	last, _ := r.st.LastNoteSeq(context.Background(), "wh")
	r.st.lag(last)
	r.g.Expect(r.e.Cancel(context.Background(), "wh")).To(Succeed())
	r.g.Expect(rec.all()).To(HaveLen(2))
	r.g.Expect(r.st.queued("wh")).To(Equal(1), "what it could not read stays queued")

	r.st.lag(0)
	r.g.Eventually(func() int { r.recount(); return r.st.queued("wh") }).Should(BeZero())
	r.g.Expect(rec.all()).To(HaveLen(3))
	r.g.Expect(rec.all()[2]).To(And(HaveField("State", deliveries.StateCancelled), HaveField("EventSeq", rec.all()[1].EventSeq+1)))
}

// TestAnAutoDisableLeavesWhatItCouldNotReadToTheLoader: an auto-disable that could not read all its
// queue from the store's index records and removes what it read; the loader records the rest as
// lost once it shows, and the webhook may be reactivated only then.
func TestAnAutoDisableLeavesWhatItCouldNotReadToTheLoader(t *testing.T) {
	r, rec, disable := disablingRig(t, 1)
	last, _ := r.st.LastNoteSeq(context.Background(), "wh")
	r.st.lag(last)
	disable()
	r.g.Eventually(func() int { return len(rec.all()) }).Should(Equal(2)) // the attempt, the second note dropped
	r.g.Eventually(func() int { return r.st.queued("wh") }).Should(Equal(1), "what it could not read stays queued")
	_, err := r.e.Reactivate(context.Background(), "wh", "again")
	r.g.Expect(err).To(MatchError(ErrCancelling), "not before the rest is on record")

	r.g.Consistently(func() error { r.recount(); _, err := r.e.Reactivate(context.Background(), "wh", "again"); return err }).
		WithTimeout(200*time.Millisecond).Should(MatchError(ErrCancelling), "nor while the index does not show it")

	r.st.lag(0)
	r.g.Eventually(func() int { r.recount(); return r.st.queued("wh") }).Should(BeZero())
	r.g.Expect(rec.all()).To(HaveLen(3))
	r.g.Expect(rec.all()[2].State).To(Equal(deliveries.StateLost))
	r.g.Eventually(func() error { _, err := r.e.Reactivate(context.Background(), "wh", "again"); return err }).Should(Succeed())
}

// TestNothingOfAnotherBindingIsSentFromStaleState: a queue whose saved binding is the namespace's
// old one (active-active: the rebinding moved the webhook's partition, and its new owner loaded
// the state its previous owner saved before the change; its own Rebind comes after the load)
// sends nothing of the old binding under the new one: the notes are withdrawn at the head, on
// record. Before, they passed the check against the saved binding and were sent.
func TestNothingOfAnotherBindingIsSentFromStaleState(t *testing.T) {
	rec := &fakeRecorder{}
	r := newRig(t, Config{Recorder: rec}, nil)
	wh := r.webhook("wh", "acct-old")
	wh.Deliverable = false
	r.e.Upsert(wh)
	r.g.Expect(r.e.Rebind(context.Background(), "wh", Binding{AccountID: "acct-old"})).To(Succeed())
	r.queue("wh", "acct-old", 2, r.t0)
	r.queue("wh", "acct-new", 1, r.t0) // stored by a dispatcher already routing under the new binding

	moved := r.webhook("wh", "acct-new") // the Syncer's view: the namespace is bound to acct-new now
	r.e.Upsert(moved)
	r.g.Eventually(func() int64 { return r.status("wh").Delivered }).Should(BeEquivalentTo(1), "the new binding's note")
	r.idle()
	r.g.Expect(r.rx.sends()).To(HaveLen(1))
	r.g.Expect(r.status("wh").Cancelled).To(BeEquivalentTo(2))
	var cancelled []deliveries.Record
	for _, c := range rec.all() {
		if c.State == deliveries.StateCancelled {
			cancelled = append(cancelled, c)
		}
	}
	r.g.Expect(cancelled).To(HaveLen(2))
	for _, c := range cancelled {
		r.g.Expect(c.Reason).To(Equal(ReasonRebound))
		r.g.Expect(c.Message).To(ContainSubstring("account acct-new"))
	}
}

// TestARebindingWhileAnAttemptReadsItsEventSendsNothingOfTheOld: an attempt checks its event's
// binding before it waits (the event's read, a large body's turn) and again just before sending: a
// Rebind meanwhile cancels it unsent. Before, a rebinding cancelled the queue (its epoch moved on)
// and the attempt found out; without that, it sent the old account's event under the new binding.
func TestARebindingWhileAnAttemptReadsItsEventSendsNothingOfTheOld(t *testing.T) {
	r, gate := readingUnderTheOldBinding(t, "acct-old")

	r.g.Expect(r.e.Rebind(context.Background(), "wh", Binding{AccountID: "acct-new"})).To(Succeed())
	r.e.Upsert(r.webhook("wh", "acct-new"))
	close(gate)
	r.g.Eventually(func() int64 { return r.status("wh").Cancelled }).Should(BeEquivalentTo(1))
	r.idle()
	r.g.Expect(r.rx.sends()).To(BeEmpty())
}

// TestARebindingWhileItsStateIsSavedSendsNothingOfTheOld: a Rebind records the namespace's new
// binding for the check before sending at once, not only once its state is saved (a store round
// trip): an attempt reading its event meanwhile cancels the old binding's event unsent.
func TestARebindingWhileItsStateIsSavedSendsNothingOfTheOld(t *testing.T) {
	r, reading := readingUnderTheOldBinding(t, "acct-old")
	saving := make(chan struct{})

	r.st.mu.Lock()
	r.st.putting = saving
	r.st.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- r.e.Rebind(context.Background(), "wh", Binding{AccountID: "acct-new"}) }()
	r.g.Eventually(func() Binding { return r.status("wh").Binding }).Should(Equal(Binding{AccountID: "acct-new"})) // saving
	close(reading)
	r.g.Eventually(func() int64 { return r.status("wh").Cancelled }).Should(BeEquivalentTo(1))
	r.g.Expect(r.rx.sends()).To(BeEmpty())
	close(saving)
	r.g.Eventually(done).Should(Receive(BeNil()))
}

// TestARebindingWhileAnAttemptReadsItsEventKeepsTheNewBindingsNote: an attempt that began under the
// old binding, reading the event of a note of the new one (stored by a dispatcher that saw the
// change first), sends it once the Rebind came meanwhile, instead of cancelling it as another
// binding's after its 202.
func TestARebindingWhileAnAttemptReadsItsEventKeepsTheNewBindingsNote(t *testing.T) {
	r, reading := readingUnderTheOldBinding(t, "acct-new")

	r.g.Expect(r.e.Rebind(context.Background(), "wh", Binding{AccountID: "acct-new"})).To(Succeed())
	r.e.Upsert(r.webhook("wh", "acct-new"))
	close(reading)
	r.g.Eventually(func() int64 { return r.status("wh").Delivered }).Should(BeEquivalentTo(1))
	r.g.Expect(r.status("wh").Cancelled).To(BeZero())
}

// TestRecordsOfAReboundQueueNameTheirEventsAccount: a queue cancelled after its namespace was rebound
// may still hold the previous binding's notes; their records carry the notification id of their
// event's account (the id the receiver would have seen), not the new account's.
func TestRecordsOfAReboundQueueNameTheirEventsAccount(t *testing.T) {
	rec := &fakeRecorder{}
	r := newRig(t, Config{Recorder: rec}, nil)
	wh := r.webhook("wh", "acct-old")
	wh.Deliverable = false
	r.e.Upsert(wh)
	r.g.Expect(r.e.Rebind(context.Background(), "wh", Binding{AccountID: "acct-old"})).To(Succeed())
	seq := r.st.putEvent([]byte(`{"id":"e1","event":"AGREEMENT_CREATED","accountId":"acct-old","resource":{"type":"AGREEMENT","id":"x"},"notification":{"agreement":{"id":"x"}}}`), r.t0)
	r.e.Enqueue("wh", r.st.enqueue("wh", store.Note{EventSeq: seq, Created: r.t0, EventID: "e1", EventName: "AGREEMENT_CREATED"}))

	r.g.Expect(r.e.Rebind(context.Background(), "wh", Binding{AccountID: "acct-new"})).To(Succeed())
	moved := r.webhook("wh", "acct-new")
	moved.Deliverable, moved.Inactive = false, true
	r.e.Upsert(moved)
	r.g.Expect(r.e.Cancel(context.Background(), "wh")).To(Succeed())
	r.g.Expect(rec.all()).To(HaveLen(1))
	r.g.Expect(rec.all()[0].NotificationID).To(Equal(payload.NotificationID("wh", "acct-old", "e1")))
}

// readingUnderTheOldBinding is a rig whose webhook "wh", bound to acct-old, has an attempt of a note
// of an event of account held in the event's read; closing reading lets the read go on.
func readingUnderTheOldBinding(t *testing.T, account string) (r *rig, reading chan struct{}) {
	r = newRig(t, Config{}, nil)
	r.e.Upsert(r.webhook("wh", "acct-old"))
	r.g.Expect(r.e.Rebind(context.Background(), "wh", Binding{AccountID: "acct-old"})).To(Succeed())
	reading = make(chan struct{})
	r.st.mu.Lock()
	r.st.getting = reading
	r.st.mu.Unlock()
	r.queue("wh", account, 1, r.t0)
	r.g.Eventually(func() int { r.st.mu.Lock(); defer r.st.mu.Unlock(); return r.st.gets }).Should(Equal(1))
	return r, reading
}

// TestAWebhookDeletedWhileItsQueueLoadsLeavesNothingStored: a webhook deleted while the partition's
// new owner reads its queue's state (it took the partition over a moment ago) has its stored
// notes and state removed, as when its queue is delivered. Remove took a loading queue for another
// dispatcher's and left both in the store, where nobody would remove them.
func TestAWebhookDeletedWhileItsQueueLoadsLeavesNothingStored(t *testing.T) {
	const parts = 4
	r := newRig(t, Config{Partitions: parts}, nil)
	r.e.Upsert(r.webhook("wh", "acct-a"))
	r.queue("wh", "acct-a", 2, r.t0)
	_, err := r.st.PutState(context.Background(), "wh", []byte(`{"status":{"delivered":3}}`), 0)
	r.g.Expect(err).NotTo(HaveOccurred())
	reading := make(chan struct{})
	r.st.mu.Lock()
	r.st.stating = reading
	r.st.mu.Unlock()

	r.e.Acquire(partition.Of("acct-a", parts), 1)
	r.g.Eventually(func() int { r.st.mu.Lock(); defer r.st.mu.Unlock(); return r.st.states }).Should(Equal(1))
	r.g.Expect(r.e.Remove(context.Background(), "wh")).To(Succeed())
	close(reading)
	r.g.Expect(r.st.queued("wh")).To(BeZero(), "its notes")
	saved, _ := r.st.saved("wh")
	r.g.Expect(saved.Status.Delivered).To(BeZero(), "its state")
	r.idle()
	r.g.Expect(r.rx.sends()).To(BeEmpty())
	r.g.Expect(r.e.Known()).NotTo(ContainElement("wh"))
}
