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
	"testing"
	"time"

	"github.com/hookline/hookline/internal/testsupport"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/internal/deliveries"
)

// timerLateness is how late the fake clock is advanced past each due time.
const timerLateness = 500 * time.Millisecond

// acrobatSchedule is Acrobat Sign's retry schedule (docs/reliability.md): retry times in minutes after the first failure.
var acrobatSchedule = []int{1, 3, 7, 15, 31, 63, 127, 255, 511, 1023, 1743, 2463, 3183, 3903, 4320}

// runFailingSchedule drives a webhook whose receiver always fails through the whole retry schedule
// on a fake clock that starts at start, and checks every attempt time and the drop at 72 hours.
// prepare, when not nil, adjusts the dispatcher's configuration and the webhook's spec.
func runFailingSchedule(t *testing.T, account string, start time.Time, prepare func(*dispatcher.Config, *hooklinev1.WebhookSpec)) (*stack, *receiver, *hooklinev1.Webhook, *clocktesting.FakeClock) {
	g := NewWithT(t)
	clk := clocktesting.NewFakeClock(start)
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	rc.now = clk.Now
	rc.set(fail500)
	spec := accountSpec(rc.URL)
	o := stackOptions{namespaces: []string{ns}, clock: clk}
	if prepare != nil {
		o.mutate = func(c *dispatcher.Config) { prepare(c, &spec) }
	}
	s := startStack(t, o)
	wh := s.activeWebhook(t, ns, "failing", spec)

	s.mustPost(t, event("sched-1", account))
	uid := string(wh.UID)
	for k := 0; k <= len(acrobatSchedule); k++ {
		// Attempt k (0 = the first) arrives and is settled as a failure.
		g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10*time.Second).Should(Equal(k+1), func() string {
			st, ok := s.app.Engine.Status(uid)
			return fmt.Sprintf("attempt %d; routes=%d engine=%v %+v", k, s.app.Table.Len(), ok, st)
		})
		// The attempt is settled: a failure counted, or after the last retry a drop.
		g.Eventually(func() bool {
			st, _ := s.app.Engine.Status(uid)
			if k == len(acrobatSchedule) {
				return st.Dropped == 1
			}
			return st.ConsecutiveFailures == int64(k+1)
		}).WithTimeout(10*time.Second).Should(BeTrue(), "attempt %d not settled", k)
		if k < len(acrobatSchedule) {
			// The status shows each failure before time moves on (as it would with minutes
			// between attempts), so that what reacts to the status sees every step.
			g.Eventually(func(g Gomega) {
				g.Expect(deref(getWebhook(g, wh).Status.ConsecutiveFailures)).To(BeEquivalentTo(k + 1))
			}).WithTimeout(10*time.Second).WithPolling(20*time.Millisecond).Should(Succeed(), "attempt %d not reported", k)
			// Timers fire a little late in real life: advance past each due time, the last
			// (clamped to the 72-hour mark) included.
			clk.SetTime(start.Add(time.Duration(acrobatSchedule[k])*time.Minute + timerLateness))
		}
	}
	posts := rc.got()
	g.Expect(posts).To(HaveLen(16), "one attempt and 15 retries")
	g.Expect(posts[0].At).To(Equal(start))
	for i, minutes := range acrobatSchedule {
		g.Expect(posts[i+1].At.Sub(start)).To(BeNumerically("~", time.Duration(minutes)*time.Minute, time.Second), "retry %d", i+1)
	}
	// Receivers dedupe on webhookNotificationId: it is the same on every attempt.
	ids := map[string]bool{}
	for _, p := range posts {
		var body map[string]any
		g.Expect(json.Unmarshal(p.Body, &body)).To(Succeed())
		ids[body["webhookNotificationId"].(string)] = true
	}
	g.Expect(ids).To(HaveLen(1))

	// No attempt after the drop, however long we wait.
	clk.SetTime(start.Add(100 * time.Hour))
	g.Consistently(func() int { return len(rc.got()) }).WithTimeout(300 * time.Millisecond).Should(Equal(16))
	g.Eventually(func(g Gomega) {
		got := getWebhook(g, wh)
		g.Expect(deref(got.Status.DroppedTotal)).To(BeEquivalentTo(1))
		g.Expect(deref(got.Status.PendingNotifications)).To(BeEquivalentTo(0))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	return s, rc, wh, clk
}

func TestRetryScheduleAndDropWithoutAutoDisable(t *testing.T) {
	g := NewWithT(t)
	// The fake clock starts now: at the drop the last verification is 72 hours old, less than 7 days.
	s, rc, wh, _ := runFailingSchedule(t, "acc-sched-keep", time.Now(), nil)
	got := getWebhook(g, wh)
	g.Expect(condition(got, hooklinev1.ConditionAutoDisabled).Status).To(Equal(metav1.ConditionFalse))
	g.Expect(got.Status.State).To(Equal(hooklinev1.ObservedActive))

	// Still Active: the next event is delivered once the receiver recovers.
	rc.set(echoOK)
	s.mustPost(t, event("sched-2", "acc-sched-keep"))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(17))
	g.Eventually(func(g Gomega) {
		got := getWebhook(g, wh)
		g.Expect(deref(got.Status.DeliveredTotal)).To(BeEquivalentTo(1))
		g.Expect(deref(got.Status.ConsecutiveFailures)).To(BeEquivalentTo(0))
		g.Expect(got.Status.FailingSince).To(BeNil())
	}).WithTimeout(10 * time.Second).Should(Succeed())
}

