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
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/deliveries"
	"github.com/hookline/hookline/internal/statusapply"
)

// ReplayLog is what a replay needs of the delivery log (deliverylog.Log): its records, to select
// notifications and follow their progress, and a place for the records saying they were queued
// again.
type ReplayLog interface {
	Append(r deliveries.Record)
	Barrier(ctx context.Context) error
	Scan(ctx context.Context, uid string, since time.Time, fn func(deliveries.Record) error) error
}

// Replayer runs WebhookReplays: it waits until the replay's Webhook is Active, selects the
// notifications from the delivery log, queues them again at the tail of the webhook's queue in
// their original order (store.EnqueueAll and Engine.Enqueue, as Intake.Accept does), and
// reports the progress read back from the log in the replay's status.
//
// It resumes exactly after a crash: what this replay already queued is what its webhook's queue
// holds with Replay set to its name, together with what the log records with that name beyond the
// "queued again" record itself (an attempt, a drop, a cancellation: the engine writes these before
// a note leaves its queue). Only the rest is queued, so no notification is sent twice by one
// replay.
type Replayer struct {
	Client   client.Client
	Store    *store.Store
	Engine   *deliver.Engine
	Log      ReplayLog
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	// Poll is how often the progress of a running replay, or the state of the Webhook a replay
	// waits for, is read again (default 2 s).
	Poll time.Duration
	// Batch is how many notifications are queued in one store round trip (default 500).
	Batch int

	mu    sync.Mutex
	scans map[types.NamespacedName]scan // running replays: their last progress read
}

// replayWorkers is how many replays run at once: each waits mostly on JetStream round trips, and
// replays of different webhooks are independent.
const replayWorkers = 8

// webhookNameField indexes WebhookReplays by the Webhook they name.
const webhookNameField = "spec.webhookName"

// +kubebuilder:rbac:groups=hookline.io,resources=webhookreplays,verbs=get;list;watch
// +kubebuilder:rbac:groups=hookline.io,resources=webhookreplays/status,verbs=get;patch;update

// SetupWithManager runs the replayer on replays (their creation: the spec is immutable) and on
// changes of the Webhooks they wait for.
func (r *Replayer) SetupWithManager(ctx context.Context, mgr ctrl.Manager, skipNameValidation bool) error {
	r.scans = map[types.NamespacedName]scan{}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &hooklinev1.WebhookReplay{}, webhookNameField, func(o client.Object) []string {
		return []string{o.(*hooklinev1.WebhookReplay).Spec.WebhookName}
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("replay").
		For(&hooklinev1.WebhookReplay{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&hooklinev1.Webhook{}, handler.EnqueueRequestsFromMapFunc(r.replaysOf),
			builder.WithPredicates(routingChanged{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: replayWorkers, SkipNameValidation: &skipNameValidation}).
		Complete(r)
}

// replaysOf maps a Webhook to the unfinished replays naming it.
func (r *Replayer) replaysOf(ctx context.Context, o client.Object) []reconcile.Request {
	list := &hooklinev1.WebhookReplayList{}
	if err := r.Client.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{webhookNameField: o.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the replays of a webhook", "Webhook", klog.KObj(o))
		return nil
	}
	var out []reconcile.Request
	for _, rp := range list.Items {
		if !finished(&rp) {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: rp.Namespace, Name: rp.Name}})
		}
	}
	return out
}

// finished reports whether rp completed, or stalled for good (its webhook is gone): nothing more
// happens to it. A replay stalled for want of the delivery log runs once a dispatcher has it.
func finished(rp *hooklinev1.WebhookReplay) bool {
	stalled := meta.FindStatusCondition(rp.Status.Conditions, hooklinev1.ConditionStalled)
	return meta.IsStatusConditionTrue(rp.Status.Conditions, hooklinev1.ConditionReady) ||
		stalled != nil && stalled.Status == metav1.ConditionTrue && stalled.Reason == hooklinev1.ReasonWebhookDeleted
}

func (r *Replayer) poll() time.Duration { return cmp.Or(r.Poll, 2*time.Second) }

