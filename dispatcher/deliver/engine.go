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
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/event"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/signing"
)

// Webhook is the delivery configuration of one webhook, taken from its resource.
type Webhook struct {
	UID       string
	Namespace string
	Name      string
	// AccountID and NamespaceGroup are the namespace's binding now: nothing of another is sent.
	AccountID      string
	NamespaceGroup string
	URL            string
	ClientID       string
	Scope          string
	Params         *hooklinev1.ConditionalParams
	Cert           *tls.Certificate
	// Signing holds the Standard Webhooks keys; none means unsigned (Acrobat Sign sends none).
	Signing signing.Keys
	// HeldReason and HeldMessage say why an Active webhook cannot be delivered to (its client
	// certificate or signing Secret is missing or invalid); the status reports them.
	HeldReason, HeldMessage string
	// Deliverable is false while the webhook is not Active (for instance while a new URL is being
	// verified): its queue is kept, nothing is sent.
	Deliverable bool
	// Inactive says that the webhook is set INACTIVE: what arrives in its queue meanwhile (stored
	// by another dispatcher before it saw the change) is cancelled as it arrives, not kept for an
	// ACTIVE that is a new start.
	Inactive bool
	// LastVerified is the last successful verification: the starting point of the 7-day rule when
	// the webhook has had no successful delivery since.
	LastVerified time.Time
}

// DefaultMemQueue is Config.MemQueue's default. A webhook has one notification in flight, so its
// read-ahead need only outlast a read from the store's index or sweep; every note held costs memory
// in each of a thousand draining queues (with their parsed events and the sweep's lists): with 64,
// about 26 MB more of a 1,000,000 drain's peak heap than with 16, for no throughput
// (docs/performance.md, session 27).
const DefaultMemQueue = 16

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
	// attempt), one account's at half of it; 0 means 64 MiB.
	LargeBodyBytes int
	// SaveInterval is how often counters changed since the last save are written to the store (10 s
	// when 0); state transitions and retry state are saved as they happen, and everything at a stop.
	SaveInterval time.Duration
	// Recorder receives the delivery log's records (dispatcher/deliverylog); nil records nothing,
	// at no cost.
	Recorder Recorder
	// ReplayGone, when set, reports whether the WebhookReplay replay names in namespace (a note's
	// Replay: deliveries.ReplayRef) no longer exists, or is another object of that name now: the
	// notes it queued are then cancelled when they reach their queue's head, unsent
	// (deleting a replay stops it, as deleting a Job stops its Pods). An error leaves the note
	// to be sent.
	ReplayGone func(ctx context.Context, namespace, replay string, queued time.Time) (bool, error)
	// Partitions, when above 0, makes the engine deliver only the partitions it is given (Acquire,
	// Release; partitions.go): dispatchers sharing a NATS cluster divide the webhooks by account.
	Partitions int
	// Announce, with Partitions, is told of every note stored for a webhook this engine does not
	// deliver, for its owner (whose engine takes it in with Arrived). It must not block.
	Announce func(partition int, uid string, n store.Note)
	// Taken, with Partitions, is told of the webhooks whose delivery this engine has just taken
	// over, so that their resources are read again (a change made while nobody delivered them).
	Taken func(uids []string)
	// ReleaseSaveTimeout bounds how long Release saves the state of a partition given up (5 s by
	// default): a dispatcher cut off from NATS must finish giving its partitions up quickly.
	ReleaseSaveTimeout time.Duration
	// StopGrace bounds how long the attempts in flight when the engine stops may go on (5 s by
	// default); past it their requests are cancelled, and the notifications sent again later.
	StopGrace time.Duration
}

// largeBody is the size above which a body, or an event an attempt holds, counts against
// Config.LargeBodyBytes.
const largeBody = 1 << 20

