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

// Partitioned delivery (active-active dispatchers, Config.Partitions > 0). Every dispatcher knows
// every webhook (its Syncer sees them all, for routing), but delivers only the queues of the
// partitions it owns (package partition: by account, so that an account's cap and each webhook's
// order stay with one owner). A queue is dormant on the others: its configuration is kept, its
// delivery state is not — the owner's state lives in the store, and a dispatcher taking a partition
// over reads it afresh (Acquire), as a restart does. Giving a partition up (Release) stops new
// attempts at once, lets the ones in flight settle, saves the state and forgets it.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/hookline/hookline/dispatcher/partition"
	"github.com/hookline/hookline/dispatcher/store"
)

// ownership is a queue's place in partitioned delivery. The zero value is active: an engine that is
// not partitioned owns every queue.
type ownership uint8

const (
	ownActive    ownership = iota // delivered by this engine
	ownDormant                    // another engine's, or nobody's: configuration only
	ownLoading                    // this engine's; its state is being read from the store
	ownReleasing                  // being given up: no new attempt, those in flight settle
)

// recountInterval is how often an engine compares its queues with the store, for notes it was not
// told of: arrivals whose announcement it missed (announcements are not durable), or in the standby
// mode notes a paused previous lease holder stored late.
const recountInterval = 30 * time.Second

func (e *Engine) partitioned() bool { return e.cfg.Partitions > 0 }

// Owns reports whether this engine delivers uid's queue now (always, unless partitioned).
func (e *Engine) Owns(uid string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queues[uid]
	return !e.partitioned() || q != nil && q.own == ownActive
}

// OwnsAccount reports whether this engine delivers account's partition now (always, unless
// partitioned): the one to speak for what of the account no queue names (a replay whose webhook
// is gone).
func (e *Engine) OwnsAccount(account string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.partitioned() || e.owned[partition.Of(account, e.cfg.Partitions)]
}

// placeLocked puts q, whose account may have changed, in its partition: claimed when this engine
// owns it, dormant otherwise.
func (e *Engine) placeLocked(q *queue) {
	if !e.partitioned() {
		return
	}
	p := partition.Of(q.wh.AccountID, e.cfg.Partitions)
	if p != q.part && q.own != ownDormant {
		// Moved to another account (a namespace bound anew): Rebind saved the new binding; whoever
		// owns the new partition reads the state afresh.
		e.resetLocked(q)
	}
	q.part = p
	if q.own == ownDormant && e.owned[p] {
		e.claimLocked(q)
	}
}

// claimLocked starts reading q's state: q is delivered once the loader has read it.
func (e *Engine) claimLocked(q *queue) {
	q.own = ownLoading
	e.loadGen++
	e.toLoad[q.wh.UID] = e.loadGen
	e.kickLoader()
}

// resetLocked makes q dormant, forgetting its delivery state; an attempt in flight settles into
// nothing (its epoch moved on).
func (e *Engine) resetLocked(q *queue) {
	e.unscheduleLocked(q)
	q.epoch++
	q.mem, q.inStore, q.loadedUpTo, q.head, q.status, q.dirty, q.stateRev = nil, false, 0, head{}, Status{}, false, 0
	q.unrecorded, q.droppedUpTo, q.heldUntil = false, 0, time.Time{}
	q.confirmed, q.confirmedThrough = Binding{}, 0
	q.storeGen++
	q.own = ownDormant
	delete(e.toLoad, q.wh.UID)
	delete(e.settledBefore, q.wh.UID)
	// A Release may wait for this queue (releasing: a cancellation or an attempt of it), which
	// no longer holds it up.
	e.idle.Broadcast()
}

// Acquire makes this engine deliver partition p: its queues' state is read from the store in the
// background (as at a restart: counters, retry state, and the delivery log's newest settlements),
// then delivery starts. It returns at once. token is p's fencing token, higher for every later
// owner (the revision of the lease taken): the state the engine saves carries it, so that a
// previous owner's write that arrives late cannot take the state back.
func (e *Engine) Acquire(p int, token uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.owned[p] = true
	e.tokens[p] = token
	for _, q := range e.queues {
		if q.part == p && q.own == ownDormant && !q.removed {
			e.claimLocked(q)
		}
	}
}

