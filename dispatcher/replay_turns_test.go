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
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/internal/deliveries"
	"github.com/hookline/hookline/internal/testsupport"
)

// metricWith returns the value of the gauge or counter name with label = value.
func (s *stack) metricWith(t *testing.T, name, label, value string) float64 {
	t.Helper()
	families, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetGauge().GetValue() + m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// replaysByState counts the replays of ns by what their status says: started and not finished
// (running), or waiting their turn (Reconciling, reason Queued). One List is one consistent view.
func replaysByState(g Gomega, ns string) (running, queued int, list *hooklinev1.WebhookReplayList) {
	list = &hooklinev1.WebhookReplayList{}
	g.Expect(k8s.List(context.Background(), list, client.InNamespace(ns))).To(Succeed())
	for _, rp := range list.Items {
		c := meta.FindStatusCondition(rp.Status.Conditions, hooklinev1.ConditionReconciling)
		switch {
		case rp.Status.WebhookUID != "" && rp.Status.CompletedAt == nil:
			running++
		case c != nil && c.Reason == hooklinev1.ReasonQueued:
			queued++
		}
	}
	return running, queued, list
}

// waitRunningAtTheCap waits until namespace ns has as many replays running as it may at once, and
// queued waiting their turn.
func waitRunningAtTheCap(t *testing.T, ns string, queued int) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		running, waiting, _ := replaysByState(g, ns)
		g.Expect(running).To(Equal(dispatcher.DefaultReplaysPerNamespace))
		g.Expect(waiting).To(Equal(queued))
	}).WithTimeout(30 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
}

// replayEach creates, as tenant, one WebhookReplay of webhook "orders" in ns for each notification
// rc received, in order, named prefix-00, prefix-01, …
func replayEach(t *testing.T, tenant client.Client, ns, prefix string, rc *receiver) []*hooklinev1.WebhookReplay {
	t.Helper()
	var replays []*hooklinev1.WebhookReplay
	for i, p := range rc.decoded(t) {
		rp := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%02d", prefix, i)},
			Spec: hooklinev1.WebhookReplaySpec{WebhookName: "orders", NotificationIDs: []hooklinev1.NotificationID{hooklinev1.NotificationID(p.notificationID)}}}
		NewWithT(t).Expect(tenant.Create(context.Background(), rp)).To(Succeed())
		replays = append(replays, rp)
	}
	return replays
}

// replaysOf creates, as tenant, n WebhookReplays of notification id of webhook "orders" in ns,
// named prefix-00, prefix-01, …
func replaysOf(t *testing.T, tenant client.Client, ns, prefix string, id hooklinev1.NotificationID, n int) []*hooklinev1.WebhookReplay {
	t.Helper()
	var replays []*hooklinev1.WebhookReplay
	for i := range n {
		rp := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%02d", prefix, i)},
			Spec: hooklinev1.WebhookReplaySpec{WebhookName: "orders", NotificationIDs: []hooklinev1.NotificationID{id}}}
		NewWithT(t).Expect(tenant.Create(context.Background(), rp)).To(Succeed())
		replays = append(replays, rp)
	}
	return replays
}

// retryingForAnHour retries a failing notification every 50–100 ms and neither drops it nor
// disables its webhook within a test.
var retryingForAnHour = deliver.Policy{RetryBase: 50 * time.Millisecond, RetryCap: 100 * time.Millisecond, MaxRetries: 1000,
	DropAfter: time.Hour, DisableAfter: time.Hour}

// deliveredThenFailing starts a stack with fast replays, whose failed attempts are retried within
// 100 ms and never dropped, and an Active webhook "orders" in a new namespace of account; n
// events are delivered to it, then its receiver fails with 500. more changes the configuration
// further.
func deliveredThenFailing(t *testing.T, account string, n int, more ...func(*dispatcher.Config)) (*stack, string, *receiver, *hooklinev1.Webhook) {
	t.Helper()
	s, ns, rc, wh := stackWithWebhook(t, account, func(c *dispatcher.Config) {
		fastReplays(c)
		c.Engine.Policy = retryingForAnHour
		for _, m := range more {
			m(c)
		}
	})
	for i := range n {
		s.mustPost(t, event(fmt.Sprintf("w-%d", i), account))
	}
	NewWithT(t).Eventually(func() int { return len(rc.got()) }).WithTimeout(20 * time.Second).Should(Equal(n))
	rc.set(fail500)
	return s, ns, rc, wh
}