// Engine delivers queued notifications.
type Engine struct {
	cfg    Config
	store  QueueStore
	sender Transport
	clock  clock.Clock
	log    logr.Logger
	events *eventCache
	// largeBodies is the memory for large bodies and events (Config.LargeBodyBytes), half of it
	// at most per account.
	largeBodies *largeTurns
	// largeHeld counts the attempts holding a large event (or one whose body is large), and
	// largeHeldPeak their most at once (for tests).
	largeHeld, largeHeldPeak atomic.Int64
	// watchers are told when a webhook's Status changed (Watch); urgent changes (a state
	// transition) should be shown at once, others may wait. They are only told: what they do never
	// feeds back into delivery or its durability.
	watchers []func(uid string, urgent bool)
	metrics  *Metrics
	rec      Recorder

	mu       sync.Mutex
	queues   map[string]*queue
	accounts map[string]*account
	restored map[string]*record // state loaded at start, claimed by Upsert
	// settledBefore is what the delivery log recorded as settled shortly before this process
	// started (recentlySettled), per webhook, until the webhook's queue head is past them.
	settledBefore map[string]map[settledKey]time.Time
	timers        timerHeap
	wake          chan struct{}
	// ctx is Start's: once it ends nothing new starts. The attempts under way and their
	// settlements run on attemptCtx, which ends once they are over or Config.StopGrace has
	// passed, so that a clean stop does not cut requests that the next deliverer would repeat.
	ctx        context.Context
	attemptCtx context.Context
	// running counts the attempts started and not yet acked; drained is closed once it is 0
	// after ctx ended.
	running int
	drained chan struct{}
	wg      sync.WaitGroup
	acks    *acker
	// jobs hands attempts to waiting delivery workers (startLocked); at most idleMax wait, and
	// idleLow is the fewest that waited since reapWorkers last looked. workers counts the workers
	// started, liveWorkers those not ended (tests read them).
	jobs                              chan attemptJob
	idleMax                           int64
	idleWorkers, idleLow, liveWorkers atomic.Int64
	workers                           atomic.Int64

	// Partitioned delivery (partitions.go): the partitions owned, the queues whose state is to be
	// read (uid → claim), and idle, signalled when an attempt of a queue being released ends.
	owned map[int]bool
	// until is when each owned partition's lease stops covering new attempts (Extend); stalled
	// marks the partitions whose queues were held back because it had passed.
	until   map[int]time.Time
	stalled map[int]bool
	// requests holds, per partition, the context of its attempts' requests (requestCtxLocked):
	// Release cuts what is still sending when its wait ends, before the lease goes.
	requests map[int]partitionRequests
	// tokens holds each owned partition's fencing token (Acquire), written into the state of its
	// queues: a later owner's is higher.
	tokens map[int]uint64
	toLoad map[string]uint64
	// toLose holds the uids whose stored notes the loader records as lost (Arrived, for an
	// auto-disabled webhook): in order, once per burst, and not on the announcements' goroutine.
	toLose   map[string]bool
	loadGen  uint64
	loadKick chan struct{}
	idle     *sync.Cond
	// bindings reads a namespace's binding past any cache (ConfirmBindingsWith); nil: the one the
	// engine knows is taken as the truth.
	bindings BindingSource
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

	head head
	// heldUntil is when the head of a queue held back (its webhook not Deliverable) is next
	// looked at: its 72 hours end then. Held notes are never sent, but they expire as any other,
	// on record, before the stream's own age limit removes them with none.
	heldUntil time.Time
	status    Status
	inFlight  bool
	// acking counts the attempts that are over and whose settlements are not yet with the acker;
	// Release waits for them as for one in flight.
	acking int
	// holds counts the callers storing notes for the queue outside the intake (Hold); Release
	// waits for them as for an attempt in flight.
	holds int
	// epoch moves on whenever the queue is cancelled, removed or reset (its partition given up);
	// an attempt started in an earlier epoch completes, but its outcome no longer changes the
	// queue. cancelEpoch is the epoch the last cancellation began: an attempt older than it
	// settles as cancelled; one older only than a reset leaves its note to the next owner.
	epoch       uint64
	cancelEpoch uint64
	// waitingOn is the line of its account that holds q (nil: none). Kept, not looked up from
	// q.wh, which may change meanwhile (a rebinding): a queue left on an old account's list was
	// started twice, by each account's turn.
	waitingOn *line
	timerIdx  int // index in the timer heap, -1 when not there
	removed   bool
	dirty     bool
	// droppedUpTo is the last note an auto-disable recorded as dropped with the queue: those wait
	// for the acker's purge, and a recount does not count them again as lost.
	droppedUpTo uint64
	// lostEvents are the events last counted lost for the queue at ingest (by store sequence, the
	// latest lostEventsKept): a producer's retry of an event (after a 503) counts none twice.
	lostEvents []uint64
	// unrecorded: an auto-disable could not record all it dropped; the loader loses the rest,
	// and the webhook is not reactivated meanwhile.
	unrecorded bool
	// cancelling counts the cancellations (Cancel, Rebind) recording and removing the queue's
	// stored notes: nothing is sent from it, nor does a recount cancel or schedule it, meanwhile.
	cancelling int
	// own and part: whether this engine delivers the queue, and its partition (partitions.go).
	own  ownership
	part int
	// stateRev is the revision of the stored state this engine last read or wrote (0: none);
	// saving holds persist's writes of the queue's state to one at a time, so that they land
	// in the order their snapshots were taken: a one-slot semaphore, so that a writer with a
	// deadline (a partition given up) does not wait past it behind another's write.
	stateRev uint64
	saving   chan struct{}
	// confirmed is a binding the namespace was found to have (BindingSource) after every note up
	// to confirmedThrough was stored: a note up to there whose event is of another binding is of
	// an older one, and is cancelled without asking again (binding.go).
	confirmed        Binding
	confirmedThrough uint64
}