// Extend records that partition p's lease covers attempts started before until: the engine starts
// none for p from then on until the lease is renewed, whatever its owner's group does meanwhile
// (a group blocked on NATS must not let a delivery start after another dispatcher may have taken
// p over). Without Extend, an acquired partition has no deadline. An engine that is not
// partitioned has every queue in partition 0: the standby mode's delivery lease extends it.
func (e *Engine) Extend(p int, until time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.until[p] = until
	if !e.stalled[p] || !e.leaseCoversLocked(p) {
		return
	}
	delete(e.stalled, p)
	for _, q := range e.queues {
		if q.part == p {
			e.scheduleLocked(q)
		}
	}
}

// leaseCoversLocked reports whether an attempt for partition p may start now. Not partitioned,
// every queue is in partition 0, which the standby mode's lease extends.
func (e *Engine) leaseCoversLocked(p int) bool {
	until, ok := e.until[p]
	return !ok || e.clock.Now().Before(until)
}

// Release stops this engine delivering partition p: no attempt starts from when it is called, the
// attempts in flight settle (until ctx ends: then they settle into nothing and their notifications
// are sent again by the next owner, with the same id), and the queues' state is saved for the next
// owner. It returns once nothing more is sent for p.
func (e *Engine) Release(ctx context.Context, p int) {
	e.mu.Lock()
	delete(e.owned, p)
	delete(e.until, p)
	delete(e.stalled, p)
	var releasing []*queue
	for _, q := range e.queues {
		if q.part != p {
			continue
		}
		switch q.own {
		case ownLoading:
			e.resetLocked(q)
		case ownActive:
			e.unscheduleLocked(q)
			q.own = ownReleasing
			releasing = append(releasing, q)
		}
	}
	stop := context.AfterFunc(ctx, func() {
		e.mu.Lock()
		e.idle.Broadcast()
		e.mu.Unlock()
	})
	defer stop()
	for ctx.Err() == nil && anyInFlight(releasing) {
		e.idle.Wait()
	}
	e.cutRequestsLocked(ctx, p, releasing)
	var saved []string
	for _, q := range releasing {
		if q.own == ownReleasing {
			saved = append(saved, q.wh.UID) // not claimed again meanwhile
		}
	}
	e.mu.Unlock()
	// Saved after delivery stopped and before the partition's lease goes: the next owner reads it,
	// and the queues without the notes delivered here.
	save, cancel := context.WithTimeout(context.WithoutCancel(ctx), cmp.Or(e.cfg.ReleaseSaveTimeout, 5*time.Second))
	defer cancel()
	e.acks.settle(save, saved)
	for _, uid := range saved {
		if err := e.persist(save, uid); err != nil {
			e.log.Error(err, "Saving the delivery state of a partition given up; its counters since the last save are lost", "uid", uid, "partition", p)
		}
	}
	e.mu.Lock()
	for _, q := range releasing {
		if q.own == ownReleasing {
			e.resetLocked(q)
		}
	}
	if !e.owned[p] {
		delete(e.tokens, p) // kept for the saves above
	}
	e.mu.Unlock()
	if len(releasing) > 0 {
		e.log.V(1).Info("Partition released", "partition", p, "webhooks", len(releasing))
	}
}

// partitionRequests is the context of one partition's requests and its cancel.
type partitionRequests struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// releaseCutWait bounds how long Release waits for the requests it cut to return: a cut request
// returns at once, unless the transport is stuck in a system call.
var releaseCutWait = time.Second

// requestCtxLocked is the context of partition p's attempts, ended by Release (and by the engine's
// stop, from which it derives).
func (e *Engine) requestCtxLocked(p int) context.Context {
	r, ok := e.requests[p]
	if !ok {
		r.ctx, r.cancel = context.WithCancel(e.attemptCtx)
		e.requests[p] = r
	}
	return r.ctx
}

