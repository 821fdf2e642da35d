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
	"errors"
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/tenancy"
)

// SetupWithManager registers the reconciler. Webhooks are watched for spec changes only (the
// manager's own status writes do not wake it), each change also waking the Webhooks that share the
// changed one's configuration (duplicates.go), and namespaces, as metadata, for binding changes.
func (r *WebhookReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Attestation == nil {
		return errors.New("the webhook controller needs an attestation key: without one the dispatcher delivers to nothing")
	}
	o := r.Options
	r.slots = newAccountSlots(o.VerificationsPerAccount, o.ThrottleRetry, r.Clock.Now)
	r.backoff = newBackoff(o.RetryBase, o.RetryMax)
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &hooklinev1.Webhook{}, configurationIndex, r.indexConfiguration); err != nil {
		return fmt.Errorf("indexing webhooks by configuration: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("webhook").
		For(&hooklinev1.Webhook{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{},
			hooklineAnnotationsChanged{},
			autoDisabledChanged{},
		))).
		Watches(&hooklinev1.Webhook{}, sameConfiguration{r: r}).
		WatchesMetadata(&corev1.Namespace{},
			handler.EnqueueRequestsFromMapFunc(r.webhooksAffectedBy),
			builder.WithPredicates(tenancy.BindingChanged{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: o.MaxConcurrentReconciles}).
		Complete(r)
}

// hooklineAnnotationsChanged passes updates in which an annotation of hookline's own prefix
// changed (hookline.io/reactivate, or any other, such as hookline.io/verify-at to verify at once):
// any annotation woke the manager before, and each wake of a verified webhook with a client
// certificate reads its Secret from the API server, so that tools stamping their own annotations
// cost a read each.
type hooklineAnnotationsChanged struct {
	predicate.Funcs
}

// Update implements predicate.Predicate.
func (hooklineAnnotationsChanged) Update(e event.UpdateEvent) bool {
	if e.ObjectOld == nil || e.ObjectNew == nil {
		return false
	}
	return !maps.Equal(hooklineAnnotations(e.ObjectOld.GetAnnotations()), hooklineAnnotations(e.ObjectNew.GetAnnotations()))
}

// Create, Delete and Generic are left to the other predicates of the Or.
func (hooklineAnnotationsChanged) Create(event.CreateEvent) bool   { return false }
func (hooklineAnnotationsChanged) Delete(event.DeleteEvent) bool   { return false }
func (hooklineAnnotationsChanged) Generic(event.GenericEvent) bool { return false }

// hooklineAnnotations returns the annotations of hookline's own prefix.
func hooklineAnnotations(in map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range in {
		if strings.HasPrefix(k, hooklinev1.GroupVersion.Group+"/") {
			out[k] = v
		}
	}
	return out
}

// autoDisabledChanged passes updates in which the dispatcher's AutoDisabled condition changed
// status, so that the manager reports the webhook as Disabled (or no longer) at once.
type autoDisabledChanged struct {
	predicate.Funcs
}

// Update implements predicate.Predicate.
func (autoDisabledChanged) Update(e event.UpdateEvent) bool {
	oldWh, ok1 := e.ObjectOld.(*hooklinev1.Webhook)
	newWh, ok2 := e.ObjectNew.(*hooklinev1.Webhook)
	if !ok1 || !ok2 {
		return false
	}
	return conditionStatus(oldWh, hooklinev1.ConditionAutoDisabled) != conditionStatus(newWh, hooklinev1.ConditionAutoDisabled)
}

// Create, Delete and Generic are left to the other predicates of the Or.
func (autoDisabledChanged) Create(event.CreateEvent) bool   { return false }
func (autoDisabledChanged) Delete(event.DeleteEvent) bool   { return false }
func (autoDisabledChanged) Generic(event.GenericEvent) bool { return false }

func conditionStatus(wh *hooklinev1.Webhook, t string) metav1.ConditionStatus {
	if c := meta.FindStatusCondition(wh.Status.Conditions, t); c != nil {
		return c.Status
	}
	return ""
}