// A tenant holds every right in its namespace, the replays' status subresource included. It writes
// "started" (status.webhookUID and startedAt) into the status of replays that wait their turn, and
// into one the webhook's uid alone: none of them runs before its turn. Before, each went straight to
// selecting (the status was taken as a previous run's start), so that a tenant could have hundreds
// hold a selection at once in the dispatcher every tenant shares, and the one without a start
// time panicked at each reconcile and never completed.
func TestForgedReplayStatusWaitsItsTurn(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const n = 7
	// The receiver fails once they are delivered: the replays that start keep running.
	s, ns, rc, wh := deliveredThenFailing(t, "acc-replay-forged", n)
	tenant := tenantClient(t, ns, "tenant-"+ns)
	replays := replayEach(t, tenant, ns, "forged", rc)
	waitRunningAtTheCap(t, ns, n-dispatcher.DefaultReplaysPerNamespace)

	// The tenant writes "started" into the status of every one that waits.
	_, _, list := replaysByState(g, ns)
	forged := 0
	for i := range list.Items {
		cur := &list.Items[i]
		if c := meta.FindStatusCondition(cur.Status.Conditions, hooklinev1.ConditionReconciling); c == nil || c.Reason != hooklinev1.ReasonQueued {
			continue
		}
		base := cur.DeepCopy()
		cur.Status.WebhookUID = string(wh.UID)
		if forged++; forged < n-dispatcher.DefaultReplaysPerNamespace {
			now := metav1.Now()
			cur.Status.StartedAt = &now
		}
		g.Expect(tenant.Status().Patch(ctx, cur, client.MergeFrom(base))).To(Succeed(), cur.Name)
	}
	g.Expect(forged).To(Equal(n - dispatcher.DefaultReplaysPerNamespace))

	// Each is looked at again every 100 ms (its poll): for twenty polls, no more than the cap run.
	g.Consistently(func() int { return dispatcher.PeakReplays(s.app.Replayer, ns) }).
		WithTimeout(2 * time.Second).WithPolling(50 * time.Millisecond).Should(Equal(dispatcher.DefaultReplaysPerNamespace))

	// The receiver recovers: every replay completes, the forged ones too, never more than the cap at once.
	rc.set(echoOK)
	for _, rp := range replays {
		g.Expect(waitCompleted(t, rp, time.Minute).Status.Delivered).To(BeEquivalentTo(1), rp.Name)
	}
	g.Expect(dispatcher.PeakReplays(s.app.Replayer, ns)).To(Equal(dispatcher.DefaultReplaysPerNamespace))
}

// A tenant writes "completed" into the status of its running replays, whose notifications are
// still being sent: they keep their turns, and the replays waiting behind them wait on. Before,
// the dispatcher took the status at its word and gave the turns up, so that a tenant could have
// any number of replays' notifications queued at once by finishing each by hand. Once their
// deliveries succeed, the dispatcher writes its own status back, and every replay completes.
func TestAReplayFinishedByHandKeepsItsTurn(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const n = 4
	s, ns, rc, _ := deliveredThenFailing(t, "acc-replay-finished", n)
	tenant := tenantClient(t, ns, "tenant-"+ns)
	replays := replayEach(t, tenant, ns, "finished", rc)
	waitRunningAtTheCap(t, ns, n-dispatcher.DefaultReplaysPerNamespace)

	_, _, list := replaysByState(g, ns)
	var waiting []string
	for i := range list.Items {
		cur := &list.Items[i]
		if c := meta.FindStatusCondition(cur.Status.Conditions, hooklinev1.ConditionReconciling); c != nil && c.Reason == hooklinev1.ReasonQueued {
			waiting = append(waiting, cur.Name)
			continue
		}
		base := cur.DeepCopy()
		now := metav1.Now()
		cur.Status.CompletedAt = &now
		meta.SetStatusCondition(&cur.Status.Conditions, metav1.Condition{Type: hooklinev1.ConditionReady, Status: metav1.ConditionTrue, Reason: hooklinev1.ReasonCompleted, Message: "forged"})
		meta.SetStatusCondition(&cur.Status.Conditions, metav1.Condition{Type: hooklinev1.ConditionReconciling, Status: metav1.ConditionFalse, Reason: hooklinev1.ReasonCompleted, Message: "forged"})
		g.Expect(tenant.Status().Patch(ctx, cur, client.MergeFrom(base))).To(Succeed(), cur.Name)
	}
	g.Expect(waiting).To(HaveLen(n - dispatcher.DefaultReplaysPerNamespace))

	// Each is looked at again every 100 ms (its poll): for twenty polls, the waiting ones wait.
	g.Consistently(func(g Gomega) {
		for _, name := range waiting {
			got := &hooklinev1.WebhookReplay{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, got)).To(Succeed())
			c := meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionReconciling)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(hooklinev1.ReasonQueued), name)
		}
	}).WithTimeout(2 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())

	rc.set(echoOK)
	for _, rp := range replays {
		got := waitCompleted(t, rp, time.Minute)
		g.Expect(got.Status.Delivered).To(BeEquivalentTo(1), rp.Name)
		g.Expect(meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionReady).Message).NotTo(Equal("forged"), rp.Name)
	}
	g.Expect(dispatcher.PeakReplays(s.app.Replayer, ns)).To(Equal(dispatcher.DefaultReplaysPerNamespace))
}

