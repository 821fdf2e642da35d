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
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/internal/keyrate"
	"github.com/hookline/hookline/internal/statusapply"
)

// Reporter writes the engine's delivery state into Webhook status and records Events: at once when
// a webhook's state changes (failing, recovered, disabled, reactivated), and its counters once per
// interval within a budget of routine writes (WritesPerSecond). Each write is one server-side apply
// under hooklinev1.FieldManagerDispatcher, skipped when nothing changed. The engine saves its own
// state (deliver.Config.SaveInterval): nothing here is needed for durability.
type Reporter struct {
	Client   client.Client
	Engine   DeliveryState
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	Interval time.Duration
	Log      logr.Logger
	// StopTimeout bounds the last write of every dirty status when the dispatcher stops (default
	// 10 s): the engine saved its counters already, so what is not written then is written by the
	// next dispatcher, and a stop must fit in the pod's grace period whatever the number of webhooks.
	StopTimeout time.Duration
	// WritesPerSecond bounds the routine writes (counters only): routine passes come every
	// routinePace and each writes its share of WritesPerSecond, taken from the webhooks dirty and
	// last served at least an interval ago, those served longest ago first; the rest wait for the
	// next pass. Every delivering webhook's counters change all the time, so without a bound the
	// writes grew with the number of webhooks (1,000 webhooks at a 10 s interval were 100
	// server-side applies a second, all at each interval's start: 70-100 % of a core of
	// kube-apiserver in the bench, in bursts that delayed deliveries sharing its machine). State
	// changes are written at once, those a tenant makes within its namespace's share (MarkTenant).
	// 0 means DefaultStatusWritesPerSecond.
	WritesPerSecond float64

	mu     sync.Mutex
	dirty  map[string]bool
	urgent map[string]bool
	// tenant holds, among the urgent, those marked for a change their tenant made (MarkTenant), by
	// namespace: written at once only within the namespace's share (tenantRate).
	tenant     map[string]string
	tenantRate *keyrate.Limiters
	written    map[string]string
	disabled   map[string]bool
	// served is when each webhook's status was last written or found unchanged: routine passes
	// serve a webhook at most once an interval, the longest-waiting first. Counted in routine
	// passes, which come at a fixed pace of real time: not Clock, which tests move by days.
	served   map[string]service
	passes   uint64
	services uint64
	// credit is the routine writes the passes so far have earned and not used (fractions carry
	// over, so that rates below one write a pass hold on average; unused credit is capped at
	// one pass's share, so that a quiet spell does not turn into a burst).
	credit float64
	kick   chan struct{}
}

// service is when a webhook's status was last served: the routine pass it came in or after (for
// the once-an-interval rule), and a count of all services (for the order: it grows with the pass,
// and has no ties that could starve anyone).
type service struct {
	pass, seq uint64
}

// DefaultStatusWritesPerSecond is Reporter.WritesPerSecond's default: the request rate
// controller-runtime's clients are given by default, so that a dispatcher's routine status writes
// weigh on the API server like one ordinary controller's, whatever the number of webhooks.
const DefaultStatusWritesPerSecond = 20

// flushMode says which dirty webhooks a flush writes.
type flushMode int

const (
	// flushUrgent writes the webhooks whose state changed, all of them.
	flushUrgent flushMode = iota
	// flushRoutine writes the dirty webhooks within the interval's budget, longest-waiting first.
	flushRoutine
	// flushAll writes every dirty webhook (the last flush at a stop, bounded by StopTimeout).
	flushAll
)

// DeliveryState is what the reporter reads of the engine (*deliver.Engine): a webhook's delivery
// state and its delivery configuration.
type DeliveryState interface {
	Status(uid string) (deliver.Status, bool)
	Webhook(uid string) (deliver.Webhook, bool)
}

// reportWorkers is how many status writes are in flight at once: each is a round trip to the API
// server, and thousands of webhooks can change within one interval.
const reportWorkers = 8

func (r *Reporter) init() {
	if r.dirty == nil {
		r.dirty, r.urgent, r.written, r.disabled = map[string]bool{}, map[string]bool{}, map[string]string{}, map[string]bool{}
		r.tenant, r.tenantRate = map[string]string{}, keyrate.New(UrgentWritesPerSecond, UrgentBurst, time.Minute, 4096)
		r.served = map[string]service{}
		r.kick = make(chan struct{}, 1)
	}
}

// Mark notes that uid's status may have changed; urgent, it is written at once.
func (r *Reporter) Mark(uid string, urgent bool) {
	r.mu.Lock()
	r.init()
	r.dirty[uid] = true
	if urgent {
		r.urgent[uid] = true
		delete(r.tenant, uid)
	}
	r.mu.Unlock()
	if urgent {
		r.kickFlush()
	}
}

