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

// A note whose event is not of the binding the engine knows for its namespace is either of an
// older binding (queued before a rebinding, or routed by a dispatcher whose informer had not seen
// it yet) and is cancelled, or of a newer one that this engine has not been told of yet: another
// dispatcher's informer saw the change first and routed under it. Only the namespace itself can
// tell the two apart. Cancelling the second kind lost an acknowledged event (its owner withdrew
// it unsent); and an owner that lagged behind an account change went on delivering a webhook whose
// queue another dispatcher, owning the new account's partition, had already taken over.

import (
	"context"
	"time"

	"github.com/hookline/hookline/dispatcher/store"
)

// BindingSource reads the binding of wh's namespace from the API server, past any cache, and has
// the webhook reconciled under it when the caller's cache lags behind (so that the engine is
// rebound through the usual path). bound is false when the namespace is not bound (or gone).
type BindingSource func(ctx context.Context, wh Webhook) (b Binding, bound bool, err error)

// ConfirmBindingsWith sets where the engine confirms a namespace's binding before it cancels a
// note of another (binding.go). Without it, the binding the engine knows is taken as the truth.
func (e *Engine) ConfirmBindingsWith(src BindingSource) {
	e.mu.Lock()
	e.bindings = src
	e.mu.Unlock()
}

// confirmTimeout bounds a confirmation of a namespace's binding; one that fails is tried again by the
// next attempt, a second later.
const confirmTimeout = 10 * time.Second

// coveredLocked reports whether note was stored before q's binding b was last confirmed: its event,
// if of another binding, is then of an older one.
func (q *queue) coveredLocked(note store.Note, b Binding) bool {
	return q.confirmed == b && note.Seq <= q.confirmedThrough
}

// olderLocked reports whether note, whose event is not of b, may be cancelled as another binding's
// without asking: covered by a confirmation, or there is nobody to ask (the binding known is the
// truth).
func (e *Engine) olderLocked(q *queue, note store.Note, b Binding) bool {
	return e.bindings == nil || q.coveredLocked(note, b)
}

// judgeBinding decides on note, whose event ev is not of the binding its attempt began under.
// It returns the binding that holds now, and whether the note is to be cancelled as another
// binding's (withdraw) or the attempt tried again shortly (neither send nor withdraw); send when a
// Rebind made meanwhile made the event the namespace's.
func (e *Engine) judgeBinding(ctx context.Context, q *queue, note store.Note, ev *cachedEvent) (b Binding, send, withdraw bool) {
	e.mu.Lock()
	b, src, wh := q.bindingLocked(), e.bindings, q.wh
	covered := e.olderLocked(q, note, b)
	e.mu.Unlock()
	switch {
	case b.holds(ev.ev):
		return b, true, false
	case covered:
		return b, false, true
	}
	// Bounded: the attempt holds its queue (and, at a handover, Release waits for it) meanwhile.
	ctx, cancel := context.WithTimeout(ctx, confirmTimeout)
	defer cancel()
	// Every note up to last was routed before the binding is read below (a dispatcher routes, then
	// stores): if the namespace is still bound as this engine knows, their events of another
	// binding are of an older one.
	last, err := e.store.LastNoteSeq(ctx, wh.UID)
	if err != nil {
		e.log.Info("Reading a queue's last note before confirming its namespace's binding failed; trying again shortly", append(wh.logKeys(), "error", err.Error())...)
		return b, false, false
	}
	now, bound, err := src(ctx, wh)
	if err != nil {
		e.log.Info("Confirming a namespace's binding failed; trying again shortly", append(wh.logKeys(), "error", err.Error())...)
		return b, false, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	b = q.bindingLocked()
	if bound && now == b {
		if q.confirmed != b {
			q.confirmed, q.confirmedThrough = b, 0
		}
		q.confirmedThrough = max(q.confirmedThrough, last)
	}
	switch {
	case b.holds(ev.ev):
		return b, true, false
	case q.coveredLocked(note, b):
		return b, false, true
	}
	// This engine lags behind the namespace (the source has the webhook reconciled under its
	// binding now), the namespace is no longer bound (the webhook is held), or the note was
	// stored after the read began: tried again.
	return b, false, false
}
