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

// One attempt: read the queue's head (from memory or the store), judge it against the 72 hours by
// the time it was scheduled for, build the body and send it; then settle the outcome (settle.go)
// and do, outside the lock, what settling left to do (records, acks, purge, persist).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hookline/hookline/dispatcher/event"
	"github.com/hookline/hookline/dispatcher/payload"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/deliveries"
)

// deliver makes one attempt for q's head, on reqCtx (its partition's requests), and settles the
// outcome, unless the queue was cancelled or removed meanwhile (its epoch moved on): then the
// attempt is only counted.
func (e *Engine) deliver(reqCtx context.Context, q *queue, acc *account, epoch uint64) {
	defer e.wg.Done()
	ctx := e.attemptCtx
	o := e.attempt(reqCtx, q, epoch)
	e.mu.Lock()
	q.inFlight = false
	if q.own == ownReleasing {
		e.idle.Broadcast() // Release waits for what still sends
	}
	q.acking++
	defer e.acked(q)
	acc.inFlight--
	var s settlement
	switch {
	case q.epoch == epoch:
		s = e.settleLocked(q, o)
	case q.cancelEpoch > epoch:
		s = e.settleCancelledLocked(q, o)
	default:
		s = e.settleHandedOverLocked(q, o)
	}
	e.scheduleLocked(q)
	e.pumpLocked(acc)
	wh, removed, rebound := q.wh, q.removed, !q.status.Rebound.At.IsZero()
	e.mu.Unlock()
	if removed {
		return
	}
	uid, urgent, persist := wh.UID, s.urgent, s.persist
	// The records go to the log before the settled notes to the acker, which purges them only once
	// the log has stored what was appended before (Recorder.Barrier).
	if e.rec != nil {
		// The notification's id is its event's account's: another binding's, for a note withdrawn
		// after its namespace was rebound.
		account := wh.AccountID
		switch {
		case o.ev != nil:
			account = o.ev.ev.AccountID
		case rebound:
			account = "" // maybe the previous binding's: noteRecord reads its event
		}
		switch {
		case s.attempt:
			e.rec.Append(s.rec)
		case s.dropped:
			e.rec.Append(e.noteRecord(ctx, wh, account, o.note, deliveries.KindDropped, deliveries.StateDropped, o.dropReason, o.dropMessage, o.at))
		case s.withdrawn:
			e.rec.Append(e.noteRecord(ctx, wh, account, o.note, deliveries.KindCancelled, deliveries.StateCancelled, o.dropReason, o.dropMessage, o.at))
		}
	}
	if s.ack != 0 {
		e.acks.remove(uid, s.ack)
	}
	if s.queued != nil {
		// Auto-disabled: everything queued until now was dropped with the queue. Only that: a
		// reactivation may queue new notes before the purge, and those must stay.
		// What is not recorded here stays queued: the next recount of the store (recountInterval)
		// records what an auto-disabled queue still holds as lost, and removes it.
		last, err := e.store.LastNoteSeq(ctx, uid)
		var through uint64
		if err == nil {
			s.queued.upTo = last
			through, err = e.recordQueued(ctx, s.queued, wh.AccountID, deliveries.KindDropped, deliveries.StateDropped, ReasonWebhookDisabled,
				"dropped with the queue: the webhook was auto-disabled")
		}
		// What the store's index did not show yet is left unrecorded: the loader loses it, as
		// it does what a failed recording leaves.
		partly := err == nil && through < last
		e.mu.Lock()
		// Reset meanwhile (its partition given up past Release's wait): the next owner reads the
		// queue afresh and decides; nothing more is done to it here (a note recorded here as
		// dropped may be recorded again there as lost, rather than removed under its feet).
		handedOver := q.epoch != epoch
		if err == nil && !handedOver {
			// Recorded as dropped: a recount does not count them again as lost, nor does a
			// reactivation before the purge load and send them.
			q.droppedUpTo = max(q.droppedUpTo, through)
			q.loadedUpTo = max(q.loadedUpTo, through)
		}
		if (err != nil || partly) && !handedOver {
			// Not all recorded: the loader loses the rest (in order, from droppedUpTo), and the
			// webhook is not reactivated before, or it would send what was counted as dropped.
			q.unrecorded = true
			e.toLose[uid] = true
		}
		e.endCancellingLocked(q) // from dropHeadLocked
		e.mu.Unlock()
		switch {
		case err != nil:
			e.kickLoader()
			if ctx.Err() == nil {
				e.log.Error(err, "Recording the notifications dropped by an auto-disable; the rest is recorded as lost shortly", "uid", uid)
			}
		case !handedOver:
			if through > 0 {
				e.acks.remove(uid, through)
			}
			if partly {
				e.kickLoader()
			}
		}
	}
	if persist {
		if err := e.persist(ctx, uid); err != nil && ctx.Err() == nil {
			e.log.Error(err, "Persisting delivery state; it is saved again at the next save", "uid", uid)
		}
	}
	e.onChange(uid, urgent)
}

