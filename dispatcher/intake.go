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

// Package dispatcher wires hookline's dispatcher: events accepted on the ingest API are stored,
// routed to the matching Active webhooks through an informer-fed routing table, queued per webhook
// and delivered by the engine, whose state a reporter writes back into each Webhook's status.
package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/dispatcher/deliverylog"
	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/dispatcher/route"
	"github.com/hookline/hookline/dispatcher/store"
)

// Intake is the accept step of the ingest API: it stores an event, routes it and queues its
// notifications (named for what it does, not after the program it is part of).
type Intake struct {
	Store  *store.Store
	Engine *deliver.Engine
	Table  *route.Table
	Clock  clock.PassiveClock
	Log    logr.Logger
	// DeliveryLog is the delivery log (nil when off). Events routed to an auto-disabled webhook are
	// recorded as lost through Engine.CountLost; replays read it.
	DeliveryLog *deliverylog.Log

	// grace, when set (tests), replaces routingGrace.
	grace atomic.Int64
	// failEnqueues, when set (tests), is how many of the next queueings of notes fail before the
	// store is asked, as a store without a leader does.
	failEnqueues atomic.Int32

	mu sync.Mutex
	// accepting holds the keys of the events whose Accept runs in this process.
	accepting map[string]struct{}
}

// routingGrace is how long after it was stored a re-post of an event stored but not routed by
// another dispatcher is answered "in progress" rather than routed here: that dispatcher may be
// routing it for as long as an Accept may last, and after that it crashed doing so.
const routingGrace = ingest.AcceptTimeout + 5*time.Second

func (d *Intake) routingGrace() time.Duration {
	if g := d.grace.Load(); g != 0 {
		return time.Duration(g)
	}
	return routingGrace
}

// ErrBeingRouted answers a re-post of an event another dispatcher stored moments ago and is still
// routing: the producer retries, and finds it routed.
var ErrBeingRouted = &ingest.Error{Status: http.StatusServiceUnavailable, Code: "EVENT_IN_PROGRESS",
	Message: "an earlier post of this event is being stored and routed; retry after 1 s"}

var _ ingest.Acceptor = (*Intake)(nil)

