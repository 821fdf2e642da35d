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
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/dispatcher/route"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/deliveries"
	"github.com/hookline/hookline/internal/statusapply"
	"github.com/hookline/hookline/internal/tenancy"
)

// ReplayLog is what a replay needs of the delivery log (deliverylog.Log): its records, to select
// notifications (read for several webhooks at once) and to count, after a restart, what a previous
// run delivered; and a place for the records saying they were queued again.
type ReplayLog interface {
	Append(r deliveries.Record)
	Barrier(ctx context.Context) error
	ScanMany(ctx context.Context, uids []string, since time.Time, fn func(deliveries.Record) error) error
}

// Replayer runs WebhookReplays: it waits until the replay's Webhook is Active and the replay's
// turn has come in its namespace (at most MaxPerNamespace run at once there, started in creation
// order), selects the notifications from the delivery log (one read for all the replays that
// start together, replayReads), queues them again at the tail of the webhook's queue in their
// original order (store.EnqueueAll and Engine.Enqueue, as Intake.Accept does), and reports the
// progress counted as the engine records the deliveries (replayTally) in the replay's status.
//
// It resumes exactly after a crash: what this replay already queued is what its webhook's queue
// holds with Replay set to its name, together with what the log records with that name beyond the
// "queued again" record itself (an attempt, a drop, a cancellation: the engine writes these before
// a note leaves its queue). Only the rest is queued, so no notification is sent twice by one
// replay.
type Replayer struct {
	Client client.Client
	Store  *store.Store
	Engine *deliver.Engine
	// Table is the routing table: a replay stores its notes under the route's hold, as the
	// intake does, so that a webhook withdrawn meanwhile (INACTIVE, deleted)
	// has nothing of the replay queued after its queue was cleared.
	Table    *route.Table
	Log      ReplayLog
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	// Poll is how often the progress of a running replay, or the state of the Webhook a replay
	// waits for, is read again (default 2 s).
	Poll time.Duration
	// Gather is how long the first replay to ask for a read of the log waits for others to ask
	// (default 200 ms), and on while asks keep coming (a quarter of it at a time, up to five
	// times it): the replays created together (kubectl apply of a directory) then share one read,
	// and those that ask while it runs share the next.
	Gather time.Duration
	// Batch is how many notifications are queued in one store round trip (default 500).
	Batch int
	// MaxPerNamespace is how many replays run at once in one namespace (default 2); the others
	// wait their turn (Reconciling, reason Queued) and start in creation order.
	MaxPerNamespace int
	// MaxSelection bounds the notifications one replay's selection holds while the log is read
	// (DefaultReplayMaxSelection when 0): those whose newest record is, at that point of the read,
	// in one of the replay's states. A replay whose selection would hold more stops (Stalled,
	// reason SelectionTooLarge) before it queues anything, so that one tenant's replay cannot
	// take the memory of the dispatcher every tenant shares.
	MaxSelection int
	// LogReadsPerMinute and LogReadBurst are each namespace's budget of delivery log reads
	// (DefaultReplayLogReadsPerMinute and DefaultReplayLogReadBurst when 0): a read walks the log
	// from the earliest start asked, every tenant's records, and the replays created together
	// share one. A namespace that spent its budget has its replays wait for their read while
	// other namespaces' go ahead.
	LogReadsPerMinute float64
	LogReadBurst      int
	// NotesPerMinute and NotesBurst are each namespace's budget of notifications queued again
	// (DefaultReplayNotesPerMinute and DefaultReplayNotesBurst when 0; notesBudget): a replay
	// starts selecting only while its namespace has some left.
	NotesPerMinute float64
	NotesBurst     int
	// Metrics, when set, receives the replays' metrics (NewReplayMetrics).
	Metrics *ReplayMetrics

	notes *notesBudget

	tally *replayTally
	reads *replayReads
	// beforeBatch, when set, is called before each batch of a selection is queued (tests).
	beforeBatch atomic.Pointer[func()]
	// scans counts the scans of a webhook's queue for what a replay queued before (tests).
	scans atomic.Int64
	// present holds the replays Gone found present, each for replayPresentFor.
	present *utilcache.LRUExpireCache
	wakeups chan event.GenericEvent

	mu sync.Mutex
	// phase is what each replay known to this dispatcher does: waiting, queued or running.
	phase map[types.NamespacedName]string
	// running holds, per namespace, the replays admitted to run (until they finish or go), with
	// when they were admitted.
	running map[string]map[types.NamespacedName]time.Time
	// elsewhere holds, per namespace, how many replays the cache showed started and not finished
	// without this dispatcher having admitted them, when admit or resume last listed them (for
	// turnsSeenFor): turns those hold are seen without listing again.
	elsewhere map[string]seenTurns
	// shown is when each running replay's progress was last written to its status.
	shown map[types.NamespacedName]time.Time
	// waitShown is when why each waiting replay waits was last written to its status.
	waitShown map[types.NamespacedName]time.Time
	// written is the status last written for each replay, until the cache shows it finished.
	written map[types.NamespacedName]*hooklinev1.WebhookReplayStatus
	// uids is the uid of the object each replay name was last reconciled as.
	uids map[types.NamespacedName]types.UID
	// peak is the most replays that ran at once in each namespace (tests read it).
	peak map[string]int
}

// DefaultReplayMaxSelection is Replayer.MaxSelection's default. A held notification is about 130
// bytes (BenchmarkSelectionMemory), and a selected one is copied once (88 bytes) to be queued in
// order: one replay's selection takes at most about 33 MB while the log is read, 55 MB as it is
// sorted for queueing.
const DefaultReplayMaxSelection = 250_000

// replayWorkers is how many replays are reconciled at once: each waits mostly on API server and
// JetStream round trips, and replays of different webhooks are independent. A hundred replays
// created together start within about a second with 16 (the recover scenario of hack/bench).
const replayWorkers = 16

// webhookNameField indexes WebhookReplays by the Webhook they name.
const webhookNameField = "spec.webhookName"

// +kubebuilder:rbac:groups=hookline.io,resources=webhookreplays,verbs=get;list;watch
// +kubebuilder:rbac:groups=hookline.io,resources=webhookreplays/status,verbs=get;patch

// Observe returns the delivery log as the engine should write it: the replays' progress is
// counted from the records as they are appended. Call it before SetupWithManager.
func (r *Replayer) Observe(rec deliver.Recorder) deliver.Recorder {
	r.init()
	return observedRecorder{Recorder: rec, tally: r.tally}
}