// acked ends what deliver does for q's attempt that Release waits for: its settled note is with the
// acker, which Release flushes before the partition goes.
func (e *Engine) acked(q *queue) {
	e.mu.Lock()
	defer e.mu.Unlock()
	q.acking--
	if q.own == ownReleasing {
		e.idle.Broadcast()
	}
	if e.running--; e.running == 0 && e.ctx.Err() != nil {
		select {
		case <-e.drained:
		default:
			close(e.drained)
		}
	}
}

// outcome is what attempt observed, settled under the lock.
type outcome struct {
	note    store.Note
	none    bool // nothing to send after all (the queue was emptied meanwhile)
	settled bool // settled before this process started (recentlySettled): remove unsent
	// withdrawn: cancel unsent (queued by a WebhookReplay deleted since, Config.ReplayGone, or its
	// event is not of the namespace's binding)
	withdrawn bool
	expired   bool // the head's 72 hours had passed: drop without an attempt
	// held: the webhook was held back (not Deliverable) when the attempt began; nothing was sent.
	// With none, heldUntil is when the head's 72 hours end, for the queue to be looked at again.
	held      bool
	heldUntil time.Time
	retry     bool // a transient problem of our own (store unreachable): try again shortly
	attempt   Attempt
	at        time.Time
	// For the delivery log: why an expired note was dropped (or a withdrawn one cancelled); the
	// attempt's number, what it sent and how long it took.
	dropReason, dropMessage string
	number                  int
	ev                      *cachedEvent
	id                      string
	sent                    int
	trimmed                 []string
	took                    time.Duration
}

// attempted reports whether o is an attempt made: a request sent (whatever its answer), not a
// note dropped, withdrawn or skipped unsent, nor nothing to do.
func (o outcome) attempted() bool {
	return !o.none && !o.retry && !o.expired && !o.settled && !o.withdrawn
}