// A tenant writes a lower count of what a running replay queued (status.queued 0) into its status:
// the replay does not complete on it, nor free its turn while what it queued is still being sent.
func TestAReplayWhoseQueuedCountIsForgedKeepsItsTurn(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const n = 4
	s, ns, rc, _ := deliveredThenFailing(t, "acc-replay-count", n)
	tenant := tenantClient(t, ns, "tenant-"+ns)
	replays := replayEach(t, tenant, ns, "count", rc)
	waitRunningAtTheCap(t, ns, n-dispatcher.DefaultReplaysPerNamespace)
	var running []string
	g.Eventually(func(g Gomega) {
		running = nil
		_, _, list := replaysByState(g, ns)
		for _, rp := range list.Items {
			if c := meta.FindStatusCondition(rp.Status.Conditions, hooklinev1.ConditionReconciling); c != nil && c.Reason == hooklinev1.ReasonDelivering {
				g.Expect(rp.Status.Queued).To(BeEquivalentTo(1))
				running = append(running, rp.Name)
			}
		}
		g.Expect(running).To(HaveLen(dispatcher.DefaultReplaysPerNamespace))
	}).WithTimeout(30 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	for _, name := range running {
		cur := &hooklinev1.WebhookReplay{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cur)).To(Succeed())
		base := cur.DeepCopy()
		cur.Status.Queued, cur.Status.Matched = 0, 0
		g.Expect(tenant.Status().Patch(ctx, cur, client.MergeFrom(base))).To(Succeed(), name)
	}

	g.Consistently(func(g Gomega) {
		for _, name := range running {
			got := &hooklinev1.WebhookReplay{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, got)).To(Succeed())
			g.Expect(got.Status.CompletedAt).To(BeNil(), name)
		}
		runningNow, waiting, _ := replaysByState(g, ns)
		g.Expect(runningNow).To(Equal(dispatcher.DefaultReplaysPerNamespace))
		g.Expect(waiting).To(Equal(n - dispatcher.DefaultReplaysPerNamespace))
	}).WithTimeout(2 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())

	rc.set(echoOK)
	for _, rp := range replays {
		got := waitCompleted(t, rp, time.Minute)
		g.Expect(got.Status.Queued).To(BeEquivalentTo(1), rp.Name)
		g.Expect(got.Status.Delivered).To(BeEquivalentTo(1), rp.Name)
	}
	g.Expect(dispatcher.PeakReplays(s.app.Replayer, ns)).To(Equal(dispatcher.DefaultReplaysPerNamespace))
}

