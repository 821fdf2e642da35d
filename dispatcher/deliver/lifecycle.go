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

// Changes of a queue that come from outside delivery (the Syncer): a new namespace binding, INACTIVE,
// deletion, reactivation, and events an auto-disabled webhook does not receive.

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/deliveries"
)

// Rebind records that uid's namespace is bound to b. Nothing queued under the previous binding is
// sent under b: every note's event is checked against the binding before it is sent (attempt), so
// those of the old one are withdrawn — cancelled, on record, and counted in Status.Rebound — as
// they reach the head, and an attempt in flight is not retried. Nothing is purged here: a queue
// is removed only from its front, and active-active, other dispatchers already routing under b
// store its notes in the same queue meanwhile (a purge cancelled those, acknowledged for an Active
// webhook). The caller routes uid under b once Rebind returned without error.
func (e *Engine) Rebind(ctx context.Context, uid string, b Binding) error {
	e.mu.Lock()
	q := e.queueLocked(uid)
	if q.own != ownActive {
		e.mu.Unlock()
		return nil // another dispatcher's; its owner rebinds it (and again when it takes it over)
	}
	old := q.status.Binding
	if old == b {
		e.mu.Unlock()
		return nil
	}
	q.status.Binding, q.dirty = b, true
	// The namespace's binding now, as the Upsert that follows says too: the check before sending
	// follows it at once (queue.bindingLocked), an attempt in flight included.
	q.wh.AccountID, q.wh.NamespaceGroup = b.AccountID, b.GroupID
	rebound := old != Binding{} // not the first binding seen (a new webhook, or state saved before bindings were)
	if rebound {
		e.log.Info("The namespace's binding changed; what is queued of the previous one is cancelled as it comes up",
			"uid", uid, "from", old.String(), "to", b.String(), "pending", q.status.Pending)
		q.status.Rebound = Rebound{From: old, To: b, At: e.clock.Now()}
		// The old binding's failures say nothing of the new one, and its notes go at once.
		q.status.ConsecutiveFailures, q.status.FailingSince = 0, time.Time{}
		q.head = head{}
	}
	// Nothing is started from q until it is placed under b's account, after the save: its
	// partition may be another, whose owner then reads the state saved here. Off its account's
	// waiting list and the timer heap (keyed by the head's retry time) meanwhile.
	e.unscheduleLocked(q)
	q.cancelling++
	e.mu.Unlock()
	if rebound {
		e.onChange(uid, true)
	}
	err := e.persist(ctx, uid)
	e.mu.Lock()
	if !q.removed {
		e.placeLocked(q)
	}
	e.endCancellingLocked(q)
	e.mu.Unlock()
	return err
}

// ErrCancelling answers a Cancel or Reactivate while a cancellation of the queue runs (a recount's,
// or an auto-disable's recording): the caller tries again shortly.
var ErrCancelling = errors.New("a cancellation of the webhook's queue is under way; trying again once it is over")

// endCancellingLocked ends one of q's cancellations: q may be scheduled again, and a Release
// waiting for it goes on.
func (e *Engine) endCancellingLocked(q *queue) {
	q.cancelling--
	e.scheduleLocked(q)
	if q.own == ownReleasing {
		e.idle.Broadcast()
	}
}

// CountLost records an event that uid, being disabled, does not receive; n is the note it would
// have been queued as. It reports whether it did: false when the queue is not this engine's (any
// more: its partition given up since Disabled answered), and the caller then stores the note for
// the next owner, which loses it on arrival.
func (e *Engine) CountLost(uid string, n store.Note) bool { return e.countLost(uid, n) }

// lostEventsKept is how many events counted lost a queue remembers, so as not to count a
// producer's retry of one again: a backstop, for the retry of a post that failed after counting
// (Intake counts only once the other notes are queued; a queue handed over meanwhile is queued
// after), and for that retry's note stored by another dispatcher. A busy account's disabled
// webhook turns them over within a second: the backstop is narrow there.
const lostEventsKept = 64

