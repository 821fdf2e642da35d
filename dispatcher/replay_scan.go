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

package dispatcher

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/hookline/hookline/internal/deliveries"
	"github.com/hookline/hookline/internal/keyrate"
)

// logRead is what one replay asks of the delivery log: its webhook's records from since on, each
// handed to fold. err is set once the read is done.
type logRead struct {
	uid   string
	since time.Time
	fold  func(deliveries.Record)
	// sel is the replay's selection the read feeds (nil when it only counts the replay's own
	// deliveries, after a restart).
	sel *selector
	// paid says that the namespace's budget was charged for this read already (prepay): it is
	// made with the next read, whatever the budget says then.
	paid bool

	done bool
	err  error
	// heldUntil is when the read may be made, while its namespace's budget is spent (zero
	// otherwise).
	heldUntil time.Time
	// counted is how many notifications its selection holds against the room all selections
	// share (replayReads.room); deferred says that it found none left, and waits to be read again
	// until the selections before it are released. answered is when it was done.
	counted  int
	deferred bool
	answered time.Time
}

// replayReads reads the delivery log for replays in batches: the log interleaves every
// webhook's records, and the server walks all of them for any one webhook's, so a hundred replays
// each reading their own would cost a hundred walks. A replay asks (ask) and comes back for the
// answer (take); asks that come within one gathering interval are answered by one read of all
// their webhooks (ScanMany), after which each asking replay is woken.
//
// Each read walks the log from the earliest start asked, every tenant's records, and a tenant may
// create replays one after another: each namespace has a budget of reads (budget), and the asks
// of a namespace that spent it wait for its next read, while the other namespaces' are answered.
type replayReads struct {
	log    ReplayLog
	clock  clock.PassiveClock
	gather time.Duration
	wake   func(types.NamespacedName)
	// observe receives how long each read took.
	observe func(time.Duration)
	budget  *readBudget

	// gated says that reads were held back for the room's sake at the last pick: a release (or an
	// answer that leaves the room empty) kicks the loop again for them.
	gated bool
	// room bounds the notifications every answered selection holds together, from the read until
	// the replay has queued them (release), or its read is dropped: a tenant's replays (or many
	// tenants') could otherwise keep selections of up to MaxSelection each in memory, answered and
	// never taken (a replay made to wait for its Webhook), until the dispatcher every tenant
	// shares ran out of it. 0: unbounded. inRoom counts them.
	room int

	mu     sync.Mutex
	inRoom int
	reads  map[types.NamespacedName]*logRead
	// credit holds, per namespace, reads paid for work that failed (prepay's refund).
	credit map[string]int
	kick   chan struct{}
	// deferred kicks the reads again when the earliest held-back namespace has a read again;
	// deferredAt is when.
	deferred   *time.Timer
	deferredAt time.Time
}

func newReplayReads(log ReplayLog, clk clock.PassiveClock, gather time.Duration, wake func(types.NamespacedName), observe func(time.Duration), budget *readBudget) *replayReads {
	return &replayReads{log: log, clock: clk, gather: gather, wake: wake, observe: observe, budget: budget,
		reads: map[types.NamespacedName]*logRead{}, credit: map[string]int{}, kick: make(chan struct{}, 1)}
}

// Defaults of a namespace's budget of log reads for replays: five at once, then one per 30 s.
const (
	DefaultReplayLogReadsPerMinute = 2
	DefaultReplayLogReadBurst      = 5
)

// readBudget is each namespace's budget of log reads: a burst at once, then so many a minute.
type readBudget struct{ limiters *keyrate.Limiters }

// newReadBudget is a budget of burst reads at once, then perMinute (both above 0: the replayer
// resolves the defaults).
func newReadBudget(perMinute float64, burst int) *readBudget {
	// Idle long enough to be full again, a namespace's limiter is forgotten: that changes nothing.
	full := time.Duration(float64(burst)/perMinute*float64(time.Minute)) + time.Minute
	return &readBudget{limiters: keyrate.New(rate.Limit(perMinute/60), burst, full, 4096)}
}

// take spends one of namespace's reads at now, or says how long until it has one.
func (b *readBudget) take(namespace string, now time.Time) (ok bool, wait time.Duration) {
	if b == nil {
		return true, 0
	}
	lim := b.limiters.Get(namespace)
	if lim.AllowN(now, 1) {
		return true, 0
	}
	r := lim.ReserveN(now, 1)
	wait = r.DelayFrom(now)
	r.CancelAt(now)
	return false, wait
}

// heldTill is when a read held for wait from now may be made, in whole seconds: a replay's status
// says when, and is written again only when that changes.
func heldTill(now time.Time, wait time.Duration) time.Time {
	return now.Add(wait).Truncate(time.Second).Add(time.Second)
}