// After a restart no dispatcher has written a running replay's status yet: how many it queued is
// counted from the log (its "queued again" records, read from its creation), not taken from the
// status, which the tenant may write at any time: here it moves the start an hour ahead while no
// dispatcher runs (so that a read from the start would find nothing), and writes queued 0 once the
// restarted dispatcher has counted (and, finding the status right, written nothing). Before, the
// replay completed at once and freed its turn while what it queued was still being sent.
func TestAReplayWhoseQueuedCountIsForgedAcrossARestartKeepsItsTurn(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account, n = "acc-replay-count-restart", 3
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	opts := stackOptions{namespaces: []string{ns}, dir: t.TempDir(), mutate: func(c *dispatcher.Config) {
		fastReplays(c)
		c.Engine.Policy = retryingForAnHour
	}}
	s := startStack(t, opts)
	wh := s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
	for i := range n {
		s.mustPost(t, event(fmt.Sprintf("w-%d", i), account))
	}
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(20 * time.Second).Should(Equal(n))
	rc.set(fail500)
	tenant := tenantClient(t, ns, "tenant-"+ns)
	rp := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "all"},
		Spec: hooklinev1.WebhookReplaySpec{WebhookName: "orders"}}
	for _, p := range rc.decoded(t) {
		rp.Spec.NotificationIDs = append(rp.Spec.NotificationIDs, hooklinev1.NotificationID(p.notificationID))
	}
	g.Expect(tenant.Create(ctx, rp)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getReplay(g, rp)
		c := meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionReconciling)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(hooklinev1.ReasonDelivering))
		g.Expect(got.Status.Queued).To(BeEquivalentTo(n))
	}).WithTimeout(30 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	s.stop()

	forge := func(f func(*hooklinev1.WebhookReplayStatus)) {
		cur := getReplay(g, rp)
		base := cur.DeepCopy()
		f(&cur.Status)
		g.Expect(tenant.Status().Patch(ctx, cur, client.MergeFrom(base))).To(Succeed())
	}
	forge(func(st *hooklinev1.WebhookReplayStatus) {
		later := metav1.NewTime(time.Now().Add(time.Hour))
		st.StartedAt = &later
	})
	s2 := startStack(t, opts)
	notCompleted := func() {
		g.Consistently(func(g Gomega) {
			g.Expect(getReplay(g, rp).Status.CompletedAt).To(BeNil())
		}).WithTimeout(2 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	}
	notCompleted()
	g.Eventually(func() bool { return dispatcher.ReplayCounted(s2.app.Replayer, string(wh.UID), rp) }).
		WithTimeout(30*time.Second).Should(BeTrue(), "the restarted dispatcher counted the replay from the log")
	forge(func(st *hooklinev1.WebhookReplayStatus) { st.Queued, st.Matched = 0, 0 })
	notCompleted()

	rc.set(echoOK)
	got := waitCompleted(t, rp, time.Minute)
	g.Expect(got.Status.Queued).To(BeEquivalentTo(n))
	g.Expect(got.Status.Delivered).To(BeEquivalentTo(n))
}

// A tenant writes "started" into the status of replays waiting their turn, and deletes each as
// soon as it had its turn. A replay whose status says it started scans its webhook's whole queue
// (which may hold millions of notes) for what a previous run queued; before, it scanned before
// its namespace's budget of log reads was charged, so that the tenant had the queue walked once
// per replay it created. Now the scan is paid from that budget, and a replay past it waits, saying
// until when.
func TestForgedStartedReplaysScanTheQueueOnlyWithinTheReadBudget(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const blockers, forgedN, burst = 2, 5, 3
	// The receiver fails once both are delivered: the blockers' replays keep running, holding the
	// namespace's two turns while the forged replays are queued behind them.
	s, ns, rc, wh := deliveredThenFailing(t, "acc-replay-scan", blockers, func(c *dispatcher.Config) {
		// Nothing refills while the test runs.
		c.ReplayLogReadBurst, c.ReplayLogReadsPerMinute = burst, 0.01
	})
	tenant := tenantClient(t, ns, "tenant-"+ns)
	blocking := replayEach(t, tenant, ns, "blocker", rc)
	g.Eventually(func(g Gomega) {
		running, _, _ := replaysByState(g, ns)
		g.Expect(running).To(Equal(blockers))
	}).WithTimeout(30 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())

	id := hooklinev1.NotificationID(rc.decoded(t)[0].notificationID)
	forged := replaysOf(t, tenant, ns, "forged", id, forgedN)
	reason := func(g Gomega, rp *hooklinev1.WebhookReplay) (string, string) {
		c := meta.FindStatusCondition(getReplay(g, rp).Status.Conditions, hooklinev1.ConditionReconciling)
		g.Expect(c).NotTo(BeNil(), rp.Name)
		return c.Reason, c.Message
	}
	for _, rp := range forged {
		g.Eventually(func(g Gomega) {
			r, _ := reason(g, rp)
			g.Expect(r).To(Equal(hooklinev1.ReasonQueued), rp.Name)
		}).WithTimeout(20 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
		cur := getReplay(g, rp)
		base := cur.DeepCopy()
		now := metav1.Now()
		cur.Status.WebhookUID, cur.Status.StartedAt = string(wh.UID), &now
		g.Expect(tenant.Status().Patch(ctx, cur, client.MergeFrom(base))).To(Succeed(), rp.Name)
	}
	scansBefore := dispatcher.QueueScans(s.app.Replayer)

	// The blockers go: the forged replays have their turns, two at a time, and each is deleted
	// once it had its turn (it left Queued).
	for _, rp := range blocking {
		g.Expect(tenant.Delete(ctx, rp)).To(Succeed())
	}
	held := 0
	for _, rp := range forged {
		var msg string
		g.Eventually(func(g Gomega) {
			var r string
			r, msg = reason(g, rp)
			g.Expect(r).NotTo(Equal(hooklinev1.ReasonQueued), rp.Name)
		}).WithTimeout(30 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
		if strings.Contains(msg, "has spent its budget of delivery log reads") {
			held++
		}
		g.Expect(tenant.Delete(ctx, rp)).To(Succeed())
	}
	scans := dispatcher.QueueScans(s.app.Replayer) - scansBefore
	g.Expect(scans).To(BeNumerically(">", 0), "no forged replay scanned its queue: the test shows nothing")
	g.Expect(scans).To(BeNumerically("<=", burst), "the queue was scanned once per forged replay, past the namespace's budget")
	g.Expect(held).To(BeNumerically(">=", forgedN-burst), "the replays past the budget say so")
}

// A tenant allowed to create WebhookReplays in its namespace floods it with 30 of them: at most
// --replay-max-per-namespace (2) run at once there, the others wait with Reconciling=True, reason
// Queued, saying why (not how many are ahead: that changed each waiting status at every start), and
// start in creation order; another namespace's
// replay runs meanwhile and its webhook's ordinary deliveries go on. The replays' metrics count
// them.
func TestReplayFloodRunsAtMostTheCapPerNamespace(t *testing.T) {
	g := NewWithT(t)
	const flood = 30
	accA, accB := "acc-replay-flood-a", "acc-replay-flood-b"
	nsA, nsB := newNamespace(t, accA, ""), newNamespace(t, accB, "")
	rcA, rcB := newReceiver(t), newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{nsA, nsB}, mutate: func(c *dispatcher.Config) {
		fastReplays(c)
		// Failing receivers are tried again within 100 ms, and nothing is dropped meanwhile.
		c.Engine.Policy = retryingForAnHour
	}})
	s.activeWebhook(t, nsA, "orders", accountSpec(rcA.URL))
	s.activeWebhook(t, nsB, "orders", accountSpec(rcB.URL))
	for i := range flood {
		s.mustPost(t, event(fmt.Sprintf("flood-%02d", i), accA))
	}
	s.mustPost(t, event("other-1", accB))
	g.Eventually(func() int { return len(rcA.got()) }).WithTimeout(20 * time.Second).Should(Equal(flood))
	g.Eventually(func() int { return len(rcB.got()) }).WithTimeout(20 * time.Second).Should(Equal(1))

	// A's receiver fails from now on: every replay that starts in A keeps running.
	rcA.set(fail500)
	replays := replayEach(t, tenantClient(t, nsA, "tenant-"+nsA), nsA, "flood", rcA)
	g.Eventually(func(g Gomega) {
		running, queued, list := replaysByState(g, nsA)
		g.Expect(running).To(BeNumerically("<=", dispatcher.DefaultReplaysPerNamespace), "never more than the cap at once")
		g.Expect(running).To(Equal(dispatcher.DefaultReplaysPerNamespace))
		g.Expect(queued).To(Equal(flood - dispatcher.DefaultReplaysPerNamespace))
		last := list.Items[len(list.Items)-1] // the List is sorted by name: the last created
		c := meta.FindStatusCondition(last.Status.Conditions, hooklinev1.ConditionReconciling)
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Reason).To(Equal(hooklinev1.ReasonQueued))
		g.Expect(c.Message).To(HavePrefix(fmt.Sprintf("other replays run or wait ahead of it in namespace %s, where at most 2 run at once", nsA)))
	}).WithTimeout(30 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	g.Expect(s.metricWith(t, "hookline_replays", "state", "running")).To(BeEquivalentTo(dispatcher.DefaultReplaysPerNamespace))
	g.Expect(s.metricWith(t, "hookline_replays", "state", "queued")).To(BeEquivalentTo(flood - dispatcher.DefaultReplaysPerNamespace))

	// Meanwhile, B: its replay starts at once and completes, and its ordinary deliveries go on.
	idB := hooklinev1.NotificationID(rcB.decoded(t)[0].notificationID)
	rpB := createReplay(t, nsB, "again", hooklinev1.WebhookReplaySpec{WebhookName: "orders", NotificationIDs: []hooklinev1.NotificationID{idB}})
	g.Expect(waitCompleted(t, rpB, 20*time.Second).Status.Delivered).To(BeEquivalentTo(1))
	s.mustPost(t, event("other-2", accB))
	g.Eventually(func() int { return len(rcB.got()) }).WithTimeout(10 * time.Second).Should(Equal(3))
	running, _, _ := replaysByState(g, nsA)
	g.Expect(running).To(Equal(dispatcher.DefaultReplaysPerNamespace), "A's flood still waits")

	// A's receiver recovers: the flood drains two at a time, in creation order.
	rcA.set(echoOK)
	g.Eventually(func(g Gomega) {
		running, _, list := replaysByState(g, nsA)
		g.Expect(running).To(BeNumerically("<=", dispatcher.DefaultReplaysPerNamespace), "never more than the cap at once")
		for _, rp := range list.Items {
			g.Expect(meta.IsStatusConditionTrue(rp.Status.Conditions, hooklinev1.ConditionReady)).To(BeTrue(), rp.Name)
		}
	}).WithTimeout(60 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	g.Expect(dispatcher.PeakReplays(s.app.Replayer, nsA)).To(Equal(dispatcher.DefaultReplaysPerNamespace))
	var prev time.Time
	var starts []string
	for _, rp := range replays {
		got := getReplay(g, rp)
		starts = append(starts, fmt.Sprintf("%s %s created %s", rp.Name, got.Status.StartedAt.Format("15:04:05"), got.CreationTimestamp.Format("15:04:05")))
	}
	t.Logf("start times: %v", starts)
	for _, rp := range replays {
		got := getReplay(g, rp)
		g.Expect(got.Status.Delivered).To(BeEquivalentTo(1), rp.Name)
		g.Expect(got.Status.StartedAt.Time).NotTo(BeTemporally("<", prev), "%s started in creation order", rp.Name)
		prev = got.Status.StartedAt.Time
	}
	ids := map[string]int{}
	for _, p := range rcA.decoded(t) {
		ids[p.notificationID]++
	}
	g.Expect(ids).To(HaveLen(flood))
	for id, n := range ids {
		g.Expect(n).To(BeNumerically(">=", 2), "%s delivered once and replayed", id)
	}

	g.Expect(s.metric(t, "hookline_replays_completed_total")).To(BeEquivalentTo(flood + 1))
	g.Expect(s.metric(t, "hookline_replay_notifications_queued_total")).To(BeEquivalentTo(flood + 1))
	g.Expect(s.metric(t, "hookline_replays")).To(BeZero(), "nothing waits or runs any more")
	g.Expect(s.metric(t, "hookline_replay_log_read_seconds")).To(BeNumerically(">=", 1))
}

// Replays created together are selected with one read of the delivery log, not one each.
func TestReplaysStartingTogetherShareOneLogRead(t *testing.T) {
	g := NewWithT(t)
	const replays = 8
	var namespaces []string
	for i := range replays {
		namespaces = append(namespaces, newNamespace(t, fmt.Sprintf("acc-replay-batch-%d", i), ""))
	}
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: namespaces, mutate: func(c *dispatcher.Config) {
		fastReplays(c)
		c.ReplayGather = 2 * time.Second // every creation below falls into it
	}})
	for _, ns := range namespaces {
		s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
	}
	for i := range replays {
		s.mustPost(t, event("batch-1", fmt.Sprintf("acc-replay-batch-%d", i)))
	}
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(20 * time.Second).Should(Equal(replays))
	since := metav1.NewTime(time.Now().Add(-time.Minute))
	var rps []*hooklinev1.WebhookReplay
	for _, ns := range namespaces {
		rps = append(rps, createReplay(t, ns, "again", hooklinev1.WebhookReplaySpec{WebhookName: "orders", Since: &since,
			States: []hooklinev1.ReplayState{hooklinev1.ReplayDelivered}}))
	}
	for _, rp := range rps {
		got := waitCompleted(t, rp, 30*time.Second)
		g.Expect(got.Status.Delivered).To(BeEquivalentTo(1), rp.Namespace)
	}
	g.Expect(rc.got()).To(HaveLen(2 * replays))
	g.Expect(s.metric(t, "hookline_replay_log_read_seconds")).To(BeNumerically("<=", 2), "one read for the replays created together (two if the creations straddled an interval)")
}