// countLost is CountLost, reporting whether n was counted (uid's queue is this engine's).
func (e *Engine) countLost(uid string, n store.Note) bool {
	e.mu.Lock()
	q := e.queues[uid]
	if q != nil && (q.own != ownActive || n.Seq != 0 && n.Seq <= q.droppedUpTo) {
		q = nil // another dispatcher's (its owner counts it), or recorded already
	}
	// A stored note of such an event (the retry reached another dispatcher, which stored it for
	// this one, losing it on arrival) is the same notification too.
	routed := n.Replay == "" && n.EventSeq != 0
	if q != nil && routed && slices.Contains(q.lostEvents, n.EventSeq) {
		// Counted at a post of the event that was answered 503: once is enough. A stored note of it
		// waits for its purge all the same.
		q.droppedUpTo = max(q.droppedUpTo, n.Seq)
		q.loadedUpTo = max(q.loadedUpTo, n.Seq)
		e.mu.Unlock()
		return true
	}
	var wh Webhook
	if q != nil {
		if routed {
			if len(q.lostEvents) == lostEventsKept {
				q.lostEvents = append(q.lostEvents[:0], q.lostEvents[1:]...)
			}
			q.lostEvents = append(q.lostEvents, n.EventSeq)
		}
		q.status.Dropped++
		q.dirty = true
		// A stored note recorded as lost waits for its purge: neither lost again by a recount
		// nor loaded again after a reactivation.
		q.droppedUpTo = max(q.droppedUpTo, n.Seq)
		q.loadedUpTo = max(q.loadedUpTo, n.Seq)
		e.metrics.lost()
		wh = q.wh
	}
	e.mu.Unlock()
	if q == nil {
		return false
	}
	if e.rec != nil {
		e.rec.Append(e.noteRecord(e.ctx, wh, wh.AccountID, n, deliveries.KindLost, deliveries.StateLost,
			ReasonWebhookDisabled, "not queued: the webhook is auto-disabled", e.clock.Now()))
	}
	e.onChange(uid, false)
	return true
}

// cancelStored records as cancelled (reason, message) what queued, captured as the queue was
// cancelled, holds in memory and in the store up to the queue's last note now, and removes that
// much from the store. What is recorded is what is removed: a note another dispatcher stores
// meanwhile (active-active: it routes until it sees the change) stays queued, for the next
// cancellation or for the check of its binding before it is sent, where purging the whole queue
// removed it unrecorded after its 202.
func (e *Engine) cancelStored(ctx context.Context, uid string, queued *queuedNotes, account, reason, message string) error {
	last, err := e.store.LastNoteSeq(ctx, uid)
	if err != nil {
		return err
	}
	through := last
	if queued != nil {
		queued.upTo = last
		if through, err = e.recordQueued(ctx, queued, account, deliveries.KindCancelled, deliveries.StateCancelled, reason, message); err != nil {
			return err
		}
	}
	if through == 0 {
		return nil
	}
	return e.store.Remove(ctx, uid, through)
}

// Cancel drops every queued notification of uid (the webhook went INACTIVE), counting them as
// cancelled; an attempt in flight completes, but is not retried.
func (e *Engine) Cancel(ctx context.Context, uid string) error { return e.cancel(ctx, uid, false) }