func (r *Replayer) init() {
	if r.tally != nil {
		return
	}
	r.wakeups = make(chan event.GenericEvent, 1024)
	r.tally = newReplayTally(r.wake)
	r.phase = map[types.NamespacedName]string{}
	r.running = map[string]map[types.NamespacedName]time.Time{}
	r.elsewhere = map[string]seenTurns{}
	r.shown = map[types.NamespacedName]time.Time{}
	r.waitShown = map[types.NamespacedName]time.Time{}
	r.written = map[types.NamespacedName]*hooklinev1.WebhookReplayStatus{}
	r.uids = map[types.NamespacedName]types.UID{}
	r.peak = map[string]int{}
	r.present = utilcache.NewLRUExpireCacheWithClock(1024, r.Clock)
	r.notes = newNotesBudget(cmp.Or(r.NotesPerMinute, DefaultReplayNotesPerMinute), cmp.Or(r.NotesBurst, DefaultReplayNotesBurst))
	if r.Log != nil {
		// Metrics may be set after init (before the manager starts): looked up at each read.
		observe := func(d time.Duration) {
			if r.Metrics != nil {
				r.Metrics.scanSeconds.Observe(d.Seconds())
			}
		}
		r.reads = newReplayReads(r.Log, r.Clock, cmp.Or(r.Gather, 200*time.Millisecond), r.wake, observe,
			newReadBudget(r.readsPerMinute(), r.readBurst()))
		// Every replay's selection together holds at most as many notifications as one may.
		r.reads.room = r.maxSelection()
	}
}

// wake has key reconciled soon; when the channel is full the replay's poll comes instead.
func (r *Replayer) wake(key types.NamespacedName) {
	select {
	case r.wakeups <- event.GenericEvent{Object: &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}:
	default:
	}
}

// SetupWithManager runs the replayer on replays (their creation: the spec is immutable), on
// changes of the Webhooks they wait for, and on its own wake-ups (a read of the log answered, a
// replay's last delivery settled, a turn freed in a namespace).
func (r *Replayer) SetupWithManager(ctx context.Context, mgr ctrl.Manager, skipNameValidation bool) error {
	r.init()
	if r.Metrics != nil {
		r.Metrics.phases = r.phases
	}
	if r.reads != nil {
		if err := mgr.Add(r.reads); err != nil {
			return err
		}
	}
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
		WatchesRawSource(source.Channel(r.wakeups, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: replayWorkers, SkipNameValidation: &skipNameValidation}).
		Complete(r)
}

// replayPresentFor is how long Gone trusts that a replay it found present still is. The engine
// asks before every replayed attempt, and the informer cache's Get cost 3 % of a recover's CPU
// (docs/performance.md, session 27); a replay deleted meanwhile sends at most this long more (its
// reconcile on the deletion forgets it at once, which is usually sooner).
const replayPresentFor = 250 * time.Millisecond

// Gone reports whether the WebhookReplay that ref names (deliveries.ReplayRef) in namespace, on a
// note queued at queued, no longer exists, or is being deleted, or was replaced by another object
// of its name (another uid, or a bare name of before on a note older than the object)
// (deliver.Config.ReplayGone): from the informer cache, which a Get waits for at first. Asked
// before each replayed attempt, so the cached object is read in place, not copied, and a replay
// found present is taken as present for replayPresentFor.
func (r *Replayer) Gone(ctx context.Context, namespace, ref string, queued time.Time) (bool, error) {
	key := types.NamespacedName{Namespace: namespace, Name: deliveries.ReplayName(ref)}
	prefix := deliveries.ReplayUIDPrefix(ref)
	// Another object's, or one created after the note (a bare name of before): read again, in
	// case the cache holds the name's previous object.
	if p, ok := r.present.Get(key); ok && !p.(presentReplay).replaces(prefix, queued) {
		return false, nil
	}
	rp := &hooklinev1.WebhookReplay{}
	err := r.Client.Get(ctx, key, rp, client.UnsafeDisableDeepCopy)
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, err
	case rp.DeletionTimestamp != nil:
		return true, nil
	}
	// The cache keeps an entry through its expiry instant: present for replayPresentFor, not longer.
	p := presentReplay{uid: string(rp.UID), created: rp.CreationTimestamp.Time}
	r.present.Add(key, p, replayPresentFor-time.Nanosecond)
	return p.replaces(prefix, queued), nil
}

// replayRef is how rp's notes and records name it (deliveries.ReplayRef).
func replayRef(rp *hooklinev1.WebhookReplay) string {
	return deliveries.ReplayRef(rp.Name, string(rp.UID))
}

// deletedEarlier reports whether rec is a cancellation for a replay's deletion under a bare name
// of before: a previous object's, whatever object of the name is live now (it exists).
func deletedEarlier(rec deliveries.Record) bool {
	return deliveries.ReplayUIDPrefix(rec.Replay) == "" && rec.Reason == deliver.ReasonReplayDeleted
}

// presentReplay is what Gone remembers of a replay it found present.
type presentReplay struct {
	uid     string
	created time.Time
}

// replaces reports whether the replay p is another object than the one that queued a note with
// uid prefix (a bare name of before: "") at queued.
func (p presentReplay) replaces(prefix string, queued time.Time) bool {
	if prefix != "" {
		return !strings.HasPrefix(p.uid, prefix)
	}
	return deliveries.BeforeReplay(queued, p.created)
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
		if !finished(&rp.Status) {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: rp.Namespace, Name: rp.Name}})
		}
	}
	return out
}

// finished reports whether a replay with status st completed, or stalled for good (its webhook is
// gone, or its selection is too large: the spec is immutable): nothing more happens to it. A
// replay stalled for want of the delivery log runs once a dispatcher has it.
func finished(st *hooklinev1.WebhookReplayStatus) bool {
	stalled := meta.FindStatusCondition(st.Conditions, hooklinev1.ConditionStalled)
	return meta.IsStatusConditionTrue(st.Conditions, hooklinev1.ConditionReady) ||
		stalled != nil && stalled.Status == metav1.ConditionTrue &&
			(stalled.Reason == hooklinev1.ReasonWebhookDeleted || stalled.Reason == hooklinev1.ReasonSelectionTooLarge)
}

func (r *Replayer) poll() time.Duration { return cmp.Or(r.Poll, 2*time.Second) }

