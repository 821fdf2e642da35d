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

package cli

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/tenancy"
)

// newNamespace creates a namespace with a generated name, bound to account when it is not empty.
func newNamespace(t *testing.T, account string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "hookline-cli-", Labels: map[string]string{}}}
	if account != "" {
		ns.Labels[tenancy.AccountLabel] = account
	}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}

// newWebhook creates an ACCOUNT-scope Webhook. No manager or dispatcher runs in these tests, so
// its status is whatever the test applies.
func newWebhook(t *testing.T, namespace, name string, state hooklinev1.WebhookState) *hooklinev1.Webhook {
	t.Helper()
	wh := &hooklinev1.Webhook{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: hooklinev1.WebhookSpec{
			URL:    "https://receiver.example.com/hooks/" + name,
			State:  state,
			Scope:  hooklinev1.ScopeAccount,
			Events: []hooklinev1.EventName{"AGREEMENT_ALL"},
		},
	}
	if err := k8s.Create(context.Background(), wh); err != nil {
		t.Fatalf("creating webhook: %v", err)
	}
	return wh
}

// applyStatus writes status with server-side apply under the field owner "test", the way the
// manager and the dispatcher write theirs.
func applyStatus(t *testing.T, namespace, name string, status map[string]any) {
	t.Helper()
	raw, err := json.Marshal(map[string]any{
		"apiVersion": hooklinev1.GroupVersion.String(),
		"kind":       "Webhook",
		"metadata":   map[string]any{"name": name, "namespace": namespace},
		"status":     status,
	})
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Status().Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u),
		client.FieldOwner("test"), client.ForceOwnership); err != nil {
		t.Fatalf("applying status: %v", err)
	}
}

func condition(typ, status, reason, message string, since time.Time) map[string]any {
	return map[string]any{"type": typ, "status": status, "reason": reason, "message": message,
		"lastTransitionTime": since.UTC().Format(time.RFC3339)}
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// disabledStatus is what an auto-disabled webhook's status looks like.
func disabledStatus() map[string]any {
	return map[string]any{
		"state": "Disabled",
		"conditions": []any{
			condition("Ready", "False", "AutoDisabled", "notification dropped after 72h with no successful delivery in 7 days", testNow.Add(-5*time.Hour)),
			condition("Verified", "Unknown", "AutoDisabled", "webhook was auto-disabled by the dispatcher", testNow.Add(-5*time.Hour)),
			condition("Delivering", "False", "AutoDisabled", "auto-disabled: nothing is queued or sent until it is reactivated", testNow.Add(-5*time.Hour)),
			condition("AutoDisabled", "True", "NoRecentSuccess", "notification dropped after 72h", testNow.Add(-5*time.Hour)),
		},
		"lastVerifiedTime":     ts(testNow.Add(-8 * 24 * time.Hour)),
		"lastAttemptTime":      ts(testNow.Add(-3 * time.Hour)),
		"lastSuccessTime":      ts(testNow.Add(-8 * 24 * time.Hour)),
		"failingSince":         ts(testNow.Add(-7 * 24 * time.Hour)),
		"consecutiveFailures":  42,
		"pendingNotifications": 0,
		"deliveredTotal":       1200,
		"droppedTotal":         3,
	}
}

// kubeArgs are the flags that reach the test API server.
func kubeArgs(args ...string) []string {
	return append([]string{"--kubeconfig", env.Kubeconfig}, args...)
}