func (e *Engine) attempt(ctx context.Context, q *queue, epoch uint64) outcome {
	note, ok, err := e.headNote(ctx, q)
	if err != nil {
		if ctx.Err() == nil { // not cut (its partition given up, the engine stopping)
			e.log.Error(err, "Loading queued notifications", q.wh.logKeys()...)
		}
		return outcome{retry: true}
	}
	if !ok {
		return outcome{none: true}
	}
	e.mu.Lock()
	wh, binding := q.wh, q.bindingLocked()
	settled := e.settledBeforeLocked(wh.UID, note)
	e.mu.Unlock()
	if settled {
		e.log.V(1).Info("Removing a notification settled before this process took its queue over, unsent", append(wh.logKeys(), "event", note.EventSeq, "eventID", note.EventID, "seq", note.Seq)...)
		return outcome{note: note, settled: true}
	}
	now := e.clock.Now()
	if note.Replay != "" && e.cfg.ReplayGone != nil {
		if gone, err := e.cfg.ReplayGone(ctx, wh.Namespace, note.Replay, note.Created); err == nil && gone {
			return outcome{note: note, withdrawn: true, at: now, dropReason: ReasonReplayDeleted,
				dropMessage: "not sent: WebhookReplay " + deliveries.ReplayName(note.Replay) + " was deleted"}
		}
	}
	e.mu.Lock()
	due := q.dueLocked(note, now)
	number := attemptNumber(q.head, note)
	e.mu.Unlock()
	if !wh.Deliverable {
		return e.held(wh, note, now)
	}
	if e.cfg.Policy.Expired(note.Created, due) {
		return outcome{note: note, expired: true, at: now, dropReason: ReasonExpired,
			dropMessage: "not delivered within " + e.cfg.Policy.DropAfter.String()}
	}
	// A large event read from the store for this attempt is held by it until it ends: its turn
	// (within LargeBodyBytes, as large bodies take) is taken before it is read (turn, below), so
	// that attempts of many distinct large events cannot hold them all at once (up to 30 of 25 MB
	// for one account).
	var turn func()
	defer func() {
		if turn != nil {
			e.holdLarge(-1)
			turn()
		}
	}()
	ev, err := e.eventWithin(ctx, note.EventSeq, e.reserveLarge(func(w int64) error {
		release, err := e.largeBodies.acquire(ctx, wh.AccountID, w)
		if err != nil {
			return err
		}
		turn = release
		e.holdLarge(1)
		return nil
	}))
	if err != nil {
		return e.eventReadFailed(ctx, wh, note, now, err)
	}
	// Never another binding's event: what a queue holds of a namespace's previous binding is
	// cancelled here as it comes up (Rebind), and a WebhookReplay or any path that queues a note
	// without routing it could queue one again. Checked against the namespace's binding (the
	// Syncer's; queue.bindingLocked) as the attempt began, and again just before sending
	// (maySend), which sees a Rebind made during the read. A mismatch is judged first
	// (judgeBinding): a Rebind during the read may have made the event the namespace's, and the
	// namespace may have been bound anew without this engine knowing yet (a note of the new
	// binding, stored by a dispatcher that saw the change first): such a note must not be
	// cancelled.
	if !binding.holds(ev.ev) {
		var send, withdraw bool
		switch binding, send, withdraw = e.judgeBinding(ctx, q, note, ev); {
		case withdraw:
			return rebound(note, ev, now, binding)
		case !send:
			return outcome{retry: true}
		}
	}
	prep, err := ev.prepared()
	if err != nil {
		e.log.Error(err, "Building payload; dropping the notification", append(wh.logKeys(), "event", note.EventSeq)...)
		return outcome{note: note, expired: true, at: now, dropReason: ReasonEventUnreadable, dropMessage: "the notification cannot be built from the event"}
	}
	notificationID := payload.NotificationID(wh.UID, ev.ev.AccountID, ev.ev.ID)
	pw, opt := wh.payloadWebhook(), e.bodyOptions() // as Body builds it for the read API
	// A body that keeps a large part of a large event (sections the size cap cannot trim) is a copy
	// of it per attempt, and an attempt holds the event it was handed (from the cache, or read by
	// another attempt of the same event) until it ends: such attempts take turns within
	// LargeBodyBytes too, so that a fan-out of one 25 MB event to many webhooks cannot hold dozens
	// of copies at once. Small ones never wait.
	if n := max(prep.BodySize(pw, notificationID, opt), ev.size); n > largeBody && turn == nil {
		var ok bool
		if ev, prep, ok = e.largeTurn(ctx, wh.AccountID, note.EventSeq, ev, prep, n, &turn); !ok {
			return outcome{retry: true} // stopping, or the event's read failed: the next attempt judges it
		}
	}
	body := prep.Build(pw, notificationID, opt)
	if len(body.Trimmed) > 0 {
		e.metrics.trimmed()
	}
	if o, ok := e.stillSendable(q, epoch, note, ev, now); !ok {
		return o
	}
	start := e.clock.Now()
	var hdr http.Header
	if len(wh.Signing) > 0 {
		hdr = http.Header{}
		wh.Signing.Sign(hdr, notificationID, start, body.Body)
	}
	// The account's connections are bounded (connLimit): the dial of a new one names it.
	a := e.sender.Send(withAccount(ctx, wh.AccountID), wh.URL, wh.ClientID, notificationID, wh.Cert, body.Body, hdr)
	if a.Retry || !a.OK && ctx.Err() != nil {
		// Nothing sent, or cut by the dispatcher (its partition given up, or its stop): for the
		// dispatcher's reasons, not the receiver's failure. A request cut after it reached the
		// receiver is sent again, with the same id.
		return outcome{retry: true}
	}
	took := e.clock.Since(start)
	e.metrics.attempt(a, took)
	return outcome{note: note, attempt: a, at: start, number: number, ev: ev, id: notificationID, sent: len(body.Body), trimmed: body.Trimmed, took: took}
}

