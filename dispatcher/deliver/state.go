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

// The engine's persisted state: what it keeps per webhook across restarts (Status and the head's
// retry state, one record in the store's state bucket), how it is saved and restored. Kept apart
// from scheduling and attempts because it is the contract with the stored data and with the status
// the Reporter writes: changing a field here changes what survives a restart.

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/hookline/hookline/dispatcher/event"
	"github.com/hookline/hookline/dispatcher/store"
)

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
	// DisableMailed is the DisabledAt of the auto-disable already reported by e-mail, kept with the
	// state so that neither a restart nor the next owner of the webhook's partition mails it again.
	DisableMailed time.Time `json:"disableMailed,omitzero"`
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

// holds reports whether ev is of binding b (any event, when b is unknown).
func (b Binding) holds(ev *event.Event) bool {
	return b.AccountID == "" || ev.AccountID == b.AccountID && (b.GroupID == "" || ev.GroupID == b.GroupID)
}

// bindingLocked is the binding q's notes must be of to be sent: the namespace's now (the Syncer's,
// which Rebind records too), or the one its queue was filled under until the Syncer has told.
// Checked against the recorded one as well, a queue taken over with state saved before its
// namespace was rebound withdrew the new binding's notes (active-active: stored by dispatchers
// already routing under it) until its own Rebind came.
func (q *queue) bindingLocked() Binding {
	if q.wh.AccountID != "" {
		return Binding{AccountID: q.wh.AccountID, GroupID: q.wh.NamespaceGroup}
	}
	return q.status.Binding
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
	// Token is the fencing token of the partition's owner that wrote it (Engine.Acquire; 0 when
	// not partitioned), and Part that partition: tokens of different partitions do not compare.
	Token uint64 `json:"token,omitempty"`
	Part  int    `json:"part,omitempty"`
	// rev is the stored revision it was read at.
	rev uint64
}

// Status returns a copy of uid's delivery state.
func (e *Engine) Status(uid string) (Status, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queues[uid]
	if q == nil || q.own != ownActive {
		return Status{}, false
	}
	return q.status, true
}

// NoteProblemMailed records that uid's failing streak that began at since was reported by e-mail,
// and saves it at once: a restart must not mail the same streak again.
func (e *Engine) NoteProblemMailed(ctx context.Context, uid string, since time.Time) error {
	e.mu.Lock()
	q := e.queues[uid]
	if q == nil || q.own != ownActive || q.status.ProblemMailed.Equal(since) {
		e.mu.Unlock()
		return nil
	}
	q.status.ProblemMailed = since
	q.dirty = true
	e.mu.Unlock()
	return e.persist(ctx, uid)
}

// NoteDisableMailed records that uid's auto-disable at at was reported by e-mail, and saves it at
// once: neither a restart nor the next owner must mail it again.
func (e *Engine) NoteDisableMailed(ctx context.Context, uid string, at time.Time) error {
	e.mu.Lock()
	q := e.queues[uid]
	if q == nil || q.own != ownActive || q.status.DisableMailed.Equal(at) {
		e.mu.Unlock()
		return nil
	}
	q.status.DisableMailed = at
	q.dirty = true
	e.mu.Unlock()
	return e.persist(ctx, uid)
}