// New creates an Engine. Start must be called before use.
func New(cfg Config, st QueueStore, sender Transport, clk clock.Clock, log logr.Logger, metrics *Metrics) *Engine {
	if cfg.AccountConcurrency <= 0 {
		cfg.AccountConcurrency = 30
	}
	if cfg.MemQueue <= 0 {
		cfg.MemQueue = DefaultMemQueue
	}
	if cfg.EventCacheBytes <= 0 {
		cfg.EventCacheBytes = 16 << 20
	}
	if cfg.LargeBodyBytes <= 0 {
		cfg.LargeBodyBytes = 64 << 20
	}
	if cfg.SaveInterval <= 0 {
		cfg.SaveInterval = 10 * time.Second
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 5 * time.Second
	}
	e := &Engine{
		cfg: cfg, store: st, sender: sender, clock: clk, log: log, metrics: metrics, rec: cfg.Recorder,
		events:      newEventCache(cfg.EventCacheBytes),
		largeBodies: newLargeTurns(int64(cfg.LargeBodyBytes)),
		queues:      map[string]*queue{},
		accounts:    map[string]*account{},
		restored:    map[string]*record{},
		wake:        make(chan struct{}, 1),
		owned:       map[int]bool{},
		until:       map[int]time.Time{},
		tokens:      map[int]uint64{},
		stalled:     map[int]bool{},
		requests:    map[int]partitionRequests{},
		toLoad:      map[string]uint64{},
		toLose:      map[string]bool{},
		loadKick:    make(chan struct{}, 1),
		drained:     make(chan struct{}),
		jobs:        make(chan attemptJob),
		idleMax:     maxIdleWorkers,
	}
	e.idle = sync.NewCond(&e.mu)
	return e
}

// Watch adds f to those told when a webhook's delivery state changed (urgent: a state transition,
// to be shown at once). f must not block. Call Watch before Start.
func (e *Engine) Watch(f func(uid string, urgent bool)) {
	e.watchers = append(e.watchers, f)
}

// onChange tells the watchers that uid's state changed.
func (e *Engine) onChange(uid string, urgent bool) {
	for _, f := range e.watchers {
		f(uid, urgent)
	}
}

// Start loads the queues and states left by a previous run and starts the retry timer.
func (e *Engine) Start(ctx context.Context) error {
	// Partitioned, nothing is restored here: each partition's queues are read when it is acquired.
	var restored map[string]*record
	var settled map[string]map[settledKey]time.Time
	if !e.partitioned() {
		var err error
		if restored, err = e.restore(ctx); err != nil {
			return err
		}
		if settled, err = e.recentlySettled(ctx); err != nil {
			return err
		}
	}
	e.mu.Lock()
	if restored != nil {
		e.restored = restored
	}
	e.settledBefore = settled
	e.ctx = ctx
	attemptCtx, cancelAttempts := context.WithCancel(context.WithoutCancel(ctx))
	e.attemptCtx = attemptCtx
	e.mu.Unlock()
	e.acks = newAcker(e.store, e.rec, e.log)
	e.wg.Add(6)
	go func() { defer e.wg.Done(); e.drainOnStop(ctx, cancelAttempts) }()
	go func() { defer e.wg.Done(); e.reapWorkers(ctx) }()
	// The acker's last flush comes after the attempts' settlements.
	go func() { defer e.wg.Done(); e.acks.run(attemptCtx) }()
	go func() { defer e.wg.Done(); e.runTimers(ctx) }()
	go func() { defer e.wg.Done(); e.runSaver(ctx) }()
	// Partitioned, it loads the queues taken over; in every mode it recounts the store for notes
	// it was not told of (another dispatcher's: an announcement missed, or in the standby mode a
	// previous lease holder that was paused past its lease and stored them after this one read
	// the queues).
	go func() { defer e.wg.Done(); e.runLoader(ctx) }()
	return nil
}