// Reconcile moves one replay on: waiting, queueing, following its deliveries.
func (r *Replayer) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rp := &hooklinev1.WebhookReplay{}
	if err := r.Client.Get(ctx, req.NamespacedName, rp); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if finished(rp) {
		r.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	st := rp.Status.DeepCopy()
	if r.Log == nil {
		msg := "the dispatcher runs without its delivery log (--delivery-log=false): replays select and follow notifications in it"
		r.setConditions(st, rp.Generation, metav1.ConditionFalse, hooklinev1.ReasonDeliveryLogDisabled, msg)
		return ctrl.Result{}, r.apply(ctx, rp, st)
	}
	started := st.WebhookUID != ""

	wh := &hooklinev1.Webhook{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: rp.Namespace, Name: rp.Spec.WebhookName}, wh)
	if err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	missing := apierrors.IsNotFound(err)
	if started && (missing || string(wh.UID) != st.WebhookUID) {
		msg := fmt.Sprintf("webhook %s was deleted while the replay ran; %d of %d queued notifications were delivered", rp.Spec.WebhookName, st.Delivered, st.Queued)
		r.setConditions(st, rp.Generation, metav1.ConditionFalse, hooklinev1.ReasonWebhookDeleted, msg)
		if err := r.apply(ctx, rp, st); err != nil {
			return ctrl.Result{}, err
		}
		r.Recorder.Eventf(rp, nil, corev1.EventTypeWarning, hooklinev1.ReasonWebhookDeleted, "Replay", "%s", msg)
		return ctrl.Result{}, nil
	}
	if missing {
		msg := fmt.Sprintf("webhook %s does not exist in namespace %s; the replay starts once it is created and Active", rp.Spec.WebhookName, rp.Namespace)
		return r.wait(ctx, rp, st, hooklinev1.ReasonWebhookNotFound, msg)
	}
	uid := string(wh.UID)
	queuedAll := started && meta.FindStatusCondition(st.Conditions, hooklinev1.ConditionReconciling) != nil &&
		meta.FindStatusCondition(st.Conditions, hooklinev1.ConditionReconciling).Reason == hooklinev1.ReasonDelivering
	if !queuedAll {
		if ok, why := r.active(wh); !ok {
			return r.wait(ctx, rp, st, hooklinev1.ReasonWebhookNotActive, why)
		}
		if !started {
			// Whole seconds, as the status keeps it: a resumed replay selects with the same bound.
			now := metav1.NewTime(r.Clock.Now().Truncate(time.Second))
			st.WebhookUID, st.StartedAt = uid, &now
			msg := fmt.Sprintf("selecting and queueing the notifications of webhook %s", wh.Name)
			r.setConditions(st, rp.Generation, metav1.ConditionTrue, hooklinev1.ReasonQueueing, msg)
			// Recorded before anything is queued: a resumed replay reads its progress from here.
			if err := r.apply(ctx, rp, st); err != nil {
				return ctrl.Result{}, err
			}
			r.Recorder.Eventf(rp, wh, corev1.EventTypeNormal, "Started", "Replay", "Replaying notifications of webhook %s", wh.Name)
		}
		res, err := r.queue(ctx, rp, wh, st.StartedAt.Time)
		if err != nil {
			return ctrl.Result{}, err
		}
		st.Matched, st.Queued, st.Unavailable = int64(res.matched), int64(res.queued), res.unavailable
		ctrl.LoggerFrom(ctx).Info("Replay queued", "matched", res.matched, "queued", res.queued, "new", res.added)
		r.setConditions(st, rp.Generation, metav1.ConditionTrue, hooklinev1.ReasonDelivering,
			fmt.Sprintf("%d notifications queued again; waiting for their deliveries", st.Queued))
	}

	done, err := r.progress(ctx, rp, uid, st)
	if err != nil {
		return ctrl.Result{}, err
	}
	if done {
		now := metav1.NewTime(r.Clock.Now())
		st.CompletedAt = &now
		msg := fmt.Sprintf("%d of %d matched notifications queued again: %d delivered, %d failed", st.Queued, st.Matched, st.Delivered, st.Failed)
		if len(st.Unavailable) > 0 {
			msg += "; some could not be replayed (see status.unavailable)"
		}
		r.setConditions(st, rp.Generation, metav1.ConditionFalse, hooklinev1.ReasonCompleted, msg)
		if err := r.apply(ctx, rp, st); err != nil {
			return ctrl.Result{}, err
		}
		r.Recorder.Eventf(rp, wh, corev1.EventTypeNormal, hooklinev1.ReasonCompleted, "Replay", "%s", msg)
		return ctrl.Result{}, nil
	}
	if err := r.apply(ctx, rp, st); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.poll()}, nil
}

