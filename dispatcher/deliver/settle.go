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

// Settlement: how one attempt's outcome changes a queue, under the engine's lock and without I/O, so
// that the rules (success resets the streak, a failure schedules the next retry, a drop without a
// success in DisableAfter auto-disables) read in one place and are tested without a store.

import (
	"time"

	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/deliveries"
)

// settleCancelledLocked counts the outcome of an attempt whose queue was cancelled while it was in
// flight (the cancellation left it out of its count): delivered when it succeeded, cancelled
// otherwise, including when it found its note gone. Nothing is retried.
//
// The cancellation recorded the note as cancelled; an attempt made is recorded after it, delivered
// or cancelled.
func (e *Engine) settleCancelledLocked(q *queue, o outcome) (s settlement) {
	attempted := o.attempted()
	switch {
	case attempted && o.attempt.OK:
		q.status.LastAttempt, q.status.LastSuccess = o.at, o.at
		q.status.Delivered++
	default:
		q.status.Cancelled++
	}
	q.dirty = true
	if attempted && e.rec != nil {
		state := deliveries.StateCancelled
		if o.attempt.OK {
			state = deliveries.StateDelivered
		}
		s.attempt, s.rec = true, attemptRecord(q.wh, o, state)
	}
	return s
}

// settleHandedOverLocked records the outcome of an attempt whose queue was reset while it was in
// flight (its partition given up, and maybe taken over already): the queue's state is the next
// owner's, which reads it afresh, so nothing is counted here. A delivery is recorded as such (the
// next owner finds it settled and does not send it again); a failure as retrying, so that the next
// owner sends the note again, with the same id. (Recorded as cancelled, as for a cancellation, the
// next owner took it for settled and removed it unsent.)
func (e *Engine) settleHandedOverLocked(q *queue, o outcome) (s settlement) {
	if o.attempted() && e.rec != nil {
		state := deliveries.StateRetrying
		if o.attempt.OK {
			state = deliveries.StateDelivered
		}
		s.attempt, s.rec = true, attemptRecord(q.wh, o, state)
	}
	return s
}

// settlement is what settling an outcome leaves to do once the engine's lock is released.
type settlement struct {
	// urgent: the status should show the change at once; persist: the stored state must be
	// rewritten now (retry state changed); counters alone are saved by the engine's saver (runSaver).
	urgent, persist bool
	// attempt: rec records the attempt; dropped: the note was dropped without one; withdrawn: it
	// was cancelled without one (its replay was deleted).
	attempt, dropped, withdrawn bool
	rec                         deliveries.Record
	// ack is the settled note to purge from the store (0: none).
	ack uint64
	// queued is what an auto-disable dropped with the queue, to be recorded and purged.
	queued *queuedNotes
}

