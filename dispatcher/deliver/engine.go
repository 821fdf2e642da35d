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

// Package deliver is the dispatcher's delivery engine: one FIFO queue per webhook, at most one
// notification in flight per webhook (a failing head holds back the ones behind it, and only those),
// at most N in flight per account, Acrobat Sign's retry schedule, drops after 72 hours and auto-disable.
package deliver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/semaphore"
	"k8s.io/utils/clock"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/dispatcher/payload"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/deliveries"
	"github.com/hookline/hookline/internal/signing"
)

// Webhook is the delivery configuration of one webhook, taken from its resource.
type Webhook struct {
	UID       string
	Namespace string
	Name      string
	AccountID string
	URL       string
	ClientID  string
	Scope     string
	Params    *hooklinev1.ConditionalParams
	Cert      *tls.Certificate
	// Signing holds the Standard Webhooks keys; none means unsigned (Acrobat Sign sends none).
	Signing signing.Keys
	// HeldReason and HeldMessage say why an Active webhook cannot be delivered to (its client
	// certificate or signing Secret is missing or invalid); the status reports them.
	HeldReason, HeldMessage string
	// Deliverable is false while the webhook is not Active (for instance while a new URL is being
	// verified): its queue is kept, nothing is sent.
	Deliverable bool
	// LastVerified is the last successful verification: the starting point of the 7-day rule when
	// the webhook has had no successful delivery since.
	LastVerified time.Time
}

// Status is a webhook's delivery state, as reported in its status and kept across restarts.
type Status struct {
	LastAttempt         time.Time `json:"lastAttempt,omitzero"`
	LastSuccess         time.Time `json:"lastSuccess,omitzero"`
	FailingSince        time.Time `json:"failingSince,omitzero"`
	ConsecutiveFailures int64     `json:"consecutiveFailures,omitempty"`
	Pending             int64     `json:"pending,omitempty"`
	Delivered           int64     `json:"delivered,omitempty"`
	Dropped             int64     `json:"dropped,omitempty"`
	// LastFailure is the reason and message of the last failed attempt.
	LastFailureReason  string `json:"lastFailureReason,omitempty"`
	LastFailureMessage string `json:"lastFailureMessage,omitempty"`
	// Disabled is set when a drop found no success within DisableAfter.
	Disabled        bool      `json:"disabled,omitempty"`
	DisabledAt      time.Time `json:"disabledAt,omitzero"`
	DisabledMessage string    `json:"disabledMessage,omitempty"`
	// HandledReactivation is the last reactivation request (annotation value) acted upon.
	HandledReactivation string `json:"handledReactivation,omitempty"`
	// ProblemMailed is the FailingSince of the failing streak already reported by e-mail, kept
	// across restarts so that a restart does not mail the same streak again.
	ProblemMailed time.Time `json:"problemMailed,omitzero"`
	// Cancelled counts queued notifications cancelled unsent (INACTIVE, or a change of binding).
	Cancelled int64 `json:"cancelled,omitempty"`
	// Binding is the namespace binding the queue is filled under; saved, so that a binding changed
	// while the dispatcher was down is noticed at its next start.
	Binding Binding `json:"binding,omitzero"`
	// Rebound describes the last change of binding, until the next delivery attempt.
	Rebound Rebound `json:"rebound,omitzero"`
}

// Binding is a namespace binding as a queue remembers it: the account and, when the namespace is
// restricted to one, the group.
type Binding struct {
	AccountID string `json:"accountId,omitempty"`
	GroupID   string `json:"groupId,omitempty"`
}

// String names b for status messages.
func (b Binding) String() string {
	if b.GroupID == "" {
		return "account " + b.AccountID
	}
	return "account " + b.AccountID + " (group " + b.GroupID + ")"
}

// Rebound is a change of a webhook's namespace binding and what it cancelled.
type Rebound struct {
	From      Binding   `json:"from"`
	To        Binding   `json:"to"`
	Cancelled int64     `json:"cancelled,omitempty"`
	At        time.Time `json:"at"`
}

// head is the retry state of a queue's first notification.
type head struct {
	Seq       uint64    `json:"seq,omitempty"`
	Failures  int       `json:"failures,omitempty"`
	Next      time.Time `json:"next,omitzero"`
	Scheduled time.Time `json:"scheduled,omitzero"`
}

