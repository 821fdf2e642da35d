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
	"fmt"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/payload"
	"github.com/hookline/hookline/dispatcher/store"
)

// PayloadWebhook is what of a Webhook resource shapes the bodies it is sent, as the Syncer hands
// it to the engine.
func PayloadWebhook(wh *hooklinev1.Webhook) payload.Webhook {
	return payload.Webhook{UID: string(wh.UID), Name: wh.Name, URL: wh.Spec.URL, Scope: string(wh.Spec.Scope), Params: wh.Spec.ConditionalParams}
}

// payloadWebhook is what of wh shapes the bodies it is sent.
func (wh Webhook) payloadWebhook() payload.Webhook {
	return payload.Webhook{UID: wh.UID, Name: wh.Name, URL: wh.URL, Scope: wh.Scope, Params: wh.Params}
}

// bodyOptions are the options every body is built with: the same for attempts and for Body.
func (e *Engine) bodyOptions() payload.Options {
	return payload.Options{MaxBytes: e.cfg.MaxPayloadBytes}
}

// Errors of Body.
var (
	// ErrEventGone: the notification's event is no longer stored (its retention passed).
	ErrEventGone = errors.New("the event is no longer stored")
	// ErrBusy: building the body now would take memory that deliveries are using; try again later.
	ErrBusy = errors.New("busy building large bodies")
)

// Body builds the body the notification of event seq to wh is sent: exactly as an attempt builds it
// now (the same notification id, conditional parameters and size cap), for the delivery log's read
// API. It returns the notification id the body carries. It reads the event from the engine's cache
// when it is there and from the store otherwise, without caching it: reading old notifications must
// not evict events awaiting delivery. A large body is built only when the memory for large bodies
// is free at once (ErrBusy otherwise), so that readers never hold deliveries back.
func (e *Engine) Body(ctx context.Context, wh payload.Webhook, seq uint64) (payload.Result, string, error) {
	var turn func()
	defer func() {
		if turn != nil {
			turn()
		}
	}()
	ev, ok := e.events.get(seq)
	if !ok {
		// A large event is read only within a turn free at once, as a large body is built; its
		// account is not known before it is read, so the reads share one account's part.
		var err error
		ev, err = e.readEvent(ctx, seq, e.reserveLarge(func(w int64) error {
			release, ok := e.largeBodies.tryAcquire("", w)
			if !ok {
				return ErrBusy
			}
			turn = release
			return nil
		}))
		if store.Gone(err) {
			return payload.Result{}, "", fmt.Errorf("%w: %v", ErrEventGone, err)
		}
		if err != nil {
			return payload.Result{}, "", err
		}
	}
	prep, err := ev.prepared()
	if err != nil {
		return payload.Result{}, "", err
	}
	id := payload.NotificationID(wh.UID, ev.ev.AccountID, ev.ev.ID)
	opt := e.bodyOptions()
	if n := prep.BodySize(wh, id, opt); n > largeBody && turn == nil {
		release, ok := e.largeBodies.tryAcquire(ev.ev.AccountID, int64(min(n, e.cfg.LargeBodyBytes)))
		if !ok {
			return payload.Result{}, "", ErrBusy
		}
		turn = release
	}
	return prep.Build(wh, id, opt), id, nil
}
