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
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/verify"
)

// refuseStatusWithReason makes the API server refuse, in namespace ns, every status write whose
// conditions carry reason — a stand-in for a status the server refuses for its content (too large,
// invalid) — and waits until the policy is in force.
func refuseStatusWithReason(t *testing.T, ns string, probe *hooklinev1.Webhook, reason string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	const message = "test: this status is refused"
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "refuse-status-" + ns},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Update},
					Rule: admissionv1.Rule{APIGroups: []string{hooklinev1.GroupVersion.Group},
						APIVersions: []string{hooklinev1.GroupVersion.Version}, Resources: []string{"webhooks/status"}},
				},
			}}},
			Validations: []admissionv1.Validation{{
				Expression: "!has(object.status.conditions) || object.status.conditions.all(c, c.reason != '" + reason + "')",
				Message:    message,
			}},
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policy.Name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy.Name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}},
		},
	}
	g.Expect(k8s.Create(ctx, policy)).To(Succeed())
	g.Expect(k8s.Create(ctx, binding)).To(Succeed())
	t.Cleanup(func() {
		_ = k8s.Delete(context.Background(), binding)
		_ = k8s.Delete(context.Background(), policy)
	})
	// Policies take effect asynchronously: wait until a dry-run write of such a status is refused.
	g.Eventually(func(g Gomega) {
		cur := getWebhook(g, probe)
		base := cur.DeepCopy()
		meta.SetStatusCondition(&cur.Status.Conditions, metav1.Condition{Type: hooklinev1.ConditionDelivering, Status: metav1.ConditionFalse, Reason: reason})
		err := k8s.Status().Patch(ctx, cur, client.MergeFrom(base), client.DryRunAll)
		g.Expect(err).To(MatchError(ContainSubstring(message)))
	}).WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
}

// When the API server refuses the status the manager computed after a spec change, the webhook
// must not stay Active for the generation before: the manager writes a minimal Inactive status,
// without the receiver's text and without an attestation.
func TestRefusedStatusFallsBackToInactive(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-fallback", "")
	rc := newReceiver(t, false, echoHeader)
	wh := createWebhook(t, ns, "refused", func(s *hooklinev1.WebhookSpec) { s.URL = rc.URL })
	active := eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonActive)
	g.Expect(active.Status.Attestation).NotTo(BeEmpty())

	refuseStatusWithReason(t, ns, wh, verify.ReasonClientIDNotEchoed)
	rc.set(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }) // no echo
	patchSpec(t, wh, func(s *hooklinev1.WebhookSpec) { s.URL = rc.URL + "/moved" })

	got := eventuallyReady(t, wh, metav1.ConditionFalse, hooklinev1.ReasonStatusWriteFailed)
	g.Expect(got.Status.State).To(Equal(hooklinev1.ObservedInactive))
	g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
	g.Expect(got.Status.Attestation).To(BeEmpty())
	verified := meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionVerified)
	g.Expect(verified).NotTo(BeNil())
	g.Expect(verified.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(verified.Reason).To(Equal(hooklinev1.ReasonStatusWriteFailed))
	expectEvent(t, wh, corev1.EventTypeWarning, hooklinev1.ReasonStatusWriteFailed)
}