// record is what the state bucket keeps per webhook.
type record struct {
	Status Status `json:"status"`
	Head   head   `json:"head"`
}

// Config tunes an Engine.
type Config struct {
	Policy Policy
	// AccountConcurrency is the most notifications in flight per account (Acrobat Sign: 30).
	AccountConcurrency int
	// MemQueue is how many queued notifications per webhook are held in memory; the rest are read
	// from the store as the queue drains.
	MemQueue int
	// EventCacheBytes bounds the parsed events kept in memory.
	EventCacheBytes int
	// MaxPayloadBytes is the notification size cap (10 MiB).
	MaxPayloadBytes int
	// LargeBodyBytes bounds the memory of bodies above 1 MiB being built and sent at once (see
	// attempt); 0 means 64 MiB.
	LargeBodyBytes int
	// Recorder receives the delivery log's records (dispatcher/deliverylog); nil records nothing,
	// at no cost.
	Recorder Recorder
}

// largeBody is the size above which a body counts against Config.LargeBodyBytes.
const largeBody = 1 << 20

// Engine delivers queued notifications.
type Engine struct {
	cfg    Config
	store  *store.Store
	sender *Sender
	clock  clock.Clock
	log    logr.Logger
	events *eventCache
	// largeBodies is the memory for large bodies (Config.LargeBodyBytes).
	largeBodies *semaphore.Weighted
	// onChange is told when a webhook's Status changed; urgent changes (a state transition) should
	// be reported at once, others at the reporting interval.
	onChange func(uid string, urgent bool)
	metrics  *Metrics
	rec      Recorder

	mu       sync.Mutex
	queues   map[string]*queue
	accounts map[string]*account
	restored map[string]*record // state loaded at start, claimed by Upsert
	timers   timerHeap
	wake     chan struct{}
	ctx      context.Context
	wg       sync.WaitGroup
	acks     *acker
}

type account struct {
	inFlight int
	waiting  []*queue
}

type queue struct {
	wh  Webhook
	mem []store.Note
	// The store is the truth about a queue; mem is a read-ahead of its head, filled only by loads
	// from the store in sequence order. Notes of one webhook can be stored by concurrent ingest
	// requests and reported to Enqueue out of order, so Enqueue never appends to mem: it only says
	// that the store holds more (inStore). loadedUpTo is the highest sequence a load has returned;
	// storeGen counts Enqueue calls, so that a load racing with new arrivals never concludes too
	// early that the store is drained.
	loadedUpTo uint64
	inStore    bool
	storeGen   uint64

	head     head
	status   Status
	inFlight bool
	// epoch moves on whenever the queue is cancelled or removed; an attempt started in an earlier
	// epoch completes, but its outcome no longer changes the queue (a failure is not retried).
	epoch    uint64
	waiting  bool
	timerIdx int // index in the timer heap, -1 when not there
	removed  bool
	dirty    bool
}

// New creates an Engine. Start must be called before use.
func New(cfg Config, st *store.Store, sender *Sender, clk clock.Clock, log logr.Logger, metrics *Metrics, onChange func(string, bool)) *Engine {
	if cfg.AccountConcurrency <= 0 {
		cfg.AccountConcurrency = 30
	}
	if cfg.MemQueue <= 0 {
		cfg.MemQueue = 64
	}
	if cfg.EventCacheBytes <= 0 {
		cfg.EventCacheBytes = 16 << 20
	}
	if cfg.LargeBodyBytes <= 0 {
		cfg.LargeBodyBytes = 64 << 20
	}
	if onChange == nil {
		onChange = func(string, bool) {}
	}
	return &Engine{
		cfg: cfg, store: st, sender: sender, clock: clk, log: log, metrics: metrics, onChange: onChange, rec: cfg.Recorder,
		events:      newEventCache(cfg.EventCacheBytes),
		largeBodies: semaphore.NewWeighted(int64(cfg.LargeBodyBytes)),
		queues:      map[string]*queue{},
		accounts:    map[string]*account{},
		restored:    map[string]*record{},
		wake:        make(chan struct{}, 1),
	}
}