// Reconcile moves one replay on: waiting, queueing, following its deliveries.
func (r *Replayer) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rp := &hooklinev1.WebhookReplay{}
	if err := r.Client.Get(ctx, req.NamespacedName, rp); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(ctx, req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	r.track(ctx, req.NamespacedName, rp.UID)
	st, done := r.current(ctx, rp)
	if done {
		return ctrl.Result{}, nil
	}
	if r.Log == nil {
		msg := "the dispatcher runs without its delivery log (--delivery-log=false): replays select and follow notifications in it"
		r.setConditions(st, rp.Generation, metav1.ConditionFalse, hooklinev1.ReasonDeliveryLogDisabled, msg)
		return ctrl.Result{}, r.apply(ctx, rp, st)
	}
	began := started(st)
	wh, res, err := r.webhookOf(ctx, rp, st, began)
	if wh == nil {
		return res, err
	}
	if !r.Engine.Owns(string(wh.UID)) {
		// Another dispatcher delivers this webhook (active-active): it runs the replay, whose
		// progress only its engine records. Looked at again in case that changes.
		return ctrl.Result{RequeueAfter: r.poll()}, nil
	}
	if !delivering(st) {
		if ok, why := r.active(wh); !ok {
			return r.wait(ctx, rp, st, hooklinev1.ReasonWebhookNotActive, why)
		}
		if !began {
			if ok, err := r.start(ctx, rp, wh, st); !ok || err != nil {
				return ctrl.Result{RequeueAfter: r.poll()}, err
			}
		}
	}
	// The status says that it started (here or in a previous run), but the status is the tenant's
	// to write: it runs only when its turn comes, like a replay that starts now.
	if ok, err := r.resume(ctx, rp); !ok || err != nil {
		return ctrl.Result{RequeueAfter: r.poll()}, err
	}
	if !delivering(st) {
		res, asked, err := r.queue(ctx, rp, wh, st.StartedAt.Time)
		if err == nil && !res.notesUntil.IsZero() {
			return r.waitNotes(ctx, rp, wh, st, res.notesUntil)
		}
		if err == nil && !res.heldUntil.IsZero() {
			// Said, so that a tenant whose replays seem stuck learns why and until when.
			r.setConditions(st, rp.Generation, metav1.ConditionTrue, hooklinev1.ReasonQueueing, fmt.Sprintf(
				"namespace %s has spent its budget of delivery log reads for replays (%d at once, then %g a minute); the selection of webhook %s is read at %s",
				rp.Namespace, r.readBurst(), r.readsPerMinute(), wh.Name, res.heldUntil.UTC().Format(time.RFC3339)))
			err = r.apply(ctx, rp, st)
		}
		if err != nil || asked {
			// Asked the log: woken when it answered.
			return ctrl.Result{RequeueAfter: r.poll()}, err
		}
		if res.tooLarge {
			return r.tooLarge(ctx, rp, wh, st)
		}
		st.Matched, st.Queued, st.Unavailable = int64(res.matched), int64(res.queued), res.unavailable
		ctrl.LoggerFrom(ctx).Info("Replay queued", "matched", res.matched, "queued", res.queued, "new", res.added)
		r.setConditions(st, rp.Generation, metav1.ConditionTrue, hooklinev1.ReasonDelivering,
			fmt.Sprintf("%d notifications queued again; waiting for their deliveries", st.Queued))
	}
	return r.follow(ctx, rp, wh, st)
}

// waitNotes records that rp waits for its namespace's budget of notifications queued again, until
// until, and looks again then.
func (r *Replayer) waitNotes(ctx context.Context, rp *hooklinev1.WebhookReplay, wh *hooklinev1.Webhook, st *hooklinev1.WebhookReplayStatus, until time.Time) (ctrl.Result, error) {
	r.setConditions(st, rp.Generation, metav1.ConditionTrue, hooklinev1.ReasonQueueing, fmt.Sprintf(
		"namespace %s has spent its budget of notifications queued again by replays (%d at once, then %g a minute); the selection of webhook %s is read at %s",
		rp.Namespace, cmp.Or(r.NotesBurst, DefaultReplayNotesBurst), cmp.Or(r.NotesPerMinute, DefaultReplayNotesPerMinute), wh.Name, until.UTC().Format(time.RFC3339)))
	if err := r.apply(ctx, rp, st); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: max(time.Until(until), r.poll())}, nil
}

// current returns the status rp goes on from: the cache's, or what this dispatcher last wrote.
// done is set when nothing more is to be done: rp finished (and is forgotten), or finished here
// already.
func (r *Replayer) current(ctx context.Context, rp *hooklinev1.WebhookReplay) (st *hooklinev1.WebhookReplayStatus, done bool) {
	key := client.ObjectKeyFromObject(rp)
	w := r.writtenStatus(key)
	if finished(&rp.Status) && !r.runsHere(w) {
		r.forget(ctx, key)
		return nil, true
	}
	st = rp.Status.DeepCopy()
	if w != nil && (stage(w) > stage(st) || finished(st)) {
		// The cache has not seen this dispatcher's last write yet: go on from there, not again.
		// Or the status says finished while this dispatcher runs the replay: the status is the
		// tenant's to write, and a replay finished by hand would free its turn while what it
		// queued is still being sent. It goes on from what this dispatcher wrote, whose next
		// write puts its own status back.
		if stage(w) == stageOver {
			return nil, true
		}
		st = w
	}
	if w != nil && stage(w) == stage(st) && w.WebhookUID == st.WebhookUID {
		// What it selected and queued, and when it started, are this dispatcher's to know: a
		// tenant that wrote a lower count into the status of a running replay had it complete,
		// and free its turn, while what it queued was still being sent.
		st.Matched, st.Queued, st.StartedAt = w.Matched, w.Queued, w.StartedAt
	}
	return st, false
}

// runsHere reports whether this dispatcher runs a replay and has not finished it (w is the status
// it last wrote): it delivers the webhook the replay started on. A replay finished by another dispatcher
// (whose webhook's partition moved there) is not.
func (r *Replayer) runsHere(w *hooklinev1.WebhookReplayStatus) bool {
	return w != nil && stage(w) > 0 && stage(w) < stageOver && r.Engine.Owns(w.WebhookUID)
}

// tooLarge ends rp, whose selection did not fit in MaxSelection, before anything of it is queued
// (Stalled, reason SelectionTooLarge): the user replays the range in parts, or the operator raises
// the bound. (A replay resumed after a crash, whose selection has grown past the bound since, keeps
// what it queued before and queues nothing more.)
func (r *Replayer) tooLarge(ctx context.Context, rp *hooklinev1.WebhookReplay, wh *hooklinev1.Webhook, st *hooklinev1.WebhookReplayStatus) (ctrl.Result, error) {
	msg := fmt.Sprintf("the selection holds more than %d notifications of webhook %s at once, the most one replay may (--replay-max-selection), so the replay queues nothing (more): "+
		"replay the time range in parts (spec.since and spec.until), or fewer states", r.maxSelection(), wh.Name)
	r.setConditions(st, rp.Generation, metav1.ConditionFalse, hooklinev1.ReasonSelectionTooLarge, msg)
	if err := r.apply(ctx, rp, st); err != nil {
		return ctrl.Result{}, err
	}
	r.Recorder.Eventf(rp, wh, corev1.EventTypeWarning, hooklinev1.ReasonSelectionTooLarge, "Replay", "%s", msg)
	r.finish(ctx, client.ObjectKeyFromObject(rp))
	return ctrl.Result{}, nil
}

