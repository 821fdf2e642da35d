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

package controllers

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/tenancy"
	"github.com/hookline/hookline/internal/webhookkey"
)

// configurationIndex indexes ACTIVE Webhooks by webhookkey.Of their spec and effective client id,
// so that a reconcile finds a webhook's possible duplicates without listing every Webhook.
const configurationIndex = "hookline.io/configuration"

// configuration returns wh's configuration key.
func (r *WebhookReconciler) configuration(wh *hooklinev1.Webhook) string {
	return webhookkey.Of(wh.Spec, r.clientID(wh))
}

// competes reports whether wh takes part in the duplicate check: only ACTIVE webhooks do, so an
// INACTIVE one never keeps another from receiving.
func competes(wh *hooklinev1.Webhook) bool {
	return wh.Spec.State != hooklinev1.StateInactive && wh.DeletionTimestamp == nil
}

// indexConfiguration is the configurationIndex's index function.
func (r *WebhookReconciler) indexConfiguration(obj client.Object) []string {
	wh, ok := obj.(*hooklinev1.Webhook)
	if !ok || !competes(wh) {
		return nil
	}
	return []string{r.configuration(wh)}
}

// older reports whether a comes before b: the earlier creation, then the lower uid.
func older(a, b *hooklinev1.Webhook) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.UID < b.UID
}

// claimConfiguration decides whether wh may receive: when an older ACTIVE Webhook of wh's binding
// b has wh's configuration, it sets st to the duplicate status and reports that the reconcile stops
// there; wh is then neither verified nor attested, so the dispatcher routes nothing to it.
// Otherwise it takes the claim on the binding's configuration, which the caller releases once
// wh's status is written: the decision is made again under the claim, and every younger duplicate
// that carries, or that this manager has written, an attestation is stopped first (demote). Two
// Webhooks created in the same second are ordered by uid, not by which the cache saw first; the
// claim keeps two such reconciles from both attesting. When another reconcile holds the claim, it
// reports a stop with a result that retries shortly.
func (r *WebhookReconciler) claimConfiguration(ctx context.Context, wh *hooklinev1.Webhook, b tenancy.Binding, st *managerStatus) (claim *configurationClaim, proceed bool, res ctrl.Result, err error) {
	winner, _, err := r.duplicates(ctx, wh, b)
	if err != nil || winner != nil {
		return nil, false, ctrl.Result{}, r.duplicate(ctx, wh, winner, b, st, err)
	}
	if claim = r.claims.tryClaim(claimKey(b, r.configuration(wh)), wh.UID); claim == nil {
		ctrl.LoggerFrom(ctx).V(1).Info("Another reconcile holds the claim on this configuration; retrying shortly")
		return nil, false, ctrl.Result{RequeueAfter: r.Options.ThrottleRetry}, nil
	}
	winner, younger, err := r.duplicates(ctx, wh, b)
	if err != nil || winner != nil {
		return claim, false, ctrl.Result{}, r.duplicate(ctx, wh, winner, b, st, err)
	}
	if err := r.demote(ctx, younger, b, claim); err != nil {
		return claim, false, ctrl.Result{}, err
	}
	return claim, true, ctrl.Result{}, nil
}

// duplicate sets st to the duplicate status of wh when winner is set, and returns err.
func (r *WebhookReconciler) duplicate(ctx context.Context, wh, winner *hooklinev1.Webhook, b tenancy.Binding, st *managerStatus, err error) error {
	if err == nil && winner != nil {
		ctrl.LoggerFrom(ctx).V(1).Info("Duplicate of an older ACTIVE webhook; not verifying", "original", client.ObjectKeyFromObject(winner).String())
		*st = *duplicateStatus(b)
		r.backoff.forget(client.ObjectKeyFromObject(wh))
	}
	return err
}