// Start loads the queues and states left by a previous run and starts the retry timer.
func (e *Engine) Start(ctx context.Context) error {
	counts, err := e.store.Queues(ctx)
	if err != nil {
		return err
	}
	keys, err := e.store.StateKeys(ctx)
	if err != nil {
		return err
	}
	restored := map[string]*record{}
	for _, uid := range keys {
		raw, err := e.store.GetState(ctx, uid)
		if err != nil {
			return err
		}
		rec := &record{}
		if raw != nil && json.Unmarshal(raw, rec) == nil {
			restored[uid] = rec
		}
	}
	for uid, n := range counts {
		rec := restored[uid]
		if rec == nil {
			rec = &record{}
			restored[uid] = rec
		}
		rec.Status.Pending = int64(n)
	}
	e.mu.Lock()
	e.restored = restored
	e.ctx = ctx
	e.mu.Unlock()
	e.acks = newAcker(e.store, e.rec, e.log)
	e.wg.Add(2)
	go func() { defer e.wg.Done(); e.acks.run(ctx) }()
	go func() { defer e.wg.Done(); e.runTimers(ctx) }()
	return nil
}

// Wait blocks until the engine's goroutines have stopped (after the Start context is cancelled).
func (e *Engine) Wait() { e.wg.Wait() }

// Known lists the webhook uids with stored queues or state, for garbage collection.
func (e *Engine) Known() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.restored)+len(e.queues))
	for uid := range e.restored {
		out = append(out, uid)
	}
	for uid := range e.queues {
		if _, dup := e.restored[uid]; !dup {
			out = append(out, uid)
		}
	}
	return out
}

// CacheEvent makes a just-accepted event available to payload building without a store read.
func (e *Engine) CacheEvent(seq uint64, ev *ingest.Event, created time.Time, size int) {
	e.events.put(&cachedEvent{seq: seq, ev: ev, created: created, size: size})
}

// Upsert creates or updates the queue of wh.
func (e *Engine) Upsert(wh Webhook) {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queueLocked(wh.UID)
	q.wh = wh
	e.scheduleLocked(q)
}

// queueLocked returns uid's queue, creating it on first use with the state a previous run left.
func (e *Engine) queueLocked(uid string) *queue {
	q := e.queues[uid]
	if q == nil {
		q = &queue{wh: Webhook{UID: uid}, timerIdx: -1}
		if rec := e.restored[uid]; rec != nil {
			q.status, q.head = rec.Status, rec.Head
			q.inStore = rec.Status.Pending > 0
			delete(e.restored, uid)
		}
		e.queues[uid] = q
	}
	return q
}

// Binding returns the binding uid's queue is filled under, and false when none is recorded (a new
// webhook, or state saved before bindings were recorded).
func (e *Engine) Binding(uid string) (Binding, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b Binding
	if q := e.queues[uid]; q != nil {
		b = q.status.Binding
	} else if rec := e.restored[uid]; rec != nil {
		b = rec.Status.Binding
	}
	return b, b != Binding{}
}

// Rebind records that uid's namespace is bound to b. When the queue was filled under another
// binding, everything queued is cancelled first (counted, and described in Status.Rebound): a
// notification queued for one account or group is never delivered under another. An attempt in
// flight completes, but is not retried. The caller withdraws uid's route before (so that nothing
// routed under the old binding arrives after) and routes it under b only after Rebind returned
// without error; on an error the binding stays the old one and the next call cancels again.
func (e *Engine) Rebind(ctx context.Context, uid string, b Binding) error {
	e.mu.Lock()
	q := e.queueLocked(uid)
	old := q.status.Binding
	switch old {
	case b:
		e.mu.Unlock()
		return nil
	case Binding{}:
		// The first binding seen (a new webhook, or state saved before bindings were recorded).
		q.status.Binding, q.dirty = b, true
		e.mu.Unlock()
		return e.Persist(ctx, uid)
	}
	queued := e.queuedLocked(q)
	cancelled := e.cancelLocked(q)
	e.mu.Unlock()
	e.log.Info("Cancelling notifications queued under the namespace's previous binding", "webhook", uid,
		"from", old.String(), "to", b.String(), "cancelled", cancelled)
	if err := e.recordQueued(ctx, queued, old.AccountID, deliveries.KindCancelled, deliveries.StateCancelled, ReasonRebound,
		"the namespace was bound to "+b.String()+" instead of "+old.String()); err != nil {
		return err
	}
	if err := e.store.RemoveQueue(ctx, uid); err != nil {
		return err
	}
	e.mu.Lock()
	q.status.Binding = b
	q.status.Rebound = Rebound{From: old, To: b, Cancelled: cancelled, At: e.clock.Now()}
	q.dirty = true
	e.mu.Unlock()
	e.onChange(uid, true)
	return e.Persist(ctx, uid)
}