// Deleting a running replay stops it, as deleting a Job stops its Pods: what it queued and has not
// sent yet is cancelled at its queue's head, unsent, and the log says why; the webhook's own
// notifications go on.
func TestDeletingAReplayWithdrawsWhatItQueued(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const (
		account = "acc-replay-withdrawn"
		events  = 5
	)
	// The receiver fails once they are delivered: the replay's first notification is retried at
	// its queue's head.
	s, ns, rc, wh := deliveredThenFailing(t, account, events)
	since := metav1.NewTime(time.Now().Add(-time.Hour))
	rp := createReplay(t, ns, "again", hooklinev1.WebhookReplaySpec{WebhookName: "orders", Since: &since,
		States: []hooklinev1.ReplayState{hooklinev1.ReplayDelivered}})
	g.Eventually(func(g Gomega) {
		g.Expect(getReplay(g, rp).Status.Queued).To(BeEquivalentTo(events))
	}).WithTimeout(20 * time.Second).Should(Succeed())
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10*time.Second).Should(BeNumerically(">", events+1), "retried")

	g.Expect(k8s.Delete(ctx, rp)).To(Succeed())
	rc.set(echoOK)
	s.mustPost(t, event("after", account))
	g.Eventually(func() []string {
		var ok []string
		for _, p := range rc.decoded(t)[events:] {
			if p.eventID != "w-0" {
				ok = append(ok, p.eventID)
			}
		}
		return ok
	}).WithTimeout(20*time.Second).Should(Equal([]string{"after"}), "the replay's notifications are withdrawn; the webhook's own go on")
	for _, p := range rc.decoded(t)[events:] {
		g.Expect(p.eventID).To(BeElementOf("w-0", "after"), "only the head was ever attempted again")
	}

	// The log: each replayed notification ends cancelled, for the deleted replay.
	for i := range events {
		g.Eventually(func(g Gomega) {
			list, err := s.app.Log.Notifications(ctx, string(wh.UID), deliveries.Query{EventIDs: []string{fmt.Sprintf("w-%d", i)}})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(list.Items).To(HaveLen(1))
			g.Expect(list.Items[0].State).To(Equal(deliveries.StateCancelled))
			g.Expect(list.Items[0].Reason).To(Equal(deliver.ReasonReplayDeleted))
		}).WithTimeout(10 * time.Second).Should(Succeed())
	}
	n := len(rc.got())
	g.Consistently(func() int { return len(rc.got()) }).WithTimeout(300*time.Millisecond).Should(Equal(n), "nothing more is sent")
}