// Status writes of changes a tenant made, written at once per namespace (a burst of UrgentBurst,
// then UrgentWritesPerSecond); beyond, they are written with the routine ones, within their budget.
const (
	UrgentWritesPerSecond = 1
	UrgentBurst           = 10
)

// MarkTenant notes that uid's status may have changed for a change its tenant made in namespace ns
// (made it INACTIVE, edited it while INACTIVE, asked for a reactivation): written at once if it
// did change and the namespace's share allows, with the routine writes otherwise. A tenant
// stamping the reactivation annotation in a loop had one dispatcher write per write of its own,
// outside WritesPerSecond, through the dispatcher's API priority and its report workers, which
// other tenants' auto-disables wait for. Only writes are charged: a reconcile that changes nothing
// (a resync, the manager's own status write) leaves the share to the next real change.
func (r *Reporter) MarkTenant(ns, uid string) {
	r.mu.Lock()
	r.init()
	r.dirty[uid] = true
	// Charged even when already urgent: the engine's own urgent mark for what the tenant's change
	// did (a cancellation, a reactivation) comes just before, within the same reconcile. An
	// engine's mark after it (an auto-disable) is urgent uncharged again.
	r.urgent[uid] = true
	r.tenant[uid] = ns
	r.mu.Unlock()
	r.kickFlush()
}

func (r *Reporter) kickFlush() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Forget drops what the reporter remembers of a deleted webhook.
func (r *Reporter) Forget(uid string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.init()
	delete(r.dirty, uid)
	delete(r.urgent, uid)
	delete(r.tenant, uid)
	delete(r.written, uid)
	delete(r.disabled, uid)
	delete(r.served, uid)
	// The problem e-mail limits stay: they are keyed by namespace and name, so that deleting and
	// recreating a Webhook does not reset them.
}

// Known lists the webhook uids the reporter holds anything of, for the syncer's sweep.
func (r *Reporter) Known() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]bool{r.dirty, r.urgent, r.disabled} {
		for uid := range m {
			if !seen[uid] {
				seen[uid] = true
				out = append(out, uid)
			}
		}
	}
	for uid := range r.written {
		if !seen[uid] {
			seen[uid] = true
			out = append(out, uid)
		}
	}
	return out
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (r *Reporter) NeedLeaderElection() bool { return false }

// Start runs the reporter until ctx ends (manager.Runnable).
func (r *Reporter) Start(ctx context.Context) error {
	r.mu.Lock()
	r.init()
	r.mu.Unlock()
	tick := time.NewTicker(r.pace())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// The last counters, so that the status is current after a clean stop; bounded, since
			// the engine's saved state has them too.
			stop, cancel := context.WithTimeout(context.Background(), cmp.Or(r.StopTimeout, 10*time.Second))
			r.flush(stop, flushAll)
			cancel()
			return nil
		case <-r.kick:
			r.flush(ctx, flushUrgent)
		case <-tick.C:
			r.flush(ctx, flushRoutine)
		}
	}
}

// routinePace is the longest time between two routine passes. Each pass writes its share of
// WritesPerSecond at once, so short passes spread the writes evenly: with passes a tenth of a
// 10 s interval apart, 20 writes a second came as 20 server-side applies every second, about
// 130 ms of kube-apiserver CPU at once, and on a machine it shared with the dispatcher every
// such second delayed deliveries by up to 130 ms (the bench's latency scenario: p99 22-28 ms
// with them, 5 ms without).
const routinePace = 100 * time.Millisecond

// pace is the period of routine passes: routinePace, or the interval if that is shorter.
func (r *Reporter) pace() time.Duration {
	return min(r.Interval, routinePace)
}

// passesPerInterval is how many routine passes make an interval.
func (r *Reporter) passesPerInterval() uint64 {
	return uint64(max((r.Interval+r.pace()-1)/r.pace(), 1))
}

// perPass is a routine pass's share of WritesPerSecond, fractions included.
func (r *Reporter) perPass() float64 {
	rate := r.WritesPerSecond
	if rate <= 0 {
		rate = DefaultStatusWritesPerSecond
	}
	return rate * r.pace().Seconds()
}

// budget adds a routine pass's share to the credit and returns the whole writes it allows.
// Lock must be held.
func (r *Reporter) budget() int {
	share := r.perPass()
	r.credit = min(r.credit+share, max(share, 1))
	return int(r.credit)
}