// started reports whether st says that the replay started: the Webhook it replays and when are
// recorded. (Both: a status that names one without the other was not written by a dispatcher.)
func started(st *hooklinev1.WebhookReplayStatus) bool {
	return st.WebhookUID != "" && st.StartedAt != nil
}

// delivering reports whether st says that everything selected is queued.
func delivering(st *hooklinev1.WebhookReplayStatus) bool {
	c := meta.FindStatusCondition(st.Conditions, hooklinev1.ConditionReconciling)
	return started(st) && c != nil && c.Reason == hooklinev1.ReasonDelivering
}

// stageOver is stage's last: the replay completed, or stalled for good.
const stageOver = 3

// stage orders a replay's statuses: not started, started, everything queued, completed (or
// stalled for good).
func stage(st *hooklinev1.WebhookReplayStatus) int {
	switch {
	case st.CompletedAt != nil || finished(st):
		return stageOver
	case delivering(st):
		return 2
	case started(st):
		return 1
	}
	return 0
}

// writtenStatus is the status this dispatcher last wrote for key (nil if none).
func (r *Replayer) writtenStatus(key types.NamespacedName) *hooklinev1.WebhookReplayStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.written[key].DeepCopy()
}

// start admits rp to run now, when its turn has come in its namespace, and records that it
// started; otherwise it records that it waits its turn. ok reports whether it started.
func (r *Replayer) start(ctx context.Context, rp *hooklinev1.WebhookReplay, wh *hooklinev1.Webhook, st *hooklinev1.WebhookReplayStatus) (ok bool, err error) {
	ok, since, err := r.admit(ctx, rp)
	if err != nil {
		return false, err
	}
	if !ok {
		// No count of the replays ahead: it changed with every replay that started, and each
		// waiting replay's status was written again each time.
		msg := fmt.Sprintf("other replays run or wait ahead of it in namespace %s, where at most %d run at once (--replay-max-per-namespace); it starts after them",
			rp.Namespace, r.maxPerNamespace())
		_, err := r.wait(ctx, rp, st, hooklinev1.ReasonQueued, msg)
		return false, err
	}
	// Whole seconds, as the status keeps it: a resumed replay selects with the same bound. The
	// admission's time, not now: a retried write must not record a start after that of a replay
	// admitted since (it did under a loaded API server).
	now := metav1.NewTime(since.Truncate(time.Second))
	st.WebhookUID, st.StartedAt = string(wh.UID), &now
	msg := fmt.Sprintf("selecting and queueing the notifications of webhook %s", wh.Name)
	r.setConditions(st, rp.Generation, metav1.ConditionTrue, hooklinev1.ReasonQueueing, msg)
	// The selection's read of the log is asked for now, before the write: it only reads, and
	// replays created together then ask within one gathering interval (replayReads) instead of
	// one API write apart each, so that one read serves them all. Nothing of this replay is
	// queued yet: that waits for the write.
	if r.notes.wait(rp.Namespace, time.Now()) == 0 {
		r.askRead(rp, st.WebhookUID, now.Time, nil, false)
	}
	// Recorded before anything is queued: a resumed replay reads its progress from here. A write
	// that fails keeps the turn: the retry starts it, before any replay created after it (giving
	// the turn back let a later one start first under a loaded API server). Deleting the replay
	// frees the turn (forget).
	if err := r.apply(ctx, rp, st); err != nil {
		return false, err
	}
	r.Recorder.Eventf(rp, wh, corev1.EventTypeNormal, "Started", "Replay", "Replaying notifications of webhook %s", wh.Name)
	return true, nil
}

// follow counts rp's settled notifications, writes them to its status every so often, and
// completes it once every notification it queued is settled.
func (r *Replayer) follow(ctx context.Context, rp *hooklinev1.WebhookReplay, wh *hooklinev1.Webhook, st *hooklinev1.WebhookReplayStatus) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(rp)
	counted, err := r.progress(rp, string(wh.UID), st)
	if err != nil || !counted {
		return ctrl.Result{RequeueAfter: r.poll()}, err
	}
	if st.Delivered+st.Failed >= st.Queued {
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
		if r.Metrics != nil {
			r.Metrics.completed.Inc()
		}
		r.finish(ctx, key)
		return ctrl.Result{}, nil
	}
	r.mu.Lock()
	last, shownBefore := r.shown[key]
	r.mu.Unlock()
	if progressed(&rp.Status, st) && shownBefore && r.Clock.Since(last) < progressEvery {
		// The counts meanwhile are shown every so often, not at every delivery: each is a write.
		return ctrl.Result{RequeueAfter: r.poll()}, nil
	}
	if err := r.apply(ctx, rp, st); err != nil {
		return ctrl.Result{}, err
	}
	r.mu.Lock()
	r.shown[key] = r.Clock.Now()
	r.mu.Unlock()
	return ctrl.Result{RequeueAfter: r.poll()}, nil
}

// progressed reports whether st differs from was only in the delivered and failed counts.
func progressed(was, st *hooklinev1.WebhookReplayStatus) bool {
	cp := st.DeepCopy()
	cp.Delivered, cp.Failed = was.Delivered, was.Failed
	return equalStatus(was, cp)
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
	key := client.ObjectKeyFromObject(rp)
	if r.reads != nil {
		// Its read, asked or answered, is not kept while it waits (a selection held for as long
		// as the tenant keeps its Webhook INACTIVE): it reads again, from its budget, when it goes on.
		r.reads.drop(key)
	}
	phase := phaseWaiting
	if reason == hooklinev1.ReasonQueued {
		phase = phaseQueued
	} else if !started(st) {
		r.giveBack(ctx, rp)
	}
	r.setPhase(key, phase)
	r.setConditions(st, rp.Generation, metav1.ConditionTrue, reason, msg)
	if equalStatus(&rp.Status, st) {
		return ctrl.Result{RequeueAfter: r.poll()}, nil
	}
	// Why a replay waits is written at most every waitShownEvery: a tenant flipping its Webhook's
	// state (its status is the tenant's to write) had every waiting replay of it written at each
	// flip, one dispatcher write per replay per flip (between two messages, or between waiting for
	// the Webhook and for a turn). Admission reads the phase set above, not this status.
	r.mu.Lock()
	last, shownBefore := r.waitShown[key]
	r.mu.Unlock()
	if since := r.Clock.Since(last); shownBefore && since < waitShownEvery {
		return ctrl.Result{RequeueAfter: waitShownEvery - since}, nil
	}
	if err := r.apply(ctx, rp, st); err != nil {
		return ctrl.Result{}, err
	}
	r.mu.Lock()
	r.waitShown[key] = r.Clock.Now()
	r.mu.Unlock()
	return ctrl.Result{RequeueAfter: r.poll()}, nil
}