// eventReadFailed is the outcome of an attempt whose event could not be read: its note dropped
// when the event is gone (retention) or unreadable, nothing can ever be sent for it; otherwise
// tried again shortly (the store did not answer in time, or the attempt was cut).
func (e *Engine) eventReadFailed(ctx context.Context, wh Webhook, note store.Note, now time.Time, err error) outcome {
	if store.Gone(err) || errors.Is(err, errCorruptEvent) {
		e.log.Error(err, "Loading event of a notification; dropping it", append(wh.logKeys(), "event", note.EventSeq)...)
		if store.Gone(err) {
			return outcome{note: note, expired: true, at: now, dropReason: ReasonEventGone, dropMessage: "the event is no longer in the event log"}
		}
		return outcome{note: note, expired: true, at: now, dropReason: ReasonEventUnreadable, dropMessage: "the stored event cannot be read"}
	}
	// A busy JetStream reading a 25 MB body: the event is safe. The 72-hour check still ends a
	// read that never succeeds.
	if ctx.Err() == nil {
		e.log.Error(err, "Loading event of a notification; retrying", append(wh.logKeys(), "event", note.EventSeq)...)
	}
	return outcome{retry: true}
}

// dueLocked is the time an attempt of note at now is judged by (its 72 hours): a retry's by the
// time it was scheduled for, not by when the timer fired: the last retry is scheduled exactly at
// the 72-hour mark, and a timer always fires a little late. Nor, for ownRetryGrace, by a try the
// dispatcher could not make for its own reasons (outcome.retry, a second later), which moves Next
// but not Scheduled: that made the last retry a second past the mark, and dropped it unsent.
func (q *queue) dueLocked(note store.Note, now time.Time) time.Time {
	due := now
	if q.head.Seq == note.Seq && !q.head.Next.IsZero() && !q.head.Next.After(now) {
		due = q.head.Next
		if s := q.head.Scheduled; !s.IsZero() && s.Before(due) && now.Sub(s) <= ownRetryGrace {
			due = s
		}
	}
	return due
}

// ownRetryGrace is how long a retry the dispatcher could not make (no connection to be had, the
// store slow to answer) is still judged by the time it was scheduled for: long enough for a busy
// moment to pass; not for ever, so that a read that never succeeds still ends at the 72 hours.
const ownRetryGrace = time.Minute

// held is the outcome of an attempt whose webhook is held back (a client certificate or signing
// Secret missing, a new url being verified): nothing is sent, but the head is dropped on record
// once its 72 hours have passed, judged by the clock (a retry's scheduled time would keep a note
// held days past its mark waiting for ever); until then the queue is looked at again when they
// end.
func (e *Engine) held(wh Webhook, note store.Note, now time.Time) outcome {
	if !e.cfg.Policy.Expired(note.Created, now) {
		return outcome{none: true, heldUntil: note.Created.Add(e.cfg.Policy.DropAfter + time.Nanosecond)}
	}
	why := "its webhook was not Active"
	if wh.HeldReason != "" {
		why = "its webhook was held (" + wh.HeldReason + ")"
	}
	return outcome{note: note, expired: true, held: true, at: now, dropReason: ReasonExpired,
		dropMessage: "not delivered within " + e.cfg.Policy.DropAfter.String() + ": " + why}
}

// rebound is the outcome of note, whose event ev is not of the namespace's binding b: cancelled
// unsent.
func rebound(note store.Note, ev *cachedEvent, now time.Time, b Binding) outcome {
	return outcome{note: note, withdrawn: true, at: now, ev: ev, dropReason: ReasonRebound,
		dropMessage: "not sent: its event is not of the namespace's binding (" + b.String() + "); the namespace was bound to another account or group since it was queued"}
}

