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
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/deliveries"
)

// post sends POST path with token and a JSON body, and returns the status and body.
func (c *apiClient) post(t *testing.T, token, path string, body any) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.base+path, bytes.NewReader(mustJSON(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// A test notification, sent through the read API by a tenant (impersonated by its own
// ServiceAccount token against the real API server), reaches its webhook alone — not another
// webhook of the same account subscribed to the same events — marked by its event id, with the
// webhook's normal delivery; RBAC decides (403 without create on webhooks/test, 404 for another
// namespace's webhook); one per interval per webhook; a recovery by time skips it; a producer
// cannot post a test event id.
func TestTestNotificationReachesOnlyItsWebhook(t *testing.T) {
	g := NewWithT(t)
	nsA, nsB := newNamespace(t, "acc-test-a", ""), newNamespace(t, "acc-test-b", "")
	rc1, rc2, rc3, rcB := newReceiver(t), newReceiver(t), newReceiver(t), newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{nsA, nsB}, mutate: func(c *dispatcherConfig) {
		logOn(c)
		c.TestInterval = time.Hour // the second test within the test is refused
		c.TestsPerNamespace = 2    // and a third webhook's test in the namespace
	}})
	s.activeWebhook(t, nsA, "orders", accountSpec(rc1.URL, "AGREEMENT_ALL"))
	s.activeWebhook(t, nsA, "audit", accountSpec(rc2.URL, "AGREEMENT_ALL"))
	s.activeWebhook(t, nsB, "orders", accountSpec(rcB.URL, "AGREEMENT_ALL"))
	api := s.serveAPI(t)
	cs, err := kubernetes.NewForConfig(cp.Config)
	g.Expect(err).NotTo(HaveOccurred())
	installDeliveryRoles(t)
	alice := serviceAccountToken(t, cs, nsA, "alice") // may test
	vic := serviceAccountToken(t, cs, nsA, "vic")     // may only read
	bob := serviceAccountToken(t, cs, nsB, "bob")     // another namespace's editor
	bind(t, nsA, "hookline-replay-editor", nsA, "alice")
	bind(t, nsA, "hookline-deliveries-viewer", nsA, "vic")
	bind(t, nsB, "hookline-replay-editor", nsB, "bob")
	testPath := func(ns, name string) string { return "/v1/namespaces/" + ns + "/webhooks/" + name + "/test" }
	pathA := testPath(nsA, "orders")

	// Bob: the 404 of a webhook that does not exist. Vic sees the webhook: 403.
	api.eventually(g, func() int {
		code, _ := api.post(t, bob, pathA, deliveries.TestRequest{Event: "AGREEMENT_ALL"})
		return code
	}).WithTimeout(20 * time.Second).Should(Equal(http.StatusNotFound))
	api.eventually(g, func() int {
		code, _ := api.post(t, vic, pathA, deliveries.TestRequest{Event: "AGREEMENT_ALL"})
		return code
	}).WithTimeout(20 * time.Second).Should(Equal(http.StatusForbidden))
	// An event the webhook does not subscribe to (on audit): refused, and it queues nothing, so it
	// uses up neither audit's interval nor the namespace's budget.
	var code int
	var body []byte
	api.eventually(g, func() int {
		code, body = api.post(t, alice, testPath(nsA, "audit"), deliveries.TestRequest{Event: "WIDGET_CREATED"})
		return code
	}).WithTimeout(20 * time.Second).Should(Equal(http.StatusBadRequest))
	g.Expect(string(body)).To(ContainSubstring("choose one of the webhook's events"))

	// Alice's test of orders.
	code, body = api.post(t, alice, pathA, deliveries.TestRequest{Event: "AGREEMENT_ALL"})
	g.Expect(code).To(Equal(http.StatusAccepted), string(body))
	var receipt deliveries.TestReceipt
	g.Expect(json.Unmarshal(body, &receipt)).To(Succeed())
	g.Expect(receipt.EventID).To(HavePrefix(deliveries.TestEventPrefix))
	g.Expect(receipt.Event).To(Equal("AGREEMENT_ACTION_COMPLETED"))
	code, body = api.post(t, alice, pathA, deliveries.TestRequest{Event: "AGREEMENT_ALL"})
	g.Expect(code).To(Equal(http.StatusTooManyRequests), string(body))
	g.Expect(string(body)).To(ContainSubstring("per webhook"))

	// Audit's test, after its refused one: the namespace's second of two per minute. A third
	// webhook of the namespace then finds the budget spent, whoever asks; the other namespace's
	// budget is its own (below, bob's test is refused only by RBAC).
	code, body = api.post(t, alice, testPath(nsA, "audit"), deliveries.TestRequest{Event: "AGREEMENT_ALL"})
	g.Expect(code).To(Equal(http.StatusAccepted), string(body))
	s.activeWebhook(t, nsA, "third", accountSpec(rc3.URL, "AGREEMENT_ALL"))
	api.eventually(g, func() int {
		code, body = api.post(t, alice, testPath(nsA, "third"), deliveries.TestRequest{Event: "AGREEMENT_ALL"})
		return code
	}).WithTimeout(20*time.Second).Should(Equal(http.StatusTooManyRequests), "the namespace's budget")
	g.Expect(string(body)).To(ContainSubstring("test notifications per minute"))
	g.Eventually(func() int { return len(rc2.got()) }).WithTimeout(10*time.Second).Should(Equal(1), "audit's test")
	g.Consistently(func() int { return len(rc3.got()) }).WithTimeout(300 * time.Millisecond).Should(BeZero())

	g.Eventually(func() int { return len(rc1.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	var sent map[string]any
	g.Expect(json.Unmarshal(rc1.got()[0].Body, &sent)).To(Succeed())
	g.Expect(sent["webhookNotificationId"]).To(Equal(receipt.NotificationID))
	g.Expect(sent["event"]).To(Equal("AGREEMENT_ACTION_COMPLETED"))
	g.Expect(sent["accountId"]).To(Equal("acc-test-a"))
	g.Expect(sent["webhookName"]).To(Equal("orders"))

	// A real event after it reaches every webhook of the account (audit after its own test, third
	// with nothing before it), and the other account nothing at all.
	s.mustPost(t, event("evt-after-test", "acc-test-a"))
	g.Eventually(func() int { return len(rc2.got()) }).WithTimeout(10 * time.Second).Should(Equal(2))
	g.Eventually(func() int { return len(rc1.got()) }).WithTimeout(10 * time.Second).Should(Equal(2))
	g.Expect(string(rc2.got()[1].Body)).To(ContainSubstring("agr-evt-after-test"))
	g.Eventually(func() int { return len(rc3.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	g.Expect(rcB.got()).To(BeEmpty())

	// The log shows it, delivered, under its test event id.
	var page deliveries.NotificationList
	api.eventually(g, func(g Gomega) {
		api.getJSON(t, alice, notificationsPath(nsA, "orders")+"?eventId="+receipt.EventID, http.StatusOK, &page)
		g.Expect(page.Items).To(HaveLen(1))
		g.Expect(page.Items[0].State).To(Equal(deliveries.StateDelivered))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Expect(page.Items[0].NotificationID).To(Equal(receipt.NotificationID))

	// A recovery of delivered notifications by time selects the real event, not the test.
	since := metav1.NewTime(time.Now().Add(-time.Hour))
	rp := createReplay(t, nsA, "recover-all", hooklinev1.WebhookReplaySpec{WebhookName: "orders", Since: &since,
		States: []hooklinev1.ReplayState{hooklinev1.ReplayDelivered}})
	got := waitCompleted(t, rp, 20*time.Second)
	g.Expect(got.Status.Matched).To(Equal(int64(1)))
	g.Eventually(func() int { return len(rc1.got()) }).WithTimeout(10 * time.Second).Should(Equal(3))
	g.Expect(string(rc1.got()[2].Body)).To(ContainSubstring("agr-evt-after-test"))

	// A producer cannot post an event with a test id.
	ev := strings.Replace(string(event("x", "acc-test-a")), `"id":"x"`, `"id":"`+deliveries.TestEventPrefix+`forged"`, 1)
	code, body = s.postWith(t, testToken, []byte(ev))
	g.Expect(code).To(Equal(http.StatusBadRequest), string(body))
	g.Expect(string(body)).To(ContainSubstring("reserved for test notifications"))
}