// waitShownEvery is the shortest interval between two writes of why a replay waits.
const waitShownEvery = 5 * time.Second

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
	case hooklinev1.ReasonWebhookDeleted, hooklinev1.ReasonDeliveryLogDisabled, hooklinev1.ReasonSelectionTooLarge:
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
	r.mu.Lock()
	r.written[client.ObjectKeyFromObject(rp)] = st.DeepCopy()
	r.mu.Unlock()
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
	// tooLarge is set when the selection did not fit in MaxSelection: nothing was queued.
	tooLarge bool
	// heldUntil is set while the selection's read waits for the namespace's budget of log reads.
	heldUntil time.Time
	// notesUntil is when it may select, while its namespace has spent its budget of notifications
	// queued again (zero otherwise).
	notesUntil time.Time
}

// readBurst and readsPerMinute are each namespace's budget of log reads, as configured or by default.
func (r *Replayer) readBurst() int { return cmp.Or(r.LogReadBurst, DefaultReplayLogReadBurst) }

func (r *Replayer) readsPerMinute() float64 {
	return cmp.Or(r.LogReadsPerMinute, DefaultReplayLogReadsPerMinute)
}

// maxSelection is MaxSelection or its default.
func (r *Replayer) maxSelection() int { return cmp.Or(r.MaxSelection, DefaultReplayMaxSelection) }

// queue selects rp's notifications and queues those this replay has not queued yet, in event order.
// The selection needs the log: the first call asks for it (asked), and the call after the answer
// queues.
func (r *Replayer) queue(ctx context.Context, rp *hooklinev1.WebhookReplay, wh *hooklinev1.Webhook, startedAt time.Time) (res queueResult, asked bool, err error) {
	uid := string(wh.UID)
	key := client.ObjectKeyFromObject(rp)
	rd, answered, pending := r.reads.take(key)
	if answered {
		defer r.reads.release(rd) // its selection is queued, or given up, on return
	} else if wait := r.notes.wait(rp.Namespace, time.Now()); wait > 0 {
		// Its namespace has spent its budget of notifications queued again: nothing is selected
		// meanwhile (a read asked and not made yet is given back). One answered already is
		// queued: it was asked while the namespace had some left.
		r.reads.drop(key)
		return queueResult{notesUntil: heldTill(time.Now(), wait)}, false, nil
	}
	if pending && !answered {
		return queueResult{heldUntil: r.reads.held(key)}, true, nil
	}
	if !answered {
		return r.askSelection(ctx, rp, uid, startedAt)
	}
	if rd.err != nil {
		return queueResult{}, false, rd.err
	}
	if !rd.sel.selecting || rd.uid != uid {
		// A count's answer (the replay was Delivering when it was asked), or one for another
		// Webhook of the name (deleted and created again, its uid written into the status by
		// hand): select afresh, from this Webhook's log.
		return r.askSelection(ctx, rp, uid, startedAt)
	}
	r.tally.merge(uid, replayRef(rp), rd.sel.own, 0)
	if rd.sel.overflow {
		return queueResult{tooLarge: true}, false, nil
	}
	sel, unavailable := rd.sel.result()
	if gone, err := r.trimmedSince(ctx, rp, uid); err != nil {
		return queueResult{}, false, err
	} else if gone != "" {
		unavailable = append(unavailable, gone)
	}
	// Neither the selection's map nor a second copy of what it selected is kept while the
	// selection is queued: the memory of a large replay peaks once, not three times.
	rd.sel.newest = nil
	res = queueResult{matched: len(sel)}
	todo := sel[:0]
	for _, c := range sel {
		if rd.sel.already(c.seq) {
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
			return queueResult{}, false, err
		}
		if f := r.beforeBatch.Load(); f != nil {
			(*f)()
		}
		release, ok := r.hold(uid)
		if !ok {
			// Withdrawn (INACTIVE, deleted, rebound) or handed to another dispatcher while this
			// replay queued: it stops here, and whoever runs it next reads what it queued from
			// the queue, as after a crash.
			ctrl.LoggerFrom(ctx).Info("Replay's webhook withdrawn or handed over while queueing; resuming later", "queued", res.queued)
			return queueResult{}, true, nil
		}
		added, g, err := r.enqueue(ctx, rp, wh, todo[:n], first)
		release()
		r.notes.charge(rp.Namespace, added, time.Now()) // a budget of real work, as the reads'
		if err != nil {
			return queueResult{}, false, err
		}
		res.queued += added
		res.added += added
		if r.Metrics != nil {
			r.Metrics.requeued.Add(float64(added))
		}
		gone = append(gone, g...)
		todo = todo[n:]
	}
	if len(gone) > 0 {
		unavailable = append(unavailable, fmt.Sprintf("%d notifications not replayed: their events are beyond the event log's retention (accepted %s to %s)",
			len(gone), gone[0].created.UTC().Format(time.RFC3339), gone[len(gone)-1].created.UTC().Format(time.RFC3339)))
	}
	res.unavailable = unavailable
	return res, false, nil
}

