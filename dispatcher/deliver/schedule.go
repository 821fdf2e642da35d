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

// Scheduling: which queue may send next. One notification in flight per webhook (a failing head
// holds back only its own queue), at most Config.AccountConcurrency per account, the namespaces of
// one account taking turns, then their webhooks, and a timer heap for heads waiting for their retry. Everything here runs
// under Engine.mu and decides only *when*; attempt.go decides what happens when it is time.

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/hookline/hookline/dispatcher/store"
)

// account is one account's deliveries: the slots it uses (Config.AccountConcurrency at most) and
// its webhooks waiting for one. Namespaces bound to one account take turns first, then the
// webhooks of a namespace: one namespace's many webhooks, each answering just before the timeout,
// held every slot for as long as it liked, and another namespace of the account waited behind
// all of them.
type account struct {
	inFlight int
	// lines are the waiting webhooks of each namespace; turns the namespaces with one waiting, in
	// the order they take turns.
	lines map[string]*line
	turns []*line
}

// line is one namespace's webhooks waiting for a slot of their account, in turn order.
type line struct {
	acc     *account
	ns      string
	waiting []*queue
}

// drop forgets l, whose last webhook left it.
func (acc *account) drop(l *line) {
	delete(acc.lines, l.ns)
	for i, t := range acc.turns {
		if t == l {
			acc.turns = append(acc.turns[:i], acc.turns[i+1:]...)
			return
		}
	}
}

// Recheck tells the engine that uid's store queue may hold notes it was not told about (a batch
// whose storing failed part-way: some notes are stored, which ones is unknown): the queue reads the
// store until it is drained, whatever its pending count says.
func (e *Engine) Recheck(uid string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queues[uid]
	if q == nil || q.removed {
		return
	}
	q.inStore = true
	q.storeGen++
	e.scheduleLocked(q)
}

// Enqueue takes in a note just stored for uid.
// Partitioned, a note for a queue another engine delivers is announced to it (Config.Announce).
func (e *Engine) Enqueue(uid string, n store.Note) {
	changed, elsewhere, part := e.enqueueLocked(uid, n)
	if changed {
		e.onChange(uid, false)
	}
	if elsewhere && e.cfg.Announce != nil {
		e.cfg.Announce(part, uid, n)
	}
}

func (e *Engine) enqueueLocked(uid string, n store.Note) (changed, elsewhere bool, part int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queues[uid]
	if q == nil || q.removed {
		return false, false, 0 // deleted meanwhile; the store queue is removed with it
	}
	switch q.own {
	case ownActive:
	case ownLoading:
		// The load may have counted the store before this note: make sure it is read.
		q.inStore = true
		q.storeGen++
		return false, false, 0
	default:
		return false, true, q.part
	}
	q.status.Pending++
	q.dirty = true
	if n.Seq > q.loadedUpTo {
		q.inStore = true
		q.storeGen++
	}
	e.scheduleLocked(q)
	return true, false, 0
}

// hasWork reports whether q may hold a notification to send. The pending count is an estimate (a
// note can be loaded and settled before the Enqueue that counts it, and counts are restored from
// the store at start): it never stops a queue that memory or the store still holds notes for, or
// those notes would be stranded until the next Enqueue — and for good when none comes.
func (q *queue) hasWork() bool {
	return q.status.Pending > 0 || len(q.mem) > 0 || q.inStore
}

// scheduleLocked puts q where it belongs: on its account's waiting list when it can send now, on
// the timer heap when its head waits for a retry, nowhere when it has nothing to do.
func (e *Engine) scheduleLocked(q *queue) {
	if q.inFlight || q.waitingOn != nil || q.removed || q.cancelling > 0 || q.own != ownActive || q.status.Disabled || !q.hasWork() {
		return
	}
	// A queue held back (its webhook not Deliverable) is scheduled too, but only to have its
	// head expire on time: its attempts never send (Engine.attempt).
	if at := q.wakeAt(); !at.IsZero() && at.After(e.clock.Now()) {
		e.timers.upsert(q)
		e.poke()
		return
	}
	acc := e.accounts[q.wh.AccountID]
	if acc == nil {
		acc = &account{lines: map[string]*line{}}
		e.accounts[q.wh.AccountID] = acc
	}
	l := acc.lines[q.wh.Namespace]
	if l == nil {
		l = &line{acc: acc, ns: q.wh.Namespace}
		acc.lines[l.ns] = l
		acc.turns = append(acc.turns, l)
	}
	q.waitingOn = l
	l.waiting = append(l.waiting, q)
	e.pumpLocked(acc)
}

func (e *Engine) unscheduleLocked(q *queue) {
	e.timers.remove(q)
	if l := q.waitingOn; l != nil {
		for i, w := range l.waiting {
			if w == q {
				l.waiting = append(l.waiting[:i], l.waiting[i+1:]...)
				break
			}
		}
		if len(l.waiting) == 0 {
			l.acc.drop(l)
		}
		q.waitingOn = nil
	}
}