// A replay deleted and created again under the same name (a manifest applied again, as GitOps
// tools do) is another replay. Notes and records named the replay by its name only, so the second
// took the first's for its own: the notification the first had queued, whose deletion cancelled
// it, counted as "queued already" and failed, and the second reported Completed with nothing
// delivered, nothing sent. They now carry the replay's uid as well (deliveries.ReplayRef).
func TestAReplayCreatedAgainUnderItsNameIsAnotherReplay(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account = "acc-replay-same-name"
	s, ns, rc, wh := deliveredThenFailing(t, account, 1)
	first := rc.decoded(t)[0]
	since := metav1.NewTime(time.Now().Add(-time.Hour))
	// Delivered, then cancelled by the first replay's deletion: both are selected.
	spec := hooklinev1.WebhookReplaySpec{WebhookName: "orders", Since: &since, States: []hooklinev1.ReplayState{hooklinev1.ReplayDelivered, hooklinev1.ReplayCancelled}}
	rp := createReplay(t, ns, "again", spec)
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(20*time.Second).Should(BeNumerically(">", 2), "queued again, retried")
	g.Expect(k8s.Delete(ctx, rp)).To(Succeed())
	g.Eventually(func(g Gomega) {
		list, err := s.app.Log.Notifications(ctx, string(wh.UID), deliveries.Query{EventIDs: []string{"w-0"}})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(list.Items).To(HaveLen(1))
		g.Expect(list.Items[0].Reason).To(Equal(deliver.ReasonReplayDeleted))
	}).WithTimeout(10*time.Second).Should(Succeed(), "the deleted replay's notification is cancelled")

	rc.set(echoOK)
	sent := len(rc.got())
	again := createReplay(t, ns, "again", spec)
	g.Expect(again.UID).NotTo(Equal(rp.UID))
	got := waitCompleted(t, again, 30*time.Second)
	g.Expect([]int64{got.Status.Queued, got.Status.Delivered, got.Status.Failed}).To(Equal([]int64{1, 1, 0}), "queued, delivered, failed")
	posts := rc.decoded(t)[sent:]
	g.Expect(posts).To(HaveLen(1), "delivered once more")
	g.Expect(posts[0].notificationID).To(Equal(first.notificationID))
}