// webhookOf returns the Webhook replay rp names, or nil when there is none to run it for (the
// replay then waits for it, or stalls when it was deleted while the replay ran: what Reconcile
// returns is res, err).
func (r *Replayer) webhookOf(ctx context.Context, rp *hooklinev1.WebhookReplay, st *hooklinev1.WebhookReplayStatus, began bool) (*hooklinev1.Webhook, ctrl.Result, error) {
	wh := &hooklinev1.Webhook{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: rp.Namespace, Name: rp.Spec.WebhookName}, wh)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, ctrl.Result{}, err
	}
	missing := apierrors.IsNotFound(err)
	gone := began && (missing || string(wh.UID) != st.WebhookUID)
	if !missing && !gone {
		return wh, ctrl.Result{}, nil
	}
	// No queue names the replay's webhook here: the owner of its namespace's account speaks, so
	// that the replicas do not all write its status and record its Event.
	if owns, err := r.ownsNamespace(ctx, rp.Namespace); err != nil || !owns {
		return nil, ctrl.Result{RequeueAfter: r.poll()}, err
	}
	if !gone {
		msg := fmt.Sprintf("webhook %s does not exist in namespace %s; the replay starts once it is created and Active", rp.Spec.WebhookName, rp.Namespace)
		res, err := r.wait(ctx, rp, st, hooklinev1.ReasonWebhookNotFound, msg)
		return nil, res, err
	}
	msg := fmt.Sprintf("webhook %s was deleted while the replay ran; %d of %d queued notifications were delivered", rp.Spec.WebhookName, st.Delivered, st.Queued)
	r.setConditions(st, rp.Generation, metav1.ConditionFalse, hooklinev1.ReasonWebhookDeleted, msg)
	if err := r.apply(ctx, rp, st); err != nil {
		return nil, ctrl.Result{}, err
	}
	r.Recorder.Eventf(rp, nil, corev1.EventTypeWarning, hooklinev1.ReasonWebhookDeleted, "Replay", "%s", msg)
	r.forget(ctx, client.ObjectKeyFromObject(rp))
	return nil, ctrl.Result{}, nil
}

// ownsNamespace reports whether this dispatcher delivers the account namespace ns is bound to
// (with active-active dispatchers, its partition's owner).
func (r *Replayer) ownsNamespace(ctx context.Context, ns string) (bool, error) {
	b, bound, err := tenancy.Lookup(ctx, r.Client, ns)
	if err != nil {
		return false, err
	}
	if !bound {
		b = tenancy.Binding{}
	}
	return r.Engine.OwnsAccount(b.AccountID), nil
}

// keptLog is the log's KeptSince (deliverylog.Log).
type keptLog interface {
	KeptSince(ctx context.Context, uid string) (time.Time, error)
}

// startsLog is the log's Starts (deliverylog.Log).
type startsLog interface {
	Starts(ctx context.Context) (time.Time, error)
}

// trimmedSince says, for a selection by time that starts before the delivery log's bound made it
// remove uid's oldest records, which part of it the log no longer holds: a recover of notifications
// lost that long ago found nothing there and reported nothing missing.
//
// The log as a whole starts at its oldest record (its age bound, --delivery-log-max-age, removed
// older ones, or its byte bound's last resort did, or it is younger): a selection from before then
// says so too (it said nothing, as a recover from 8 days ago found nothing of its first day).
func (r *Replayer) trimmedSince(ctx context.Context, rp *hooklinev1.WebhookReplay, uid string) (string, error) {
	if len(rp.Spec.NotificationIDs) > 0 || rp.Spec.Since == nil {
		return "", nil
	}
	var kept, starts time.Time
	if k, ok := r.Log.(keptLog); ok {
		var err error
		if kept, err = k.KeptSince(ctx, uid); err != nil {
			return "", err
		}
	}
	if s, ok := r.Log.(startsLog); ok {
		var err error
		if starts, err = s.Starts(ctx); err != nil {
			return "", err
		}
	}
	since := rp.Spec.Since.Time
	why := "older ones were removed to keep it within its byte bound, --delivery-log-max-bytes"
	from := kept
	if starts.After(kept) {
		why = "it keeps records for --delivery-log-max-age (7 days by default), the oldest go first at its byte bound, and it may be younger than that"
		from = starts
	}
	if !from.After(since) {
		return "", nil
	}
	gone := from
	if u := rp.Spec.Until; u != nil && u.Time.Before(from) {
		gone = u.Time
	}
	return fmt.Sprintf("the delivery log holds this webhook's records only from %s (%s): notifications from %s to %s could not be selected",
		from.UTC().Format(time.RFC3339), why, since.UTC().Format(time.RFC3339), gone.UTC().Format(time.RFC3339)), nil
}

// hold takes uid's route and queue for one batch of a replay's notes (route.Table.Hold,
// deliver.Engine.Hold): ok is false once the webhook is withdrawn or no longer delivered here.
func (r *Replayer) hold(uid string) (release func(), ok bool) {
	releaseRoute := func() {}
	if r.Table != nil {
		if _, releaseRoute, ok = r.Table.Hold(uid); !ok {
			return nil, false
		}
	}
	releaseQueue, ok := r.Engine.Hold(uid)
	if !ok {
		releaseRoute()
		return nil, false
	}
	return func() { releaseQueue(); releaseRoute() }, true
}

// askSelection asks the log for rp's selection. What this replay queued before (a previous run)
// is read from the queue first, then from the log (with the selection), so that a note delivered
// and removed in between is found in the log: its record is stored before it leaves the queue.
// The replay's tally begins before the log is read, and before anything is queued.
//
// The scan walks the webhook's whole queue, which may hold millions of notes, and the status that
// leads here (started, not yet delivering) is the tenant's to write, again for each replay it
// creates: the scan is paid from the namespace's budget of log reads, and the read it asks for
// rides on that. Nothing is done while the namespace's budget of reads (res.heldUntil) or of
// notifications queued again (res.notesUntil) is spent; asked reports whether the read was asked
// or waits for the read budget (queue's asked).
func (r *Replayer) askSelection(ctx context.Context, rp *hooklinev1.WebhookReplay, uid string, startedAt time.Time) (res queueResult, asked bool, err error) {
	if wait := r.notes.wait(rp.Namespace, time.Now()); wait > 0 {
		return queueResult{notesUntil: heldTill(time.Now(), wait)}, false, nil
	}
	ok, until, refund := r.reads.prepay(rp.Namespace)
	if !ok {
		return queueResult{heldUntil: until}, true, nil
	}
	r.scans.Add(1)
	inQueue := map[uint64]bool{}
	for from := uint64(1); ; {
		notes, err := r.Store.LoadNotes(ctx, uid, from, 1000)
		if err != nil {
			// Nothing was asked: the retry pays again, so a failing store does not spend the
			// namespace's budget.
			refund()
			return queueResult{}, true, err
		}
		for _, n := range notes {
			if deliveries.NamesReplay(n.Replay, rp.Name, string(rp.UID), n.Created, rp.CreationTimestamp.Time) {
				inQueue[n.EventSeq] = true
			}
			from = n.Seq + 1
		}
		if len(notes) < 1000 {
			break
		}
	}
	r.askRead(rp, uid, startedAt, inQueue, true)
	return queueResult{}, true, nil
}