// cancel is Cancel; stillInactive cancels only a queue this engine delivers under its lease whose
// webhook is INACTIVE when the cancellation begins (a recount's, decided before: the webhook may
// be ACTIVE again by now).
func (e *Engine) cancel(ctx context.Context, uid string, stillInactive bool) error {
	e.mu.Lock()
	q := e.queues[uid]
	if stillInactive && (q == nil || !q.wh.Inactive || q.own != ownActive || !e.leaseCoversLocked(q.part)) {
		e.mu.Unlock()
		return nil
	}
	if e.partitioned() && (q == nil || q.own != ownActive) {
		e.mu.Unlock()
		return nil // another dispatcher's; its owner cancels it (and again when it takes it over)
	}
	var queued *queuedNotes
	var account string
	if q != nil {
		if q.cancelling > 0 {
			e.mu.Unlock()
			if stillInactive {
				return nil // what the running one leaves, the next recount cancels
			}
			return ErrCancelling // the caller tries again shortly
		}
		queued, account = e.queuedLocked(q), q.wh.AccountID
		e.cancelLocked(q)
		q.cancelling++
	}
	e.mu.Unlock()
	err := e.cancelStored(ctx, uid, queued, account, ReasonInactive, "cancelled unsent: the webhook was set INACTIVE")
	if q != nil {
		e.mu.Lock()
		e.endCancellingLocked(q)
		e.mu.Unlock()
	}
	if err != nil {
		return err
	}
	if q != nil {
		e.onChange(uid, true)
	}
	return e.persist(ctx, uid)
}

// cancelLocked empties q in memory (the caller removes its store queue) and returns how many
// notifications that cancelled. The one in flight, if any, is not among them: its attempt settles
// it as delivered or, failing, as cancelled, and moves the queue no more.
func (e *Engine) cancelLocked(q *queue) int64 {
	n := q.status.Pending
	if q.inFlight {
		n--
	}
	n = max(n, 0)
	q.status.Cancelled += n
	q.mem, q.inStore, q.head = nil, false, head{}
	q.status.Pending = 0
	q.status.ConsecutiveFailures, q.status.FailingSince = 0, time.Time{}
	q.epoch++
	q.cancelEpoch = q.epoch
	q.dirty = true
	e.unscheduleLocked(q)
	return n
}

// Remove forgets uid entirely: its queue and state leave the store (the webhook was deleted).
func (e *Engine) Remove(ctx context.Context, uid string) error {
	e.mu.Lock()
	q := e.queues[uid]
	if q != nil && q.own == ownDormant {
		// Another dispatcher's: it removes the stored queue and state.
		e.resetLocked(q)
		q.removed = true
		delete(e.queues, uid)
		e.mu.Unlock()
		return nil
	}
	if q != nil {
		// This engine's, being delivered, given up, or its state being read (a partition just
		// taken over: nobody else removes it then).
		q.removed = true
		q.epoch++
		e.unscheduleLocked(q)
		delete(e.queues, uid)
		delete(e.toLoad, uid)
	}
	delete(e.restored, uid)
	e.mu.Unlock()
	if err := e.store.RemoveQueue(ctx, uid); err != nil {
		return err
	}
	return e.store.DeleteState(ctx, uid)
}

// Reactivate clears an auto-disable in answer to the request token (the reactivation annotation's
// value, or "" for an INACTIVE→ACTIVE toggle). It reports whether anything changed.
func (e *Engine) Reactivate(ctx context.Context, uid, token string) (bool, error) {
	e.mu.Lock()
	q := e.queues[uid]
	if q != nil && q.own != ownActive {
		e.mu.Unlock()
		return false, nil // another dispatcher's; its owner reactivates it
	}
	if q != nil && (q.cancelling > 0 || q.unrecorded) {
		// An auto-disable (or a cancellation) is being recorded, or what it could not record is
		// being recorded as lost: reactivated now, the queue would send what was counted dropped.
		e.mu.Unlock()
		return false, ErrCancelling
	}
	if q == nil || !q.status.Disabled {
		if q != nil && token != "" && q.status.HandledReactivation != token {
			q.status.HandledReactivation = token
			q.dirty = true
		}
		e.mu.Unlock()
		return false, nil
	}
	q.status.Disabled, q.status.DisabledAt, q.status.DisabledMessage = false, time.Time{}, ""
	q.status.ConsecutiveFailures, q.status.FailingSince = 0, time.Time{}
	if token != "" {
		q.status.HandledReactivation = token
	}
	q.dirty = true
	e.mu.Unlock()
	e.onChange(uid, true)
	return true, e.persist(ctx, uid)
}