// prepay charges namespace's budget for one read now, for work that comes before the read and
// costs as much (a replay's scan of its webhook's queue); the read then asked with paid set
// costs nothing more, and refund gives the read back if the work failed (the next prepay of the
// namespace takes it). When the budget is spent it charges nothing and says when it has a read
// again.
func (b *replayReads) prepay(namespace string) (ok bool, heldUntil time.Time, refund func()) {
	// Under the lock, as answer's charges: one namespace's charges never overlap.
	b.mu.Lock()
	defer b.mu.Unlock()
	refund = func() {
		b.mu.Lock()
		b.credit[namespace]++
		b.mu.Unlock()
	}
	if b.credit[namespace] > 0 {
		if b.credit[namespace]--; b.credit[namespace] == 0 {
			delete(b.credit, namespace)
		}
		return true, time.Time{}, refund
	}
	now := time.Now() // a budget of real work, as answer's
	ok, wait := b.budget.take(namespace, now)
	if !ok {
		return false, heldTill(now, wait), nil
	}
	return true, time.Time{}, refund
}

// ask queues rd for key unless key has a read queued or answered already.
func (b *replayReads) ask(key types.NamespacedName, rd *logRead) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reads[key] != nil {
		return
	}
	b.reads[key] = rd
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// take returns key's answered read and forgets it; ok is false while there is none (asked is
// then whether one is queued).
func (b *replayReads) take(key types.NamespacedName) (rd *logRead, ok, asked bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rd = b.reads[key]
	if rd == nil || !rd.done {
		return nil, false, rd != nil
	}
	delete(b.reads, key)
	return rd, true, true
}

// held returns when key's queued read may be made, while its namespace has spent its budget
// (zero otherwise).
func (b *replayReads) held(key types.NamespacedName) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if rd := b.reads[key]; rd != nil && !rd.done {
		return rd.heldUntil
	}
	return time.Time{}
}

// drop forgets key's read (the replay was deleted, or waits for its Webhook), and releases its
// selection.
func (b *replayReads) drop(key types.NamespacedName) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if rd := b.reads[key]; rd != nil {
		delete(b.reads, key)
		b.releaseLocked(rd)
	}
}

// release gives back the room rd's selection held: its replay has queued it (or given it up).
func (b *replayReads) release(rd *logRead) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.releaseLocked(rd)
}

func (b *replayReads) releaseLocked(rd *logRead) {
	if rd.counted == 0 {
		return
	}
	b.inRoom -= rd.counted
	rd.counted = 0
	if b.gated {
		b.kickLocked() // reads held back for the room's sake may go now
	}
}

// kickLocked wakes the reads' loop without waiting.
func (b *replayReads) kickLocked() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// selecting reports whether rd fills a selection (and takes room); a count does not.
func (rd *logRead) selecting() bool { return rd.sel != nil && rd.sel.selecting }

// grow counts delta more notifications of rd's selection against the room; false refuses a
// growth beyond it.
func (b *replayReads) grow(rd *logRead, delta int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	// A selection alone in the room may fill it past its bound (up to its own, MaxSelection): one
	// deferred alone would be deferred again, and read again, for ever.
	if delta > 0 && b.room > 0 && b.inRoom+delta > b.room && b.inRoom != rd.counted {
		return false
	}
	b.inRoom += delta
	rd.counted += delta
	return true
}

// answeredFor is how long an answered read waits for its replay to take it: one that does not come
// back for it (its Webhook no longer delivered here, or a reconcile that keeps failing) does not
// keep its selection.
const answeredFor = time.Minute

// expire drops the answered reads not taken within answeredFor; their replays read again.
func (b *replayReads) expire(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for key, rd := range b.reads {
		if rd.done && now.Sub(rd.answered) > answeredFor {
			delete(b.reads, key)
			b.releaseLocked(rd)
		}
	}
}

// Start answers the asks until ctx ends (a manager Runnable).
func (b *replayReads) Start(ctx context.Context) error {
	tick := time.NewTicker(answeredFor / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			b.expire(b.clock.Now())
			continue
		case <-b.kick:
		}
		// The replays created together (kubectl apply of a directory) ask within about one
		// interval: read for all of them at once. A hundred of them start a few at a time (each
		// after an API round trip), so while asks keep coming the read waits a little longer,
		// a quarter interval at a time, up to gatherMax intervals: each read walks the log.
		if !b.gathered(ctx) {
			return nil
		}
		b.answer(ctx)
	}
}

// gatherMax bounds, in gathering intervals, how long asks that keep coming delay a read.
const gatherMax = 5

