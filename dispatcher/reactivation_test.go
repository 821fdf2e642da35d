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

package dispatcher_test

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// A tenant's 10 KB hookline.io/reactivate value reactivates an auto-disabled Webhook, and the
// dispatcher keeps writing its status afterwards: status.lastHandledReactivation (at most 256
// characters) records the value's digest instead of the value, which the API server would refuse
// on every status write from then on.
func TestLongReactivationValueKeepsStatusWritable(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account = "acc-long-reactivation"
	s, rc, wh, _ := runFailingSchedule(t, account, time.Now().Add(5*24*time.Hour), nil)
	g.Eventually(func(g Gomega) {
		g.Expect(getWebhook(g, wh).Status.State).To(Equal(hooklinev1.ObservedDisabled))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	rc.set(echoOK)

	value := strings.Repeat("reactivate-", 1000)[:10240]
	tenant := tenantClient(t, wh.Namespace, "tenant-"+wh.Namespace)
	cur := &hooklinev1.Webhook{}
	g.Expect(tenant.Get(ctx, client.ObjectKeyFromObject(wh), cur)).To(Succeed())
	base := cur.DeepCopy()
	if cur.Annotations == nil {
		cur.Annotations = map[string]string{}
	}
	cur.Annotations[hooklinev1.ReactivateAnnotation] = value
	g.Expect(tenant.Patch(ctx, cur, client.MergeFrom(base))).To(Succeed())

	token := hooklinev1.ReactivationToken(value)
	g.Expect(token).To(HavePrefix("sha256:"))
	g.Expect(len(token)).To(BeNumerically("<=", 256))
	g.Eventually(func(g Gomega) {
		got := getWebhook(g, wh)
		g.Expect(got.Status.LastHandledReactivation).To(Equal(token))
		g.Expect(condition(got, hooklinev1.ConditionAutoDisabled).Status).To(Equal(metav1.ConditionFalse))
		g.Expect(got.Status.State).To(Equal(hooklinev1.ObservedActive))
	}).WithTimeout(15 * time.Second).Should(Succeed())

	// Later status writes still go through: the delivery is counted in the status (once the
	// dispatcher's cache has the new verification and routes to the webhook again).
	s.waitRouted(t, wh)
	delivered := deref(getWebhook(g, wh).Status.DeliveredTotal)
	s.mustPost(t, event("after-long-reactivation", account))
	g.Eventually(func(g Gomega) {
		g.Expect(deref(getWebhook(g, wh).Status.DeliveredTotal)).To(BeNumerically(">", max(delivered, 0)))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	// The same value does not reactivate again: it is handled.
	g.Expect(hooklinev1.ReactivationHandled(value, getWebhook(g, wh).Status.LastHandledReactivation)).To(BeTrue())
}
