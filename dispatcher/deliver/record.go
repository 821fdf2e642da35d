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
	"errors"
	"time"

	"github.com/hookline/hookline/dispatcher/payload"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/deliveries"
)

// Recorder is the delivery log as the engine writes it (dispatcher/deliverylog.Log).
type Recorder interface {
	// Append hands a record to the log's writer without waiting for it to be stored.
	Append(deliveries.Record)
	// Barrier returns once every record appended before the call is stored.
	Barrier(ctx context.Context) error
	// BarrierFor is Barrier for the records of the webhooks uids only (the others may go on
	// gathering).
	BarrierFor(ctx context.Context, uids ...string) error
	// BarrierAtTick is Barrier when the log next publishes what it gathered (a fraction of a
	// second): the acker's, which runs often and need not hurry the log.
	BarrierAtTick(ctx context.Context) error
	// Tail calls fn for the newest stored records, oldest first: those stored within `within`
	// before the newest one, at most limit of them.
	Tail(ctx context.Context, within time.Duration, limit int, fn func(deliveries.Record)) error
}

// Reasons of the records written about notifications that were not attempted (attempts carry the
// attempt's outcome reason, as in status).
const (
	// ReasonExpired: its 72 hours passed while it waited.
	ReasonExpired = "Expired"
	// ReasonEventGone: its event is no longer in the event log (retention).
	ReasonEventGone = "EventGone"
	// ReasonEventUnreadable: its stored event cannot be read or turned into a notification.
	ReasonEventUnreadable = "EventUnreadable"
	// ReasonWebhookDisabled: dropped with the queue of the auto-disabled webhook, or not queued
	// (lost) because the webhook was auto-disabled.
	ReasonWebhookDisabled = "WebhookDisabled"
	// ReasonInactive: cancelled because the webhook was set INACTIVE.
	ReasonInactive = "WebhookInactive"
	// ReasonRebound: cancelled because the namespace was bound to another account or group.
	ReasonRebound = "NamespaceRebound"
	// ReasonReplayDeleted: queued again by a WebhookReplay that was deleted before it was sent.
	ReasonReplayDeleted = "ReplayDeleted"
)

// queuedNotes is what a queue held when it was cancelled or dropped: the notes read into memory,
// and those the store holds from sequence from on (the store is read before the queue is removed).
type queuedNotes struct {
	wh   Webhook
	mem  []store.Note
	from uint64
	// rebound: the queue may hold notes of its namespace's previous binding (a rebinding's report
	// stands), whose records take their event's account.
	rebound bool
	// upTo is the last note that belonged to the queue (0: none in the store); later ones were
	// queued after.
	upTo uint64
}

// queuedLocked captures what q holds, before it is emptied (the notes only when they are recorded).
func (e *Engine) queuedLocked(q *queue) *queuedNotes {
	qn := &queuedNotes{wh: q.wh, from: q.loadedUpTo + 1, rebound: !q.status.Rebound.At.IsZero()}
	if e.rec != nil {
		qn.mem = append([]store.Note(nil), q.mem...)
	}
	return qn
}

// recordBatch is how many notes recordQueued reads from the store at a time.
const recordBatch = 1024

// recordQueued writes a record of kind and state for every note in queued, reading the store's part
// (up to queued.upTo) in batches, and waits until the log has stored them. It returns the last
// note it recorded through: the caller removes no further. The store's reads are answered by its
// index of recent notes, which may not hold yet a note another dispatcher stored a moment ago (its
// announcement on its way): that note, and any after it, are left queued unrecorded, for the
// caller's follow-up (a recount's cancellation, the loader's losses), not removed with no record
// after their 202. accountID is the account the notes were queued under.
func (e *Engine) recordQueued(ctx context.Context, queued *queuedNotes, accountID string, kind deliveries.Kind, state deliveries.State, reason, message string) (through uint64, err error) {
	if queued == nil {
		return 0, nil
	}
	if e.rec == nil {
		return queued.upTo, nil
	}
	now := e.clock.Now()
	if queued.rebound {
		accountID = "" // each record's from its event (noteRecord)
	}
	for _, n := range queued.mem {
		e.rec.Append(e.noteRecord(ctx, queued.wh, accountID, n, kind, state, reason, message, now))
	}
	// Memory holds the queue's notes below from.
	through = min(queued.upTo, queued.from-1)
	for from := queued.from; from <= queued.upTo; {
		notes, err := e.store.LoadNotes(ctx, queued.wh.UID, from, recordBatch)
		if err != nil {
			return 0, err
		}
		for _, n := range notes {
			if n.Seq > queued.upTo {
				return through, e.rec.BarrierFor(ctx, queued.wh.UID)
			}
			e.rec.Append(e.noteRecord(ctx, queued.wh, accountID, n, kind, state, reason, message, now))
			from, through = n.Seq+1, n.Seq
		}
		if len(notes) < recordBatch {
			break
		}
	}
	return through, e.rec.BarrierFor(ctx, queued.wh.UID)
}