// stillSendable reports whether q's attempt of note may send now (maySend); o is its outcome when
// not.
func (e *Engine) stillSendable(q *queue, epoch uint64, note store.Note, ev *cachedEvent, now time.Time) (o outcome, ok bool) {
	switch ok, bound := e.maySend(q, epoch, ev); {
	case !bound:
		// Rebound while the attempt read the event or waited for its turn: cancelled when it was
		// stored before the new binding was confirmed, otherwise judged by the next attempt.
		e.mu.Lock()
		binding := q.bindingLocked()
		covered := e.olderLocked(q, note, binding)
		e.mu.Unlock()
		if !covered {
			return outcome{retry: true}, false
		}
		return rebound(note, ev, now, binding), false
	case !ok:
		return outcome{retry: true}, false
	}
	return outcome{}, true
}

// maySend reports whether q's attempt may still send, just before it does (ok), and whether its
// event is still of the namespace's binding (bound: a Rebind may have come meanwhile). The attempt was
// scheduled while this engine owned q's partition under a lease, but reading the note and the
// event, or waiting for the large bodies' turn, has no deadline: meanwhile the partition may have
// been given up (Release waits for attempts in flight only so long) or its lease run out, and
// another dispatcher may be sending the same queue. Only a request already sent may be repeated
// by the next owner. The queue must also still be the one the attempt began in (its epoch): one
// given up and claimed again meanwhile may have had its head sent by another dispatcher.
func (e *Engine) maySend(q *queue, epoch uint64, ev *cachedEvent) (ok, bound bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return q.epoch == epoch && q.own == ownActive && e.leaseCoversLocked(q.part), q.bindingLocked().holds(ev.ev)
}

