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
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher"
)

// A Webhook set INACTIVE while a replay of its notifications is being queued has nothing of the
// replay queued after INACTIVE cleared its queue (the replay stores its batches under the route's
// hold, as the intake stores an event's notifications): the replay stops, waits with a condition
// saying why, and once the webhook is ACTIVE again queues the rest, sending no notification twice.
// Before, the batches after the first were stored behind the cancellation, kept while INACTIVE and
// sent at the reactivation.
func TestAWebhookSetInactiveWhileAReplayQueuesKeepsNothingOfIt(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account = "acc-replay-fence"
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: func(c *dispatcher.Config) {
		fastReplays(c)
		c.ReplayBatch = 1
	}})
	wh := s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
	uid := string(wh.UID)
	const n = 4
	for i := range n {
		s.mustPost(t, event(fmt.Sprintf("fence-%d", i), account))
	}
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(n))
	var ids []hooklinev1.NotificationID
	for _, p := range rc.decoded(t) {
		ids = append(ids, hooklinev1.NotificationID(p.notificationID))
	}

	queuedNotes := func() uint64 {
		counts, err := s.app.Store.Queues(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		return counts[uid]
	}
	var batches atomic.Int32
	dispatcher.BeforeReplayBatch(s.app.Replayer, func() {
		if batches.Add(1) != 2 {
			return
		}
		// Between the first batch and the second: INACTIVE, seen and acted on by the dispatcher.
		setState(t, wh, hooklinev1.StateInactive)
		g.Eventually(func(g Gomega) {
			g.Expect(getWebhook(g, wh).Status.State).To(Equal(hooklinev1.ObservedInactive))
			_, release, routed := s.app.Table.Hold(uid)
			release() // a hold granted meanwhile would keep the syncer's withdrawal waiting
			g.Expect(routed).To(BeFalse())
		}).WithTimeout(10 * time.Second).Should(Succeed())
	})
	rp := createReplay(t, ns, "again", hooklinev1.WebhookReplaySpec{WebhookName: "orders", NotificationIDs: ids})
	g.Eventually(func(g Gomega) {
		c := meta.FindStatusCondition(getReplay(g, rp).Status.Conditions, hooklinev1.ConditionReconciling)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(hooklinev1.ReasonWebhookNotActive))
	}).WithTimeout(20 * time.Second).Should(Succeed())
	// The first batch's note may be in flight as the queue is cleared: it leaves once settled.
	g.Eventually(queuedNotes).WithTimeout(5 * time.Second).Should(BeZero())
	g.Consistently(queuedNotes).WithTimeout(time.Second).Should(BeZero(), "nothing of the replay queued after INACTIVE cleared the queue")

	setState(t, wh, hooklinev1.StateActive)
	got := waitCompleted(t, rp, 30*time.Second)
	g.Expect(got.Status.Queued).To(BeEquivalentTo(n), "%+v", got.Status)
	seen := map[string]int{}
	for _, p := range rc.decoded(t) {
		seen[p.notificationID]++
	}
	for _, id := range ids {
		g.Expect(seen[string(id)]).To(BeNumerically("<=", 2), "sent at most once by the replay: %v", seen)
	}
	g.Expect(len(rc.got())).To(BeNumerically(">=", 2*n-1), "the first batch may have gone before INACTIVE; every other notification is sent again after it")
}
