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
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/dispatcher/route"
	"github.com/hookline/hookline/internal/attest"
	"github.com/hookline/hookline/internal/clientcert"
	"github.com/hookline/hookline/internal/signing"
	"github.com/hookline/hookline/internal/tenancy"
)

// Syncer keeps the routing table and the engine's queues in step with the Webhook resources: a
// webhook is routed to while it is Active (or auto-disabled, so that the events it misses are
// counted), its queue is cancelled when it goes INACTIVE or its namespace is bound to another
// account or group, removed when it is deleted, and an auto-disable is lifted on a reactivation
// request. Routes, queues and status entries are keyed by uid: a webhook deleted and recreated
// under the same name is two webhooks, and the first one's are removed when the second is seen.
type Syncer struct {
	client.Client
	// APIReader reads client-certificate Secrets without caching Secrets.
	APIReader client.Reader
	Table     *route.Table
	Engine    *deliver.Engine
	Reporter  *Reporter
	// DefaultClientID is the manager's default client id, for webhooks without spec.clientId.
	DefaultClientID string
	// Attestation checks that the manager's verification covers what is delivered (attestation.go).
	Attestation *attest.Key
	// SecretResync is how often a webhook's Secrets (client certificate, signing keys) are read
	// again. Secrets are not watched: that would need list and watch on every Secret in the
	// cluster, where get by name is enough. Rotations take effect within this interval.
	SecretResync time.Duration
	// Retake, when set, names webhooks to reconcile again: those whose delivery this dispatcher
	// has just taken over from another (active-active dispatchers).
	Retake <-chan event.GenericEvent
	// Accounts, when set, is kept up to date with every webhook's account.
	Accounts *Accounts

	// exclusive is read-locked by every reconcile and write-locked by Sweep, which compares the
	// routing table, the queues and the reporter with the informer cache while no reconcile is
	// half done.
	exclusive sync.RWMutex
	mu        sync.Mutex
	// uids is the uid last reconciled under each name: when a name maps to a new uid, the old
	// one's route, queue and state are removed.
	uids map[types.NamespacedName]string
	// newest holds, per namespace, a binding read from the API server (ConfirmBinding) that the
	// informer's cache has not caught up with yet: reconciles use it instead (bindingOf).
	newest map[string]confirmed
	// asked is when each namespace's webhooks were last queued to reconcile (reconcileNamespace).
	asked map[string]time.Time
	// confirmed carries the webhooks to reconcile under such a binding.
	confirmed chan event.GenericEvent
	// clock times those entries and asks (tests set it; the real clock when nil).
	clock clock.PassiveClock
}

// +kubebuilder:rbac:groups=hookline.io,resources=webhooks,verbs=get;list;watch
// +kubebuilder:rbac:groups=hookline.io,resources=webhooks/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// Secrets: get is granted per namespace (config/rbac/secret_reader_role.yaml), not cluster-wide.
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// The SSRF guard's discovery of the cluster's Service and Pod ranges (internal/clusterranges)
// lists these, uncached: no get, no watch.
// +kubebuilder:rbac:groups=networking.k8s.io,resources=servicecidrs,verbs=list
// +kubebuilder:rbac:groups="",resources=nodes,verbs=list

