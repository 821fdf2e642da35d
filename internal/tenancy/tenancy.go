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

// Package tenancy binds namespaces to Acrobat Sign accounts. A namespace labelled
// hookline.io/account=<accountId> belongs to that account; hookline.io/group=<groupId> further
// restricts its webhooks to that group's events. RBAC lets a tenant with "*" in its namespace patch
// that namespace, so the admission policy of config/policies (namespace_binding.yaml) is what keeps
// a tenant from relabelling it and subscribing to another account's events.
package tenancy

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// Namespace labels.
const (
	AccountLabel = "hookline.io/account"
	GroupLabel   = "hookline.io/group"
)

// Binding is the account (and optional group) a namespace is bound to.
type Binding struct {
	AccountID string
	// GroupID is empty unless the namespace is restricted to one group.
	GroupID string
}

// FromLabels returns the binding the labels declare, and false when the namespace is not bound.
func FromLabels(labels map[string]string) (Binding, bool) {
	acc := labels[AccountLabel]
	if acc == "" {
		return Binding{}, false
	}
	return Binding{AccountID: acc, GroupID: labels[GroupLabel]}, true
}

// Lookup returns the binding of namespace ns, read as metadata through c (a cache that watches
// namespaces as metadata, or a direct client). A namespace that does not exist is not bound.
func Lookup(ctx context.Context, c client.Reader, ns string) (Binding, bool, error) {
	o, err := Observe(ctx, c, ns)
	return o.Binding, o.Bound, err
}

// Observation is a namespace's binding as read at one resourceVersion.
type Observation struct {
	Binding
	Bound bool
	// ResourceVersion is the namespace's at the read; empty when it did not exist.
	ResourceVersion string
}

// Observe is Lookup, with the resourceVersion the binding was read at.
func Observe(ctx context.Context, c client.Reader, ns string) (Observation, error) {
	nsMeta := &metav1.PartialObjectMetadata{}
	nsMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := c.Get(ctx, client.ObjectKey{Name: ns}, nsMeta); err != nil {
		return Observation{}, client.IgnoreNotFound(err)
	}
	b, ok := FromLabels(nsMeta.Labels)
	return Observation{Binding: b, Bound: ok, ResourceVersion: nsMeta.ResourceVersion}, nil
}

// Newer reports whether o was read at a later resourceVersion than other. Resource versions of one
// resource compare as integers (apimachinery's resourceversion package); a read that found the
// namespace is newer than one that did not (an empty version); one that does not parse is never
// newer.
func (o Observation) Newer(other Observation) bool {
	if other.ResourceVersion == "" {
		return o.ResourceVersion != ""
	}
	c, err := resourceversion.CompareResourceVersion(o.ResourceVersion, other.ResourceVersion)
	return err == nil && c > 0
}

// Same reports whether o and other bind alike.
func (o Observation) Same(other Observation) bool {
	return o.Binding == other.Binding && o.Bound == other.Bound
}

// WebhooksIn returns a handler.MapFunc that maps a namespace to reconcile requests for the Webhooks
// in it, so that a change of binding reaches them.
func WebhooksIn(c client.Reader) handler.MapFunc {
	return func(ctx context.Context, ns client.Object) []reconcile.Request {
		list := &hooklinev1.WebhookList{}
		if err := c.List(ctx, list, client.InNamespace(ns.GetName())); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Listing webhooks of namespace", "namespace", ns.GetName())
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, wh := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&wh)})
		}
		return reqs
	}
}

// BindingChanged is a predicate for namespace watches: it passes creations, deletions, and the
// updates that change the binding (FromLabels), not other label changes. Any label change used to
// reconcile every Webhook of the namespace, so that a tenant (who may set other labels on its
// namespace) made the shared manager and dispatcher do a reconcile per Webhook, each with an
// uncached Secret read for a client certificate, for every label it set.
type BindingChanged struct {
	predicate.Funcs
}

// Update implements predicate.Predicate.
func (BindingChanged) Update(e event.UpdateEvent) bool {
	if e.ObjectOld == nil || e.ObjectNew == nil {
		return true
	}
	was, wasBound := FromLabels(e.ObjectOld.GetLabels())
	is, isBound := FromLabels(e.ObjectNew.GetLabels())
	return was != is || wasBound != isBound
}