// cutRequestsLocked ends the requests of partition p still in flight once Release's wait is over,
// and waits (at most releaseCutWait) until they have returned: the lease goes once Release returns,
// and a request may last the whole delivery timeout, longer than the wait (the stop timeout is a
// fifth of the lease's TTL). Left running, it went on beside the next owner's attempt of the same
// webhook, and beside the account's 30 there. Their notifications are sent again by the next owner
// (same id). Called with e.mu held.
func (e *Engine) cutRequestsLocked(ctx context.Context, p int, releasing []*queue) {
	r, ok := e.requests[p]
	if !ok {
		return
	}
	delete(e.requests, p)
	r.cancel()
	wait, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseCutWait)
	defer cancel()
	stop := context.AfterFunc(wait, func() {
		e.mu.Lock()
		e.idle.Broadcast()
		e.mu.Unlock()
	})
	defer stop()
	for wait.Err() == nil && anySending(releasing) {
		e.idle.Wait()
	}
}

// anySending reports whether an attempt of one of qs is still sending.
func anySending(qs []*queue) bool {
	for _, q := range qs {
		if q.inFlight && q.own == ownReleasing {
			return true
		}
	}
	return false
}

func anyInFlight(qs []*queue) bool {
	for _, q := range qs {
		if (q.inFlight || q.acking > 0 || q.holds > 0 || q.cancelling > 0) && q.own == ownReleasing {
			return true
		}
	}
	return false
}

// Hold lets the caller store notes in uid's queue outside the intake (a replay queueing its
// selection) for as long as this engine delivers the queue: ok is false when it does not (another
// dispatcher's partition, one being given up, or a lease that lapsed). Release waits for the holds
// of the partition it gives up, as for attempts in flight, before the state is saved and the lease
// goes: the next owner, which reads the queue afresh, then finds every note stored under a hold,
// and no note of the previous owner's lands after it looked. release must be called once the
// notes are stored (or their store failed).
func (e *Engine) Hold(uid string) (release func(), ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queues[uid]
	if q == nil || q.removed || e.partitioned() && q.own != ownActive || !e.leaseCoversLocked(q.part) {
		return func() {}, false
	}
	q.holds++
	return sync.OnceFunc(func() {
		e.mu.Lock()
		q.holds--
		e.idle.Broadcast()
		e.mu.Unlock()
	}), true
}

// Arrived takes in a note that another dispatcher stored for uid (its announcement): counted and
// scheduled when this engine delivers uid, lost at once when uid is auto-disabled (the dispatcher
// that routed it could not know), ignored otherwise.
func (e *Engine) Arrived(uid string, n store.Note) {
	e.mu.Lock()
	q := e.queues[uid]
	if q == nil || q.removed {
		e.mu.Unlock()
		return
	}
	switch q.own {
	case ownLoading:
		q.inStore = true
		q.storeGen++
		e.mu.Unlock()
		return
	case ownActive:
	default:
		e.mu.Unlock()
		return
	}
	disabled := q.status.Disabled
	e.mu.Unlock()
	if disabled {
		// The loader records the stored notes as lost, in order from the first not recorded yet:
		// losing n alone would purge the notes before it, whose announcements may come later
		// (another dispatcher's) or never.
		e.mu.Lock()
		e.toLose[uid] = true
		e.mu.Unlock()
		e.kickLoader()
		return
	}
	// An INACTIVE webhook's note is kept (not sent) until the next recount cancels it.
	e.Enqueue(uid, n)
}

// kickLoader wakes the loader (without waiting: one wake serves every change made before it runs).
func (e *Engine) kickLoader() {
	select {
	case e.loadKick <- struct{}{}:
	default:
	}
}

