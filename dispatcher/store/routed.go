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

package store

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// intakeHeader names, on each stored event, the intake that stored it: one per opened Store. The
// intake's record in HOOKLINE_ROUTED says which of its events have their notifications queued.
const intakeHeader = "Hookline-Intake"

// unsureRetry is how often a waiter retries an event publish whose outcome is unknown.
const unsureRetry = time.Second

// maxPending bounds the events a record lists as not routed, so that it stays far below JetStream's
// largest message (1 MB) when routing fails for many events (the notes stream failing while the
// events stream works). Past it the record's Hi stops below the excess, and events above it are
// marked one by one (errRecordFull).
const maxPending = 4096

// errRecordFull says that the record cannot cover an event: the caller marks it on its own.
var errRecordFull = errors.New("the routed record lists too many events not routed")

// routedRecord is an intake's record: every event it stored with a sequence up to Hi is routed,
// except those listed in Pending. Events above Hi are not known to be routed.
type routedRecord struct {
	Hi      uint64   `json:"hi"`
	Pending []uint64 `json:"pending,omitempty"`
}

// routed says, for the dedupe window, which stored events have their notifications queued, so that
// a re-post is not queued twice. It replaces a key per event (whose subject nats-server indexes,
// about 290 bytes of memory each for the whole window: a million events at 1,700 per second) with
// one record per intake, kept as small as the events in flight. A caller that queued an event's
// notifications waits until a saved record covers it (MarkRouted); concurrent callers share one
// save.
//
// The record is exact only if every event the intake stored up to Hi is either routed or pending,
// so Hi never passes a publish whose sequence is not known yet: each publish in progress holds Hi
// below the sequences it may get (open), and one whose outcome is unknown (a timeout) is published
// again, with its message id, until JetStream says which sequence it has.
type routed struct {
	kv         jetstream.KeyValue
	js         jetstream.JetStream
	id         string
	window     time.Duration
	maxPending int

	mu       sync.Mutex
	hi       uint64               // highest sequence stored by this intake
	pending  map[uint64]time.Time // stored, not (yet) routed
	open     map[uint64]uint64    // publish in progress -> hi when it began
	unsure   map[uint64]unsurePub // publish whose outcome is unknown
	nextTok  uint64
	gen      uint64 // changes to pending and hi
	savedGen uint64
	savedHi  uint64
	// full says that the last saved record stopped below the events it held, for maxPending.
	full     bool
	flushing bool
	// lastRetry is when the unsure publishes were last retried.
	lastRetry time.Time
	wake      chan struct{} // closed at every change and save
}

// unsurePub is a publish to retry.
type unsurePub struct {
	msg   *nats.Msg
	msgID string
}

func newRouted(js jetstream.JetStream, kv jetstream.KeyValue, window time.Duration) *routed {
	return &routed{kv: kv, js: js, id: "in-" + rand.Text(), window: window, maxPending: maxPending, pending: map[uint64]time.Time{},
		open: map[uint64]uint64{}, unsure: map[uint64]unsurePub{}, wake: make(chan struct{})}
}

// begin notes a publish of an event that is about to start.
func (r *routed) begin() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextTok++
	r.open[r.nextTok] = r.hi
	return r.nextTok
}

// end notes the outcome of publish tok: stored as seq (pending), a duplicate or refused (nothing
// new stored), or unknown (err that is not JetStream's answer: it is published again).
func (r *routed) end(tok uint64, msg *nats.Msg, msgID string, seq uint64, duplicate bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.signalLocked()
	var apiErr *jetstream.APIError
	switch {
	case err == nil && !duplicate:
		r.storedLocked(seq)
	case err != nil && !errors.As(err, &apiErr):
		// Stays open; waiters retry it (waitSaved).
		r.unsure[tok] = unsurePub{msg: msg, msgID: msgID}
		return
	}
	delete(r.open, tok)
}

func (r *routed) storedLocked(seq uint64) {
	r.pending[seq] = time.Now()
	r.hi = max(r.hi, seq)
	r.gen++
}

func (r *routed) signalLocked() {
	close(r.wake)
	r.wake = make(chan struct{})
}

// safeHiLocked is the highest sequence below which every event of this intake is known.
func (r *routed) safeHiLocked() uint64 {
	hi := r.hi
	for _, h := range r.open {
		hi = min(hi, h)
	}
	return hi
}