// Status returns a copy of uid's delivery state.
func (e *Engine) Status(uid string) (Status, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queues[uid]
	if q == nil {
		return Status{}, false
	}
	return q.status, true
}

// Webhook returns uid's delivery configuration.
func (e *Engine) Webhook(uid string) (Webhook, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queues[uid]
	if q == nil {
		return Webhook{}, false
	}
	return q.wh, true
}

// Disabled reports whether uid is auto-disabled.
func (e *Engine) Disabled(uid string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queues[uid]
	return q != nil && q.status.Disabled
}

// NoteProblemMailed records that uid's failing streak that began at since was reported by e-mail;
// it is saved with the state.
func (e *Engine) NoteProblemMailed(uid string, since time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if q := e.queues[uid]; q != nil && !q.status.ProblemMailed.Equal(since) {
		q.status.ProblemMailed = since
		q.dirty = true
	}
}

// CountLost records an event that uid, being disabled, does not receive; n is the note it would
// have been queued as.
func (e *Engine) CountLost(uid string, n store.Note) {
	e.mu.Lock()
	q := e.queues[uid]
	var wh Webhook
	if q != nil {
		q.status.Dropped++
		q.dirty = true
		e.metrics.lost()
		wh = q.wh
	}
	e.mu.Unlock()
	if q == nil {
		return
	}
	if e.rec != nil {
		e.rec.Append(e.noteRecord(e.ctx, wh, wh.AccountID, n, deliveries.KindLost, deliveries.StateLost,
			ReasonWebhookDisabled, "not queued: the webhook is auto-disabled", e.clock.Now()))
	}
	e.onChange(uid, false)
}

// Enqueue takes in a note just stored for uid.
func (e *Engine) Enqueue(uid string, n store.Note) {
	if e.enqueueLocked(uid, n) {
		e.onChange(uid, false)
	}
}

func (e *Engine) enqueueLocked(uid string, n store.Note) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queues[uid]
	if q == nil || q.removed {
		return false // deleted meanwhile; the store queue is removed with it
	}
	q.status.Pending++
	q.dirty = true
	if n.Seq > q.loadedUpTo {
		q.inStore = true
		q.storeGen++
	}
	e.scheduleLocked(q)
	return true
}

// Cancel drops every queued notification of uid (the webhook went INACTIVE), counting them as
// cancelled; an attempt in flight completes, but is not retried.
func (e *Engine) Cancel(ctx context.Context, uid string) error {
	e.mu.Lock()
	q := e.queues[uid]
	var queued *queuedNotes
	var account string
	if q != nil {
		queued, account = e.queuedLocked(q), q.wh.AccountID
		e.cancelLocked(q)
	}
	e.mu.Unlock()
	if err := e.recordQueued(ctx, queued, account, deliveries.KindCancelled, deliveries.StateCancelled, ReasonInactive,
		"cancelled unsent: the webhook was set INACTIVE"); err != nil {
		return err
	}
	if err := e.store.RemoveQueue(ctx, uid); err != nil {
		return err
	}
	if q != nil {
		e.onChange(uid, true)
	}
	return e.Persist(ctx, uid)
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
	q.dirty = true
	e.unscheduleLocked(q)
	return n
}