// gathered waits for the asks that come with the first one: one interval, then a quarter
// interval more at a time while asks still came in the last wait, at most gatherMax intervals in
// all. It reports false when ctx ended.
func (b *replayReads) gathered(ctx context.Context) bool {
	end := time.Now().Add(gatherMax * b.gather)
	wait := b.gather
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		select {
		case <-b.kick:
			// Asked meanwhile: more may follow.
			wait = b.gather / 4
			if time.Until(end) < wait {
				return true
			}
		default:
			return true
		}
	}
}

// answer reads the log once for every queued ask of a namespace with reads left in its budget,
// and wakes the replays that asked.
func (b *replayReads) answer(ctx context.Context) {
	b.mu.Lock()
	batch := b.pickLocked(time.Now()) // a budget of real work, whatever clock the replays keep
	b.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	err := b.read(ctx, batch)
	b.mu.Lock()
	answered := b.clock.Now()
	for key, rd := range batch {
		if b.reads[key] != rd {
			b.releaseLocked(rd)
			delete(batch, key) // dropped meanwhile
			continue
		}
		if err == nil && rd.sel != nil && rd.sel.deferred {
			// No room: read again once the selections before it are released, at no new
			// charge to its namespace.
			rd.sel.reset()
			rd.deferred, rd.paid = true, true
			b.gated = true // a release kicks the loop for it
			delete(batch, key)
			continue
		}
		rd.done, rd.err, rd.answered = true, err, answered
	}
	if b.inRoom == 0 {
		for _, rd := range b.reads {
			if rd.deferred && !rd.done {
				b.kickLocked() // deferred with nothing left holding the room: read them now
				break
			}
		}
	}
	b.mu.Unlock()
	for key := range batch {
		b.wake(key)
	}
}

// pickLocked returns the queued reads to make now: those of the namespaces with reads left in
// their budget (charged here), or, while any waits for room, only those once no selection holds
// any (each such batch completes at least one of them: whichever is deferred gives its room to
// the others). It arranges a kick for when the earliest namespace held back has a read again.
func (b *replayReads) pickLocked(now time.Time) map[types.NamespacedName]*logRead {
	batch := map[types.NamespacedName]*logRead{}
	deferred := false
	for _, rd := range b.reads {
		deferred = deferred || rd.deferred && !rd.done
	}
	b.gated = false
	allowed := map[string]bool{}
	heldUntil := map[string]time.Time{}
	var later time.Duration
	for key, rd := range b.reads {
		if rd.done {
			continue
		}
		// Counts take no room and always go; selections wait behind a deferred one, which goes
		// alone once the room is empty (released selections kick again).
		if deferred && rd.selecting() && (!rd.deferred || b.inRoom > 0) {
			b.gated = true
			continue
		}
		if rd.paid {
			rd.heldUntil, rd.deferred = time.Time{}, false
			batch[key] = rd
			continue
		}
		ok, seen := allowed[key.Namespace]
		if !seen {
			var wait time.Duration
			ok, wait = b.budget.take(key.Namespace, now)
			allowed[key.Namespace] = ok
			if !ok {
				heldUntil[key.Namespace] = heldTill(now, wait)
				if later == 0 || wait < later {
					later = wait
				}
			}
		}
		rd.heldUntil = heldUntil[key.Namespace]
		if ok {
			batch[key] = rd
		}
	}
	if at := now.Add(later); later > 0 && (b.deferred == nil || at.Before(b.deferredAt) || !now.Before(b.deferredAt)) {
		if b.deferred != nil {
			b.deferred.Stop()
		}
		b.deferredAt = at
		b.deferred = time.AfterFunc(later, func() {
			select {
			case b.kick <- struct{}{}:
			default:
			}
		})
	}
	return batch
}

// read reads the log once for every read of batch, each selection counted against the room.
func (b *replayReads) read(ctx context.Context, batch map[types.NamespacedName]*logRead) error {
	byUID := map[string][]*logRead{}
	var since time.Time
	first := true
	for _, rd := range batch {
		if rd.selecting() && b.room > 0 {
			rd.sel.room = func(delta int) bool { return b.grow(rd, delta) }
		}
		byUID[rd.uid] = append(byUID[rd.uid], rd)
		if first || rd.since.Before(since) {
			since, first = rd.since, false
		}
	}
	uids := make([]string, 0, len(byUID))
	for uid := range byUID {
		uids = append(uids, uid)
	}
	start := b.clock.Now()
	// Every record appended before the read is in it: a tally begun before the ask misses none.
	err := b.log.Barrier(ctx)
	if err == nil {
		// Reading from the earliest start hands a replay records older than it asked for: its
		// selection keeps the newest record of each notification, which they do not change.
		err = b.log.ScanMany(ctx, uids, since, func(rec deliveries.Record) error {
			for _, rd := range byUID[rec.WebhookUID] {
				rd.fold(rec)
			}
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("reading the delivery log: %w", err)
	}
	if b.observe != nil {
		b.observe(b.clock.Since(start))
	}
	return nil
}