// drainOnStop ends the attempts' context once ctx has ended and the attempts in flight are over,
// or StopGrace later.
func (e *Engine) drainOnStop(ctx context.Context, cancelAttempts context.CancelFunc) {
	defer cancelAttempts()
	<-ctx.Done()
	e.mu.Lock()
	// Nothing is handed to a worker any more (pumpLocked starts nothing once ctx has ended): the
	// waiting workers end.
	close(e.jobs)
	if e.running == 0 {
		e.mu.Unlock()
		return
	}
	e.mu.Unlock()
	// Wall-clock time, not the engine's clock: it bounds how long stopping the process takes.
	grace := time.NewTimer(e.cfg.StopGrace)
	defer grace.Stop()
	select {
	case <-e.drained:
	case <-grace.C:
	}
}

// Wait blocks until the engine's goroutines have stopped (after the Start context is cancelled),
// then saves the state changed since the last save, so that a clean stop loses no counter. The
// caller closes the store only after Wait.
func (e *Engine) Wait() {
	e.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.saveDirty(ctx)
}

// Known lists the webhook uids with stored queues or state, for garbage collection.
func (e *Engine) Known() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.restored)+len(e.queues))
	for uid := range e.restored {
		out = append(out, uid)
	}
	for uid, q := range e.queues {
		if q.own != ownActive {
			continue // another dispatcher's: it sweeps them
		}
		if _, dup := e.restored[uid]; !dup {
			out = append(out, uid)
		}
	}
	return out
}

// CacheEvent makes a just-accepted event available to payload building without a store read, when
// one of the queues uids (those it is queued for) is to send it soon. An event queued behind a
// backlog is read from the store when its turn comes, as the cache would have let it go long
// before: caching it would only take the budget from events about to be sent (and, while a
// backlog of a million builds up, hold the budget's worth of events no one sends).
func (e *Engine) CacheEvent(seq uint64, ev *event.Event, created time.Time, size int, uids ...string) {
	if !e.sendsSoon(uids) {
		return
	}
	e.events.put(&cachedEvent{seq: seq, ev: ev, created: created, size: size + eventOverhead})
}

// sendsSoon reports whether one of the queues uids would send a note queued now within its next
// read-ahead: a queue this engine delivers, able to send, whose head does not wait for a retry and
// whose pending notes are fewer than a read-ahead.
func (e *Engine) sendsSoon(uids []string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock.Now()
	for _, uid := range uids {
		q := e.queues[uid]
		if q == nil || q.removed || q.own != ownActive || q.status.Disabled || !q.wh.Deliverable {
			continue
		}
		if q.head.Next.After(now) || q.status.Pending >= int64(e.cfg.MemQueue) {
			continue
		}
		return true
	}
	return false
}

// Upsert creates or updates the queue of wh.
func (e *Engine) Upsert(wh Webhook) {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queueLocked(wh.UID)
	// The timer heap is ordered by wakeAt, which follows Deliverable: out of it while that changes.
	// A queue waiting for its account's slot whose webhook moved to another account waits for the
	// new one's.
	if wh.AccountID != q.wh.AccountID {
		e.unscheduleLocked(q)
	} else {
		e.timers.remove(q)
	}
	q.wh = wh
	e.placeLocked(q)
	e.scheduleLocked(q)
}

// queueLocked returns uid's queue, creating it on first use with the state a previous run left.
func (e *Engine) queueLocked(uid string) *queue {
	q := e.queues[uid]
	if q == nil {
		q = &queue{wh: Webhook{UID: uid}, timerIdx: -1, saving: make(chan struct{}, 1)}
		if e.partitioned() {
			q.own, q.part = ownDormant, -1 // placed by Upsert
		}
		if rec := e.restored[uid]; rec != nil {
			q.status, q.head, q.stateRev = rec.Status, rec.Head, rec.rev
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
	// Only a queue this engine delivers: one being given up keeps its state until the next owner
	// reads it, and an event lost to it here would have no note, no announcement and no record.
	return q != nil && q.own == ownActive && q.status.Disabled
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
			InFlight: q.inFlight, Waiting: q.waitingOn != nil, Deliverable: q.wh.Deliverable, Disabled: q.status.Disabled}
		if !q.head.Next.IsZero() {
			d.HeadNext = q.head.Next.Format(time.RFC3339Nano)
		}
		out = append(out, d)
	}
	return out
}

// logKeys names wh in log lines as every hookline component does: the Webhook as namespace/name
// (as controller-runtime logs the object of a reconcile) and its uid, which tells a recreated
// Webhook from its predecessor.
func (wh Webhook) logKeys() []any {
	return []any{"Webhook", klog.KRef(wh.Namespace, wh.Name), "uid", wh.UID}
}