// duplicates returns, among the ACTIVE Webhooks of binding b (namespaces bound to b's account and
// to b's group, or like b to none) that have wh's configuration, the oldest if it is older than wh
// (nil when wh is the oldest), and those younger than wh. As Acrobat Sign refuses a webhook whose
// configuration duplicates an existing one (DUPLICATE_WEBHOOK_CONFIGURATION), only the oldest of
// identical Webhooks receives notifications. Namespaces of one account with different groups (or
// one with a group, one without) are not duplicates of each other: a namespace bound to a group
// receives only that group's events (dispatcher/route), so they deliver different events, and
// demoting one for the other would hand its receiver the other group's events in place of its own.
// The decision depends on specs, creation times and namespace bindings only, so every reconcile
// of a group of duplicates reaches the same one.
//
// The list is the cache's objects, not copies: a tenant's thousand identical Webhooks made every
// reconcile of one of them copy the thousand. They are only read here; demote copies the few it
// writes.
func (r *WebhookReconciler) duplicates(ctx context.Context, wh *hooklinev1.Webhook, b tenancy.Binding) (winner *hooklinev1.Webhook, younger []*hooklinev1.Webhook, err error) {
	bindings := r.bindingsOf(ctx)
	err = r.eachCompeting(ctx, r.configuration(wh), func(c *hooklinev1.Webhook) error {
		if c.UID == wh.UID {
			return nil
		}
		binding, err := bindings(c.Namespace)
		switch {
		case err != nil:
			return err
		case binding != b:
		case !older(c, wh):
			younger = append(younger, c)
		case winner == nil || older(c, winner):
			winner = c
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return winner, younger, nil
}

// eachCompeting calls fn with each ACTIVE Webhook of configuration key, in any account: the
// cache's own objects, which fn must not modify.
func (r *WebhookReconciler) eachCompeting(ctx context.Context, key string, fn func(*hooklinev1.Webhook) error) error {
	list := &hooklinev1.WebhookList{}
	if err := r.List(ctx, list, client.MatchingFields{configurationIndex: key}, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	for i := range list.Items {
		if c := &list.Items[i]; competes(c) {
			if err := fn(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// bindingsOf returns a lookup of the binding (account and group) of a namespace (the zero Binding
// when none), which reads each namespace once: a group of duplicates mostly shares a few
// namespaces.
func (r *WebhookReconciler) bindingsOf(ctx context.Context) func(namespace string) (tenancy.Binding, error) {
	seen := map[string]tenancy.Binding{}
	return func(namespace string) (tenancy.Binding, error) {
		if b, ok := seen[namespace]; ok {
			return b, nil
		}
		b, bound, err := tenancy.Lookup(ctx, r.Client, namespace)
		if err != nil {
			return tenancy.Binding{}, err
		}
		if !bound {
			b = tenancy.Binding{}
		}
		seen[namespace] = b
		return b, nil
	}
}

// claimKey is the key of the claim on configuration key in binding b. Label values hold no NUL.
func claimKey(b tenancy.Binding, key string) string {
	return b.AccountID + "\x00" + b.GroupID + "\x00" + key
}

// namespaceExists reports whether namespace is in the cache (on an error, that it may be).
func (r *WebhookReconciler) namespaceExists(ctx context.Context, namespace string) bool {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	return !apierrors.IsNotFound(r.Get(ctx, client.ObjectKey{Name: namespace}, m))
}

// duplicateStatus is the manager's status of a Webhook that duplicates an older one in binding b.
//
// The message does not name the older one: a name made every duplicate's status change with the
// oldest, so that a tenant setting its oldest of a thousand identical Webhooks INACTIVE and ACTIVE
// again had the manager write a thousand statuses each time; and the oldest may be in a namespace
// of the account that this one's readers may not see.
func duplicateStatus(b tenancy.Binding) *managerStatus {
	st := &managerStatus{}
	// Stalled: it receives nothing until someone deletes, deactivates or changes one of the two.
	st.setPermanentFailure(hooklinev1.ReasonDuplicateConfiguration, fmt.Sprintf(
		"an older ACTIVE webhook of account %s (by creation time, then uid; in this namespace or another namespace with the same binding: account and group labels) has the same configuration (events, url, scope, group, user, resource and client id); "+
			"only the oldest of identical webhooks receives notifications. This one stays Inactive, and is verified "+
			"when no older one with this configuration is left ACTIVE (deleted, set INACTIVE or changed)", b.AccountID))
	return st
}

// demote writes the duplicate status of each of winner's younger duplicates that carries an
// attestation, or that this manager attested (the cache may not show it yet), before winner is
// verified and attested: the dispatcher, which sees Webhook changes in the order they were
// written, then stops routing to the younger one before it starts routing to winner, so that no
// notification goes to both. A younger one holds an attestation when it was the oldest until
// winner was created in the same second with a lower uid, set ACTIVE again, or changed to match.
// The one winner displaced is queued by the change too (sameConfigurationAs) and writes the same
// status.
func (r *WebhookReconciler) demote(ctx context.Context, younger []*hooklinev1.Webhook, b tenancy.Binding, claim *configurationClaim) error {
	for _, d := range younger {
		if d.Status.Attestation == "" && !claim.attested(d.UID) {
			continue
		}
		// A copy: d is the cache's object.
		if err := r.writeStatus(ctx, d.DeepCopy(), duplicateStatus(b), true); err != nil {
			return fmt.Errorf("stopping %s/%s, a younger duplicate: %w", d.Namespace, d.Name, err)
		}
		claim.record(d.UID, false)
	}
	return nil
}

// configurationClaims serialises, per binding and configuration, the reconciles that may attest
// a Webhook, and remembers which configuration this manager last attested for each Webhook, until
// it clears it or the Webhook is deleted. Only the leading manager writes attestations, and at its
// start its cache holds every attestation written before, so the two together know every
// attestation that may be live.
type configurationClaims struct {
	mu       sync.Mutex
	held     map[string]bool
	attested map[types.UID]string
}

// configurationClaim is the claim on one binding's configuration.
type configurationClaim struct {
	claims *configurationClaims
	key    string
	uid    types.UID
}

// tryClaim returns the claim on key for the Webhook uid, or nil when another reconcile holds it.
func (c *configurationClaims) tryClaim(key string, uid types.UID) *configurationClaim {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held[key] {
		return nil
	}
	if c.held == nil {
		c.held, c.attested = map[string]bool{}, map[types.UID]string{}
	}
	c.held[key] = true
	return &configurationClaim{claims: c, key: key, uid: uid}
}

// forget drops what is remembered about a deleted Webhook.
func (c *configurationClaims) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.attested, uid)
}

// attested reports whether this manager wrote an attestation of the claim's configuration for uid
// and has not cleared it since.
func (cl *configurationClaim) attested(uid types.UID) bool {
	cl.claims.mu.Lock()
	defer cl.claims.mu.Unlock()
	return cl.claims.attested[uid] == cl.key
}

// record notes whether uid now carries an attestation of the claim's configuration.
func (cl *configurationClaim) record(uid types.UID, attested bool) {
	cl.claims.mu.Lock()
	defer cl.claims.mu.Unlock()
	if attested {
		cl.claims.attested[uid] = cl.key
	} else {
		delete(cl.claims.attested, uid)
	}
}

// release records what the claimant's status write (err its outcome) left, and gives the claim
// up. An attestation that may have been written counts as written; one is cleared only by a write
// that succeeded. A nil claim is released without effect.
func (cl *configurationClaim) release(st *managerStatus, err error) {
	if cl == nil {
		return
	}
	switch {
	case st.attestation != "":
		cl.record(cl.uid, true)
	case err == nil && st.verified.Type != "":
		cl.record(cl.uid, false)
	}
	cl.claims.mu.Lock()
	delete(cl.claims.held, cl.key)
	cl.claims.mu.Unlock()
}

// sameConfiguration enqueues, on each change of a Webhook, the other Webhooks that have (or had)
// its configuration, so that when the oldest is deleted, set INACTIVE or changed, the next one in
// line is verified, and a new one that sorts first (created in the same second, lower uid) demotes
// the others. Updates that change neither the configuration nor whether the webhook competes (the
// dispatcher's status writes) enqueue nothing.
type sameConfiguration struct {
	r *WebhookReconciler
}

var _ handler.EventHandler = sameConfiguration{}

// Create implements handler.EventHandler.
func (h sameConfiguration) Create(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	h.enqueue(ctx, e.Object, q)
}

// Update implements handler.EventHandler.
func (h sameConfiguration) Update(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	o, ok1 := e.ObjectOld.(*hooklinev1.Webhook)
	n, ok2 := e.ObjectNew.(*hooklinev1.Webhook)
	if !ok1 || !ok2 {
		return
	}
	if competes(o) == competes(n) && h.r.configuration(o) == h.r.configuration(n) {
		return
	}
	h.enqueue(ctx, o, q)
	h.enqueue(ctx, n, q)
}

// Delete implements handler.EventHandler.
func (h sameConfiguration) Delete(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	h.r.claims.forget(e.Object.GetUID())
	h.enqueue(ctx, e.Object, q)
	h.r.boundTo.Delete(e.Object.GetUID())
	h.r.rotated.Delete(e.Object.GetUID())
	h.r.certRead.Delete(e.Object.GetUID())
	h.r.slots.forget(string(e.Object.GetUID()))
}

// Generic implements handler.EventHandler.
func (h sameConfiguration) Generic(context.Context, event.GenericEvent, workqueue.TypedRateLimitingInterface[reconcile.Request]) {
}

func (h sameConfiguration) enqueue(ctx context.Context, obj client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	wh, ok := obj.(*hooklinev1.Webhook)
	if !ok {
		return
	}
	// A change of a Webhook changes decisions in its own binding only: the oldest of another
	// account (or group) with this configuration is not queued (a tenant knowing another account's exact
	// configuration could otherwise have its Webhook reconciled at will, each time reading its
	// certificate Secret).
	for _, req := range h.r.sameConfigurationAs(ctx, wh, true) {
		q.Add(req)
	}
}

// sameConfigurationAs returns a request for the oldest ACTIVE Webhook other than wh with wh's
// configuration in each binding (in wh's binding only when ownBinding): the only one whose
// decision a change of wh can change. When wh was the oldest and leaves, the next in line is
// verified; when wh becomes the oldest, the one it displaces learns it (and wh's own reconcile
// demotes it first). The younger ones stay duplicates
// with the same status (duplicateStatus names no Webhook), so they are not reconciled: queueing
// all of a group at every change of one made a group of N cost N reconciles of N each.
func (r *WebhookReconciler) sameConfigurationAs(ctx context.Context, wh *hooklinev1.Webhook, ownBinding bool) []reconcile.Request {
	bindings := r.bindingsOf(ctx)
	own, err := bindings(wh.Namespace)
	if err != nil || own.AccountID == "" {
		if ownBinding && err == nil && r.namespaceExists(ctx, wh.Namespace) {
			// A Webhook of an unbound namespace competes in no account: its change changes no
			// decision, but in the binding it was last reconciled in, if any (its namespace lost
			// the binding as it changed: the namespace watch, which came first, found it with
			// its new configuration or gone). Before, anyone who may create Webhooks in an
			// unbound namespace had every account's oldest with a configuration it knew
			// reconciled at each write.
			was, ok := r.boundTo.Load(wh.UID)
			if !ok {
				return nil
			}
			own = was.(tenancy.Binding)
		} else {
			// Unknown (the namespace is being deleted and already gone from the cache): every
			// account's oldest, rather than miss the one whose decision changed.
			ownBinding = false
		}
	}
	oldest := map[tenancy.Binding]*hooklinev1.Webhook{}
	err = r.eachCompeting(ctx, r.configuration(wh), func(c *hooklinev1.Webhook) error {
		if c.UID == wh.UID {
			return nil
		}
		binding, err := bindings(c.Namespace)
		if err != nil {
			return err
		}
		if ownBinding && binding != own {
			return nil
		}
		if o := oldest[binding]; o == nil || older(c, o) {
			oldest[binding] = c
		}
		return nil
	})
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing webhooks with the same configuration", "webhook", client.ObjectKeyFromObject(wh))
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(oldest))
	for _, o := range oldest {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)})
	}
	return reqs
}

// webhooksAffectedBy maps a namespace whose binding changed to its Webhooks and to the Webhooks
// that share a configuration with them: a winner's namespace bound to another account leaves its
// duplicates in the old account without a winner.
func (r *WebhookReconciler) webhooksAffectedBy(ctx context.Context, ns client.Object) []reconcile.Request {
	list := &hooklinev1.WebhookList{}
	if err := r.List(ctx, list, client.InNamespace(ns.GetName())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing webhooks of namespace", "namespace", ns.GetName())
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		// Every binding: the namespace may have left one (its Webhooks' old account or group
		// has lost them) for another.
		reqs = append(reqs, r.sameConfigurationAs(ctx, &list.Items[i], false)...)
	}
	return reqs
}