// A tenant with many replays waiting for their turn, deleting the oldest waiting one again and
// again: the others' statuses are not written. Before, each waiting replay's message counted the
// replays ahead of it, so every start or deletion had the dispatcher write every waiting replay's
// status again (and each of their polls listed and copied the namespace's replays).
func TestWaitingReplaysAreNotWrittenWhenTheLineMoves(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const n = 30
	account := "acc-replay-line"
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	requests := &testsupport.APIRequests{}
	s := startStack(t, stackOptions{namespaces: []string{ns}, requests: requests, mutate: func(c *dispatcher.Config) {
		fastReplays(c)
		c.Engine.Policy = retryingForAnHour
	}})
	s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
	s.mustPost(t, event("line-1", account))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(20 * time.Second).Should(Equal(1))
	rc.set(fail500) // the replays that run never finish
	id := hooklinev1.NotificationID(rc.decoded(t)[0].notificationID)

	tenant := tenantClient(t, ns, "tenant-"+ns)
	replays := replaysOf(t, tenant, ns, "line", id, n)
	waitRunningAtTheCap(t, ns, n-dispatcher.DefaultReplaysPerNamespace)

	const deleted = 5
	waiting := replays[dispatcher.DefaultReplaysPerNamespace+deleted:]
	writes := func() (sum int) {
		for _, rp := range waiting {
			sum += requests.Count(http.MethodPatch, "/apis/hookline.io/v1alpha1/namespaces/"+ns+"/webhookreplays/"+rp.Name+"/status")
		}
		return sum
	}
	g.Expect(writes()).To(BeNumerically(">=", len(waiting)), "each waiting replay's Queued status was written (the count is of the dispatcher's requests)")
	before := writes()
	for _, rp := range replays[dispatcher.DefaultReplaysPerNamespace : dispatcher.DefaultReplaysPerNamespace+deleted] {
		g.Expect(tenant.Delete(ctx, rp)).To(Succeed())
	}
	// Their polls come every 100 ms here.
	g.Consistently(writes).WithTimeout(time.Second).WithPolling(100*time.Millisecond).Should(Equal(before),
		"the %d replays still waiting are not written again", len(waiting))
}

// A tenant creates replays of a Webhook it keeps INACTIVE (they wait, saying why), then flips the
// Webhook's status.state (the status subresource is its to write) between Inactive and Active.
// Every flip changed why each replay waits, and each was written again: one dispatcher write per
// replay per flip. Now why a replay waits is written at most every 5 s.
func TestFlippingAWebhooksStateDoesNotRewriteItsWaitingReplays(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const n, flips = 8, 20
	account := "acc-replay-flip"
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	requests := &testsupport.APIRequests{}
	s := startStack(t, stackOptions{namespaces: []string{ns}, requests: requests, mutate: fastReplays})
	wh := s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
	setState(t, wh, hooklinev1.StateInactive)
	g.Eventually(func(g Gomega) {
		g.Expect(getWebhook(g, wh).Status.State).To(Equal(hooklinev1.ObservedInactive))
	}).WithTimeout(10 * time.Second).Should(Succeed())

	tenant := tenantClient(t, ns, "tenant-"+ns)
	var replays []*hooklinev1.WebhookReplay
	for i := range n {
		rp := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("flip-%02d", i)},
			Spec: hooklinev1.WebhookReplaySpec{WebhookName: "orders", Since: &metav1.Time{Time: time.Now().Add(-time.Hour)}}}
		g.Expect(tenant.Create(ctx, rp)).To(Succeed())
		replays = append(replays, rp)
	}
	for _, rp := range replays {
		g.Eventually(func(g Gomega) {
			c := meta.FindStatusCondition(getReplay(g, rp).Status.Conditions, hooklinev1.ConditionReconciling)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(hooklinev1.ReasonWebhookNotActive))
		}).WithTimeout(10 * time.Second).Should(Succeed())
	}
	writes := func() int { return statusWrites(requests, replays) }
	before := writes()
	flipStatusState(t, s, tenant, wh, flips, hooklinev1.ObservedActive)
	g.Expect(writes()-before).To(BeNumerically("<=", 2*n), "writes of the waiting replays for %d flips", flips)
}