// runLoader reads the state of claimed queues, and every recountInterval looks for stored notes
// the engine was not told about.
func (e *Engine) runLoader(ctx context.Context) {
	recount := e.clock.NewTimer(recountInterval)
	defer recount.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.loadKick:
		case <-recount.C():
			recount.Reset(recountInterval)
			if err := e.recount(ctx); err != nil && ctx.Err() == nil {
				e.log.Info("Comparing the queues with the store failed; trying again later", "error", err.Error())
			}
			continue
		}
		e.mu.Lock()
		lose := e.toLose
		e.toLose = map[string]bool{}
		e.mu.Unlock()
		for uid := range lose {
			if err := e.loseStored(ctx, uid); err != nil && ctx.Err() == nil {
				e.log.Info("Recording the notes of an auto-disabled webhook as lost failed; the next recount does", "uid", uid, "error", err.Error())
			}
		}
		for ctx.Err() == nil {
			e.mu.Lock()
			batch := maps.Clone(e.toLoad)
			e.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			if err := e.load(ctx, batch); err != nil {
				if ctx.Err() != nil {
					return
				}
				e.log.Info("Reading the state of partitions taken over failed; trying again", "error", err.Error())
				t := e.clock.NewTimer(time.Second)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C():
				}
			}
		}
	}
}

// load reads the state of the queues in batch (uid → the claim it answers) and starts delivering
// them, unless they were given up or claimed again meanwhile.
func (e *Engine) load(ctx context.Context, batch map[string]uint64) error {
	counts, err := e.store.Queues(ctx)
	if err != nil {
		return err
	}
	recs := make(map[string]record, len(batch))
	for uid := range batch {
		raw, rev, err := e.store.GetState(ctx, uid)
		if err != nil {
			return err
		}
		var rec record
		if raw != nil {
			_ = json.Unmarshal(raw, &rec)
		}
		rec.rev = rev
		recs[uid] = rec
	}
	settled, err := e.recentlySettled(ctx)
	if err != nil {
		return err
	}
	var started, lost []string
	e.mu.Lock()
	for uid, claim := range batch {
		q := e.queues[uid]
		if e.toLoad[uid] != claim {
			continue // released, or claimed again: the newer claim reads again
		}
		delete(e.toLoad, uid)
		if q == nil || q.own != ownLoading {
			continue
		}
		rec := recs[uid]
		q.status, q.head, q.stateRev = rec.Status, rec.Head, rec.rev
		// Saved soon with this owner's token, even if nothing changes: from then on a write of
		// the previous owner that arrives late finds a newer revision and is refused.
		q.dirty = rec.rev != 0
		q.status.Pending = int64(counts[uid])
		q.inStore = q.inStore || counts[uid] > 0
		if s := settled[uid]; s != nil {
			if e.settledBefore == nil {
				e.settledBefore = map[string]map[settledKey]time.Time{}
			}
			e.settledBefore[uid] = s
		}
		q.own = ownActive
		if q.status.Disabled && counts[uid] > 0 {
			lost = append(lost, uid)
		}
		e.scheduleLocked(q)
		started = append(started, uid)
	}
	e.mu.Unlock()
	for _, uid := range started {
		e.onChange(uid, true)
	}
	for _, uid := range lost {
		// Routed by dispatchers that did not know the webhook was disabled: lost before the
		// reconciles below may reactivate it. What fails here, the next recount loses; it does not
		// keep the reconciles from being asked (these queues have left toLoad, and a reactivation
		// or rebinding made while nobody delivered them would wait for their webhook's next change).
		if err := e.loseStored(ctx, uid); err != nil && ctx.Err() == nil {
			e.log.Info("Recording the notes of an auto-disabled webhook as lost failed; the next recount does", "uid", uid, "error", err.Error())
		}
	}
	if len(started) > 0 && e.cfg.Taken != nil {
		e.cfg.Taken(started)
	}
	return nil
}

