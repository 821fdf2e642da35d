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

package controllers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// kstatusOf computes the status Argo CD and Flux health checks see (sigs.k8s.io/cli-utils kstatus).
func kstatusOf(g Gomega, wh *hooklinev1.Webhook) status.Status {
	obj := &hooklinev1.Webhook{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(wh), obj)).To(Succeed())
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	g.Expect(err).NotTo(HaveOccurred())
	res, err := status.Compute(&unstructured.Unstructured{Object: u})
	g.Expect(err).NotTo(HaveOccurred())
	return res.Status
}

func TestKstatusHealth(t *testing.T) {
	ok := newReceiver(t, false, echoHeader)
	down := newReceiver(t, false, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	bound := newNamespace(t, "acc-kstatus", "")
	unbound := newNamespace(t, "", "")

	cases := []struct {
		name string
		ns   string
		spec func(*hooklinev1.WebhookSpec)
		want status.Status
	}{
		// Distinct paths: identical configurations in one account would be duplicates.
		{"healthy", bound, func(s *hooklinev1.WebhookSpec) { s.URL = ok.URL + "/healthy" }, status.CurrentStatus},
		{"inactive as desired", bound, func(s *hooklinev1.WebhookSpec) { s.URL, s.State = ok.URL, hooklinev1.StateInactive }, status.CurrentStatus},
		{"unverified, retrying", bound, func(s *hooklinev1.WebhookSpec) { s.URL = down.URL }, status.InProgressStatus},
		{"namespace not bound", unbound, func(s *hooklinev1.WebhookSpec) { s.URL = ok.URL }, status.FailedStatus},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			wh := createWebhook(t, tc.ns, "kstatus-"+string(rune('a'+i)), tc.spec)
			g.Eventually(func(g Gomega) status.Status { return kstatusOf(g, wh) }).
				WithTimeout(15 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(tc.want))
			g.Consistently(func(g Gomega) status.Status { return kstatusOf(g, wh) }).
				WithTimeout(500 * time.Millisecond).Should(Equal(tc.want))
		})
	}

	t.Run("auto-disabled", func(t *testing.T) {
		g := NewWithT(t)
		wh := createWebhook(t, bound, "kstatus-disabled", func(s *hooklinev1.WebhookSpec) { s.URL = ok.URL + "/disabled" })
		g.Eventually(func(g Gomega) status.Status { return kstatusOf(g, wh) }).WithTimeout(15 * time.Second).Should(Equal(status.CurrentStatus))
		// What the dispatcher writes when it auto-disables a webhook.
		applyDispatcherCondition(t, wh, metav1.ConditionTrue)
		g.Eventually(func(g Gomega) status.Status { return kstatusOf(g, wh) }).WithTimeout(15 * time.Second).Should(Equal(status.FailedStatus))
		g.Expect(getWebhook(g, wh).Status.State).To(Equal(hooklinev1.ObservedDisabled))
	})
}

// applyDispatcherCondition sets AutoDisabled as the dispatcher does: server-side apply under its own
// field manager, which must not disturb the manager's fields.
func applyDispatcherCondition(t *testing.T, wh *hooklinev1.Webhook, st metav1.ConditionStatus) {
	t.Helper()
	g := NewWithT(t)
	cur := getWebhook(g, wh)
	raw, err := json.Marshal(map[string]any{
		"apiVersion": hooklinev1.GroupVersion.String(), "kind": "Webhook",
		"metadata": map[string]any{"name": wh.Name, "namespace": wh.Namespace},
		"status": map[string]any{"conditions": []metav1.Condition{{
			Type: "AutoDisabled", Status: st, Reason: "NoRecentSuccess", Message: "test",
			ObservedGeneration: cur.Generation, LastTransitionTime: metav1.Now(),
		}}},
	})
	g.Expect(err).NotTo(HaveOccurred())
	u := &unstructured.Unstructured{}
	g.Expect(u.UnmarshalJSON(raw)).To(Succeed())
	g.Expect(k8s.Status().Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u),
		client.FieldOwner("hookline-dispatcher"), client.ForceOwnership)).To(Succeed())
}
