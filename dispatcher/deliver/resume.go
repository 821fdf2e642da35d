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

// Resuming after a crash. A settled note leaves its queue in the background (acker), after the
// delivery log has stored its record: a process that dies in between leaves notes queued that its
// log already records as delivered, dropped or cancelled. The next process (a restart, or the
// standby taking over) reads the log's newest records once as it starts, and removes such a note
// unsent when it comes to a queue's head, instead of sending it again. What remains sent twice is
// the attempt in flight at the crash and a settlement whose record was not stored yet.

import (
	"context"
	"fmt"
	"time"

	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/deliveries"
)

const (
	// settledWithin is how far before the log's newest record a settlement is looked for: far
	// beyond the acker's lag (one Barrier and one purge), which is well under a second unless the
	// log or the store stalls, and then the notes wait with their records unstored anyway.
	settledWithin = 2 * time.Minute
	// settledMaxRecords bounds the read (about 10 µs a record): a second or so at most.
	settledMaxRecords = 100_000
)

// settledKey names a queued note in the log's terms: its event and the replay that queued it (""
// for the original). A webhook queues an event once, and a replay queues it at most once.
type settledKey struct {
	eventSeq uint64
	replay   string
}

// recentlySettled reads the log's newest records for the settlements they record, per webhook,
// with the time of the newest.
func (e *Engine) recentlySettled(ctx context.Context) (map[string]map[settledKey]time.Time, error) {
	if e.rec == nil {
		return nil, nil
	}
	out := map[string]map[settledKey]time.Time{}
	n := 0
	err := e.rec.Tail(ctx, settledWithin, settledMaxRecords, func(r deliveries.Record) {
		if !settles(r) {
			return
		}
		m := out[r.WebhookUID]
		if m == nil {
			m = map[settledKey]time.Time{}
			out[r.WebhookUID] = m
		}
		k := settledKey{eventSeq: r.EventSeq, replay: r.Replay}
		if _, seen := m[k]; !seen {
			n++
		}
		if r.At.After(m[k]) {
			m[k] = r.At
		}
	})
	if err != nil {
		return nil, fmt.Errorf("reading the delivery log's newest records: %w", err)
	}
	if n > 0 {
		e.log.Info("Notifications settled shortly before this start are not sent again if still queued", "settled", n, "webhooks", len(out))
	}
	return out, nil
}

// settles reports whether r ends its note's stay in the queue.
func settles(r deliveries.Record) bool {
	switch r.Kind {
	case deliveries.KindAttempt:
		return r.State == deliveries.StateDelivered || r.State == deliveries.StateDropped || r.State == deliveries.StateCancelled
	case deliveries.KindDropped, deliveries.KindCancelled:
		return true
	}
	return false
}

// settledBeforeLocked reports whether n, at uid's queue head, was settled before this process
// started. The settled notes left queued are the first of their queue (a queue settles in order),
// so the first head that is not one ends the search for that webhook. The record must be from
// after the note was queued: a replay deleted and created again under the same name queues the
// same event anew.
func (e *Engine) settledBeforeLocked(uid string, n store.Note) bool {
	m := e.settledBefore[uid]
	if m == nil {
		return false
	}
	at, ok := m[settledKey{eventSeq: n.EventSeq, replay: n.Replay}]
	if !ok || at.Before(n.Created) {
		delete(e.settledBefore, uid)
		return false
	}
	delete(m, settledKey{eventSeq: n.EventSeq, replay: n.Replay})
	return true
}