// noteRecord describes what happened at at to note n of wh, unattempted. accountID is the account
// n was queued under; "" when it may be another than wh's (after a rebinding): its event tells.
func (e *Engine) noteRecord(ctx context.Context, wh Webhook, accountID string, n store.Note, kind deliveries.Kind, state deliveries.State, reason, message string, at time.Time) deliveries.Record {
	eventID, name, created := n.EventID, n.EventName, n.Created
	if eventID == "" || n.Replay != "" || accountID == "" {
		// Queued before notes named their event, queued again by a replay (whose Created is the
		// replay's), or of an account to learn: the event tells, when it is still there.
		if ctx == nil {
			ctx = context.Background()
		}
		// Not a large event, though, which would be read whole, outside the turns, for its id
		// and time: the note's own fields stand for them (Created then the replay's).
		if ev, err := e.eventWithin(ctx, n.EventSeq, e.reserveLarge(refuseLarge)); err == nil {
			eventID, name, created, accountID = ev.ev.ID, ev.ev.Event, ev.created, ev.ev.AccountID
		}
	}
	if accountID == "" {
		accountID = wh.AccountID // the event is gone: the likeliest
	}
	r := deliveries.Record{
		Kind: kind, WebhookUID: wh.UID, Namespace: wh.Namespace, Name: wh.Name,
		EventSeq: n.EventSeq, EventID: eventID, EventName: name, Created: created,
		At: at, State: state, Reason: reason, Message: message, Replay: n.Replay,
	}
	if eventID != "" {
		r.NotificationID = payload.NotificationID(wh.UID, accountID, eventID)
	}
	return r
}

// errLargeEvent is refuseLarge's answer.
var errLargeEvent = errors.New("a large event is not read for a record")

// refuseLarge refuses the turn of every large event (reserveLarge).
func refuseLarge(int64) error { return errLargeEvent }

// attemptNumber numbers the attempt about to be made for n, h being the queue's retry state: the
// head's failures so far, plus one.
func attemptNumber(h head, n store.Note) int {
	if h.Seq != n.Seq {
		return 1
	}
	return h.Failures + 1
}

// attemptRecord records the attempt of o.
func attemptRecord(wh Webhook, o outcome, state deliveries.State) deliveries.Record {
	return deliveries.Record{
		Kind: deliveries.KindAttempt, WebhookUID: wh.UID, Namespace: wh.Namespace, Name: wh.Name,
		NotificationID: o.id, EventSeq: o.note.EventSeq, EventID: o.ev.ev.ID, EventName: o.ev.ev.Event,
		Created: o.ev.created, At: o.at, State: state, Attempt: o.number,
		DurationMillis: o.took.Milliseconds(), Reason: o.attempt.Reason, Message: o.attempt.Message,
		HTTPStatus: o.attempt.Status, Response: o.attempt.Response, BytesSent: o.sent, Trimmed: o.trimmed,
		Replay: o.note.Replay,
	}
}

// Name records the namespace and name of uid's webhook, for the records written before its first
// Upsert (Rebind, at start).
func (e *Engine) Name(uid, namespace, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queueLocked(uid)
	q.wh.Namespace, q.wh.Name = namespace, name
}