// markRouted records that seq's notifications are queued and waits until a saved record says so.
// It reports false when seq is not an event of this intake waiting for that (another intake's, or
// marked already): the caller records it otherwise.
func (r *routed) markRouted(ctx context.Context, seq uint64) (bool, error) {
	r.mu.Lock()
	if _, ok := r.pending[seq]; !ok {
		r.mu.Unlock()
		return false, nil
	}
	delete(r.pending, seq)
	r.gen++
	gen := r.gen
	r.signalLocked()
	r.mu.Unlock()
	return true, r.waitSaved(ctx, seq, gen)
}

// waitSaved waits until a saved record covers change gen and sequence seq, saving one itself when
// no one else is.
func (r *routed) waitSaved(ctx context.Context, seq, gen uint64) error {
	for {
		r.mu.Lock()
		switch {
		case r.savedGen >= gen && r.savedHi >= seq:
			r.mu.Unlock()
			return nil
		case r.full && r.savedGen >= gen:
			r.mu.Unlock()
			return errRecordFull
		}
		retry := len(r.unsure) > 0 && time.Since(r.lastRetry) >= unsureRetry
		if !r.flushing && (retry || r.gen > r.savedGen || r.safeHiLocked() > r.savedHi) {
			r.flushing = true
			r.mu.Unlock()
			err := r.save(ctx)
			r.mu.Lock()
			r.flushing = false
			r.signalLocked()
			r.mu.Unlock()
			if err != nil {
				return err
			}
			continue
		}
		// Nothing to save until something changes, or until an unsure publish is due again.
		wake, due := r.wake, (<-chan time.Time)(nil)
		if len(r.unsure) > 0 {
			due = time.After(unsureRetry)
		}
		r.mu.Unlock()
		select {
		case <-wake:
		case <-due:
		case <-ctx.Done():
			return fmt.Errorf("recording that event %d is routed: %w", seq, ctx.Err())
		}
	}
}

// save publishes again what is unsure, then stores the record as it stands.
func (r *routed) save(ctx context.Context) error {
	r.retryUnsure(ctx)
	r.mu.Lock()
	gen, hi := r.gen, r.safeHiLocked()
	rec := routedRecord{Hi: hi}
	old := time.Now().Add(-r.window)
	for seq, at := range r.pending {
		switch {
		case at.Before(old):
			// Outside the dedupe window a re-post is a new event: nothing asks any more.
			delete(r.pending, seq)
		case seq <= hi:
			rec.Pending = append(rec.Pending, seq)
		}
	}
	r.mu.Unlock()
	slices.Sort(rec.Pending)
	full := len(rec.Pending) > r.maxPending
	if full {
		hi = rec.Pending[r.maxPending] - 1
		rec.Hi, rec.Pending = hi, rec.Pending[:r.maxPending]
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := r.kv.Put(ctx, r.id, b); err != nil {
		return fmt.Errorf("saving the routed record: %w", err)
	}
	r.mu.Lock()
	// Saves take turns (flushing), and Hi only drops when the record is full.
	r.savedGen, r.savedHi, r.full = max(r.savedGen, gen), hi, full
	r.mu.Unlock()
	return nil
}

// retryUnsure publishes again each event whose first publish had no answer. Its message id makes
// JetStream answer with the sequence it stored it at, if it did.
func (r *routed) retryUnsure(ctx context.Context) {
	r.mu.Lock()
	if len(r.unsure) == 0 {
		r.mu.Unlock()
		return
	}
	r.lastRetry = time.Now()
	todo := make(map[uint64]unsurePub, len(r.unsure))
	for tok, p := range r.unsure {
		todo[tok] = p
	}
	r.mu.Unlock()
	for tok, p := range todo {
		ack, err := r.js.PublishMsg(ctx, p.msg, jetstream.WithMsgID(p.msgID))
		var apiErr *jetstream.APIError
		if err != nil && !errors.As(err, &apiErr) {
			continue
		}
		r.mu.Lock()
		if err == nil {
			// A duplicate is the first publish's own message: it is ours, and not routed.
			r.storedLocked(ack.Sequence)
		}
		delete(r.unsure, tok)
		delete(r.open, tok)
		r.signalLocked()
		r.mu.Unlock()
	}
}

// isRouted reports whether the record of intake id says that event seq is routed.
func (r *routed) isRouted(ctx context.Context, id string, seq uint64) (bool, error) {
	e, err := r.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var rec routedRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return false, fmt.Errorf("reading the routed record of %s: %w", id, err)
	}
	_, found := slices.BinarySearch(rec.Pending, seq)
	return seq <= rec.Hi && !found, nil
}