// persist writes uid's state to the store when it changed. State transitions and retry state are
// saved at once by whoever changed them; counters alone wait for the next save (saveDirty).
//
// The write expects the revision this engine last read or wrote. When somebody else wrote
// meanwhile, the fencing tokens decide: a state written by a later owner of the partition means
// this engine lost it (it forgets the queue and writes nothing), one written by an earlier owner
// (a write its lost connection delivered late, after this engine took over) is overwritten.
func (e *Engine) persist(ctx context.Context, uid string) error {
	e.mu.Lock()
	q := e.queues[uid]
	if q == nil {
		e.mu.Unlock()
		return nil
	}
	e.mu.Unlock()
	// Not a mutex: with NATS out of reach the saver's write of this state waits for JetStream's
	// timeout (5 s), and a partition given up (Release, a deadline of a fifth of the lease TTL)
	// waited behind it, holding up the group's lease loop (the fault suite's NATS cut).
	select {
	case q.saving <- struct{}{}:
	default:
		select {
		case q.saving <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer func() { <-q.saving }()
	e.mu.Lock()
	if e.queues[uid] != q || !q.dirty || q.own != ownActive && q.own != ownReleasing {
		e.mu.Unlock()
		return nil // a dormant queue's state is its owner's to save
	}
	token := e.tokens[q.part]
	raw, err := json.Marshal(record{Status: q.status, Head: q.head, Token: token, Part: q.part})
	rev, epoch := q.stateRev, q.epoch
	q.dirty = false
	e.mu.Unlock()
	if err == nil {
		rev, err = e.store.PutState(ctx, uid, raw, rev)
		if errors.Is(err, store.ErrStateChanged) {
			rev, err = e.overwrite(ctx, q, uid, raw, token, epoch)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case err == nil:
		q.stateRev = rev
	case errors.Is(err, errStateTaken):
		return nil
	default:
		q.dirty = true // saved again next time
	}
	return err
}

// errStateTaken says that a later owner of the queue's partition wrote its state.
var errStateTaken = errors.New("the state was written by a later owner of the partition")

// overwrite writes raw over a state that somebody else wrote since this engine read or wrote it,
// unless a later owner of the partition (a higher token) wrote it: then this engine lost the
// partition, and forgets the queue (errStateTaken). Partitions are renewed and released through
// their own leases; this only keeps the state from going back.
func (e *Engine) overwrite(ctx context.Context, q *queue, uid string, raw []byte, token, epoch uint64) (uint64, error) {
	cur, rev, err := e.store.GetState(ctx, uid)
	if err != nil {
		return 0, err
	}
	var rec record
	if cur != nil {
		_ = json.Unmarshal(cur, &rec)
	}
	// Only a later owner of the same partition wins. A dispatcher that is not partitioned (the
	// standby mode: one deliverer, holding the delivery lease) writes over whatever it finds.
	if cur != nil && e.partitioned() && rec.Part == q.part && rec.Token > token {
		e.log.Info("The delivery state of a webhook was written by a later owner of its partition; no longer delivering it",
			append(q.wh.logKeys(), "partition", q.part)...)
		e.mu.Lock()
		if q.epoch == epoch && q.own != ownDormant {
			e.resetLocked(q)
		}
		e.mu.Unlock()
		return 0, errStateTaken
	}
	e.mu.Lock()
	removed := q.removed
	e.mu.Unlock()
	if removed {
		return 0, errStateTaken // deleted meanwhile: nothing to save
	}
	e.log.V(1).Info("Overwriting a delivery state an earlier owner wrote late", append(q.wh.logKeys(), "partition", q.part)...)
	return e.store.PutState(ctx, uid, raw, rev)
}

// saveDirty saves every state changed since it was last saved (counters, mostly).
func (e *Engine) saveDirty(ctx context.Context) {
	e.mu.Lock()
	var uids []string
	for uid, q := range e.queues {
		if q.dirty {
			uids = append(uids, uid)
		}
	}
	e.mu.Unlock()
	for _, uid := range uids {
		if err := e.persist(ctx, uid); err != nil && ctx.Err() == nil {
			e.log.Error(err, "Persisting delivery state; trying again at the next save", "uid", uid)
		}
	}
}

// runSaver saves changed state every Config.SaveInterval, so that how many notifications were
// delivered, dropped or cancelled survives a crash (up to one interval's worth) whatever else runs:
// the engine owns its durability, no caller has to remember to save. Wait saves the rest at a stop.
func (e *Engine) runSaver(ctx context.Context) {
	for {
		t := e.clock.NewTimer(e.cfg.SaveInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
			e.saveDirty(ctx)
		}
	}
}

// restore reads what a previous run left: every saved record, with its pending count taken from
// the store's queues (the truth), including queues whose state was never saved. Queues claim their
// record when they are first used (queueLocked).
func (e *Engine) restore(ctx context.Context) (map[string]*record, error) {
	counts, err := e.store.Queues(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := e.store.StateKeys(ctx)
	if err != nil {
		return nil, err
	}
	restored := map[string]*record{}
	for _, uid := range keys {
		raw, rev, err := e.store.GetState(ctx, uid)
		if err != nil {
			return nil, err
		}
		rec := &record{}
		if raw != nil && json.Unmarshal(raw, rec) == nil {
			rec.rev = rev
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
	return restored, nil
}