// The same flips while the namespace's turns are taken: each moved every waiting replay between
// waiting for its Webhook and waiting for its turn, a new reason each time, and each was written
// at once. Why a replay waits is written at most every 5 s whatever the reason; admission reads
// what the dispatcher decided, not the status.
func TestFlippingAWebhooksStateDoesNotRewriteReplaysWaitingTheirTurn(t *testing.T) {
	g := NewWithT(t)
	const waiting, flips = 6, 20
	const account = "acc-replay-flip-turns"
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	requests := &testsupport.APIRequests{}
	s := startStack(t, stackOptions{namespaces: []string{ns}, requests: requests, mutate: func(c *dispatcher.Config) {
		fastReplays(c)
		c.Engine.Policy = retryingForAnHour
	}})
	wh := s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
	s.mustPost(t, event("flip-1", account))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(20 * time.Second).Should(Equal(1))
	rc.set(fail500) // the replays that run never finish: the namespace's turns stay taken
	tenant := tenantClient(t, ns, "tenant-"+ns)
	id := hooklinev1.NotificationID(rc.decoded(t)[0].notificationID)
	replays := replaysOf(t, tenant, ns, "turns", id, dispatcher.DefaultReplaysPerNamespace+waiting)
	waitRunningAtTheCap(t, ns, waiting)
	queuedOnes := replays[dispatcher.DefaultReplaysPerNamespace:]
	writes := func() int { return statusWrites(requests, queuedOnes) }
	before := writes()
	flipStatusState(t, s, tenant, wh, flips, hooklinev1.ObservedInactive)
	g.Expect(writes()-before).To(BeNumerically("<=", 2*waiting), "writes of the replays waiting their turn for %d flips", flips)
}

// statusWrites counts the dispatcher's writes of replays' statuses.
func statusWrites(requests *testsupport.APIRequests, replays []*hooklinev1.WebhookReplay) (sum int) {
	for _, rp := range replays {
		sum += requests.Count(http.MethodPatch, "/apis/hookline.io/v1alpha1/namespaces/"+rp.Namespace+"/webhookreplays/"+rp.Name+"/status")
	}
	return sum
}

// flipStatusState has tenant write wh's status.state flips times, first to first, then to the
// other state and back, each flip seen by s's dispatcher before the next.
func flipStatusState(t *testing.T, s *stack, tenant client.Client, wh *hooklinev1.Webhook, flips int, first hooklinev1.ObservedState) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	other := hooklinev1.ObservedInactive
	if first == hooklinev1.ObservedInactive {
		other = hooklinev1.ObservedActive
	}
	for i := range flips {
		state := first
		if i%2 == 1 {
			state = other
		}
		g.Eventually(func() error {
			cur := &hooklinev1.Webhook{}
			if err := tenant.Get(ctx, client.ObjectKeyFromObject(wh), cur); err != nil {
				return err
			}
			cur.Status.State = state
			return tenant.Status().Update(ctx, cur)
		}).WithTimeout(5 * time.Second).Should(Succeed())
		// The dispatcher sees each flip before the next (its replays' polls come every 100 ms).
		g.Eventually(func(g Gomega) {
			got := &hooklinev1.Webhook{}
			g.Expect(s.app.Manager.GetCache().Get(ctx, client.ObjectKeyFromObject(wh), got)).To(Succeed())
			g.Expect(got.Status.State).To(Equal(state))
		}).WithTimeout(5 * time.Second).WithPolling(10 * time.Millisecond).Should(Succeed())
	}
}

// Each namespace's replays queue at most their budget of notifications (a burst, then so many a
// minute): a tenant creating replays, deleting each once queued and replaying what the deletions
// cancelled, queued hundreds of thousands a minute, each a stored note and records, with only the
// log reads budgeted. A replay starts selecting only while the namespace has some left, then queues
// its whole selection; the next one waits, saying until when.
func TestReplaysQueueWithinTheirNamespacesBudgetOfNotifications(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	_, ns, rc, _ := deliveredThenFailing(t, "acc-replay-notes", 3, func(c *dispatcher.Config) {
		c.ReplayNotesBurst, c.ReplayNotesPerMinute = 2, 0.01 // nothing refills while the test runs
	})
	tenant := tenantClient(t, ns, "tenant-"+ns)
	var ids []hooklinev1.NotificationID
	for _, p := range rc.decoded(t) {
		ids = append(ids, hooklinev1.NotificationID(p.notificationID))
	}
	whole := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "whole"},
		Spec: hooklinev1.WebhookReplaySpec{WebhookName: "orders", NotificationIDs: ids}}
	g.Expect(tenant.Create(ctx, whole)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getReplay(g, whole)
		g.Expect(got.Status.Queued).To(BeEquivalentTo(3), "started with 2 left: its whole selection")
	}).WithTimeout(30 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())

	// Of a notification the first one did not queue: none is selected while the budget is spent.
	next := replaysOf(t, tenant, ns, "next", "00000000-0000-4000-8000-000000000000", 1)[0]
	g.Eventually(func(g Gomega) (string, error) {
		c := meta.FindStatusCondition(getReplay(g, next).Status.Conditions, hooklinev1.ConditionReconciling)
		g.Expect(c).NotTo(BeNil())
		return c.Message, nil
	}).WithTimeout(30 * time.Second).WithPolling(50 * time.Millisecond).Should(ContainSubstring("has spent its budget of notifications queued again by replays (2 at once, then 0.01 a minute)"))
	g.Consistently(func(g Gomega) {
		got := getReplay(g, next)
		g.Expect(got.Status.Queued).To(BeZero())
		c := meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionReconciling)
		g.Expect(c.Reason).To(Equal(hooklinev1.ReasonQueueing))
	}).WithTimeout(2 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
}
