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
// holds back only its own queue), at most Config.AccountConcurrency per account, webhooks of one
// account taking turns, and a timer heap for heads waiting for their retry. Everything here runs
// under Engine.mu and decides only *when*; attempt.go decides what happens when it is time.

import (
	"context"
	"time"

	"github.com/hookline/hookline/dispatcher/store"
)

type account struct {
	inFlight int
	waiting  []*queue
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
	if q.inFlight || q.waiting || q.removed || q.own != ownActive || q.status.Disabled || !q.wh.Deliverable || !q.hasWork() {
		return
	}
	if !q.head.Next.IsZero() && q.head.Next.After(e.clock.Now()) {
		e.timers.upsert(q)
		e.poke()
		return
	}
	acc := e.accounts[q.wh.AccountID]
	if acc == nil {
		acc = &account{}
		e.accounts[q.wh.AccountID] = acc
	}
	q.waiting = true
	acc.waiting = append(acc.waiting, q)
	e.pumpLocked(acc)
}

func (e *Engine) unscheduleLocked(q *queue) {
	e.timers.remove(q)
	if q.waiting {
		if acc := e.accounts[q.wh.AccountID]; acc != nil {
			for i, w := range acc.waiting {
				if w == q {
					acc.waiting = append(acc.waiting[:i], acc.waiting[i+1:]...)
					break
				}
			}
		}
		q.waiting = false
	}
}

// pumpLocked starts deliveries while the account has free slots. Webhooks of one account take turns
// (a webhook that delivered goes to the back of the line), so one busy webhook cannot starve the
// others.
func (e *Engine) pumpLocked(acc *account) {
	if e.ctx == nil || e.ctx.Err() != nil {
		return // stopping: start nothing new
	}
	for acc.inFlight < e.cfg.AccountConcurrency && len(acc.waiting) > 0 {
		q := acc.waiting[0]
		acc.waiting[0] = nil
		acc.waiting = acc.waiting[1:]
		q.waiting = false
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
		go e.deliver(q, acc, q.epoch)
	}
}

func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// runTimers moves queues whose retry time has come back to their account's waiting list.
func (e *Engine) runTimers(ctx context.Context) {
	for {
		e.mu.Lock()
		wait := time.Hour
		now := e.clock.Now()
		for e.timers.Len() > 0 {
			q := e.timers.peek()
			if d := q.head.Next.Sub(now); d > 0 {
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