// active reports whether wh is Active and delivered to, and otherwise why not.
func (r *Replayer) active(wh *hooklinev1.Webhook) (bool, string) {
	state := cmp.Or(string(wh.Status.State), "not observed yet")
	if wh.Status.State != hooklinev1.ObservedActive {
		msg := fmt.Sprintf("webhook %s is %s", wh.Name, state)
		if c := meta.FindStatusCondition(wh.Status.Conditions, hooklinev1.ConditionReady); c != nil && c.Status != metav1.ConditionTrue && c.Reason != "" {
			msg += " (" + c.Reason + ")"
		}
		return false, msg + "; the replay starts once it is Active"
	}
	cfg, ok := r.Engine.Webhook(string(wh.UID))
	switch {
	case !ok || !cfg.Deliverable:
		return false, fmt.Sprintf("webhook %s is not delivered to yet; the replay starts once it is", wh.Name)
	case r.Engine.Disabled(string(wh.UID)):
		return false, fmt.Sprintf("webhook %s is auto-disabled; the replay starts once it is reactivated", wh.Name)
	}
	return true, ""
}

// wait records that rp waits for its webhook, and looks again later (the Webhook watch usually
// comes first).
func (r *Replayer) wait(ctx context.Context, rp *hooklinev1.WebhookReplay, st *hooklinev1.WebhookReplayStatus, reason, msg string) (ctrl.Result, error) {
	r.setConditions(st, rp.Generation, metav1.ConditionTrue, reason, msg)
	if err := r.apply(ctx, rp, st); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.poll()}, nil
}

// setConditions sets the three conditions for a replay whose Reconciling reason is reason:
// Reconciling True while it waits or runs; at the end Ready True (Completed), or Stalled True
// (WebhookDeleted) when it cannot finish.
func (r *Replayer) setConditions(st *hooklinev1.WebhookReplayStatus, gen int64, reconciling metav1.ConditionStatus, reason, msg string) {
	st.ObservedGeneration = gen
	ready, stalled := metav1.ConditionFalse, metav1.ConditionFalse
	stalledReason, stalledMsg := hooklinev1.ReasonRunning, "the replay can finish"
	switch reason {
	case hooklinev1.ReasonCompleted:
		ready, stalledReason, stalledMsg = metav1.ConditionTrue, hooklinev1.ReasonCompleted, "the replay completed"
	case hooklinev1.ReasonWebhookDeleted, hooklinev1.ReasonDeliveryLogDisabled:
		stalled, stalledReason, stalledMsg = metav1.ConditionTrue, reason, msg
	}
	conds := statusapply.Conditions(st.Conditions, gen, metav1.NewTime(r.Clock.Now()),
		metav1.Condition{Type: hooklinev1.ConditionReady, Status: ready, Reason: reason, Message: msg},
		metav1.Condition{Type: hooklinev1.ConditionReconciling, Status: reconciling, Reason: reason, Message: msg},
		metav1.Condition{Type: hooklinev1.ConditionStalled, Status: stalled, Reason: stalledReason, Message: stalledMsg})
	st.Conditions = conds
}

// apply writes st as rp's status: one server-side apply under the dispatcher's field manager,
// which owns every status field of a replay.
func (r *Replayer) apply(ctx context.Context, rp *hooklinev1.WebhookReplay, st *hooklinev1.WebhookReplayStatus) error {
	if equalStatus(&rp.Status, st) {
		return nil
	}
	if err := statusapply.Apply(ctx, r.Client, hooklinev1.GroupVersion.WithKind("WebhookReplay"), rp, st, hooklinev1.FieldManagerDispatcher); err != nil {
		return fmt.Errorf("writing replay status: %w", err)
	}
	rp.Status = *st.DeepCopy()
	return nil
}