// Reconcile brings one webhook's routing and queue in line with its resource.
func (s *Syncer) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	s.exclusive.RLock()
	defer s.exclusive.RUnlock()
	wh := &hooklinev1.Webhook{}
	if err := s.Get(ctx, req.NamespacedName, wh); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		return ctrl.Result{}, s.forget(ctx, req.NamespacedName)
	}
	uid := string(wh.UID)
	if err := s.track(ctx, req.NamespacedName, uid); err != nil {
		return ctrl.Result{}, err
	}

	binding, bound, err := s.bindingOf(ctx, wh.Namespace)
	if err != nil {
		return ctrl.Result{}, err
	}
	s.Accounts.saw(uid, binding.AccountID, bound)
	if bound {
		if err := s.rebind(ctx, wh, binding); err != nil {
			return cancellingOr(err)
		}
	}
	cfg := s.config(wh, binding)
	active := wh.Spec.State == hooklinev1.StateActive
	var certErr, signErr error
	if active {
		// An INACTIVE webhook sends nothing: what its Secrets hold is not kept for it (a tenant
		// could otherwise keep them in memory many times over through as many such Webhooks).
		cfg.Cert, certErr = clientcert.Load(ctx, s.APIReader, wh.Namespace, wh.Spec.ClientCertificateSecretRef)
		cfg.Signing, signErr = signing.Load(ctx, s.APIReader, wh.Namespace, wh.Spec.Signing)
	}
	switch {
	case certErr != nil:
		cfg.HeldReason, cfg.HeldMessage = hooklinev1.ReasonClientCertificateUnavailable, "client certificate unavailable: "+certErr.Error()
	case signErr != nil:
		cfg.HeldReason, cfg.HeldMessage = hooklinev1.ReasonSigningSecretUnavailable, "signing keys unavailable: "+signErr.Error()
	}
	if cfg.HeldReason != "" {
		ctrl.LoggerFrom(ctx).Info("Holding deliveries", "reason", cfg.HeldMessage)
	}
	// A webhook held for its Secrets keeps receiving into its queue: a Secret being rotated or
	// re-synced by an external tool must not lose events.
	routable := active && bound && s.verifiedActive(wh, &cfg)
	cfg.Deliverable = routable && cfg.HeldReason == ""
	cfg.Inactive = !active
	s.Engine.Upsert(cfg)

	if !active {
		// INACTIVE cancels what is queued and lifts an auto-disable: ACTIVE again is a new start.
		s.Table.Withdraw(uid)
		_, err := s.Engine.Reactivate(ctx, uid, "")
		if st, _ := s.Engine.Status(uid); err == nil && (st.Pending > 0 || st.ConsecutiveFailures > 0) {
			err = s.Engine.Cancel(ctx, uid)
		}
		s.Reporter.MarkTenant(wh.Namespace, uid)
		if err != nil {
			return cancellingOr(err)
		}
		return ctrl.Result{}, nil
	}
	// A reactivation asked while the queue's auto-disable is being recorded waits for it (a
	// second); the rest of the reconcile (routes, status) is done meanwhile.
	var again error
	if token := hooklinev1.ReactivationToken(wh.Annotations[hooklinev1.ReactivateAnnotation]); token != "" {
		if st, _ := s.Engine.Status(uid); st.HandledReactivation != token {
			if _, err := s.Engine.Reactivate(ctx, uid, token); errors.Is(err, deliver.ErrCancelling) {
				again = err
			} else if err != nil {
				return ctrl.Result{}, err
			}
			s.Reporter.MarkTenant(wh.Namespace, uid)
		}
	}
	if routable || (bound && s.Engine.Disabled(uid)) {
		s.Table.Set(target(wh, binding))
	} else {
		s.Table.Withdraw(uid)
	}
	s.Reporter.Mark(uid, false)
	if again != nil {
		return cancellingOr(again)
	}
	if secretRefs(wh) && s.SecretResync > 0 {
		// Jittered, so that the reads of many webhooks spread out instead of arriving together.
		return ctrl.Result{RequeueAfter: wait.Jitter(s.SecretResync, 0.2)}, nil
	}
	return ctrl.Result{}, nil
}