// Remove forgets uid entirely: its queue and state leave the store (the webhook was deleted).
func (e *Engine) Remove(ctx context.Context, uid string) error {
	e.mu.Lock()
	if q := e.queues[uid]; q != nil {
		q.removed = true
		q.epoch++
		e.unscheduleLocked(q)
		delete(e.queues, uid)
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
	return true, e.Persist(ctx, uid)
}

// Persist writes uid's state to the store when it changed.
func (e *Engine) Persist(ctx context.Context, uid string) error {
	e.mu.Lock()
	q := e.queues[uid]
	if q == nil || !q.dirty {
		e.mu.Unlock()
		return nil
	}
	raw, err := json.Marshal(record{Status: q.status, Head: q.head})
	q.dirty = false
	e.mu.Unlock()
	if err != nil {
		return err
	}
	return e.store.PutState(ctx, uid, raw)
}

// scheduleLocked puts q where it belongs: on its account's waiting list when it can send now, on
// the timer heap when its head waits for a retry, nowhere when it has nothing to do.
func (e *Engine) scheduleLocked(q *queue) {
	if q.inFlight || q.waiting || q.removed || q.status.Disabled || !q.wh.Deliverable || q.status.Pending <= 0 {
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
		q.inFlight = true
		acc.inFlight++
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
		var wait time.Duration = time.Hour
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

// deliver makes one attempt for q's head and settles the outcome, unless the queue was cancelled
// or removed meanwhile (its epoch moved on): then the attempt is only counted.
func (e *Engine) deliver(q *queue, acc *account, epoch uint64) {
	defer e.wg.Done()
	ctx := e.ctx
	o := e.attempt(ctx, q)
	e.mu.Lock()
	q.inFlight = false
	acc.inFlight--
	var s settlement
	if q.epoch == epoch {
		s = e.settleLocked(q, o)
	} else {
		s = e.settleCancelledLocked(q, o)
	}
	e.scheduleLocked(q)
	e.pumpLocked(acc)
	wh, removed := q.wh, q.removed
	e.mu.Unlock()
	if removed {
		return
	}
	uid, urgent, persist := wh.UID, s.urgent, s.persist
	// The records go to the log before the settled notes to the acker, which purges them only once
	// the log has stored what was appended before (Recorder.Barrier).
	if e.rec != nil {
		switch {
		case s.attempt:
			e.rec.Append(s.rec)
		case s.dropped:
			e.rec.Append(e.noteRecord(ctx, wh, wh.AccountID, o.note, deliveries.KindDropped, deliveries.StateDropped, o.dropReason, o.dropMessage, o.at))
		}
	}
	if s.ack != 0 {
		e.acks.remove(uid, s.ack)
	}
	if s.queued != nil {
		// Auto-disabled: everything queued until now was dropped with the queue. Only that: a
		// reactivation may queue new notes before the purge, and those must stay.
		last, err := e.store.LastNoteSeq(ctx, uid)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Error(err, "Finding the end of an auto-disabled webhook's queue; it is purged at the next start", "webhook", uid)
			}
		} else {
			s.queued.upTo = last
			if err := e.recordQueued(ctx, s.queued, wh.AccountID, deliveries.KindDropped, deliveries.StateDropped, ReasonWebhookDisabled,
				"dropped with the queue: the webhook was auto-disabled"); err != nil && ctx.Err() == nil {
				e.log.Error(err, "Recording the notifications dropped by an auto-disable", "webhook", uid)
			}
			if last > 0 {
				e.acks.remove(uid, last)
			}
		}
	}
	if persist {
		if err := e.Persist(ctx, uid); err != nil && ctx.Err() == nil {
			e.log.Error(err, "Persisting delivery state", "webhook", uid)
		}
	}
	e.onChange(uid, urgent)
}

// outcome is what attempt observed, settled under the lock.
type outcome struct {
	note    store.Note
	none    bool // nothing to send after all (the queue was emptied meanwhile)
	expired bool // the head's 72 hours had passed: drop without an attempt
	retry   bool // a transient problem of our own (store unreachable): try again shortly
	attempt Attempt
	at      time.Time
	// For the delivery log: why an expired note was dropped; the attempt's number, what it sent and
	// how long it took.
	dropReason, dropMessage string
	number                  int
	ev                      *cachedEvent
	id                      string
	sent                    int
	trimmed                 []string
	took                    time.Duration
}

func (e *Engine) attempt(ctx context.Context, q *queue) outcome {
	note, ok, err := e.headNote(ctx, q)
	if err != nil {
		e.log.Error(err, "Loading queued notifications", "webhook", q.wh.UID)
		return outcome{retry: true}
	}
	if !ok {
		return outcome{none: true}
	}
	e.mu.Lock()
	wh := q.wh
	e.mu.Unlock()
	now := e.clock.Now()
	// A retry is judged by the time it was scheduled for, not by when the timer fired: the last
	// retry is scheduled exactly at the 72-hour mark, and a timer always fires a little late.
	due := now
	e.mu.Lock()
	if q.head.Seq == note.Seq && !q.head.Next.IsZero() && q.head.Next.Before(now) {
		due = q.head.Next
	}
	number := attemptNumber(q.head, note)
	e.mu.Unlock()
	if e.cfg.Policy.Expired(note.Created, due) {
		return outcome{note: note, expired: true, at: now, dropReason: ReasonExpired,
			dropMessage: "not delivered within " + e.cfg.Policy.DropAfter.String()}
	}
	ev, err := e.event(ctx, note.EventSeq)
	if err != nil {
		if store.Gone(err) || errors.Is(err, errCorruptEvent) {
			// The event is gone (retention) or unreadable: nothing can ever be sent for this note.
			e.log.Error(err, "Loading event of a notification; dropping it", "webhook", wh.UID, "event", note.EventSeq)
			if store.Gone(err) {
				return outcome{note: note, expired: true, at: now, dropReason: ReasonEventGone, dropMessage: "the event is no longer in the event log"}
			}
			return outcome{note: note, expired: true, at: now, dropReason: ReasonEventUnreadable, dropMessage: "the stored event cannot be read"}
		}
		// The store did not answer in time (a busy JetStream reading a 25 MB body): the event is
		// safe, try again shortly. The 72-hour check above still ends a read that never succeeds.
		e.log.Error(err, "Loading event of a notification; retrying", "webhook", wh.UID, "event", note.EventSeq)
		return outcome{retry: true}
	}
	prep, err := ev.prepared()
	if err != nil {
		e.log.Error(err, "Building payload; dropping the notification", "webhook", wh.UID, "event", note.EventSeq)
		return outcome{note: note, expired: true, at: now, dropReason: ReasonEventUnreadable, dropMessage: "the notification cannot be built from the event"}
	}
	notificationID := payload.NotificationID(wh.UID, ev.ev.AccountID, ev.ev.ID)
	pw, opt := wh.payloadWebhook(), e.bodyOptions() // as Body builds it for the read API
	// A body that keeps a large part of a large event (sections the size cap cannot trim) is a copy
	// of it per attempt: such bodies take turns within LargeBodyBytes, so that a fan-out of one
	// 25 MB event to many webhooks cannot hold dozens of copies at once. Small bodies never wait.
	if n := prep.BodySize(pw, notificationID, opt); n > largeBody {
		w := int64(min(n, e.cfg.LargeBodyBytes))
		if err := e.largeBodies.Acquire(ctx, w); err != nil {
			return outcome{retry: true} // stopping
		}
		defer e.largeBodies.Release(w)
	}
	body := prep.Build(pw, notificationID, opt)
	if len(body.Trimmed) > 0 {
		e.metrics.trimmed()
	}
	start := e.clock.Now()
	var hdr http.Header
	if len(wh.Signing) > 0 {
		hdr = http.Header{}
		wh.Signing.Sign(hdr, notificationID, start, body.Body)
	}
	a := e.sender.Send(ctx, wh.URL, wh.ClientID, wh.Cert, body.Body, hdr)
	took := e.clock.Since(start)
	e.metrics.attempt(a, took)
	return outcome{note: note, attempt: a, at: start, number: number, ev: ev, id: notificationID, sent: len(body.Body), trimmed: body.Trimmed, took: took}
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
	for _, n := range notes {
		if n.Seq > q.loadedUpTo {
			q.mem = append(q.mem, n)
			q.loadedUpTo = n.Seq
		}
	}
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

// event returns the parsed event with sequence seq, from the cache or the store. Concurrent attempts
// for one event (a fan-out) share one read.
func (e *Engine) event(ctx context.Context, seq uint64) (*cachedEvent, error) {
	return e.events.load(seq, func() (*cachedEvent, error) {
		raw, created, err := e.store.GetEvent(ctx, seq)
		if err != nil {
			return nil, err
		}
		// The notification aliases raw: one copy of a large event in memory, not two.
		ev, err := ingest.Decode(raw)
		if err != nil {
			return nil, fmt.Errorf("%w %d: %v", errCorruptEvent, seq, err)
		}
		return &cachedEvent{seq: seq, ev: ev, created: created, size: len(raw)}, nil
	})
}

// settleCancelledLocked counts the outcome of an attempt whose queue was cancelled while it was in
// flight (the cancellation left it out of its count): delivered when it succeeded, cancelled
// otherwise, including when it found its note gone. Nothing is retried.
//
// The cancellation recorded the note as cancelled; an attempt made is recorded after it, delivered
// or cancelled.
func (e *Engine) settleCancelledLocked(q *queue, o outcome) (s settlement) {
	attempted := !o.none && !o.retry && !o.expired
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

// settlement is what settling an outcome leaves to do once the engine's lock is released.
type settlement struct {
	// urgent: the status should show the change at once; persist: the stored state must be
	// rewritten now (retry state changed), counters alone are persisted at the reporting interval.
	urgent, persist bool
	// attempt: rec records the attempt; dropped: the note was dropped without one.
	attempt, dropped bool
	rec              deliveries.Record
	// ack is the settled note to purge from the store (0: none).
	ack uint64
	// queued is what an auto-disable dropped with the queue, to be recorded and purged.
	queued *queuedNotes
}

// settleLocked applies an outcome to q and returns what is left to do (settlement).
func (e *Engine) settleLocked(q *queue, o outcome) (s settlement) {
	st := &q.status
	if !o.none && !o.retry {
		// An attempt supersedes the report of a change of binding.
		st.Rebound = Rebound{}
	}
	if !o.none && !o.retry && !o.expired && e.rec != nil {
		// Its state (retrying or dropped, for a failure) is set below.
		s.attempt, s.rec = true, attemptRecord(q.wh, o, deliveries.StateDelivered)
	}
	switch {
	case o.none:
		return s
	case o.retry:
		q.head.Next = e.clock.Now().Add(time.Second)
		return s
	case o.expired:
		s.dropped = true
		s.urgent, s.ack, s.queued = e.dropHeadLocked(q)
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
		next, drop := e.cfg.Policy.NextAttempt(o.note.Created, q.head.Scheduled, q.head.Failures)
		s.persist = true
		if drop {
			s.rec.State = deliveries.StateDropped
			var disabled bool
			disabled, s.ack, s.queued = e.dropHeadLocked(q)
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
	q.status.Pending--
	q.dirty = true
	return n.Seq
}

// dropHeadLocked drops the head (returning its sequence, as popHeadLocked) and, when the webhook has
// had no success within DisableAfter, auto-disables it: its queue is cancelled and nothing is
// queued until it is reactivated. What the queue still held is returned, for the caller to record
// and remove from the store.
func (e *Engine) dropHeadLocked(q *queue) (disabled bool, ack uint64, queued *queuedNotes) {
	st := &q.status
	st.Dropped++
	e.metrics.dropped()
	ack = e.popHeadLocked(q)
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
	e.metrics.disabled()
	return true, ack, queued
}

// QueueDebug is a snapshot of one queue's internals, for diagnostics.
type QueueDebug struct {
	UID         string `json:"uid"`
	Pending     int64  `json:"pending"`
	InMemory    int    `json:"inMemory"`
	InStore     bool   `json:"inStore"`
	LoadedUpTo  uint64 `json:"loadedUpTo"`
	InFlight    bool   `json:"inFlight"`
	Waiting     bool   `json:"waiting"`
	Deliverable bool   `json:"deliverable"`
	Disabled    bool   `json:"disabled"`
	HeadNext    string `json:"headNext,omitempty"`
}

// Debug returns every queue's internals.
func (e *Engine) Debug() []QueueDebug {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]QueueDebug, 0, len(e.queues))
	for uid, q := range e.queues {
		d := QueueDebug{UID: uid, Pending: q.status.Pending, InMemory: len(q.mem), InStore: q.inStore, LoadedUpTo: q.loadedUpTo,
			InFlight: q.inFlight, Waiting: q.waiting, Deliverable: q.wh.Deliverable, Disabled: q.status.Disabled}
		if !q.head.Next.IsZero() {
			d.HeadNext = q.head.Next.Format(time.RFC3339Nano)
		}
		out = append(out, d)
	}
	return out
}