func equalStatus(a, b *hooklinev1.WebhookReplayStatus) bool {
	ra, _ := json.Marshal(a)
	rb, _ := json.Marshal(b)
	return string(ra) == string(rb)
}

// candidate is one notification a replay selected.
type candidate struct {
	id      string
	seq     uint64
	eventID string
	event   string
	created time.Time
	state   deliveries.State
}

// queueResult is what queueing a replay's selection found and did.
type queueResult struct {
	matched, queued, added int
	unavailable            []string
}

// queue selects rp's notifications and queues those this replay has not queued yet, in event order.
func (r *Replayer) queue(ctx context.Context, rp *hooklinev1.WebhookReplay, wh *hooklinev1.Webhook, startedAt time.Time) (queueResult, error) {
	uid := string(wh.UID)
	// What this replay queued before (a previous run): the queue first, then the log (read with the
	// selection), so that a note delivered and removed in between is found in the log: its record
	// is stored before it leaves the queue.
	already := map[uint64]bool{}
	for from := uint64(1); ; {
		notes, err := r.Store.LoadNotes(ctx, uid, from, 1000)
		if err != nil {
			return queueResult{}, err
		}
		for _, n := range notes {
			if n.Replay == rp.Name {
				already[n.EventSeq] = true
			}
			from = n.Seq + 1
		}
		if len(notes) < 1000 {
			break
		}
	}
	sel, unavailable, err := r.selection(ctx, rp, uid, startedAt, already)
	if err != nil {
		return queueResult{}, err
	}
	res := queueResult{matched: len(sel)}
	var todo []candidate
	for _, c := range sel {
		if already[c.seq] {
			res.queued++
		} else {
			todo = append(todo, c)
		}
	}
	var gone []candidate
	batch := cmp.Or(r.Batch, 500)
	for len(todo) > 0 {
		n := min(batch, len(todo))
		// Read per batch: the oldest events may expire while a long selection is queued.
		first, err := r.Store.FirstEventSeq(ctx)
		if err != nil {
			return queueResult{}, err
		}
		added, g, err := r.enqueue(ctx, rp, wh, todo[:n], first)
		if err != nil {
			return queueResult{}, err
		}
		res.queued += added
		res.added += added
		gone = append(gone, g...)
		todo = todo[n:]
	}
	if len(gone) > 0 {
		unavailable = append(unavailable, fmt.Sprintf("%d notifications not replayed: their events are beyond the event log's retention (accepted %s to %s)",
			len(gone), gone[0].created.UTC().Format(time.RFC3339), gone[len(gone)-1].created.UTC().Format(time.RFC3339)))
	}
	res.unavailable = unavailable
	return res, nil
}

// scanSkew widens the log reads that start at a replay's start, for records stamped by another
// dispatcher's clock.
const scanSkew = time.Minute

// enqueue queues cs (in order) for wh as replays of rp, skipping the ones whose event is no longer
// in the event log (first is its oldest event's sequence). The "queued again" records are appended
// before the notes are stored, so that they precede every record the engine writes about the new
// attempts.
func (r *Replayer) enqueue(ctx context.Context, rp *hooklinev1.WebhookReplay, wh *hooklinev1.Webhook, cs []candidate, first uint64) (int, []candidate, error) {
	now := r.Clock.Now()
	var items []store.Enqueue
	var gone []candidate
	for _, c := range cs {
		if c.seq < first {
			gone = append(gone, c)
			continue
		}
		r.Log.Append(deliveries.Record{
			Kind: deliveries.KindReplayQueued, WebhookUID: string(wh.UID), Namespace: wh.Namespace, Name: wh.Name,
			NotificationID: c.id, EventSeq: c.seq, EventID: c.eventID, EventName: c.event, Created: c.created, At: now,
			State: deliveries.StateReplayed, Reason: "Replayed", Replay: rp.Name,
			Message: fmt.Sprintf("queued again by WebhookReplay %s (was %s)", rp.Name, c.state),
		})
		items = append(items, store.Enqueue{UID: string(wh.UID), Note: store.Note{
			EventSeq: c.seq, Created: now, EventID: c.eventID, EventName: c.event, Replay: rp.Name,
		}})
	}
	if len(items) == 0 {
		return 0, gone, nil
	}
	results, err := r.Store.EnqueueAll(ctx, items)
	if err != nil {
		// Some may be stored: the queue reads the store for them, and the retry of this replay
		// finds them there (Replay set) and does not queue them again.
		for _, it := range items {
			r.Engine.Recheck(it.UID)
		}
		return 0, nil, fmt.Errorf("queueing replayed notifications: %w", err)
	}
	for i, res := range results {
		n := items[i].Note
		n.Seq = res.Seq
		r.Engine.Enqueue(items[i].UID, n)
	}
	return len(items), gone, nil
}