// pumpLocked starts deliveries while the account has free slots. The account's namespaces take
// turns, and the webhooks of a namespace (a webhook that delivered goes to the back of its
// namespace's line): one busy webhook cannot starve the others, nor one namespace's webhooks
// another namespace's.
func (e *Engine) pumpLocked(acc *account) {
	if e.ctx == nil || e.ctx.Err() != nil {
		return // stopping: start nothing new
	}
	for acc.inFlight < e.cfg.AccountConcurrency && len(acc.turns) > 0 {
		l := acc.turns[0]
		acc.turns[0] = nil
		acc.turns = acc.turns[1:]
		q := l.waiting[0]
		l.waiting[0] = nil
		l.waiting = l.waiting[1:]
		if len(l.waiting) > 0 {
			acc.turns = append(acc.turns, l)
		} else {
			delete(acc.lines, l.ns)
		}
		q.waitingOn = nil
		if !e.leaseCoversLocked(q.part) {
			// The partition's lease may have expired (NATS out of reach): another dispatcher may
			// take it over at any moment. Held back until the lease is renewed (Extend).
			e.stalled[q.part] = true
			continue
		}
		q.inFlight = true
		acc.inFlight++
		e.running++
		e.wg.Add(1)
		e.startLocked(attemptJob{q: q, acc: acc, epoch: q.epoch, ctx: e.requestCtxLocked(q.part)})
	}
}

// attemptJob is one attempt for a queue's head (deliver's arguments).
type attemptJob struct {
	q     *queue
	acc   *account
	epoch uint64
	// ctx is the attempt's: its partition's (requestCtxLocked).
	ctx context.Context
}

// maxIdleWorkers is how many delivery workers may wait for an attempt; a worker that finishes
// when as many wait ends.
const maxIdleWorkers = 32

// workerReap is how often the workers that were not needed are ended: as many as waited all along
// since the last time (the fewest that waited meanwhile).
var workerReap = time.Second

// startLocked hands j to a waiting delivery worker, or starts a worker for it. An attempt needs a
// deeper stack than a new goroutine has (its frames and the HTTP client's): a goroutine per attempt
// grew and copied its stack every time, about 3 % of the dispatcher's CPU in the throughput
// scenario. A worker keeps its stack for the attempts that follow. Workers wait on a plain receive
// (a select with a timer or the engine's context cost as much as the stack copies); at most
// Engine.idleMax wait, reapWorkers ends those not needed, and all end when the engine stops
// starting attempts (drainOnStop closes jobs).
func (e *Engine) startLocked(j attemptJob) {
	select {
	case e.jobs <- j:
	default:
		e.workers.Add(1)
		e.liveWorkers.Add(1)
		go e.work(j)
	}
}

// work runs j, then the attempts handed to it, until it is told to end (a job without a queue,
// or jobs closed) or finds as many workers waiting as Engine.idleMax.
func (e *Engine) work(j attemptJob) {
	defer e.liveWorkers.Add(-1)
	for {
		e.deliver(j.ctx, j.q, j.acc, j.epoch)
		if e.idleWorkers.Add(1) > e.idleMax {
			e.idleWorkers.Add(-1)
			return
		}
		var ok bool
		j, ok = <-e.jobs
		lower(&e.idleLow, e.idleWorkers.Add(-1))
		if !ok || j.q == nil {
			return
		}
	}
}

// reapWorkers ends, every workerReap, as many waiting workers as waited all along since the time
// before, so that a burst's workers do not outlive it.
func (e *Engine) reapWorkers(ctx context.Context) {
	t := time.NewTicker(workerReap)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		surplus := e.idleLow.Swap(e.idleWorkers.Load())
		e.mu.Lock()
		// Under the lock and while ctx lasts: drainOnStop closes jobs under it once ctx has ended.
		for sent := true; sent && surplus > 0 && ctx.Err() == nil; surplus-- {
			select {
			case e.jobs <- attemptJob{}:
			default:
				sent = false // none waits any more
			}
		}
		e.mu.Unlock()
	}
}

// lower sets v to n if n is lower.
func lower(v *atomic.Int64, n int64) {
	for {
		cur := v.Load()
		if n >= cur || v.CompareAndSwap(cur, n) {
			return
		}
	}
}

func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// runTimers moves queues whose retry time (or held head's expiry) has come back to their
// account's waiting list.
func (e *Engine) runTimers(ctx context.Context) {
	for {
		e.mu.Lock()
		wait := time.Hour
		now := e.clock.Now()
		for e.timers.Len() > 0 {
			q := e.timers.peek()
			if d := q.wakeAt().Sub(now); d > 0 {
				wait = d
				break
			}
			e.timers.remove(q)
			e.scheduleLocked(q)
		}
		e.mu.Unlock()
		t := e.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-e.wake:
			t.Stop()
		case <-t.C():
		}
	}
}