// headNote returns q's first note, reading the next batch from the store when memory holds none.
func (e *Engine) headNote(ctx context.Context, q *queue) (store.Note, bool, error) {
	e.mu.Lock()
	if len(q.mem) > 0 {
		n := q.mem[0]
		e.mu.Unlock()
		return n, true, nil
	}
	if !q.inStore {
		// Nothing in memory or the store: a pending count above zero was wrong. Correct it, or the
		// queue would be scheduled again at once, forever.
		q.status.Pending = 0
		e.mu.Unlock()
		return store.Note{}, false, nil
	}
	// Ask for as many as are pending (the count is raised only after a note is stored), so that a
	// queue with one new note costs one store read.
	want := int(min(max(q.status.Pending, 1), int64(e.cfg.MemQueue)))
	if q.status.Pending <= 0 {
		want = e.cfg.MemQueue // the count is low for sure: read a full batch
	}
	from, gen, epoch, uid := q.loadedUpTo+1, q.storeGen, q.epoch, q.wh.UID
	e.mu.Unlock()

	notes, err := e.store.LoadNotes(ctx, uid, from, want)
	if err != nil {
		return store.Note{}, false, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if q.epoch != epoch {
		// Cancelled while loading: what was read belongs to the cancelled queue.
		return store.Note{}, false, nil
	}
	if room := cap(q.mem) - len(q.mem); room < len(notes) {
		// At the size it needs: a thousand queues' read-aheads grown by append held about twice
		// what they used.
		mem := make([]store.Note, len(q.mem), len(q.mem)+len(notes))
		copy(mem, q.mem)
		q.mem = mem
	}
	for _, n := range notes {
		if n.Seq > q.loadedUpTo {
			q.mem = append(q.mem, n)
			q.loadedUpTo = n.Seq
		}
	}
	// What memory holds is pending, whatever the count said.
	q.status.Pending = max(q.status.Pending, int64(len(q.mem)))
	if len(notes) < want && q.storeGen == gen {
		q.inStore = false
		if len(q.mem) == 0 {
			// The count said there was more, the store says no, and nothing arrived meanwhile:
			// trust the store.
			q.status.Pending = 0
		}
	}
	if len(q.mem) == 0 {
		return store.Note{}, false, nil
	}
	return q.mem[0], true, nil
}

// errCorruptEvent marks a stored event that does not decode: it never will.
var errCorruptEvent = errors.New("stored event does not decode")

// eventWithin returns the parsed event with sequence seq, from the cache or the store, telling
// reserve (unless nil) the size of an event kept in the object store before this caller reads it
// (store.Store.GetEventWithin); a caller handed the event from the cache, or from another caller's
// read, is not asked. Concurrent attempts for one event (a fan-out) share one read.
func (e *Engine) eventWithin(ctx context.Context, seq uint64, reserve func(size int64) error) (*cachedEvent, error) {
	return e.events.load(seq, func() (*cachedEvent, error) { return e.readEvent(ctx, seq, reserve) })
}

// readEvent reads event seq from the store, past the cache (store.Store.GetEventWithin's reserve),
// and parses it.
func (e *Engine) readEvent(ctx context.Context, seq uint64, reserve func(size int64) error) (*cachedEvent, error) {
	raw, created, err := e.store.GetEventWithin(ctx, seq, reserve)
	if err != nil {
		return nil, err
	}
	return decodeEvent(seq, raw, created)
}

// reserveLarge returns a reserve (store.Store.GetEventWithin) that lets events up to largeBody be
// read as they are, and asks take for the turn of a larger one: its size, at most the whole of
// LargeBodyBytes.
func (e *Engine) reserveLarge(take func(w int64) error) func(size int64) error {
	return func(size int64) error {
		if size <= largeBody {
			return nil
		}
		return take(min(size, int64(e.cfg.LargeBodyBytes)))
	}
}

// largeTurn takes the turn of an attempt of account handed event seq (ev, prepared) from the cache
// or from another's read, whose event or body takes n bytes: at once when it is free; otherwise
// without the event, which it reads again once the turn comes (attempts waiting with the events
// they were handed held more than the turns bound). It returns the event to use and sets *turn;
// ok is false when the wait ended (stopping) or the read again failed.
func (e *Engine) largeTurn(ctx context.Context, account string, seq uint64, ev *cachedEvent, prep *payload.Prepared, n int, turn *func()) (*cachedEvent, *payload.Prepared, bool) {
	w := int64(min(n, e.cfg.LargeBodyBytes))
	e.holdLarge(1)
	if release, ok := e.largeBodies.tryAcquire(account, w); ok {
		*turn = release
		return ev, prep, true
	}
	e.holdLarge(-1)
	release, err := e.largeBodies.acquire(ctx, account, w)
	if err != nil {
		return nil, nil, false
	}
	e.holdLarge(1)
	*turn = release
	if ev, err = e.eventHolding(ctx, seq); err == nil {
		prep, err = ev.prepared()
	}
	return ev, prep, err == nil
}

// eventHolding returns event seq for an attempt that holds a large turn: from the cache, or read
// from the store by itself. It does not wait for another caller's read, whose reserve may be
// waiting for the very turn this caller holds.
func (e *Engine) eventHolding(ctx context.Context, seq uint64) (*cachedEvent, error) {
	if ev, ok := e.events.get(seq); ok {
		return ev, nil
	}
	return e.readEvent(ctx, seq, nil)
}

// holdLarge counts an attempt starting (1) or ending (-1) to hold a large event or body (or its
// turn, taken before the event is read).
func (e *Engine) holdLarge(d int64) {
	n := e.largeHeld.Add(d)
	for m := e.largeHeldPeak.Load(); n > m && !e.largeHeldPeak.CompareAndSwap(m, n); m = e.largeHeldPeak.Load() {
	}
}

// decodeEvent parses stored event seq for payload building. The notification aliases raw: one copy
// of a large event in memory, not two. An event that does not decode is errCorruptEvent: it never
// will.
func decodeEvent(seq uint64, raw []byte, created time.Time) (*cachedEvent, error) {
	ev, err := event.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%w %d: %v", errCorruptEvent, seq, err)
	}
	return &cachedEvent{seq: seq, ev: ev, created: created, size: len(raw) + eventOverhead}, nil
}