// recount schedules every delivered queue the store holds notes for that the engine does not know
// of (an announcement missed while reconnecting), and loses those of auto-disabled webhooks.
func (e *Engine) recount(ctx context.Context) error {
	counts, err := e.store.Queues(ctx)
	if err != nil {
		return err
	}
	var lost, cancelled []string
	e.mu.Lock()
	for uid, q := range e.queues {
		// An auto-disable that could not record all it dropped is finished here whatever the
		// store holds now (its last notes may be gone): the webhook waits for it to be reactivated.
		if q.unrecorded && q.status.Disabled && counts[uid] == 0 && q.own == ownActive && q.cancelling == 0 {
			lost = append(lost, uid)
		}
	}
	for uid, n := range counts {
		q := e.queues[uid]
		if n == 0 || q == nil || q.own != ownActive || !e.leaseCoversLocked(q.part) || q.removed || q.cancelling > 0 || q.inFlight || q.acking > 0 ||
			q.hasWork() && !q.status.Disabled && !q.wh.Inactive {
			continue
		}
		switch {
		case q.status.Disabled:
			lost = append(lost, uid)
			continue
		case q.wh.Inactive:
			// Stored by another dispatcher before it saw the change, or after this one's
			// cancellation began: cancelled as INACTIVE cancels, not kept for an ACTIVE that is
			// a new start (and counted: the cancellation counts what is pending).
			q.status.Pending = max(q.status.Pending, int64(n))
			cancelled = append(cancelled, uid)
			continue
		}
		q.inStore = true
		q.storeGen++
		q.status.Pending = int64(n)
		e.scheduleLocked(q)
	}
	e.mu.Unlock()
	var errs []error
	for _, uid := range lost {
		errs = append(errs, e.loseStored(ctx, uid))
	}
	for _, uid := range cancelled {
		errs = append(errs, e.cancel(ctx, uid, true))
	}
	return errors.Join(errs...)
}

// loseStored counts and removes the notes an auto-disabled webhook's queue holds (stored by
// dispatchers that did not know it was disabled), as lost.
func (e *Engine) loseStored(ctx context.Context, uid string) error {
	e.mu.Lock()
	q := e.queues[uid]
	if q == nil || !q.status.Disabled || q.cancelling > 0 {
		// Reactivated meanwhile (what is stored now is its queue), or its auto-disable is being
		// recorded (what that leaves, the next recount loses).
		e.mu.Unlock()
		return nil
	}
	from := q.droppedUpTo + 1 // those the auto-disable recorded wait for the acker's purge
	e.mu.Unlock()
	// The reads are answered by the store's index, which may not show yet the last notes (stored
	// by another dispatcher a moment ago): only reaching the queue's last note now finishes it.
	last, err := e.store.LastNoteSeq(ctx, uid)
	if err != nil {
		return err
	}
	notes, err := e.store.LoadNotes(ctx, uid, from, 1000)
	if err != nil {
		return err
	}
	all, seen := true, from-1
	for _, n := range notes {
		if !e.Disabled(uid) {
			return nil
		}
		all = e.lose(uid, n) && all
		seen = n.Seq
	}
	switch {
	case !all:
		// Not this engine's to lose now (its lease lapsed): the next recount tries again.
	case len(notes) == 1000:
		e.mu.Lock()
		e.toLose[uid] = true // more: the loader goes on
		e.mu.Unlock()
		e.kickLoader()
	case seen >= last:
		e.mu.Lock()
		q.unrecorded = false // all lost: it may be reactivated
		e.mu.Unlock()
	default:
		// The index does not show them all yet: the next recount goes on.
	}
	return nil
}

// lose counts n, stored for the auto-disabled uid, as lost and removes it from the store.
// It reports whether n is recorded: lost now, or before (a note seen again).
func (e *Engine) lose(uid string, n store.Note) bool {
	e.mu.Lock()
	q := e.queues[uid]
	covered := q != nil && e.leaseCoversLocked(q.part)
	recorded := q != nil && n.Seq != 0 && n.Seq <= q.droppedUpTo
	e.mu.Unlock()
	if !covered {
		return false
	}
	if recorded {
		return true
	}
	if e.countLost(uid, n) { // this engine's note to remove, under its lease
		e.acks.remove(uid, n.Seq)
		return true
	}
	return false
}
