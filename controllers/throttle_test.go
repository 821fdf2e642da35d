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
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/tenancy"
	"github.com/hookline/hookline/internal/verify"
)

// A webhook waiting for one of its account's verification slots reads nothing from the API server
// while it waits: its certificate Secret is read (uncached) only once a slot is free. Before, a
// tenant's thousands of webhooks waiting for their account's ten slots each read their Secret once
// a second. A narrow test on the fake client: what is counted is the reads.
func TestAWebhookWaitingForASlotReadsNoSecret(t *testing.T) {
	wh := &hooklinev1.Webhook{
		ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: "tenant", UID: "uid-1", Generation: 1},
		Spec: hooklinev1.WebhookSpec{URL: "https://receiver.example.com/hook", Scope: hooklinev1.ScopeAccount,
			Events: []hooklinev1.EventName{"AGREEMENT_ALL"}, ClientCertificateSecretRef: &hooklinev1.SecretReference{Name: "client-tls"}},
	}
	r, c := unitReconciler(t, wh, verify.New(verify.Config{Timeout: time.Second}),
		Options{DefaultClientID: "client", VerificationsPerAccount: 1, ThrottleRetry: time.Second, RetryBase: time.Second, RetryMax: time.Second})
	var secretReads atomic.Int32
	r.Client = c
	r.APIReader = interceptor.NewClient(c, interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, k client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if _, ok := obj.(*corev1.Secret); ok {
			secretReads.Add(1)
		}
		return c.Get(ctx, k, obj, opts...)
	}})

	if !r.slots.tryAcquire("acc", "elsewhere", "other") { // the account's one slot is busy with another webhook
		t.Fatal("no slot")
	}
	for range 3 {
		res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(wh)})
		if err != nil {
			t.Fatalf("reconcile: %v", err)
		}
		if res.RequeueAfter < time.Second || res.RequeueAfter > 2*time.Second {
			t.Errorf("retry after %s, want 1–2 s (jittered)", res.RequeueAfter)
		}
	}
	if n := secretReads.Load(); n != 0 {
		t.Errorf("%d Secret reads while waiting for a slot, want none", n)
	}
	got := &hooklinev1.Webhook{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(wh), got); err != nil {
		t.Fatal(err)
	}
	if v := meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionVerified); v == nil || v.Reason != hooklinev1.ReasonVerificationThrottled {
		t.Errorf("Verified = %+v, want reason %s", v, hooklinev1.ReasonVerificationThrottled)
	}

	r.slots.release("acc", "elsewhere") // a slot frees: the Secret is read (and found missing) this time
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(wh)}); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if n := secretReads.Load(); n != 1 {
		t.Errorf("%d Secret reads once a slot is free, want 1", n)
	}
}

// A Webhook whose namespace lost its binding as the Webhook changed (a GitOps apply removing the
// label and changing or deleting the Webhook) still wakes the oldest other Webhook of its old
// configuration in the account it was last reconciled in; one never bound wakes nobody (anyone
// who may create Webhooks in an unbound namespace could otherwise have every account's oldest of a
// configuration it knows reconciled at each write). A narrow test of the decision on the fake
// client.
func TestAWebhookThatLostItsBindingWakesOnlyItsLastAccount(t *testing.T) {
	spec := hooklinev1.WebhookSpec{URL: "https://receiver.example.com/hook", Scope: hooklinev1.ScopeAccount,
		Events: []hooklinev1.EventName{"AGREEMENT_ALL"}}
	older := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: "older", Namespace: "tenant", UID: "uid-older",
		CreationTimestamp: metav1.NewTime(time.Unix(1_700_000_000, 0))}, Spec: spec}
	r, c := unitReconciler(t, older, verify.New(verify.Config{Timeout: time.Second}), Options{DefaultClientID: "client"})
	r.Client = c
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "unbound"}}); err != nil {
		t.Fatal(err)
	}
	moved := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: "moved", Namespace: "unbound", UID: "uid-moved"}, Spec: spec}
	stranger := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: "stranger", Namespace: "unbound", UID: "uid-stranger"}, Spec: spec}
	r.boundTo.Store(moved.UID, tenancy.Binding{AccountID: "acc"}) // reconciled while its namespace was bound to acc

	if got := r.sameConfigurationAs(ctx, stranger, true); len(got) != 0 {
		t.Errorf("a Webhook never bound woke %v", got)
	}
	got := r.sameConfigurationAs(ctx, moved, true)
	if len(got) != 1 || got[0].NamespacedName != client.ObjectKeyFromObject(older) {
		t.Errorf("a Webhook that lost its binding woke %v, want its last account's oldest %s", got, client.ObjectKeyFromObject(older))
	}
}