// take removes the webhooks mode writes from the dirty set and returns them, urgent ones first,
// then those served longest ago.
func (r *Reporter) take(mode flushMode) (uids []string, tenant map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	uids = make([]string, 0, len(r.urgent))
	for uid := range r.urgent {
		uids = append(uids, uid)
		delete(r.dirty, uid)
	}
	r.urgent, tenant, r.tenant = map[string]bool{}, r.tenant, map[string]string{}
	if mode == flushUrgent {
		return uids, tenant
	}
	if mode == flushRoutine {
		r.passes++
	}
	every := r.passesPerInterval()
	due := func(uid string) bool {
		sv, seen := r.served[uid]
		return mode == flushAll || !seen || r.passes-sv.pass >= every
	}
	var rest []string
	if mode == flushRoutine {
		budget := r.budget()
		rest = r.longestWaiting(budget, due)
		r.credit -= float64(len(rest))
	} else {
		for uid := range r.dirty {
			if due(uid) {
				rest = append(rest, uid)
			}
		}
	}
	for _, uid := range rest {
		delete(r.dirty, uid)
	}
	return append(uids, rest...), tenant
}

// longestWaiting returns at most n of the dirty webhooks that are due, those served longest ago
// first (never served: the zero service, first). A pass picks a few out of possibly thousands, so
// it keeps the n best rather than sorting them all. Lock must be held.
func (r *Reporter) longestWaiting(n int, due func(uid string) bool) []string {
	if n <= 0 {
		return nil
	}
	type pick struct {
		uid string
		seq uint64
	}
	best := make([]pick, 0, min(n, len(r.dirty))) // ordered by seq
	for uid := range r.dirty {
		if !due(uid) {
			continue
		}
		seq := r.served[uid].seq
		if len(best) == n && seq >= best[n-1].seq {
			continue
		}
		i, _ := slices.BinarySearchFunc(best, seq, func(p pick, seq uint64) int { return cmp.Compare(p.seq, seq) })
		if len(best) == n {
			best = best[:n-1]
		}
		best = slices.Insert(best, i, pick{uid, seq})
	}
	out := make([]string, len(best))
	for i, p := range best {
		out[i] = p.uid
	}
	return out
}

func (r *Reporter) flush(ctx context.Context, mode flushMode) {
	uids, tenant := r.take(mode)
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(reportWorkers, len(uids)) {
		wg.Go(func() {
			for uid := range work {
				ns, byTenant := tenant[uid]
				byTenant = byTenant && mode != flushAll // the last flush at a stop writes everything
				if err := r.report(ctx, uid, ns, byTenant); err != nil {
					if ctx.Err() == nil {
						r.Log.Error(err, "Reporting delivery status", "uid", uid)
					}
					r.Mark(uid, false) // next interval
				}
			}
		})
	}
	for i, uid := range uids {
		if ctx.Err() != nil {
			// Stopping: the last flush (or, out of time, the next dispatcher) writes the rest.
			for _, rest := range uids[i:] {
				r.Mark(rest, false)
			}
			break
		}
		work <- uid
	}
	close(work)
	wg.Wait()
}

// report writes uid's status if it changed; for a change its tenant made in namespace ns
// (byTenant), only within the namespace's share, leaving it to a routine pass otherwise.
func (r *Reporter) report(ctx context.Context, uid, ns string, byTenant bool) error {
	st, ok := r.Engine.Status(uid)
	cfg, ok2 := r.Engine.Webhook(uid)
	if !ok || !ok2 {
		return nil
	}
	wh := &hooklinev1.Webhook{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: cfg.Namespace, Name: cfg.Name}, wh); err != nil {
		return client.IgnoreNotFound(err)
	}
	if string(wh.UID) != uid {
		return nil // replaced by a new webhook of the same name
	}
	status := deliveryStatus(wh, st, cfg, metav1.NewTime(r.Clock.Now()))
	raw, err := json.Marshal(status)
	if err != nil {
		return err
	}
	r.mu.Lock()
	unchanged := r.written[uid] == string(raw)
	// An auto-disable is written at once whoever marked it: its mark may have been charged to the
	// tenant's share as it came with the tenant's own change.
	disabling := st.Disabled && !r.disabled[uid]
	if !unchanged && byTenant && !disabling && !r.tenantRate.Get(ns).AllowN(r.Clock.Now(), 1) {
		r.dirty[uid] = true // beyond the namespace's share: with the routine writes
		r.mu.Unlock()
		return nil
	}
	wasDisabled, seen := r.disabled[uid]
	r.services++
	r.served[uid] = service{pass: r.passes, seq: r.services}
	r.mu.Unlock()
	if unchanged {
		return nil
	}
	if !seen {
		wasDisabled = meta.IsStatusConditionTrue(wh.Status.Conditions, hooklinev1.ConditionAutoDisabled)
	}
	if err := r.apply(ctx, wh, status); err != nil {
		return err
	}
	r.mu.Lock()
	r.written[uid] = string(raw)
	r.disabled[uid] = st.Disabled
	r.mu.Unlock()
	switch {
	case st.Disabled && !wasDisabled:
		r.Recorder.Eventf(wh, nil, corev1.EventTypeWarning, hooklinev1.ReasonAutoDisabled, "Deliver", "%s", st.DisabledMessage)
	case !st.Disabled && wasDisabled:
		r.Recorder.Eventf(wh, nil, corev1.EventTypeNormal, hooklinev1.ReasonReactivated, "Deliver", "Auto-disable lifted; the webhook will be verified again")
	}
	return nil
}