func TestAutoDisableLostEventsAndDeclarativeReactivation(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	// The fake clock starts 5 days ahead: at the drop (72 h later) the last verification — the only
	// success so far — is 8 days old, so the webhook is auto-disabled.
	s, rc, wh, _ := runFailingSchedule(t, "acc-sched-disable", time.Now().Add(5*24*time.Hour), func(c *dispatcher.Config, _ *hooklinev1.WebhookSpec) {
		c.DeliveryLog.Enabled = true
	})
	g.Eventually(func(g Gomega) {
		got := getWebhook(g, wh)
		g.Expect(condition(got, hooklinev1.ConditionAutoDisabled).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(condition(got, hooklinev1.ConditionDelivering).Status).To(Equal(metav1.ConditionFalse))
		g.Expect(got.Status.State).To(Equal(hooklinev1.ObservedDisabled), "the manager shows auto-disabled webhooks as Disabled")
		g.Expect(condition(got, hooklinev1.ConditionReady).Reason).To(Equal(hooklinev1.ReasonAutoDisabled))
	}).WithTimeout(10 * time.Second).Should(Succeed())

	// Events while disabled are lost, and counted.
	rc.set(echoOK)
	s.mustPost(t, event("lost-1", "acc-sched-disable"))
	s.mustPost(t, event("lost-2", "acc-sched-disable"))
	g.Eventually(func(g Gomega) {
		g.Expect(deref(getWebhook(g, wh).Status.DroppedTotal)).To(BeEquivalentTo(3))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Consistently(func() int { return len(rc.got()) }).WithTimeout(300 * time.Millisecond).Should(Equal(16))
	expectEvent(t, wh, "Warning", hooklinev1.ReasonAutoDisabled)
	g.Expect(s.metric(t, "hookline_webhooks_auto_disabled_total")).To(BeEquivalentTo(1))
	g.Expect(s.metric(t, "hookline_notifications_lost_total")).To(BeEquivalentTo(2))
	g.Expect(s.metric(t, "hookline_notifications_dropped_total")).To(BeEquivalentTo(1))
	g.Expect(s.metric(t, "hookline_deliveries_total")).To(BeEquivalentTo(16))
	g.Expect(s.metric(t, "hookline_delivery_attempt_duration_seconds")).To(BeEquivalentTo(16))
	g.Expect(s.metric(t, "hookline_webhooks_disabled")).To(BeEquivalentTo(1))
	g.Expect(s.metric(t, "hookline_ingest_events_accepted_total")).To(BeEquivalentTo(3))
	// The delivery log names what was lost: the events routed while disabled.
	g.Eventually(func(g Gomega) {
		list, err := s.app.Log.Notifications(ctx, string(wh.UID), deliveries.Query{States: []deliveries.State{deliveries.StateLost}})
		g.Expect(err).NotTo(HaveOccurred())
		var lost []string
		for _, n := range list.Items {
			lost = append(lost, n.EventID)
		}
		g.Expect(lost).To(ConsistOf("lost-1", "lost-2"))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	dropped, err := s.app.Log.Notifications(ctx, string(wh.UID), deliveries.Query{States: []deliveries.State{deliveries.StateDropped}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dropped.Items).To(HaveLen(1))
	g.Expect(dropped.Items[0].Attempts).To(Equal(16))

	// Reactivation is declarative: an annotation committed to Git. It verifies the endpoint again.
	gets := rc.gets.Load()
	cur := getWebhook(g, wh)
	base := cur.DeepCopy()
	if cur.Annotations == nil {
		cur.Annotations = map[string]string{}
	}
	cur.Annotations[hooklinev1.ReactivateAnnotation] = "2026-11-25-ticket-42"
	g.Expect(k8s.Patch(ctx, cur, client.MergeFrom(base))).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getWebhook(g, wh)
		g.Expect(got.Status.State).To(Equal(hooklinev1.ObservedActive))
		g.Expect(condition(got, hooklinev1.ConditionAutoDisabled).Status).To(Equal(metav1.ConditionFalse))
		g.Expect(got.Status.LastHandledReactivation).To(Equal("2026-11-25-ticket-42"))
	}).WithTimeout(15 * time.Second).Should(Succeed())
	g.Expect(rc.gets.Load()).To(BeNumerically(">", gets), "reactivation must verify the endpoint again")

	// The manager shows Active once the endpoint is verified again; the dispatcher routes to the
	// webhook once its cache has that verification too (until then an event does not reach it:
	// seen once on a loaded machine).
	s.waitRouted(t, wh)
	s.mustPost(t, event("after-reactivation", "acc-sched-disable"))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(17))
	var body map[string]any
	g.Expect(json.Unmarshal(rc.got()[16].Body, &body)).To(Succeed())
	g.Expect(body["agreement"]).To(HaveKeyWithValue("id", "agr-after-reactivation"))
}

// expectEvent waits for an Event about wh with the given type and reason.
func expectEvent(t *testing.T, wh *hooklinev1.Webhook, eventType, reason string) {
	t.Helper()
	testsupport.ExpectEvent(t, k8s, wh, eventType, reason)
}