// cancellingOr answers a reconcile that err ended: a cancellation of the queue being recorded
// (deliver.ErrCancelling, seconds) is waited for by a requeue a second later, without the error
// backoff's growing waits; anything else is an error.
func cancellingOr(err error) (ctrl.Result, error) {
	if errors.Is(err, deliver.ErrCancelling) {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	return ctrl.Result{}, err
}

// secretRefs reports whether wh reads Secrets.
func secretRefs(wh *hooklinev1.Webhook) bool {
	return wh.Spec.ClientCertificateSecretRef != nil || wh.Spec.Signing != nil
}

func (s *Syncer) config(wh *hooklinev1.Webhook, b tenancy.Binding) deliver.Webhook {
	clientID := wh.Spec.ClientID
	if clientID == "" {
		clientID = s.DefaultClientID
	}
	cfg := deliver.Webhook{
		UID: string(wh.UID), Namespace: wh.Namespace, Name: wh.Name, AccountID: b.AccountID, NamespaceGroup: b.GroupID,
		URL: wh.Spec.URL, ClientID: clientID, Scope: string(wh.Spec.Scope), Params: wh.Spec.ConditionalParams,
	}
	// The start of the auto-disable rule's days: only a time the manager attested (anyone allowed
	// to patch the status could write one in the future, and the webhook would never be disabled).
	if t := wh.Status.LastVerifiedTime; t != nil && s.Attestation.CoversVerifiedAt(
		attest.Subject{UID: cfg.UID, URL: cfg.URL, ClientID: clientID, VerifiedAt: t.Time}, wh.Status.Attestation) {
		cfg.LastVerified = t.Time
	}
	return cfg
}

func target(wh *hooklinev1.Webhook, b tenancy.Binding) *route.Target {
	return &route.Target{
		UID: string(wh.UID), Namespace: wh.Namespace, Name: wh.Name,
		AccountID: b.AccountID, NamespaceGroup: b.GroupID,
		Scope: wh.Spec.Scope, GroupID: wh.Spec.GroupID, UserID: wh.Spec.UserID, Resource: wh.Spec.Resource,
		Events: wh.Spec.Events,
	}
}

// rebind records b as uid's binding before anything is routed under it (deliver.Engine.Rebind):
// what uid queued under another is cancelled as it comes up, never sent under b. The binding is
// compared with the one saved with the queue, so a change made while the dispatcher was down
// counts too. The route is not withdrawn meanwhile: events it routes under the old binding until
// it is set under b are cancelled the same way, where a withdrawal lost the events of b routed
// in between (acknowledged without their notification).
func (s *Syncer) rebind(ctx context.Context, wh *hooklinev1.Webhook, b tenancy.Binding) error {
	uid := string(wh.UID)
	nb := deliver.Binding{AccountID: b.AccountID, GroupID: b.GroupID}
	if old, known := s.Engine.Binding(uid); known && old == nb {
		return nil
	}
	// At start the queue may not know its webhook's name yet; the cancellations are recorded with it.
	s.Engine.Name(uid, wh.Namespace, wh.Name)
	return s.Engine.Rebind(ctx, uid, nb)
}

// confirmed is a namespace binding read from the API server (ConfirmBinding) that the informer
// cache had not reached yet, and when it was read.
type confirmed struct {
	tenancy.Observation
	at time.Time
}

// confirmedFor bounds how long a confirmed binding outranks the cache: an informer that lags longer
// is broken, and a namespace deleted meanwhile leaves its entry behind until then (Sweep).
const confirmedFor = 10 * time.Minute

// effectiveLocked returns the binding of ns to act on, given the cache's observation o: the newest
// read from the API server while the cache has not reached it. dropped says that such a read,
// binding otherwise than o, was dropped (the cache moved past it): the namespace's webhooks were
// acted on under it, and the cache may have moved with no change of its own to report (a relist),
// so they must be reconciled.
func (s *Syncer) effectiveLocked(ns string, o tenancy.Observation) (eff tenancy.Observation, dropped bool) {
	n, ok := s.newest[ns]
	switch {
	case !ok:
		return o, false
	case n.Newer(o):
		return n.Observation, false
	}
	delete(s.newest, ns)
	return o, !n.Same(o)
}

// bindingOf returns namespace ns's binding: the informer cache's, unless ConfirmBinding read a
// newer one from the API server that the cache has not reached yet. Reconciles never go back from
// a binding read there to the cache's older one (which would rebind the queue to the old binding,
// cancelling the new one's notes, and in active-active delivery move it back to the old account's
// partition).
func (s *Syncer) bindingOf(ctx context.Context, ns string) (tenancy.Binding, bool, error) {
	o, err := tenancy.Observe(ctx, s.Client, ns)
	if err != nil {
		return tenancy.Binding{}, false, err
	}
	s.mu.Lock()
	eff, dropped := s.effectiveLocked(ns, o)
	s.mu.Unlock()
	if dropped {
		s.reconcileNamespace(ctx, ns, true)
	}
	return eff.Binding, eff.Bound, nil
}

// ConfirmBinding is the engine's deliver.BindingSource: it reads wh's namespace's binding from the
// API server. The engine asks when it finds in a queue a note whose event is not of the binding it
// knows (wh's): cancelled if the namespace is still bound so, but perhaps of a binding this
// dispatcher's informer has not seen yet (another dispatcher's saw it first and routed under it).
// A read newer than the binding acted on is kept for the namespace until the cache reaches it
// (bindingOf; also one that binds as the cache does, so that a lagging cache replaying an older
// change does not take the namespace back to it). The namespace's webhooks are reconciled when the
// binding acted on changes, and (at most once a second) whenever the engine's is not the one read.
func (s *Syncer) ConfirmBinding(ctx context.Context, wh deliver.Webhook) (deliver.Binding, bool, error) {
	live, err := tenancy.Observe(ctx, s.APIReader, wh.Namespace)
	if err != nil {
		return deliver.Binding{}, false, err
	}
	cached, err := tenancy.Observe(ctx, s.Client, wh.Namespace)
	if err != nil {
		return deliver.Binding{}, false, err
	}
	s.mu.Lock()
	eff, dropped := s.effectiveLocked(wh.Namespace, cached)
	changed := false
	if live.Newer(eff) {
		changed = !live.Same(eff)
		if s.newest == nil {
			s.newest = map[string]confirmed{}
		}
		s.newest[wh.Namespace] = confirmed{Observation: live, at: s.now()}
	}
	s.mu.Unlock()
	b := deliver.Binding{AccountID: live.AccountID, GroupID: live.GroupID}
	if changed {
		ctrl.LoggerFrom(ctx).Info("The namespace's binding changed before this dispatcher's informer saw it; reconciling its webhooks under the new one",
			"namespace", wh.Namespace, "account", live.AccountID, "group", live.GroupID, "bound", live.Bound)
	}
	switch {
	case changed || dropped:
		s.reconcileNamespace(ctx, wh.Namespace, true)
	case !live.Bound || b != (deliver.Binding{AccountID: wh.AccountID, GroupID: wh.NamespaceGroup}):
		s.reconcileNamespace(ctx, wh.Namespace, false)
	}
	return b, live.Bound, nil
}

// reconcileNamespace queues a reconcile of every webhook in ns, without waiting. Unless urgent (the
// binding acted on changed: this ask may be the only one), at most once a second per namespace:
// each queue of the namespace that finds a note of another binding asks, each second. One that
// does not fit the channel is asked again by the engine's next confirmation.
func (s *Syncer) reconcileNamespace(ctx context.Context, ns string, urgent bool) {
	now := s.now()
	s.mu.Lock()
	if last, ok := s.asked[ns]; ok && !urgent && now.Sub(last) < time.Second {
		s.mu.Unlock()
		return
	}
	if s.asked == nil {
		s.asked = map[string]time.Time{}
	}
	s.asked[ns] = now
	s.mu.Unlock()
	obj := &metav1.PartialObjectMetadata{}
	obj.Name = ns
	for _, req := range tenancy.WebhooksIn(s.Client)(ctx, obj) {
		ev := event.GenericEvent{Object: &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: req.Name}}}
		select {
		case s.confirmed <- ev:
		default:
		}
	}
}