func (r *Reporter) apply(ctx context.Context, wh *hooklinev1.Webhook, status hooklinev1.WebhookStatus) error {
	return statusapply.Apply(ctx, r.Client, hooklinev1.GroupVersion.WithKind("Webhook"), wh, status, hooklinev1.FieldManagerDispatcher)
}

// deliveryStatus builds the dispatcher-owned status fields of wh from the engine's state and its
// delivery configuration (which says whether deliveries are held for a Secret).
func deliveryStatus(wh *hooklinev1.Webhook, st deliver.Status, cfg deliver.Webhook, now metav1.Time) hooklinev1.WebhookStatus {
	out := hooklinev1.WebhookStatus{
		LastAttemptTime:         timeOrNil(st.LastAttempt),
		LastSuccessTime:         timeOrNil(st.LastSuccess),
		FailingSince:            timeOrNil(st.FailingSince),
		ConsecutiveFailures:     &st.ConsecutiveFailures,
		PendingNotifications:    &st.Pending,
		DeliveredTotal:          &st.Delivered,
		DroppedTotal:            &st.Dropped,
		CancelledTotal:          &st.Cancelled,
		LastHandledReactivation: st.HandledReactivation,
	}
	delivering := metav1.Condition{Type: hooklinev1.ConditionDelivering, Status: metav1.ConditionTrue, Reason: hooklinev1.ReasonNoFailures,
		Message: "the last delivery attempt succeeded, or none has failed"}
	disabled := metav1.Condition{Type: hooklinev1.ConditionAutoDisabled, Status: metav1.ConditionFalse, Reason: hooklinev1.ReasonEnabled,
		Message: "the webhook is not auto-disabled"}
	switch {
	case st.Disabled:
		delivering = metav1.Condition{Type: hooklinev1.ConditionDelivering, Status: metav1.ConditionFalse, Reason: hooklinev1.ReasonAutoDisabled,
			Message: "auto-disabled: nothing is queued or sent until it is reactivated"}
		disabled = metav1.Condition{Type: hooklinev1.ConditionAutoDisabled, Status: metav1.ConditionTrue, Reason: hooklinev1.ReasonNoRecentSuccess,
			Message: st.DisabledMessage + fmt.Sprintf("; set the %s annotation to a new value to reactivate", hooklinev1.ReactivateAnnotation)}
	case cfg.HeldReason != "":
		delivering = metav1.Condition{Type: hooklinev1.ConditionDelivering, Status: metav1.ConditionFalse, Reason: cfg.HeldReason,
			Message: cfg.HeldMessage + "; notifications stay queued until it is fixed"}
	case st.ConsecutiveFailures > 0:
		delivering = metav1.Condition{Type: hooklinev1.ConditionDelivering, Status: metav1.ConditionFalse, Reason: st.LastFailureReason,
			Message: fmt.Sprintf("%d consecutive failed attempts since %s: %s; retrying", st.ConsecutiveFailures,
				st.FailingSince.UTC().Format(time.RFC3339), st.LastFailureMessage)}
	case !st.Rebound.At.IsZero():
		rb := st.Rebound
		delivering = metav1.Condition{Type: hooklinev1.ConditionDelivering, Status: metav1.ConditionTrue, Reason: hooklinev1.ReasonBindingChanged,
			Message: fmt.Sprintf("the namespace was bound to %s instead of %s at %s: %d notifications queued under the old binding were cancelled so far, never to be delivered under the new one",
				rb.To, rb.From, rb.At.UTC().Format(time.RFC3339), rb.Cancelled)}
	}
	out.Conditions = statusapply.Conditions(wh.Status.Conditions, wh.Generation, now, delivering, disabled)
	return out
}

func timeOrNil(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t)
	return &mt
}