// askRead begins rp's tally and asks the log for its selection, given what it queued before
// (inQueue, by event sequence; nil for nothing); paid says that the namespace's budget was
// charged for it already. A read asked already is not asked again.
func (r *Replayer) askRead(rp *hooklinev1.WebhookReplay, uid string, startedAt time.Time, inQueue map[uint64]bool, paid bool) {
	key := client.ObjectKeyFromObject(rp)
	r.tally.begin(key, uid, replayRef(rp))
	sel := newSelector(rp, startedAt, inQueue, true, r.maxSelection())
	r.reads.ask(key, &logRead{uid: uid, since: sel.from(), fold: sel.add, sel: sel, paid: paid})
}

// scanSkew widens the log reads that start at a replay's start, for records stamped by another
// dispatcher's clock.
const scanSkew = time.Minute

// reasonNotQueued is the reason of the record that takes a "queued again" record back: the notes
// it named could not be stored.
const reasonNotQueued = "ReplayNotQueued"

// enqueue queues cs (in order) for wh as replays of rp, skipping the ones whose event is no longer
// in the event log (first is its oldest event's sequence). The "queued again" records are appended
// before the notes are stored, so that they precede every record the engine writes about the new
// attempts.
func (r *Replayer) enqueue(ctx context.Context, rp *hooklinev1.WebhookReplay, wh *hooklinev1.Webhook, cs []candidate, first uint64) (int, []candidate, error) {
	now := r.Clock.Now()
	ref := replayRef(rp)
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
			State: deliveries.StateReplayed, Reason: "Replayed", Replay: ref,
			Message: fmt.Sprintf("queued again by WebhookReplay %s (was %s)", rp.Name, c.state),
		})
		items = append(items, store.Enqueue{UID: string(wh.UID), Note: store.Note{
			EventSeq: c.seq, Created: now, EventID: c.eventID, EventName: c.event, Replay: ref,
		}})
	}
	if len(items) == 0 {
		return 0, gone, nil
	}
	if err := enqueueNotes(ctx, r.Store, r.Engine, items); err != nil {
		// The retry of this replay finds what was stored (Replay set) and does not queue it again.
		// The "queued again" records are taken back: one whose note the retry does not select
		// again (its event expired meanwhile) would otherwise be counted as queued after a
		// restart, and the replay wait for it for good. (Notes stored before the failure are
		// counted from the status, which this dispatcher writes, and from their deliveries.)
		for _, c := range cs {
			if c.seq >= first {
				r.Log.Append(deliveries.Record{
					Kind: deliveries.KindReplayQueued, WebhookUID: string(wh.UID), Namespace: wh.Namespace, Name: wh.Name,
					NotificationID: c.id, EventSeq: c.seq, EventID: c.eventID, EventName: c.event, Created: c.created, At: r.Clock.Now(),
					State: c.state, Reason: reasonNotQueued, Replay: ref,
					Message: fmt.Sprintf("not queued again by WebhookReplay %s: storing failed, tried again", rp.Name),
				})
			}
		}
		return 0, nil, fmt.Errorf("queueing replayed notifications: %w", err)
	}
	return len(items), gone, nil
}

// selector folds a webhook's records into a replay's selection, oldest record first. A
// notification's state is that of its newest record not written by this replay (so that a resumed
// replay selects the same ones); only final states are replayed. The same read finds what a
// previous run of this replay queued and how those deliveries ended (own).
type selector struct {
	name, uid string
	created   time.Time // the replay's creation
	spec      hooklinev1.WebhookReplaySpec
	startedAt time.Time
	ids       map[string]bool
	// selecting is false when only own is wanted (the count after a restart).
	selecting bool
	// newest holds the notifications whose newest record so far is one the replay may select:
	// in states (a selection by time), or any (a selection by id, at most 1,000 ids). A
	// notification whose newest record is in another state is not held: most of a busy
	// webhook's notifications were delivered, and a later record that brings one into the
	// selection brings its event and id with it.
	newest map[string]*candidate
	states map[deliveries.State]bool
	// max bounds newest; overflow is set when a notification did not fit.
	max      int
	overflow bool
	inQueue  map[uint64]bool
	// own is the state after the newest record of each notification this replay queued, beyond
	// the "queued again" record itself.
	own map[uint64]deliveries.State
	// queuedAgain holds the notifications this replay's "queued again" records name, in the count
	// after a restart (!selecting): with own, how many it queued, which the status cannot be
	// trusted to say (the tenant may write it).
	queuedAgain map[uint64]bool
	// room, when set, counts each notification newest takes or gives up against the room every
	// replay's selection shares (replayReads); false refuses one, and the selection is then
	// deferred: emptied, to be read again once there is room.
	room     func(delta int) bool
	deferred bool
}

// deferSelection empties s, which found no room for its next notification (room).
func (s *selector) deferSelection() {
	s.room(-len(s.newest))
	s.newest, s.deferred = nil, true
}

// reset makes a deferred s as it was before its read, for the next one.
func (s *selector) reset() {
	s.newest, s.own, s.overflow, s.deferred = map[string]*candidate{}, map[uint64]deliveries.State{}, false, false
}

func newSelector(rp *hooklinev1.WebhookReplay, startedAt time.Time, inQueue map[uint64]bool, selecting bool, max int) *selector {
	s := &selector{name: rp.Name, uid: string(rp.UID), created: rp.CreationTimestamp.Time, spec: rp.Spec, startedAt: startedAt, ids: map[string]bool{}, selecting: selecting,
		newest: map[string]*candidate{}, max: max, inQueue: inQueue, own: map[uint64]deliveries.State{}, queuedAgain: map[uint64]bool{}}
	for _, id := range rp.Spec.NotificationIDs {
		s.ids[strings.ToLower(string(id))] = true
	}
	if len(s.ids) == 0 {
		s.states = selectedStates(rp.Spec.States)
	}
	return s
}

// asOf is the time the selection describes the notifications at: the replay's start, to the end
// of its whole second (as the status keeps it, and as result's default until), and selectionSkew
// past it: a record's time is the clock of the dispatcher that wrote it, which may run ahead of
// the one that started the replay (after a hand-over), and a notification dropped just before the
// start must not be left out for it.
func (s *selector) asOf() time.Time {
	return s.startedAt.Truncate(time.Second).Add(time.Second + selectionSkew)
}

// selectionSkew is how far apart the dispatchers' clocks may be for asOf.
const selectionSkew = 2 * time.Second