// settleLocked applies an outcome to q and returns what is left to do (settlement).
func (e *Engine) settleLocked(q *queue, o outcome) (s settlement) {
	st := &q.status
	bound := o.ev == nil || q.bindingLocked().holds(o.ev.ev)
	if o.attempted() && bound {
		// An attempt under the binding supersedes the report of its change.
		st.Rebound = Rebound{}
	}
	if o.attempted() && e.rec != nil {
		// Its state (retrying or dropped, for a failure) is set below.
		s.attempt, s.rec = true, attemptRecord(q.wh, o, deliveries.StateDelivered)
	}
	switch {
	case o.none:
		if !o.heldUntil.IsZero() {
			q.heldUntil = o.heldUntil
		}
		return s
	case o.settled:
		// On record already, and counted by the process that settled it.
		s.ack = e.popHeadLocked(q)
		return s
	case o.withdrawn:
		st.Cancelled++
		if o.dropReason == ReasonRebound && !st.Rebound.At.IsZero() {
			st.Rebound.Cancelled++
		}
		s.withdrawn = true
		s.ack = e.popHeadLocked(q)
		return s
	case o.retry:
		q.head.Next = e.clock.Now().Add(time.Second)
		if !q.wh.Deliverable {
			q.heldUntil = q.head.Next // a held queue waits by heldUntil (wakeAt), not by its head's retry
		}
		return s
	case o.expired:
		s.dropped = true
		// Only a receiver that failed to answer for the 72 hours auto-disables its webhook (the
		// seeds): a note dropped unsent for the dispatcher's own reasons (its event gone or
		// unreadable, its 72 hours spent unsent while the dispatcher was down) does not. While a
		// rebinding's report stands, a note dropped unread may be of the old binding: it does not
		// auto-disable the webhook under the new one either.
		failedFor72h := o.dropReason == ReasonExpired && q.head.Seq == o.note.Seq && q.head.Failures > 0
		s.urgent, s.ack, s.queued = e.dropHeadLocked(q, failedFor72h && !o.held && st.Rebound.At.IsZero())
		s.persist = true
		return s
	case o.attempt.OK:
		s.urgent = st.ConsecutiveFailures > 0
		s.persist = s.urgent || q.head.Failures > 0
		st.LastAttempt, st.LastSuccess = o.at, o.at
		st.ConsecutiveFailures, st.FailingSince = 0, time.Time{}
		st.LastFailureReason, st.LastFailureMessage = "", ""
		st.Delivered++
		s.ack = e.popHeadLocked(q)
		return s
	case !bound:
		// Failed after its namespace was rebound (in flight meanwhile): not retried under the new
		// binding, cancelled.
		st.LastAttempt = o.at
		st.Cancelled++
		if !st.Rebound.At.IsZero() {
			st.Rebound.Cancelled++
		}
		s.rec.State = deliveries.StateCancelled
		s.ack = e.popHeadLocked(q)
		return s
	default:
		st.LastAttempt = o.at
		if st.ConsecutiveFailures == 0 {
			st.FailingSince = o.at
			s.urgent = true
		}
		st.ConsecutiveFailures++
		st.LastFailureReason, st.LastFailureMessage = o.attempt.Reason, o.attempt.Message
		q.dirty = true
		if q.head.Seq != o.note.Seq {
			q.head = head{Seq: o.note.Seq, Scheduled: o.at}
		}
		q.head.Failures++
		next, drop := e.cfg.Policy.NextAttempt(o.note.Created, q.head.Scheduled, e.clock.Now(), q.head.Failures)
		s.persist = true
		if drop {
			s.rec.State = deliveries.StateDropped
			var disabled bool
			disabled, s.ack, s.queued = e.dropHeadLocked(q, true)
			s.urgent = s.urgent || disabled
			return s
		}
		s.rec.State = deliveries.StateRetrying
		q.head.Next, q.head.Scheduled = next, next
		return s
	}
}

// popHeadLocked removes the settled head from memory and returns its sequence, for the caller to
// hand to the acker (which removes it from the store).
func (e *Engine) popHeadLocked(q *queue) uint64 {
	n := q.mem[0]
	q.mem[0] = store.Note{}
	q.mem = q.mem[1:]
	q.head = head{}
	q.status.Pending = max(q.status.Pending-1, 0)
	q.dirty = true
	return n.Seq
}

// dropHeadLocked drops the head (returning its sequence, as popHeadLocked) and, when mayDisable and
// the webhook has had no success within DisableAfter, auto-disables it: its queue is cancelled and
// nothing is queued until it is reactivated. What the queue still held is returned, for the caller
// to record and remove from the store.
//
// A head that expired while its webhook was held back does not auto-disable it: no request was
// made, the hold is the status' to report (HeldReason), and the webhook delivers again as soon as
// what held it is fixed, without a reactivation.
func (e *Engine) dropHeadLocked(q *queue, mayDisable bool) (disabled bool, ack uint64, queued *queuedNotes) {
	st := &q.status
	st.Dropped++
	e.metrics.dropped()
	ack = e.popHeadLocked(q)
	if !mayDisable {
		return false, ack, nil
	}
	since := st.LastSuccess
	if since.IsZero() || q.wh.LastVerified.After(since) {
		since = q.wh.LastVerified
	}
	if !since.IsZero() && e.clock.Since(since) < e.cfg.Policy.DisableAfter {
		return false, ack, nil
	}
	st.Disabled, st.DisabledAt = true, e.clock.Now()
	st.DisabledMessage = "a notification was dropped after " + e.cfg.Policy.DropAfter.String() +
		" of failures and no delivery succeeded in " + e.cfg.Policy.DisableAfter.String()
	// Everything still queued is dropped with the queue: Pending counts it, memory and store alike.
	if st.Pending > 0 {
		st.Dropped += st.Pending
		e.metrics.droppedN(st.Pending)
	}
	queued = e.queuedLocked(q)
	q.mem, q.inStore, q.head = nil, false, head{}
	st.Pending = 0
	// Nothing is loaded or sent from the queue while what it held is recorded and removed (a
	// reactivation meanwhile would load the dropped notes again): deliver ends this.
	q.cancelling++
	e.metrics.disabled()
	return true, ack, queued
}
