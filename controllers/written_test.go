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
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/attest"
	"github.com/hookline/hookline/internal/echo"
	"github.com/hookline/hookline/internal/netguard"
	"github.com/hookline/hookline/internal/tenancy"
	"github.com/hookline/hookline/internal/verify"
)

// A reconcile that reads a Webhook from a cache that has not yet seen the status the reconcile
// before it wrote must not verify the endpoint again; once the cache holds the write, the recorded
// verification is kept. (The suite's TestNextInLineTakesOver saw a fourth verification request
// where three were due.) A narrow test on the fake client: the stale read is the client's answer.
func TestStaleCacheDoesNotVerifyAgain(t *testing.T) {
	var gets atomic.Int32
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		w.Header().Set(echo.Header, r.Header.Get(echo.Header))
	}))
	t.Cleanup(rc.Close)

	wh := &hooklinev1.Webhook{
		ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: "tenant", UID: "uid-1", Generation: 1},
		Spec:       hooklinev1.WebhookSpec{URL: rc.URL + "/hook", Scope: hooklinev1.ScopeAccount, Events: []hooklinev1.EventName{"AGREEMENT_ALL"}},
	}
	r, c := unitReconciler(t, wh, verify.New(verify.Config{Timeout: time.Second, AllowHTTP: true, Guard: netguard.New(netguard.Policy{
		Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})}),
		Options{DefaultClientID: "client", VerificationsPerAccount: 1, RetryBase: time.Second, RetryMax: time.Second})

	var stale atomic.Pointer[hooklinev1.Webhook] // when set, what Get answers for the Webhook
	cached := interceptor.NewClient(c, interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, k client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if old, ok := obj.(*hooklinev1.Webhook); ok && stale.Load() != nil {
			stale.Load().DeepCopyInto(old)
			return nil
		}
		return c.Get(ctx, k, obj, opts...)
	}})
	r.Client, r.APIReader = cached, c

	before := &hooklinev1.Webhook{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(wh), before); err != nil {
		t.Fatal(err)
	}
	reconcile := func() ctrl.Result {
		t.Helper()
		res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(wh)})
		if err != nil {
			t.Fatalf("reconcile: %v", err)
		}
		return res
	}
	verified := func() bool {
		t.Helper()
		got := &hooklinev1.Webhook{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(wh), got); err != nil {
			t.Fatal(err)
		}
		return meta.IsStatusConditionTrue(got.Status.Conditions, hooklinev1.ConditionVerified) && got.Status.Attestation != ""
	}

	reconcile()
	if n := gets.Load(); n != 1 || !verified() {
		t.Fatalf("first reconcile: %d verification requests, verified %v; want 1 and true", n, verified())
	}

	stale.Store(before) // the cache still holds the Webhook as it was before the status write
	if res := reconcile(); res.RequeueAfter != cacheLagRetry {
		t.Errorf("reconcile on a stale cache: result %+v, want a requeue after %v", res, cacheLagRetry)
	}
	if n := gets.Load(); n != 1 {
		t.Fatalf("reconcile on a stale cache sent %d verification requests in all; want 1", n)
	}
	if !verified() {
		t.Fatal("reconcile on a stale cache undid the verification")
	}

	stale.Store(nil) // caught up
	reconcile()
	if n := gets.Load(); n != 1 || !verified() {
		t.Fatalf("reconcile after the cache caught up: %d verification requests, verified %v; want 1 and true", n, verified())
	}
}

// unitReconciler returns a WebhookReconciler for narrow tests on the fake client, and that client,
// which holds wh and its namespace "tenant" (bound to account "acc"). The account has
// opts.VerificationsPerAccount verification slots. The caller sets r.Client and r.APIReader,
// wrapping c where a test fakes or counts reads.
func unitReconciler(t *testing.T, wh *hooklinev1.Webhook, verifier *verify.Verifier, opts Options) (*WebhookReconciler, client.WithWatch) {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, hooklinev1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenant", Labels: map[string]string{tenancy.AccountLabel: "acc"}}}
	key, err := attest.New([]byte("hookline-unit-test-attestation-key/hookline-unit"))
	if err != nil {
		t.Fatal(err)
	}
	r := &WebhookReconciler{Recorder: events.NewFakeRecorder(16), Verifier: verifier, Attestation: key, Clock: clock.RealClock{}, Options: opts}
	r.slots, r.backoff = newAccountSlots(opts.VerificationsPerAccount, opts.ThrottleRetry, r.Clock.Now), newBackoff(opts.RetryBase, opts.RetryMax)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(ns, wh).WithStatusSubresource(wh).
		WithIndex(&hooklinev1.Webhook{}, configurationIndex, r.indexConfiguration).Build()
	return r, c
}