func (s *Syncer) now() time.Time {
	if s.clock == nil {
		return time.Now()
	}
	return s.clock.Now()
}

// expireConfirmed drops confirmed bindings older than confirmedFor, and reconciles their
// namespaces' webhooks (acted on under them) under the cache's; and it forgets the reconciles asked
// more than a second ago.
func (s *Syncer) expireConfirmed(ctx context.Context) {
	now := s.now()
	var expired []string
	s.mu.Lock()
	for ns, c := range s.newest {
		if now.Sub(c.at) > confirmedFor {
			delete(s.newest, ns)
			expired = append(expired, ns)
		}
	}
	for ns, at := range s.asked {
		if now.Sub(at) >= time.Second {
			delete(s.asked, ns)
		}
	}
	s.mu.Unlock()
	for _, ns := range expired {
		s.reconcileNamespace(ctx, ns, true)
	}
}

// track remembers that key names uid. A different uid remembered under key belongs to a webhook
// that was deleted and recreated under the same name before a reconcile saw the deletion: it is
// dropped now.
func (s *Syncer) track(ctx context.Context, key types.NamespacedName, uid string) error {
	s.mu.Lock()
	old, ok := s.uids[key]
	s.mu.Unlock()
	if ok && old != uid {
		if err := s.drop(ctx, old); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.uids == nil {
		s.uids = map[types.NamespacedName]string{}
	}
	s.uids[key] = uid
	return nil
}

// forget drops the webhook last reconciled under key, which is deleted.
func (s *Syncer) forget(ctx context.Context, key types.NamespacedName) error {
	s.mu.Lock()
	uid, ok := s.uids[key]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	if err := s.drop(ctx, uid); err != nil {
		return err
	}
	s.mu.Lock()
	if s.uids[key] == uid {
		delete(s.uids, key)
	}
	s.mu.Unlock()
	return nil
}

// drop removes a deleted webhook's route, queue, state and reporter entry. The route goes first
// and Withdraw waits for events being routed to it, so nothing is queued after the removal.
func (s *Syncer) drop(ctx context.Context, uid string) error {
	ctrl.LoggerFrom(ctx).Info("Removing the route and queue of a deleted webhook", "uid", uid)
	s.Table.Withdraw(uid)
	s.Reporter.Forget(uid)
	s.Accounts.forget(uid)
	return s.Engine.Remove(ctx, uid)
}

// syncAllPatience bounds how long SyncAll retries the webhooks whose reconcile failed (JetStream
// electing a leader after a NATS node restarted, the API server restarting) before it gives up.
const syncAllPatience = 2 * time.Minute

// SyncAll reconciles every webhook in the cache once. Those whose reconcile fails are tried again,
// with a growing pause, for up to syncAllPatience: one webhook's error does not keep the others
// from being synced, and a short outage does not stop the dispatcher (whose restarts would then
// back off for minutes).
func (s *Syncer) SyncAll(ctx context.Context) error {
	list := &hooklinev1.WebhookList{}
	if err := s.List(ctx, list); err != nil {
		return err
	}
	keys := make([]types.NamespacedName, len(list.Items))
	for i := range list.Items {
		keys[i] = client.ObjectKeyFromObject(&list.Items[i])
	}
	return syncAll(ctx, keys, func(key types.NamespacedName) error {
		_, err := s.Reconcile(ctx, ctrl.Request{NamespacedName: key})
		return err
	}, clock.RealClock{}, syncAllPatience)
}

// syncAll calls reconcile for each key, then again for those that failed, after 100 ms, doubling
// up to 5 s, until none fails, patience has passed since the start with some failing (their
// errors are returned) or ctx ends.
func syncAll(ctx context.Context, keys []types.NamespacedName, reconcile func(types.NamespacedName) error, clk clock.Clock, patience time.Duration) error {
	log := ctrl.LoggerFrom(ctx)
	start := clk.Now()
	for pause := 100 * time.Millisecond; ; pause = min(2*pause, 5*time.Second) {
		var failed []types.NamespacedName
		var errs []error
		for i, key := range keys {
			if err := reconcile(key); err != nil {
				failed = append(failed, key)
				errs = append(errs, fmt.Errorf("webhook %s: %w", key, err))
			}
			// Failing reconciles may each take a timeout: the patience holds within a pass too.
			if len(failed) > 0 && clk.Since(start) >= patience {
				return fmt.Errorf("syncing %d webhooks, %d not tried: %w", len(failed), len(keys)-i-1, errors.Join(errs...))
			}
		}
		if len(failed) == 0 {
			return nil
		}
		log.Error(errs[0], "Syncing webhooks before accepting events; trying the ones that failed again", "failed", len(failed), "after", pause)
		keys = failed
		t := clk.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C():
		}
	}
}