// from is where the log is read from: the selection's start, or the replay's own, whichever is
// first (all of it for a selection by id). The replay's own records are read from its creation if
// its start is later: the start may be read from a status its tenant wrote.
func (s *selector) from() time.Time {
	own := minTime(s.startedAt, s.created).Add(-scanSkew)
	if !s.selecting {
		return own
	}
	if s.spec.Since == nil {
		return time.Time{}
	}
	return minTime(s.spec.Since.Time, own)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// queued counts the notifications the log says this replay queued: those its "queued again"
// records name, and those with a record of its deliveries (whose "queued again" record may have
// been lost with the process that queued them).
func (s *selector) queued() int64 {
	n := len(s.own)
	for seq := range s.queuedAgain {
		if _, counted := s.own[seq]; !counted {
			n++
		}
	}
	return int64(n)
}

// already reports whether this replay queued the notification of event seq before.
func (s *selector) already(seq uint64) bool {
	_, recorded := s.own[seq]
	return recorded || s.inQueue[seq]
}

func (s *selector) add(rec deliveries.Record) {
	if s.deferred {
		return
	}
	if deliveries.NamesReplay(rec.Replay, s.name, s.uid, rec.At, s.created) && !deletedEarlier(rec) {
		switch {
		case rec.Kind != deliveries.KindReplayQueued:
			s.own[rec.EventSeq] = rec.State
		case s.selecting:
		case rec.Reason == reasonNotQueued:
			delete(s.queuedAgain, rec.EventSeq)
		default:
			s.queuedAgain[rec.EventSeq] = true
		}
		return
	}
	if !s.selecting {
		return
	}
	if rec.Kind != deliveries.KindReplayQueued && !rec.At.Before(s.asOf()) {
		// The selection is of the notifications as they stood when the replay started, so that a
		// resumed replay (a crash, its webhook set INACTIVE and ACTIVE again) selects the same ones:
		// a record written since (the webhook's own failing head dropped, or cancelled by the
		// INACTIVE) made it select notifications it had not, and queue them after later events it
		// had queued. Another replay's "queued again" still counts: it only takes a notification
		// out, which that replay sends.
		return
	}
	key := cmp.Or(rec.NotificationID, fmt.Sprintf("event-%d", rec.EventSeq))
	if len(s.ids) > 0 && !s.ids[key] {
		return
	}
	if s.states != nil && !s.states[rec.State] {
		if _, held := s.newest[key]; held {
			delete(s.newest, key)
			if s.room != nil {
				s.room(-1)
			}
		}
		return
	}
	c := s.newest[key]
	if c == nil {
		if s.max > 0 && len(s.newest) >= s.max {
			s.overflow = true
			return
		}
		if s.room != nil && !s.room(1) {
			s.deferSelection()
			return
		}
		c = &candidate{created: rec.Created}
		s.newest[key] = c
	}
	c.id = cmp.Or(rec.NotificationID, c.id)
	c.seq, c.eventID, c.event, c.state = rec.EventSeq, rec.EventID, rec.EventName, rec.State
	// A replay's records may date the notification from the replay: keep the original.
	if !rec.Created.IsZero() && (c.created.IsZero() || rec.Created.Before(c.created)) {
		c.created = rec.Created
	}
}

// result is the selection, oldest event first, and what of it cannot be replayed.
func (s *selector) result() ([]candidate, []string) {
	var out []candidate
	var unavailable []string
	if len(s.ids) > 0 {
		var missing, queued []string
		// Ids are matched in any letter case, so the spec may name one notification many times
		// over ("a1…", "A1…"): each is taken once.
		taken := make(map[string]bool, len(s.ids))
		for _, id := range s.spec.NotificationIDs {
			key := strings.ToLower(string(id))
			if taken[key] {
				continue
			}
			taken[key] = true
			c := s.newest[key]
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
		since := s.spec.Since.Time
		// Up to the start (a second past its whole second, which covers every event accepted
		// before it started).
		until := s.startedAt.Truncate(time.Second).Add(time.Second)
		if s.spec.Until != nil {
			until = s.spec.Until.Time
		}
		// Every notification held is in one of the states (add keeps no other).
		for _, c := range s.newest {
			// A test notification is the user's probe, not an event to recover: only a replay
			// naming it sends it again.
			if !c.created.Before(since) && c.created.Before(until) && !deliveries.IsTest(c.eventID) {
				out = append(out, *c)
			}
		}
	}
	slices.SortFunc(out, func(a, b candidate) int { return cmp.Compare(a.seq, b.seq) })
	// One notification per event: a replay never queues one twice.
	out = slices.CompactFunc(out, func(a, b candidate) bool { return a.seq == b.seq })
	return out, unavailable
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

// progress sets rp's delivered and failed counts from its tally. After a restart the tally is
// rebuilt first, from the log (asked once, answered together with every other replay's), and
// counted reports false until then.
func (r *Replayer) progress(rp *hooklinev1.WebhookReplay, uid string, st *hooklinev1.WebhookReplayStatus) (counted bool, err error) {
	ref := replayRef(rp)
	delivered, failed, queued, complete := r.tally.counts(uid, ref, st.Queued)
	key := client.ObjectKeyFromObject(rp)
	if complete {
		// A selection answered for it before its status moved on (another dispatcher queued it)
		// is not needed: its room goes back now, not when the answer expires.
		r.reads.drop(key)
	} else {
		rd, answered, pending := r.reads.take(key)
		if answered {
			defer r.reads.release(rd) // a selection answered for it (its status was moved on) holds room
		}
		switch {
		case pending && !answered:
			return false, nil
		case !answered:
			r.tally.begin(key, uid, ref)
			sel := newSelector(rp, st.StartedAt.Time, nil, false, 0)
			r.reads.ask(key, &logRead{uid: uid, since: sel.from(), fold: sel.add, sel: sel})
			return false, nil
		case rd.err != nil:
			return false, rd.err
		}
		// This process has not counted the replay before (it restarted, or took the webhook
		// over): the status's count is a previous run's, or the tenant's, who could write a lower
		// one, now or at any time after, so that the replay completes, and frees its turn, while
		// what it queued is still being sent. The log's count, kept with the tally, is lower only
		// by records lost with a crashed process.
		r.tally.merge(uid, ref, rd.sel.own, rd.sel.queued())
		delivered, failed, queued, _ = r.tally.counts(uid, ref, st.Queued)
	}
	st.Delivered, st.Failed, st.Queued = delivered, failed, queued
	st.Matched = max(st.Matched, st.Queued)
	return true, nil
}

// progressEvery is the shortest interval between two writes of a running replay's counts to its
// status (the count itself is free; the write is not).
const progressEvery = 10 * time.Second
