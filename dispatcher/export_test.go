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

package dispatcher

import (
	"context"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"sigs.k8s.io/controller-runtime/pkg/event"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/tenancy"
)

// PauseSyncer holds back every reconcile of s, as a dispatcher too busy to keep up would, until
// resume is called (once or more). Changes seen meanwhile are coalesced per name by the
// controller's queue.
func PauseSyncer(s *Syncer) (resume func()) {
	s.exclusive.Lock()
	return sync.OnceFunc(s.exclusive.Unlock)
}

// PeakReplays is the most WebhookReplays that ran at once in namespace ns.
func PeakReplays(r *Replayer, ns string) int { return r.peakRunning(ns) }

// ReplayCounted reports whether r has read rp's count from the log (its tally is complete) for the
// Webhook of uid.
func ReplayCounted(r *Replayer, uid string, rp *hooklinev1.WebhookReplay) bool {
	return r.tally.counted(uid, replayRef(rp))
}

// AccountsOf returns the webhooks' accounts a keeps for its delivery log.
func AccountsOf(a *App) *Accounts { return &a.accounts }

// QueueScans counts r's scans of a webhook's queue for what a replay queued before.
func QueueScans(r *Replayer) int64 { return r.scans.Load() }

// SetRoutingGrace changes how long a re-post of an event another dispatcher stored and has not
// routed is answered "in progress" (a negative d: not at all).
func SetRoutingGrace(a *App, d time.Duration) { a.Intake.grace.Store(int64(d)) }

// BeforeReplayBatch has r call f before it queues each batch of a replay's selection.
func BeforeReplayBatch(r *Replayer, f func()) { r.beforeBatch.Store(&f) }

// BindingOf is the binding s reconciles ns's webhooks under.
func BindingOf(ctx context.Context, s *Syncer, ns string) (tenancy.Binding, bool, error) {
	return s.bindingOf(ctx, ns)
}

// ConfirmedReconciles is where s queues the webhooks to reconcile under a binding it confirmed.
func ConfirmedReconciles(s *Syncer) chan event.GenericEvent {
	if s.confirmed == nil {
		s.confirmed = make(chan event.GenericEvent, 16)
	}
	return s.confirmed
}

// SetSyncerClock makes s time its confirmed bindings and reconcile asks by clk.
func SetSyncerClock(s *Syncer, clk clock.PassiveClock) { s.clock = clk }

// ExpireConfirmed runs the part of s's sweep that drops confirmed bindings past their time.
func ExpireConfirmed(ctx context.Context, s *Syncer) { s.expireConfirmed(ctx) }

// FailEnqueues makes the next n queueings of notes at ingest fail, as a store without a leader
// does.
func FailEnqueues(a *App, n int32) { a.Intake.failEnqueues.Store(n) }
