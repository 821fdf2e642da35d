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
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/internal/deliveries"
)

// A notification lost to an auto-disabled webhook is only its record, which a recover replays from:
// the record is stored before the event is acknowledged, as a note is, so that a crash right after
// the 202 loses neither. Before, it waited in the log's writer (here for 5 s) after the 202.
func TestALostNotificationIsOnRecordWhenItsEventIsAcknowledged(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account = "acc-lost-on-record"
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	rc.set(fail500)
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: func(c *dispatcher.Config) {
		autoDisabling(c)
		c.DeliveryLog.Gather = 5 * time.Second
	}})
	wh := s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
	s.mustPost(t, event("before", account))
	g.Eventually(func(g Gomega) {
		g.Expect(getWebhook(g, wh).Status.State).To(Equal(hooklinev1.ObservedDisabled))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	s.mustPost(t, event("lost-1", account))
	var states []deliveries.State
	g.Expect(s.app.Log.Scan(ctx, string(wh.UID), time.Time{}, func(r deliveries.Record) error {
		if r.EventID == "lost-1" {
			states = append(states, r.State)
		}
		return nil
	})).To(Succeed())
	g.Expect(states).To(Equal([]deliveries.State{deliveries.StateLost}), "on record as the 202 came")
}

// An event routed to an auto-disabled webhook and a healthy one, whose notes could not be queued
// (the store without a leader: answered 503), is posted again by its producer: the lost
// notification is on record once, and counted once. It was counted before the others were queued,
// so the retry counted it again (two lost records, two drops for one notification), and a producer
// that gave up after the 503 left a lost record of an event never acknowledged.
func TestALostNotificationIsCountedOnceWhenQueueingFails(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account = "acc-lost-once"
	ns := newNamespace(t, account, "")
	bad, good := newReceiver(t), newReceiver(t)
	bad.set(fail500)
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: autoDisabling})
	disabled := s.activeWebhook(t, ns, "disabled", accountSpec(bad.URL))
	s.activeWebhook(t, ns, "healthy", accountSpec(good.URL))
	s.mustPost(t, event("before", account))
	g.Eventually(func(g Gomega) {
		g.Expect(getWebhook(g, disabled).Status.State).To(Equal(hooklinev1.ObservedDisabled))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	dropped := func() int64 { st, _ := s.app.Engine.Status(string(disabled.UID)); return st.Dropped }
	before := dropped()

	dispatcher.FailEnqueues(s.app, 1)
	code, body := s.postWith(t, testToken, event("lost-once", account))
	g.Expect(code).To(Equal(http.StatusServiceUnavailable), "%s", body)
	s.mustPost(t, event("lost-once", account))
	g.Eventually(func() []string {
		var ids []string
		for _, p := range good.decoded(t) {
			ids = append(ids, p.eventID)
		}
		return ids
	}).WithTimeout(10*time.Second).Should(ContainElement("lost-once"), "the healthy webhook has it")

	var lost int
	g.Expect(s.app.Log.Scan(ctx, string(disabled.UID), time.Time{}, func(r deliveries.Record) error {
		if r.EventID == "lost-once" && r.State == deliveries.StateLost {
			lost++
		}
		return nil
	})).To(Succeed())
	g.Expect(lost).To(Equal(1), "one lost record")
	g.Expect(dropped()-before).To(BeEquivalentTo(1), "counted once")
}