// Sweep drops the route, queue, state and reporter entry of every webhook uid that the informer
// cache no longer holds, and withdraws every route whose namespace is no longer bound as the route
// says (the reconcile that the namespace's change queued routes it again if it should be). Reconciles
// drop deleted webhooks as they see them; the sweep catches what they cannot see: webhooks deleted
// while the dispatcher was down, or a removal that failed. It runs once the cache has synced and then
// every SweepEvery interval.
func (s *Syncer) Sweep(ctx context.Context) error {
	s.exclusive.Lock()
	defer s.exclusive.Unlock()
	list := &hooklinev1.WebhookList{}
	if err := s.List(ctx, list); err != nil {
		return err
	}
	live := make(map[string]bool, len(list.Items))
	for _, wh := range list.Items {
		live[string(wh.UID)] = true
	}
	known := append(s.Engine.Known(), s.Reporter.Known()...)
	for _, t := range s.Table.Targets() {
		known = append(known, t.UID)
	}
	s.mu.Lock()
	for key, uid := range s.uids {
		if !live[uid] {
			delete(s.uids, key)
			known = append(known, uid)
		}
	}
	s.mu.Unlock()
	s.expireConfirmed(ctx)
	var errs []error
	dropped := map[string]bool{}
	for _, uid := range known {
		if live[uid] || dropped[uid] {
			continue
		}
		dropped[uid] = true
		if err := s.drop(ctx, uid); err != nil {
			errs = append(errs, err)
		}
	}
	for _, t := range s.Table.Targets() {
		b, bound, err := s.bindingOf(ctx, t.Namespace)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !bound || b.AccountID != t.AccountID || b.GroupID != t.NamespaceGroup {
			ctrl.LoggerFrom(ctx).Info("Withdrawing a route its namespace's binding no longer allows", "uid", t.UID, "namespace", t.Namespace)
			s.Table.Withdraw(t.UID)
		}
	}
	return errors.Join(errs...)
}

