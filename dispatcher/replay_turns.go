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
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// DefaultReplaysPerNamespace is how many replays run at once in one namespace by default. Anyone
// allowed to create WebhookReplays in a namespace could otherwise start hundreds, each queueing
// its selection again and each costing the dispatcher every tenant shares.
const DefaultReplaysPerNamespace = 2

// What a replay known to this dispatcher does (the hookline_replays gauge's state label).
const (
	phaseWaiting = "waiting" // for its Webhook (missing, not Active)
	phaseQueued  = "queued"  // for its turn in its namespace
	phaseRunning = "running" // selecting, queueing, following its deliveries
)

func (r *Replayer) maxPerNamespace() int {
	return cmp.Or(r.MaxPerNamespace, DefaultReplaysPerNamespace)
}

// admit decides whether rp, not started yet, may start now: fewer than maxPerNamespace replays run
// in its namespace, counting the ones created before it that wait their turn as running first
// (replays start in creation order). ok is false otherwise.
// since is when rp was admitted: the first admission's time, also when its start is retried, so
// that the recorded start times follow the order of admission.
//
// What runs is what this dispatcher admitted, and what the cache shows started and not finished
// (admitted by a previous run); the decision is taken under the replayer's lock, so that two
// replays reconciled at once cannot both take the last turn.
//
// A namespace whose turns are all taken answers at once, without listing its replays: a tenant's
// thousands of waiting replays each made every poll list (and copy) them all.
func (r *Replayer) admit(ctx context.Context, rp *hooklinev1.WebhookReplay) (ok bool, since time.Time, err error) {
	key := client.ObjectKeyFromObject(rp)
	if since, held, full := r.turn(key, nil); held || full {
		return held, since, nil
	}
	list, err := r.replaysIn(ctx, rp.Namespace)
	if err != nil {
		return false, time.Time{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	running := map[types.NamespacedName]bool{}
	for k := range r.running[rp.Namespace] {
		running[k] = true
	}
	var waiting []*hooklinev1.WebhookReplay
	elsewhere := map[types.NamespacedName]*metav1.Time{}
	for i := range list {
		o := &list[i]
		k := client.ObjectKeyFromObject(o)
		switch {
		case k == key || finished(&o.Status) || running[k]:
		case started(&o.Status):
			running[k] = true
			elsewhere[k] = o.CreationTimestamp.DeepCopy()
		case r.waitsTurnLocked(o) && createdBefore(o, rp):
			waiting = append(waiting, o)
		}
	}
	r.sawTurnsLocked(rp.Namespace, elsewhere)
	if !running[key] {
		if len(running)+len(waiting) >= r.maxPerNamespace() {
			return false, time.Time{}, nil
		}
		// The replays created before rp that wait their turn fit too (they were counted): they are
		// admitted first, at the same moment, so that replays start in creation order whichever is
		// reconciled first; each starts when it is reconciled, woken now.
		now := r.Clock.Now()
		for _, w := range waiting {
			k := client.ObjectKeyFromObject(w)
			r.admitLocked(k, now)
			r.wake(k)
		}
		r.admitLocked(key, now)
	}
	return true, r.running[key.Namespace][key], nil
}

// turn reports whether key holds a turn in its namespace (and since when), and whether every
// turn there is held: by replays this dispatcher admitted, and by those the cache showed started
// without it at the last listing, for turnsSeenFor after it. A replay waiting to resume (created
// set to its creation) counts only those of the latter created before it, as resume's listing
// does: counting every one, a replay created after it that listed at each expiry of the
// listing's memo kept the first in line from its turn for ever.
func (r *Replayer) turn(key types.NamespacedName, created *metav1.Time) (since time.Time, held, full bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	running := r.running[key.Namespace]
	since, held = running[key]
	taken := len(running)
	if seen, ok := r.elsewhere[key.Namespace]; ok && r.Clock.Since(seen.at) < turnsSeenFor {
		for k, at := range seen.keys {
			if _, admitted := running[k]; k == key || admitted {
				continue
			}
			if created == nil || at.Before(created) || (at.Equal(created) && k.Name < key.Name) {
				taken++
			}
		}
	}
	return since, held, taken >= r.maxPerNamespace()
}

// seenTurns is which replays of a namespace the cache showed holding turns without this
// dispatcher having admitted them (started by a previous run, or a status the tenant wrote), with
// their creation, and when. Keys, not a count: such a replay asking for its own turn must not
// count itself.
type seenTurns struct {
	keys map[types.NamespacedName]*metav1.Time
	at   time.Time
}

// turnsSeenFor is how long a listing's count of the turns held elsewhere stands: replays whose
// status says started but that wait for their Webhook hold a turn without running, and without
// it every replay waiting behind them listed the namespace's replays at each poll (a tenant's
// thousands of replays listing thousands each).
const turnsSeenFor = time.Second

// sawTurnsLocked records the turns of namespace held elsewhere (keys), at the listing just made.
func (r *Replayer) sawTurnsLocked(namespace string, keys map[types.NamespacedName]*metav1.Time) {
	if len(keys) == 0 {
		delete(r.elsewhere, namespace)
		return
	}
	r.elsewhere[namespace] = seenTurns{keys: keys, at: r.Clock.Now()}
}

// replaysIn lists namespace's replays from the cache without copying them: they are only read.
func (r *Replayer) replaysIn(ctx context.Context, namespace string) ([]hooklinev1.WebhookReplay, error) {
	list := &hooklinev1.WebhookReplayList{}
	if err := r.Client.List(ctx, list, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// giveBack frees the turn of rp, not started, when it waits for its Webhook instead (missing, not
// Active): a turn held meanwhile would keep the replays after it waiting for nothing.
func (r *Replayer) giveBack(ctx context.Context, rp *hooklinev1.WebhookReplay) {
	r.release(ctx, client.ObjectKeyFromObject(rp))
}

// waitsTurn reports whether rp, not started, waits for its turn (or has not been looked at yet),
// rather than for its Webhook: only those go before a replay created after them.
func waitsTurn(rp *hooklinev1.WebhookReplay) bool {
	c := meta.FindStatusCondition(rp.Status.Conditions, hooklinev1.ConditionReconciling)
	return c == nil || c.Reason == hooklinev1.ReasonQueued
}

// waitsTurnLocked is waitsTurn from what this dispatcher last decided for rp when it decided
// anything (its phase): why a replay waits is written to its status at most every
// waitShownEvery, so the status may still say what it waited for before.
func (r *Replayer) waitsTurnLocked(rp *hooklinev1.WebhookReplay) bool {
	switch r.phase[client.ObjectKeyFromObject(rp)] {
	case phaseQueued:
		return true
	case phaseWaiting, phaseRunning:
		return false
	}
	return waitsTurn(rp)
}

// createdBefore orders replays by creation (the name breaks ties within a second).
func createdBefore(a, b *hooklinev1.WebhookReplay) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// resume decides whether rp, which its status says started, may run now. One this dispatcher
// admitted runs. Another (admitted by a previous run of the dispatcher, or a status the tenant
// wrote: the status subresource is the namespace's to write) runs when fewer than
// maxPerNamespace replays run in its namespace, counting first the ones started before it
// that wait to resume too (they resume in creation order); otherwise it waits, and is looked at
// again at its poll or when a turn is freed. Without this, a tenant that wrote "started" into the
// status of a hundred replays had them all select at once, each holding up to MaxSelection
// notifications in the memory every tenant's deliveries share.
func (r *Replayer) resume(ctx context.Context, rp *hooklinev1.WebhookReplay) (ok bool, err error) {
	key := client.ObjectKeyFromObject(rp)
	if _, held, full := r.turn(key, &rp.CreationTimestamp); held || full {
		if !held {
			r.setPhase(key, phaseQueued)
		}
		return held, nil
	}
	list, err := r.replaysIn(ctx, rp.Namespace)
	if err != nil {
		return false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	running := r.running[rp.Namespace]
	if _, held := running[key]; held {
		return true, nil
	}
	ahead, elsewhere := len(running), map[types.NamespacedName]*metav1.Time{}
	for i := range list {
		o := &list[i]
		k := client.ObjectKeyFromObject(o)
		if _, held := running[k]; !held && started(&o.Status) && !finished(&o.Status) {
			elsewhere[k] = o.CreationTimestamp.DeepCopy()
			if k != key && createdBefore(o, rp) {
				ahead++
			}
		}
	}
	r.sawTurnsLocked(rp.Namespace, elsewhere)
	if ahead >= r.maxPerNamespace() {
		r.phase[key] = phaseQueued
		return false, nil
	}
	r.admitLocked(key, r.Clock.Now())
	return true, nil
}

// admitLocked records that key runs, admitted at now unless it was admitted before.
func (r *Replayer) admitLocked(key types.NamespacedName, now time.Time) {
	if r.running[key.Namespace] == nil {
		r.running[key.Namespace] = map[types.NamespacedName]time.Time{}
	}
	if _, held := r.running[key.Namespace][key]; !held {
		r.running[key.Namespace][key] = now
	}
	r.phase[key] = phaseRunning
	r.peak[key.Namespace] = max(r.peak[key.Namespace], len(r.running[key.Namespace]))
}

// release frees key's turn in its namespace and wakes the replays waiting there.
func (r *Replayer) release(ctx context.Context, key types.NamespacedName) {
	r.mu.Lock()
	_, held := r.running[key.Namespace][key]
	delete(r.running[key.Namespace], key)
	if len(r.running[key.Namespace]) == 0 {
		delete(r.running, key.Namespace)
	}
	r.mu.Unlock()
	if !held {
		return
	}
	list, err := r.replaysIn(ctx, key.Namespace)
	if err != nil {
		// Each polls anyway.
		ctrl.LoggerFrom(ctx).Error(err, "Listing the replays waiting for a turn")
		return
	}
	waiting := slices.DeleteFunc(list, func(o hooklinev1.WebhookReplay) bool {
		// One started and not running here waits to resume (resume): woken too.
		if started(&o.Status) {
			_, held, _ := r.turn(client.ObjectKeyFromObject(&o), nil)
			return finished(&o.Status) || held
		}
		r.mu.Lock()
		waits := r.waitsTurnLocked(&o)
		r.mu.Unlock()
		return finished(&o.Status) || !waits
	})
	// Those waiting to resume first (admit counts them as running, ahead of any replay not
	// started), then in creation order.
	slices.SortFunc(waiting, func(a, b hooklinev1.WebhookReplay) int {
		if sa, sb := started(&a.Status), started(&b.Status); sa != sb {
			if sa {
				return -1
			}
			return 1
		}
		if createdBefore(&a, &b) {
			return -1
		}
		return 1
	})
	// The first in line are woken, as many as may run: one admitted also admits those created
	// before it (admit), and the rest are woken at the next release. Waking all of them had each
	// reconciled, for a turn or two.
	for _, o := range waiting[:min(len(waiting), r.maxPerNamespace())] {
		r.wake(client.ObjectKeyFromObject(&o))
	}
}

// forget drops what the replayer holds of a replay that the cache shows finished, or deleted.
func (r *Replayer) forget(ctx context.Context, key types.NamespacedName) {
	r.present.Remove(key)
	r.mu.Lock()
	delete(r.written, key)
	delete(r.uids, key)
	r.mu.Unlock()
	r.finish(ctx, key)
}

// track records uid as key's object. One deleted and created again under its name before a
// reconcile saw it gone is another replay: what is held of the first (its turn, its last status
// written, its tally) is forgotten.
func (r *Replayer) track(ctx context.Context, key types.NamespacedName, uid types.UID) {
	r.mu.Lock()
	was, ok := r.uids[key]
	r.mu.Unlock()
	if ok && was != uid {
		r.forget(ctx, key)
	}
	r.mu.Lock()
	r.uids[key] = uid
	r.mu.Unlock()
}

// finish drops what the replayer holds of a replay that finished but its last status written,
// and frees its turn.
func (r *Replayer) finish(ctx context.Context, key types.NamespacedName) {
	r.mu.Lock()
	delete(r.phase, key)
	delete(r.shown, key)
	delete(r.waitShown, key)
	r.mu.Unlock()
	r.tally.end(key)
	if r.reads != nil {
		r.reads.drop(key)
	}
	r.release(ctx, key)
}

func (r *Replayer) setPhase(key types.NamespacedName, phase string) {
	r.mu.Lock()
	r.phase[key] = phase
	r.mu.Unlock()
}

// phases counts the replays known to this dispatcher by what they do.
func (r *Replayer) phases() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{phaseWaiting: 0, phaseQueued: 0, phaseRunning: 0}
	for _, p := range r.phase {
		out[p]++
	}
	return out
}

// peakRunning is the most replays that ran at once in namespace ns.
func (r *Replayer) peakRunning(ns string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peak[ns]
}