// selection reads the log for rp's notifications, oldest event first. A notification's state is
// that of its newest record not written by this replay (so that a resumed replay selects the same
// ones); only final states are replayed. The same read adds to already the events this replay's
// notifications were attempted, dropped or cancelled for (a previous run queued them).
func (r *Replayer) selection(ctx context.Context, rp *hooklinev1.WebhookReplay, uid string, startedAt time.Time, already map[uint64]bool) ([]candidate, []string, error) {
	newest := map[string]*candidate{}
	var since time.Time
	ids := map[string]bool{}
	for _, id := range rp.Spec.NotificationIDs {
		ids[strings.ToLower(string(id))] = true
	}
	if rp.Spec.Since != nil {
		since = rp.Spec.Since.Time
	}
	from := since
	if own := startedAt.Add(-scanSkew); !from.IsZero() && own.Before(from) {
		from = own
	}
	err := r.Log.Scan(ctx, uid, from, func(rec deliveries.Record) error {
		if rec.Replay == rp.Name {
			if rec.Kind != deliveries.KindReplayQueued {
				already[rec.EventSeq] = true
			}
			return nil
		}
		key := cmp.Or(rec.NotificationID, fmt.Sprintf("event-%d", rec.EventSeq))
		if len(ids) > 0 && !ids[key] {
			return nil
		}
		c := newest[key]
		if c == nil {
			c = &candidate{created: rec.Created}
			newest[key] = c
		}
		c.id = cmp.Or(rec.NotificationID, c.id)
		c.seq, c.eventID, c.event, c.state = rec.EventSeq, rec.EventID, rec.EventName, rec.State
		// A replay's records may date the notification from the replay: keep the original.
		if !rec.Created.IsZero() && (c.created.IsZero() || rec.Created.Before(c.created)) {
			c.created = rec.Created
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading the delivery log: %w", err)
	}
	var out []candidate
	var unavailable []string
	if len(ids) > 0 {
		var missing, queued []string
		for _, id := range rp.Spec.NotificationIDs {
			c := newest[strings.ToLower(string(id))]
			switch {
			case c == nil:
				missing = append(missing, string(id))
			case !c.state.Final():
				queued = append(queued, fmt.Sprintf("%s (%s)", id, c.state))
			default:
				out = append(out, *c)
			}
		}
		if len(missing) > 0 {
			unavailable = append(unavailable, fmt.Sprintf("%d notifications not found in the delivery log (beyond its retention, or never sent to this webhook): %s",
				len(missing), listSome(missing)))
		}
		if len(queued) > 0 {
			unavailable = append(unavailable, fmt.Sprintf("%d notifications not replayed because they are still queued: %s", len(queued), listSome(queued)))
		}
	} else {
		// Up to the start (a second past its whole second, which covers every event accepted
		// before it started).
		until := startedAt.Truncate(time.Second).Add(time.Second)
		if rp.Spec.Until != nil {
			until = rp.Spec.Until.Time
		}
		states := selectedStates(rp.Spec.States)
		for _, c := range newest {
			// A test notification is the user's probe, not an event to recover: only a replay
			// naming it sends it again.
			if states[c.state] && !c.created.Before(since) && c.created.Before(until) && !deliveries.IsTest(c.eventID) {
				out = append(out, *c)
			}
		}
	}
	slices.SortFunc(out, func(a, b candidate) int { return cmp.Compare(a.seq, b.seq) })
	return out, unavailable, nil
}

// selectedStates expands spec.states ("failed" is dropped, lost and cancelled; none is failed).
func selectedStates(in []hooklinev1.ReplayState) map[deliveries.State]bool {
	if len(in) == 0 {
		in = []hooklinev1.ReplayState{hooklinev1.ReplayFailed}
	}
	out := map[deliveries.State]bool{}
	for _, s := range in {
		switch s {
		case hooklinev1.ReplayFailed:
			out[deliveries.StateDropped], out[deliveries.StateLost], out[deliveries.StateCancelled] = true, true, true
		default:
			out[deliveries.State(s)] = true
		}
	}
	return out
}

// listSome lists the first few of ss for a status message.
func listSome(ss []string) string {
	const show = 10
	if len(ss) <= show {
		return strings.Join(ss, ", ")
	}
	return strings.Join(ss[:show], ", ") + fmt.Sprintf(" and %d more", len(ss)-show)
}

// progress counts, from the log, the notifications this replay queued that were delivered or
// failed, and reports whether all of them were. Reading the replay's records costs in proportion
// to every record written since the replay started (the log interleaves all webhooks, and the
// server walks them all for one webhook's), CPU taken from the deliveries themselves; so it is
// done when the webhook's queue is empty (every replayed notification settled: the count can be
// final), and otherwise only every so often, for the counts shown meanwhile — not at all in the
// first interval after the notifications were queued, when none of them can have settled.
func (r *Replayer) progress(ctx context.Context, rp *hooklinev1.WebhookReplay, uid string, st *hooklinev1.WebhookReplayStatus) (bool, error) {
	pending := int64(-1)
	if es, ok := r.Engine.Status(uid); ok {
		pending = es.Pending
	}
	key := client.ObjectKeyFromObject(rp)
	r.mu.Lock()
	last, scanned := r.scans[key]
	if !scanned && pending != 0 {
		// The interval starts now: the first count follows a while into the deliveries.
		r.scans[key] = scan{at: r.Clock.Now()}
	}
	r.mu.Unlock()
	if pending != 0 && (!scanned || r.Clock.Since(last.at) < max(progressEvery, 10*r.poll(), 20*last.took)) {
		return false, nil
	}
	// Records the engine appended before settling are stored: the scan sees them.
	if err := r.Log.Barrier(ctx); err != nil {
		return false, fmt.Errorf("waiting for the delivery log: %w", err)
	}
	start := r.Clock.Now()
	final := map[uint64]deliveries.State{}
	err := r.Log.Scan(ctx, uid, st.StartedAt.Add(-scanSkew), func(rec deliveries.Record) error {
		if rec.Replay == rp.Name && rec.Kind != deliveries.KindReplayQueued {
			final[rec.EventSeq] = rec.State
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("reading the delivery log: %w", err)
	}
	st.Delivered, st.Failed = 0, 0
	for _, s := range final {
		switch s {
		case deliveries.StateDelivered:
			st.Delivered++
		case deliveries.StateDropped, deliveries.StateCancelled, deliveries.StateLost:
			st.Failed++
		}
	}
	done := st.Delivered+st.Failed >= st.Queued
	r.mu.Lock()
	if done {
		delete(r.scans, client.ObjectKeyFromObject(rp))
	} else {
		r.scans[client.ObjectKeyFromObject(rp)] = scan{at: r.Clock.Now(), took: r.Clock.Since(start)}
	}
	r.mu.Unlock()
	return done, nil
}

// progressEvery is the shortest interval between two counts of a running replay's deliveries
// while its webhook's queue is not empty.
const progressEvery = 30 * time.Second

// scan is when a running replay's records were last read, and how long that took.
type scan struct {
	at   time.Time
	took time.Duration
}

// forget drops what the replayer remembers of a replay that finished or was deleted.
func (r *Replayer) forget(key types.NamespacedName) {
	r.mu.Lock()
	delete(r.scans, key)
	r.mu.Unlock()
}