// Accept stores ev, routes it and queues one notification per matching webhook; it returns once
// all of that is durable. A re-post of the same event (same account and id, see store.EventKey)
// within the dedupe window is acknowledged without queueing anything again — unless the first post
// stored the event but crashed before its notifications were queued (no "routed" marker), in which
// case this post completes the routing of the stored event: never with this request's attributes,
// which are only the producer's claim, while the stored body is what every notification carries.
//
// Re-posts of an event whose first post is still being routed neither read the stored event nor
// queue it again: one that comes while this process accepts it, or a re-post of an event
// another dispatcher stored less than routingGrace ago (by JetStream's clock, one for every
// dispatcher) is answered ErrBeingRouted. Before, each
// re-post of a large event in that window read the whole stored body (a producer's 300-byte
// requests each made the dispatcher read 25 MB) and queued its notifications again.
func (d *Intake) Accept(ctx context.Context, ev *ingest.Event, raw []byte) (ingest.Receipt, error) {
	key := store.EventKey(ev.AccountID, ev.ID)
	done, ok := d.claim(key)
	if !ok {
		return ingest.Receipt{}, ErrBeingRouted
	}
	defer done()
	now := d.Clock.Now()
	seq, duplicate, err := d.Store.PutEvent(ctx, key, raw, now)
	if err != nil {
		return ingest.Receipt{}, err
	}
	created := now
	if duplicate {
		// seq 0: the store found it routed before storing anything (a large event's re-post).
		r := store.Routing{Routed: seq == 0}
		if !r.Routed {
			if r, err = d.Store.Routing(ctx, key, seq); err != nil {
				return ingest.Receipt{}, err
			}
		}
		if r.Routed {
			return ingest.Receipt{Duplicate: true}, nil
		}
		if !r.Mine && time.Until(r.StoredAt) > -d.routingGrace() {
			return ingest.Receipt{}, ErrBeingRouted
		}
		stored, at, err := d.Store.GetEvent(ctx, seq)
		if err != nil {
			return ingest.Receipt{}, err
		}
		if ev, err = ingest.Decode(stored); err != nil {
			return ingest.Receipt{}, fmt.Errorf("reading stored event %d: %w", seq, err)
		}
		created = at
	}
	// Held until the notifications are queued: a webhook withdrawn meanwhile (deleted, INACTIVE,
	// namespace rebound) has its queue cleared only after, so nothing routed here outlives that.
	targets, release := d.Table.Route(&route.Event{
		Name:      ev.Event,
		AccountID: ev.AccountID,
		GroupID:   ev.GroupID,
		UserID:    ev.Initiator.UserID,
		Resource:  hooklinev1.WebhookResource{Type: hooklinev1.ResourceType(ev.Resource.Type), ID: ev.Resource.ID},
	})
	release = sync.OnceFunc(release)
	defer release()
	items := make([]store.Enqueue, 0, len(targets))
	var disabled []store.Enqueue
	for _, t := range targets {
		n := store.Note{EventSeq: seq, Created: created, EventID: ev.ID, EventName: ev.Event}
		if d.Engine.Disabled(t.UID) {
			disabled = append(disabled, store.Enqueue{UID: t.UID, Note: n})
			continue
		}
		items = append(items, store.Enqueue{UID: t.UID, Note: n})
	}
	if !duplicate {
		d.Engine.CacheEvent(seq, ev, now, len(raw), uids(items)...)
	}
	if err := d.enqueue(ctx, items); err != nil {
		return ingest.Receipt{Stored: !duplicate}, fmt.Errorf("queueing notifications of event %s: %w", ev.ID, err)
	}
	// Counted lost once the others are queued: counted before, a failure to queue them (answered
	// 503) had the producer's retry count them again, two records and two drops for one
	// notification, or one for an event never acknowledged. A queue given up meanwhile (its
	// partition another dispatcher's) is not counted: its note is stored for the next owner,
	// which loses it on arrival.
	var lost []string // the webhooks of the lost notifications
	var handedOver []store.Enqueue
	for _, it := range disabled {
		if d.Engine.CountLost(it.UID, it.Note) {
			lost = append(lost, it.UID)
		} else {
			handedOver = append(handedOver, it)
		}
	}
	if err := d.enqueue(ctx, handedOver); err != nil {
		return ingest.Receipt{Stored: !duplicate}, fmt.Errorf("queueing notifications of event %s: %w", ev.ID, err)
	}
	release() // queued: a withdrawal need not wait for what follows
	if len(lost) > 0 && d.DeliveryLog != nil {
		// A lost notification is only its record, which a recover replays from: stored before the
		// 202, as the notes are, so that a crash right after it loses neither. Should the log not
		// store it in time, the 202 is given all the same (the notes are queued, and a re-post
		// would queue them twice): the writer keeps retrying, and only a crash meanwhile loses it.
		// Their records only: the other webhooks' go on gathering into fewer messages.
		if err := d.DeliveryLog.BarrierFor(ctx, lost...); err != nil {
			d.Log.Error(err, "Storing the records of notifications lost to auto-disabled webhooks before acknowledging; they are stored later", "event", ev.ID)
		}
	}
	if err := d.Store.MarkRouted(ctx, key, seq); err != nil {
		// The notifications are queued: the event is safe. Only a re-post within the dedupe
		// window could now queue them twice (same webhookNotificationId, so receivers dedupe).
		d.Log.Error(err, "Recording that an event is routed", "event", ev.ID)
	}
	return ingest.Receipt{Duplicate: duplicate, Notifications: len(items) + len(handedOver)}, nil
}

// claim holds key until done is called, or reports false when this process's Accept of key is in
// progress: one Accept of an event at a time here. The other is answered at once rather than
// made to wait, so that re-posts hold no connection for the length of an Accept.
func (d *Intake) claim(key string) (done func(), ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, busy := d.accepting[key]; busy {
		return nil, false
	}
	if d.accepting == nil {
		d.accepting = map[string]struct{}{}
	}
	d.accepting[key] = struct{}{}
	return func() {
		d.mu.Lock()
		delete(d.accepting, key)
		d.mu.Unlock()
	}, true
}

// uids returns the webhooks items are queued for.
func uids(items []store.Enqueue) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.UID
	}
	return out
}

// enqueue stores items' notes in their webhooks' queues and hands them to the engine.
func (d *Intake) enqueue(ctx context.Context, items []store.Enqueue) error {
	if len(items) > 0 && d.failEnqueues.Load() > 0 && d.failEnqueues.Add(-1) >= 0 {
		return errInjected
	}
	return enqueueNotes(ctx, d.Store, d.Engine, items)
}

// errInjected is the failure Intake.failEnqueues makes.
var errInjected = errors.New("queueing failed (injected by a test)")

// enqueueNotes stores items' notes in their webhooks' queues and hands them to the engine: how
// every note is queued (ingest, test notifications, replays). When storing fails some notes may be
// stored: their queues read the store for them (Engine.Recheck), and the caller's retry (the
// producer's, or the replay's, which finds its own notes by name) does not lose the rest.
func enqueueNotes(ctx context.Context, st *store.Store, e *deliver.Engine, items []store.Enqueue) error {
	if len(items) == 0 {
		return nil
	}
	results, err := st.EnqueueAll(ctx, items)
	if err != nil {
		for _, it := range items {
			e.Recheck(it.UID)
		}
		return err
	}
	for i, r := range results {
		n := items[i].Note
		n.Seq = r.Seq
		e.Enqueue(items[i].UID, n)
	}
	return nil
}
