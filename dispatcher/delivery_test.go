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
	"encoding/json"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

func TestDeliversAndReportsStatus(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-smoke", "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}})
	wh := s.activeWebhook(t, ns, "smoke", accountSpec(rc.URL+"/hook"))

	s.mustPost(t, event("e1", "acc-smoke"))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	d := rc.got()[0]
	g.Expect(d.ClientID).To(Equal(testClientID))
	var body map[string]any
	g.Expect(json.Unmarshal(d.Body, &body)).To(Succeed())
	g.Expect(body).To(HaveKeyWithValue("webhookId", string(wh.UID)))
	g.Expect(body).To(HaveKeyWithValue("webhookName", "smoke"))
	g.Expect(body).To(HaveKeyWithValue("webhookScope", "ACCOUNT"))
	g.Expect(body).To(HaveKeyWithValue("accountId", "acc-smoke"))
	g.Expect(body).To(HaveKeyWithValue("webhookUrlInfo", map[string]any{"url": rc.URL + "/hook"}))
	g.Expect(body).To(HaveKey("webhookNotificationId"))
	g.Expect(body["agreement"]).To(Equal(map[string]any{"id": "agr-e1", "name": "Contract e1", "status": "OUT_FOR_SIGNATURE"}))

	g.Eventually(func(g Gomega) {
		got := getWebhook(g, wh)
		g.Expect(deref(got.Status.DeliveredTotal)).To(BeEquivalentTo(1))
		g.Expect(deref(got.Status.PendingNotifications)).To(BeEquivalentTo(0))
		g.Expect(deref(got.Status.DroppedTotal)).To(BeEquivalentTo(0))
		g.Expect(deref(got.Status.ConsecutiveFailures)).To(BeEquivalentTo(0))
		g.Expect(got.Status.LastSuccessTime).NotTo(BeNil())
		g.Expect(got.Status.LastAttemptTime).NotTo(BeNil())
		g.Expect(condition(got, hooklinev1.ConditionDelivering).Status).To(BeEquivalentTo("True"))
		g.Expect(condition(got, hooklinev1.ConditionAutoDisabled).Status).To(BeEquivalentTo("False"))
		g.Expect(got.Status.State).To(BeEquivalentTo("Active"), "the dispatcher's writes must not clobber the manager's fields")
	}).WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
}
