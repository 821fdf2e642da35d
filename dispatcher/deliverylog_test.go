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
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/dispatcher/payload"
	"github.com/hookline/hookline/internal/deliveries"
	"github.com/hookline/hookline/internal/verify"
)

// withDeliveryLog turns the delivery log on, with retries fast enough to watch (base, cap).
func withDeliveryLog(base, retryCap time.Duration) func(*dispatcher.Config) {
	return func(c *dispatcher.Config) {
		c.DeliveryLog.Enabled = true
		c.Engine.Policy.RetryBase, c.Engine.Policy.RetryCap = base, retryCap
	}
}

// notificationID is the webhookNotificationId of a body the receiver got.
func notificationID(g Gomega, d delivery) string {
	var body struct {
		ID string `json:"webhookNotificationId"`
	}
	g.Expect(json.Unmarshal(d.Body, &body)).To(Succeed())
	g.Expect(body.ID).NotTo(BeEmpty())
	return body.ID
}

// attempts reads one notification's records from the stack's log.
func (s *stack) attempts(g Gomega, wh *hooklinev1.Webhook, id string) deliveries.AttemptList {
	l, err := s.app.Log.Attempts(context.Background(), string(wh.UID), id)
	g.Expect(err).NotTo(HaveOccurred())
	return l
}