// SweepEvery returns a runnable that runs Sweep every interval until its context ends.
func (s *Syncer) SweepEvery(interval time.Duration) manager.RunnableFunc {
	return func(ctx context.Context) error {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
				if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
					ctrl.LoggerFrom(ctx).Error(err, "Sweeping routes and queues of deleted webhooks")
				}
			}
		}
	}
}

// SetupWithManager watches Webhooks (changes that matter to routing and delivery, not the
// dispatcher's own status writes) and namespace bindings.
func (s *Syncer) SetupWithManager(mgr ctrl.Manager, workers int, skipNameValidation bool) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Named("dispatcher").
		For(&hooklinev1.Webhook{}, builder.WithPredicates(routingChanged{})).
		WatchesMetadata(&corev1.Namespace{},
			handler.EnqueueRequestsFromMapFunc(tenancy.WebhooksIn(s.Client)),
			builder.WithPredicates(tenancy.BindingChanged{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers, SkipNameValidation: &skipNameValidation})
	if s.Retake != nil {
		b = b.WatchesRawSource(source.Channel(s.Retake, &handler.EnqueueRequestForObject{}))
	}
	s.confirmed = make(chan event.GenericEvent, 1024)
	b = b.WatchesRawSource(source.Channel(s.confirmed, &handler.EnqueueRequestForObject{}))
	s.Engine.ConfirmBindingsWith(s.ConfirmBinding)
	return b.Complete(s)
}

// routingChanged passes creations, deletions and updates that change what the dispatcher acts on:
// the spec, the reactivation annotation, and the manager's state and verification.
type routingChanged struct{ predicate.Funcs }

// Update implements predicate.Predicate.
func (routingChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*hooklinev1.Webhook)
	n, ok2 := e.ObjectNew.(*hooklinev1.Webhook)
	if !ok1 || !ok2 {
		return true
	}
	return o.Generation != n.Generation ||
		o.Annotations[hooklinev1.ReactivateAnnotation] != n.Annotations[hooklinev1.ReactivateAnnotation] ||
		o.Status.State != n.Status.State || o.Status.Attestation != n.Status.Attestation ||
		!o.Status.LastVerifiedTime.Equal(n.Status.LastVerifiedTime) ||
		o.Status.LastHandledReactivation != n.Status.LastHandledReactivation
}