// A failing receiver's attempts are on record with its status, the reason and what it answered —
// markup and line breaks kept as text — and the success that follows makes the notification
// delivered.
func TestDeliveryLogRecordsAFailingReceiversAttempts(t *testing.T) {
	g := NewWithT(t)
	const account = "acc-log-attempts"
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	var failures atomic.Int32
	rc.set(func(w http.ResponseWriter, r *http.Request) {
		if failures.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "<h1>Maintenance</h1>\r\nback at 10:00\x1b[0m")
			return
		}
		echoOK(w, r)
	})
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: withDeliveryLog(50*time.Millisecond, 100*time.Millisecond)})
	g.Expect(s.app.Log).NotTo(BeNil())
	wh := s.activeWebhook(t, ns, "logged", accountSpec(rc.URL))

	s.mustPost(t, event("log-1", account))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(3))
	id := notificationID(g, rc.got()[0])

	var list deliveries.AttemptList
	g.Eventually(func(g Gomega) {
		list = s.attempts(g, wh, id)
		g.Expect(list.Records).To(HaveLen(3))
		g.Expect(list.Notification.State).To(Equal(deliveries.StateDelivered))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Expect(list.Notification.Attempts).To(Equal(3))
	g.Expect(list.Notification.EventID).To(Equal("log-1"))
	for i, r := range list.Records {
		g.Expect(r.Kind).To(Equal(deliveries.KindAttempt))
		g.Expect(r.Attempt).To(Equal(i + 1))
		g.Expect(r.NotificationID).To(Equal(id))
		g.Expect(r.WebhookUID).To(Equal(string(wh.UID)))
		g.Expect(r.Namespace).To(Equal(ns))
		g.Expect(r.Name).To(Equal("logged"))
		g.Expect(r.EventID).To(Equal("log-1"))
		g.Expect(r.EventName).To(Equal("AGREEMENT_ACTION_COMPLETED"))
		g.Expect(r.BytesSent).To(Equal(len(rc.got()[i].Body)))
		if i < 2 {
			g.Expect(r.State).To(Equal(deliveries.StateRetrying))
			g.Expect(r.HTTPStatus).To(Equal(http.StatusServiceUnavailable))
			g.Expect(r.Reason).To(Equal(verify.ReasonNonSuccessStatus))
			g.Expect(r.Response).To(Equal(`<h1>Maintenance</h1>\r\nback at 10:00\u001b[0m`))
		}
	}
	last := list.Records[2]
	g.Expect(last.State).To(Equal(deliveries.StateDelivered))
	g.Expect(last.Reason).To(Equal(deliver.ReasonDelivered))
	g.Expect(last.HTTPStatus).To(Equal(http.StatusOK))
}

// Setting a webhook INACTIVE cancels what it has queued, and each notification says so.
func TestDeliveryLogRecordsCancellationOnInactive(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account = "acc-log-cancel"
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	rc.set(fail500)
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: withDeliveryLog(time.Hour, time.Hour)})
	wh := s.activeWebhook(t, ns, "cancelled", accountSpec(rc.URL))

	s.mustPost(t, event("cancel-1", account))
	s.mustPost(t, event("cancel-2", account))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	first := notificationID(g, rc.got()[0])
	g.Eventually(func(g Gomega) {
		st, _ := s.app.Engine.Status(string(wh.UID))
		g.Expect(st.Pending).To(BeEquivalentTo(2))
		g.Expect(st.ConsecutiveFailures).To(BeEquivalentTo(1))
	}).WithTimeout(10 * time.Second).Should(Succeed())

	cur := getWebhook(g, wh)
	base := cur.DeepCopy()
	cur.Spec.State = hooklinev1.StateInactive
	g.Expect(k8s.Patch(ctx, cur, client.MergeFrom(base))).To(Succeed())

	g.Eventually(func(g Gomega) {
		list, err := s.app.Log.Notifications(ctx, string(wh.UID), deliveries.Query{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(list.Items).To(HaveLen(2))
		for _, n := range list.Items {
			g.Expect(n.State).To(Equal(deliveries.StateCancelled), "notification of event %s", n.EventID)
		}
	}).WithTimeout(10 * time.Second).Should(Succeed())
	list := s.attempts(g, wh, first)
	g.Expect(list.Records).To(HaveLen(2))
	g.Expect(list.Records[0].State).To(Equal(deliveries.StateRetrying))
	g.Expect(list.Records[1]).To(beRecord(deliveries.KindCancelled, deliver.ReasonInactive))
}

// beRecord matches a record of kind with reason.
func beRecord(kind deliveries.Kind, reason string) OmegaMatcher {
	return WithTransform(func(r deliveries.Record) string { return string(r.Kind) + "/" + r.Reason }, Equal(string(kind)+"/"+reason))
}

// The records of settled notifications outlive the dispatcher: after a restart on the same data,
// every delivered notification is on record as delivered, and none is both gone from its queue
// and missing from the log.
func TestDeliveryLogSurvivesARestart(t *testing.T) {
	g := NewWithT(t)
	const account = "acc-log-restart"
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	dir := t.TempDir()
	s := startStack(t, stackOptions{namespaces: []string{ns}, dir: dir, mutate: withDeliveryLog(50*time.Millisecond, 100*time.Millisecond)})
	wh := s.activeWebhook(t, ns, "restarted", accountSpec(rc.URL))
	const n = 50
	for i := range n {
		s.mustPost(t, event(fmt.Sprintf("restart-%d", i), account))
	}
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(20 * time.Second).Should(Equal(n))
	// Stopped at once: the last settlements race with the shutdown.
	s.stop()

	s2 := startStack(t, stackOptions{namespaces: []string{ns}, dir: dir, mutate: withDeliveryLog(50*time.Millisecond, 100*time.Millisecond)})
	ids := map[string]bool{}
	g.Eventually(func(g Gomega) {
		for _, d := range rc.got() {
			id := notificationID(g, d)
			if ids[id] {
				continue
			}
			list := s2.attempts(g, wh, id)
			g.Expect(list.Notification.State).To(Equal(deliveries.StateDelivered), "notification %s", id)
			ids[id] = true
		}
	}).WithTimeout(20 * time.Second).Should(Succeed())
	g.Expect(ids).To(HaveLen(n))
}

// Notifications still queued are listed with the webhookNotificationId they will be sent with:
// the log asks the dispatcher which account each webhook is bound to (dispatcher.Accounts).
func TestQueuedNotificationsAreListedWithTheirIDs(t *testing.T) {
	g := NewWithT(t)
	const account = "acc-log-queued"
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	release := make(chan struct{})
	rc.set(func(w http.ResponseWriter, r *http.Request) {
		<-release
		echoOK(w, r)
	})
	t.Cleanup(func() { close(release) })
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: withDeliveryLog(time.Second, 2*time.Second)})
	wh := s.activeWebhook(t, ns, "queued", accountSpec(rc.URL))

	for i := range 3 {
		s.mustPost(t, event(fmt.Sprintf("queued-%d", i), account))
	}
	// The first is held by the receiver; the two behind it wait in the webhook's queue.
	g.Eventually(func() int { return len(rc.got()) }).Should(Equal(1))
	var pending []deliveries.Notification
	g.Eventually(func(g Gomega) {
		list, err := s.app.Log.Notifications(context.Background(), string(wh.UID), deliveries.Query{})
		g.Expect(err).NotTo(HaveOccurred())
		pending = nil
		for _, n := range list.Items {
			if n.State == deliveries.StatePending && n.EventID != "queued-0" {
				pending = append(pending, n)
			}
		}
		g.Expect(pending).To(HaveLen(2))
	}).Should(Succeed())
	for _, n := range pending {
		g.Expect(n.NotificationID).To(Equal(payload.NotificationID(string(wh.UID), account, n.EventID)), n.EventID)
	}
}
