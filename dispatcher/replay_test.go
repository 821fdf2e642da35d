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
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/deliveries"
)

// fastReplays turns the delivery log on (replays select from it) and reads replays' progress
// often, so that tests do not wait for the 2-second default.
func fastReplays(c *dispatcher.Config) {
	c.DeliveryLog.Enabled = true
	c.ReplayPoll = 100 * time.Millisecond
}

// autoDisabling makes a webhook auto-disable within a second of failures: one retry, dropped after
// 400 ms, disabled by a drop when nothing succeeded for 100 ms (its verification is older).
func autoDisabling(c *dispatcher.Config) {
	c.DeliveryLog.Enabled = true
	c.Engine.Policy = deliver.Policy{RetryBase: 50 * time.Millisecond, RetryCap: 100 * time.Millisecond, MaxRetries: 1,
		DropAfter: 400 * time.Millisecond, DisableAfter: 100 * time.Millisecond}
}

// posted is one POST a receiver got, decoded.
type posted struct {
	notificationID string
	eventID        string // the event's id: the sample events name their agreement "agr-<id>"
}

func decodePost(t *testing.T, d delivery) posted {
	t.Helper()
	var body struct {
		NotificationID string `json:"webhookNotificationId"`
		Agreement      struct {
			ID string `json:"id"`
		} `json:"agreement"`
	}
	if err := json.Unmarshal(d.Body, &body); err != nil {
		t.Fatalf("notification body: %v", err)
	}
	return posted{notificationID: body.NotificationID, eventID: strings.TrimPrefix(body.Agreement.ID, "agr-")}
}

func (rc *receiver) decoded(t *testing.T) []posted {
	var out []posted
	for _, d := range rc.got() {
		out = append(out, decodePost(t, d))
	}
	return out
}

func createReplay(t *testing.T, ns, name string, spec hooklinev1.WebhookReplaySpec) *hooklinev1.WebhookReplay {
	t.Helper()
	rp := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	NewWithT(t).Expect(k8s.Create(context.Background(), rp)).To(Succeed())
	return rp
}

func getReplay(g Gomega, rp *hooklinev1.WebhookReplay) *hooklinev1.WebhookReplay {
	out := &hooklinev1.WebhookReplay{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(rp), out)).To(Succeed())
	return out
}

// replayKstatus computes the status Argo CD and Flux health checks see (kstatus).
func replayKstatus(g Gomega, rp *hooklinev1.WebhookReplay) status.Status {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(getReplay(g, rp))
	g.Expect(err).NotTo(HaveOccurred())
	res, err := status.Compute(&unstructured.Unstructured{Object: u})
	g.Expect(err).NotTo(HaveOccurred())
	return res.Status
}

// waitCompleted waits until rp is Ready (Completed) and returns it.
func waitCompleted(t *testing.T, rp *hooklinev1.WebhookReplay, timeout time.Duration) *hooklinev1.WebhookReplay {
	t.Helper()
	var got *hooklinev1.WebhookReplay
	NewWithT(t).Eventually(func(g Gomega) {
		got = getReplay(g, rp)
		c := meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "%s: %s", c.Reason, c.Message)
	}).WithTimeout(timeout).WithPolling(50 * time.Millisecond).Should(Succeed())
	return got
}

func setState(t *testing.T, wh *hooklinev1.Webhook, state hooklinev1.WebhookState) {
	t.Helper()
	g := NewWithT(t)
	cur := getWebhook(g, wh)
	base := cur.DeepCopy()
	cur.Spec.State = state
	g.Expect(k8s.Patch(context.Background(), cur, client.MergeFrom(base))).To(Succeed())
}

func reactivate(t *testing.T, wh *hooklinev1.Webhook) {
	t.Helper()
	g := NewWithT(t)
	cur := getWebhook(g, wh)
	base := cur.DeepCopy()
	if cur.Annotations == nil {
		cur.Annotations = map[string]string{}
	}
	cur.Annotations[hooklinev1.ReactivateAnnotation] = time.Now().Format(time.RFC3339Nano)
	g.Expect(k8s.Patch(context.Background(), cur, client.MergeFrom(base))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getWebhook(g, wh).Status.State).To(Equal(hooklinev1.ObservedActive))
	}).WithTimeout(20 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
}

// replayEvents lists the Kubernetes Events recorded about rp.
func replayEvents(g Gomega, rp *hooklinev1.WebhookReplay) []string {
	list := &eventsv1.EventList{}
	g.Expect(k8s.List(context.Background(), list, client.InNamespace(rp.Namespace))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "WebhookReplay" && e.Regarding.Name == rp.Name {
			out = append(out, e.Reason)
		}
	}
	return out
}

// Notification ids are matched in any letter case, and the API server takes "a1…" and "A1…" as
// two entries of the set: a replay naming one notification in several cases sent it once per
// case and never completed (its tally counts per notification). Found by a review helper.
func TestReplayOfCaseVariantIDsSendsOnce(t *testing.T) {
	g := NewWithT(t)
	const account = "acc-replay-case"
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: fastReplays})
	s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
	s.mustPost(t, event("case-1", account))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	first := rc.decoded(t)[0]
	id := first.notificationID
	rp := createReplay(t, ns, "cases", hooklinev1.WebhookReplaySpec{WebhookName: "orders",
		NotificationIDs: []hooklinev1.NotificationID{hooklinev1.NotificationID(id), hooklinev1.NotificationID(strings.ToUpper(id)),
			hooklinev1.NotificationID(strings.ToUpper(id[:8]) + id[8:])}})
	got := waitCompleted(t, rp, 30*time.Second)
	g.Expect(got.Status.Matched).To(BeEquivalentTo(1))
	g.Expect(got.Status.Queued).To(BeEquivalentTo(1))
	g.Expect(got.Status.Delivered).To(BeEquivalentTo(1))
	g.Expect(got.Status.Unavailable).To(BeEmpty())
	g.Consistently(func() int { return len(rc.got()) }).WithTimeout(500*time.Millisecond).Should(Equal(2), "the notification arrives once more, once")
	g.Expect(rc.decoded(t)[1]).To(Equal(first))
}

// A delivered notification, replayed by id, arrives once more with the same
// webhookNotificationId; the log marks the new attempt as the replay's. The replay waits, with a
// condition saying why, while its webhook is INACTIVE, and kstatus sees it in progress until it
// completed.
func TestReplayDeliversANotificationAgainOnceTheWebhookIsActive(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account = "acc-replay-one"
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: fastReplays})
	wh := s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
	s.mustPost(t, event("one-1", account))
	s.mustPost(t, event("one-2", account))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(2))
	first := rc.decoded(t)[0]
	g.Expect(first.eventID).To(Equal("one-1"))

	setState(t, wh, hooklinev1.StateInactive)
	g.Eventually(func(g Gomega) {
		g.Expect(getWebhook(g, wh).Status.State).To(Equal(hooklinev1.ObservedInactive))
	}).WithTimeout(10 * time.Second).Should(Succeed())

	rp := createReplay(t, ns, "again", hooklinev1.WebhookReplaySpec{WebhookName: "orders",
		NotificationIDs: []hooklinev1.NotificationID{hooklinev1.NotificationID(first.notificationID)}})
	g.Eventually(func(g Gomega) {
		got := getReplay(g, rp)
		c := meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionReconciling)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Reason).To(Equal(hooklinev1.ReasonWebhookNotActive))
		g.Expect(c.Message).To(ContainSubstring("webhook orders is Inactive"))
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(replayKstatus(g, rp)).To(Equal(status.InProgressStatus))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Consistently(func() int { return len(rc.got()) }).WithTimeout(500*time.Millisecond).Should(Equal(2), "nothing is sent while the webhook is INACTIVE")

	setState(t, wh, hooklinev1.StateActive)
	got := waitCompleted(t, rp, 30*time.Second)
	g.Expect(got.Status.Matched).To(BeEquivalentTo(1))
	g.Expect(got.Status.Queued).To(BeEquivalentTo(1))
	g.Expect(got.Status.Delivered).To(BeEquivalentTo(1))
	g.Expect(got.Status.Failed).To(BeEquivalentTo(0))
	g.Expect(got.Status.Unavailable).To(BeEmpty())
	g.Expect(got.Status.StartedAt).NotTo(BeNil())
	g.Expect(got.Status.CompletedAt).NotTo(BeNil())
	g.Expect(got.Status.WebhookUID).To(Equal(string(wh.UID)))
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionReady).Reason).To(Equal(hooklinev1.ReasonCompleted))
	g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, hooklinev1.ConditionReconciling)).To(BeFalse())
	g.Expect(replayKstatus(g, rp)).To(Equal(status.CurrentStatus))

	posts := rc.decoded(t)
	g.Expect(posts).To(HaveLen(3), "the replayed notification arrives once more, nothing else")
	g.Expect(posts[2]).To(Equal(first), "with the same webhookNotificationId")
	g.Consistently(func() int { return len(rc.got()) }).WithTimeout(300 * time.Millisecond).Should(Equal(3))

	// The log marks the new attempt as the replay's.
	list, err := s.app.Log.Attempts(ctx, string(wh.UID), first.notificationID)
	g.Expect(err).NotTo(HaveOccurred())
	var replayed, attempts int
	for _, r := range list.Records {
		if deliveries.ReplayName(r.Replay) == "again" {
			replayed++
		}
		if deliveries.ReplayName(r.Replay) == "again" && r.Kind == "attempt" && r.State == "delivered" {
			attempts++
		}
	}
	g.Expect(attempts).To(Equal(1), "%+v", list.Records)
	g.Expect(replayed).To(Equal(2), "queued again, delivered: %+v", list.Records)
	g.Expect(list.Notification.State).To(BeEquivalentTo("delivered"))

	g.Eventually(func(g Gomega) []string { return replayEvents(g, rp) }).WithTimeout(10 * time.Second).
		Should(ContainElements("Started", hooklinev1.ReasonCompleted))
}

// A recover after an auto-disable and a reactivation delivers exactly the events ingested while the
// webhook was disabled, in their order, and nothing else.
func TestRecoverDeliversExactlyTheEventsLostWhileDisabled(t *testing.T) {
	g := NewWithT(t)
	const account = "acc-replay-recover"
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	rc.set(fail500)
	dir := t.TempDir()
	s := startStack(t, stackOptions{namespaces: []string{ns}, dir: dir, mutate: autoDisabling})
	wh := s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))

	s.mustPost(t, event("before", account))
	g.Eventually(func(g Gomega) {
		g.Expect(getWebhook(g, wh).Status.State).To(Equal(hooklinev1.ObservedDisabled))
	}).WithTimeout(20 * time.Second).Should(Succeed())
	failedAttempts := len(rc.got())

	// Times travel in whole seconds: every lost event is accepted from the next one on.
	since := time.Now().Truncate(time.Second).Add(time.Second)
	g.Eventually(func() bool { return !time.Now().Before(since) }).WithTimeout(2 * time.Second).WithPolling(10 * time.Millisecond).Should(BeTrue())
	var lost []string
	for i := range 12 {
		id := fmt.Sprintf("lost-%02d", i)
		lost = append(lost, id)
		s.mustPost(t, event(id, account))
	}
	g.Expect(rc.got()).To(HaveLen(failedAttempts), "a disabled webhook is sent nothing")

	// Acrobat Sign's 72 hours again, so that nothing recovered expires on a slow machine.
	s.stop()
	s = startStack(t, stackOptions{namespaces: []string{ns}, dir: dir, mutate: fastReplays})
	rc.set(echoOK)
	reactivate(t, wh)
	s.waitRouted(t, wh)
	s.mustPost(t, event("after", account))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(failedAttempts + 1))

	rp := createReplay(t, ns, "recover", hooklinev1.WebhookReplaySpec{WebhookName: "orders",
		Since: &metav1.Time{Time: since}, States: []hooklinev1.ReplayState{hooklinev1.ReplayLost}})
	got := waitCompleted(t, rp, 30*time.Second)
	g.Expect(got.Status.Matched).To(BeEquivalentTo(len(lost)))
	g.Expect(got.Status.Queued).To(BeEquivalentTo(len(lost)))
	g.Expect(got.Status.Delivered).To(BeEquivalentTo(len(lost)))
	g.Expect(got.Status.Failed).To(BeEquivalentTo(0))

	var recovered []string
	ids := map[string]bool{}
	for _, p := range rc.decoded(t)[failedAttempts+1:] {
		recovered = append(recovered, p.eventID)
		ids[p.notificationID] = true
	}
	g.Expect(recovered).To(Equal(lost), "exactly the lost events, once each, in their order")
	g.Expect(ids).To(HaveLen(len(lost)))
	g.Consistently(func() int { return len(rc.got()) }).WithTimeout(300 * time.Millisecond).Should(Equal(failedAttempts + 1 + len(lost)))
}

// Part of a selection beyond the event log's retention (or not in the delivery log at all) is
// listed in status.unavailable; the rest is replayed.
func TestReplayReportsWhatIsBeyondRetentionAndReplaysTheRest(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account = "acc-replay-retention"
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: func(c *dispatcher.Config) {
		fastReplays(c)
		c.Store.Retention, c.Store.DedupeWindow = 3*time.Second, time.Second
	}})
	wh := s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))

	s.mustPost(t, event("old", account))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	old := rc.decoded(t)[0]
	// The log stores the attempt's record asynchronously: the receiver can see the delivery first.
	var seq uint64
	g.Eventually(func(g Gomega) {
		list, err := s.app.Log.Attempts(ctx, string(wh.UID), old.notificationID)
		g.Expect(err).NotTo(HaveOccurred())
		seq = list.Notification.EventSeq
	}).WithTimeout(5 * time.Second).Should(Succeed())
	g.Eventually(func() error {
		_, _, err := s.app.Store.GetEvent(ctx, seq)
		return err
	}).WithTimeout(20*time.Second).WithPolling(200*time.Millisecond).Should(HaveOccurred(), "the event log's retention removes the event")

	s.mustPost(t, event("new", account))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(2))
	recent := rc.decoded(t)[1]

	const unknown = "00000000-0000-5000-8000-000000000000"
	rp := createReplay(t, ns, "partial", hooklinev1.WebhookReplaySpec{WebhookName: "orders", NotificationIDs: []hooklinev1.NotificationID{
		hooklinev1.NotificationID(old.notificationID), hooklinev1.NotificationID(recent.notificationID), unknown}})
	got := waitCompleted(t, rp, 20*time.Second)
	g.Expect(got.Status.Matched).To(BeEquivalentTo(2))
	g.Expect(got.Status.Queued).To(BeEquivalentTo(1))
	g.Expect(got.Status.Delivered).To(BeEquivalentTo(1))
	g.Expect(got.Status.Unavailable).To(ConsistOf(
		ContainSubstring("1 notifications not found in the delivery log (beyond its retention, or never sent to this webhook): "+unknown),
		ContainSubstring("1 notifications not replayed: their events are beyond the event log's retention"),
	))
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionReady).Message).To(ContainSubstring("see status.unavailable"))
	posts := rc.decoded(t)
	g.Expect(posts).To(HaveLen(3))
	g.Expect(posts[2]).To(Equal(recent))
}

// A replay whose webhook is deleted while it runs cannot finish: Stalled, which kstatus reports as
// Failed.
func TestReplayStallsWhenItsWebhookIsDeleted(t *testing.T) {
	g := NewWithT(t)
	const account = "acc-replay-stalled"
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: fastReplays})
	wh := s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
	s.mustPost(t, event("stall-1", account))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	rc.set(fail500) // the replayed notification waits for its retry (a minute away)

	rp := createReplay(t, ns, "stuck", hooklinev1.WebhookReplaySpec{WebhookName: "orders",
		NotificationIDs: []hooklinev1.NotificationID{hooklinev1.NotificationID(rc.decoded(t)[0].notificationID)}})
	g.Eventually(func(g Gomega) {
		got := getReplay(g, rp)
		g.Expect(got.Status.Queued).To(BeEquivalentTo(1))
		g.Expect(meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionReconciling).Reason).To(Equal(hooklinev1.ReasonDelivering))
		g.Expect(replayKstatus(g, rp)).To(Equal(status.InProgressStatus))
	}).WithTimeout(10 * time.Second).Should(Succeed())

	g.Expect(k8s.Delete(context.Background(), wh)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getReplay(g, rp)
		c := meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionStalled)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Reason).To(Equal(hooklinev1.ReasonWebhookDeleted))
		g.Expect(c.Message).To(ContainSubstring("webhook orders was deleted while the replay ran"))
		g.Expect(replayKstatus(g, rp)).To(Equal(status.FailedStatus))
	}).WithTimeout(15 * time.Second).Should(Succeed())
	_ = s
}

// A dispatcher stopped while a replay is half delivered, and started again at the point where the
// replay had not yet recorded that everything was queued, queues nothing a second time: what the
// replay queued is found in the webhook's queue (not yet sent) and in the log (sent), so every
// notification is delivered exactly once by the replay. (The kill -9 of the real binary is
// TestKill9DuringRecoverSendsNothingTwice.)
func TestReplayResumesWithoutQueueingTwice(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account = "acc-replay-resume"
	const total = 10
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	mutate := func(c *dispatcher.Config) {
		fastReplays(c)
		c.Engine.Policy.RetryBase, c.Engine.Policy.RetryCap = 100*time.Millisecond, 200*time.Millisecond
	}
	dir := t.TempDir()
	s := startStack(t, stackOptions{namespaces: []string{ns}, dir: dir, mutate: mutate})
	wh := s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
	for i := range total {
		s.mustPost(t, event(fmt.Sprintf("resume-%02d", i), account))
	}
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(total))
	originals := len(rc.got())

	// The receiver takes three replayed notifications, then fails: the rest stay queued.
	var (
		mu       sync.Mutex
		answered []bool // per replayed POST: answered with success
	)
	rc.set(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ok := len(answered) < 3
		answered = append(answered, ok)
		mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		echoOK(w, r)
	})
	since := time.Now().Add(-time.Hour)
	rp := createReplay(t, ns, "resume", hooklinev1.WebhookReplaySpec{WebhookName: "orders",
		Since: &metav1.Time{Time: since}, States: []hooklinev1.ReplayState{hooklinev1.ReplayDelivered}})
	g.Eventually(func() int { return len(rc.got()) - originals }).WithTimeout(10 * time.Second).Should(BeNumerically(">=", 5))
	g.Eventually(func(g Gomega) {
		g.Expect(getReplay(g, rp).Status.Queued).To(BeEquivalentTo(total))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	// The three delivered leave the queue once the log stored their records (at its next tick).
	var notes []store.Note
	g.Eventually(func(g Gomega) {
		var err error
		notes, err = s.app.Store.LoadNotes(ctx, string(wh.UID), 1, 100)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(notes).To(HaveLen(total-3), "queued by the replay, not delivered yet")
	}).WithTimeout(10 * time.Second).Should(Succeed())
	for _, n := range notes {
		g.Expect(n.Replay).To(Equal(deliveries.ReplayRef("resume", string(rp.UID))))
	}
	s.stop()

	// As if the dispatcher had died after queueing and before recording it: the replay's status
	// says it is still queueing.
	cur := getReplay(g, rp)
	rewound := cur.Status.DeepCopy()
	rewound.Queued, rewound.Matched, rewound.Delivered = 0, 0, 0
	for i := range rewound.Conditions {
		if rewound.Conditions[i].Type == hooklinev1.ConditionReconciling {
			rewound.Conditions[i].Reason = hooklinev1.ReasonQueueing
		}
	}
	applyReplayStatusAs(t, rp, hooklinev1.FieldManagerDispatcher, rewound)

	mu.Lock()
	failing := len(answered)
	mu.Unlock()
	rc.set(echoOK)
	startStack(t, stackOptions{namespaces: []string{ns}, dir: dir, mutate: mutate})
	got := waitCompleted(t, rp, 30*time.Second)
	g.Expect(got.Status.Matched).To(BeEquivalentTo(total))
	g.Expect(got.Status.Queued).To(BeEquivalentTo(total))
	g.Expect(got.Status.Delivered).To(BeEquivalentTo(total))

	// Every notification was delivered once by the replay; failed attempts were retried.
	delivered := map[string]int{}
	rc.mu.Lock()
	posts := append([]delivery(nil), rc.posts[originals:]...)
	rc.mu.Unlock()
	for i, p := range posts {
		if i >= failing || answered[i] {
			delivered[decodePost(t, p).eventID]++
		}
	}
	g.Expect(delivered).To(HaveLen(total))
	for id, n := range delivered {
		g.Expect(n).To(Equal(1), "%s delivered %d times by one replay", id, n)
	}
	g.Consistently(func() int { return len(rc.got()) }).WithTimeout(300 * time.Millisecond).Should(Equal(originals + len(posts)))
}

// applyReplayStatusAs writes st as rp's status under the field manager owner.
func applyReplayStatusAs(t *testing.T, rp *hooklinev1.WebhookReplay, owner string, st *hooklinev1.WebhookReplayStatus) {
	t.Helper()
	raw, err := json.Marshal(map[string]any{
		"apiVersion": hooklinev1.GroupVersion.String(), "kind": "WebhookReplay",
		"metadata": map[string]any{"name": rp.Name, "namespace": rp.Namespace}, "status": st,
	})
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Status().Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u),
		client.FieldOwner(owner), client.ForceOwnership); err != nil {
		t.Fatalf("applying replay status: %v", err)
	}
}

// Without its delivery log a dispatcher cannot select nor follow a replay: the replay says so
// (Stalled, reason DeliveryLogDisabled) instead of waiting silently.
func TestReplayStallsWithoutTheDeliveryLog(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-replay-nolog", "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}})
	s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
	rp := createReplay(t, ns, "nolog", hooklinev1.WebhookReplaySpec{WebhookName: "orders", Since: &metav1.Time{Time: time.Now().Add(-time.Hour)}})
	g.Eventually(func(g Gomega) {
		c := meta.FindStatusCondition(getReplay(g, rp).Status.Conditions, hooklinev1.ConditionStalled)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Reason).To(Equal(hooklinev1.ReasonDeliveryLogDisabled))
		g.Expect(c.Message).To(ContainSubstring("--delivery-log=false"))
		g.Expect(replayKstatus(g, rp)).To(Equal(status.FailedStatus))
	}).WithTimeout(10 * time.Second).Should(Succeed())
}

// A tenant cannot replay another namespace's webhook: a replay names a Webhook of its own
// namespace only. Naming the other tenant's webhook from its own namespace finds nothing there (the
// replay waits for such a Webhook to exist) and sends the other tenant's receiver nothing.
func TestReplayCannotReachAnotherNamespacesWebhook(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account = "acc-replay-tenants"
	victimNS, attackerNS := newNamespace(t, account, ""), newNamespace(t, account, "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{victimNS, attackerNS}, mutate: fastReplays})
	s.activeWebhook(t, victimNS, "orders", accountSpec(rc.URL))
	s.mustPost(t, event("tenant-1", account))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	id := hooklinev1.NotificationID(rc.decoded(t)[0].notificationID)

	attacker := tenantClient(t, attackerNS, "tenant-"+attackerNS)
	rp := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: attackerNS, Name: "steal"},
		Spec: hooklinev1.WebhookReplaySpec{WebhookName: "orders", NotificationIDs: []hooklinev1.NotificationID{id}}}
	g.Expect(attacker.Create(ctx, rp)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := meta.FindStatusCondition(getReplay(g, rp).Status.Conditions, hooklinev1.ConditionReconciling)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(hooklinev1.ReasonWebhookNotFound))
		g.Expect(c.Message).To(ContainSubstring("does not exist in namespace " + attackerNS))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	// Nor can it put the replay into the victim's namespace.
	other := rp.DeepCopy()
	other.ResourceVersion, other.Namespace = "", victimNS
	g.Expect(apierrors.IsForbidden(attacker.Create(ctx, other))).To(BeTrue())
	g.Consistently(func() int { return len(rc.got()) }).WithTimeout(500*time.Millisecond).Should(Equal(1), "the victim's receiver gets nothing")
}

// A replay's selection holds only the notifications it may replay, and at most
// Config.ReplayMaxSelection of them: a tenant's replay over a busy webhook's history cannot take
// the memory of the dispatcher every tenant shares. Over the bound, the replay stops before it
// queues anything (Stalled, reason SelectionTooLarge, a Warning Event) and stays stopped. A replay
// of failed notifications over the same history holds none of the delivered ones, and runs.
func TestReplayStallsWhenItsSelectionIsTooLarge(t *testing.T) {
	g := NewWithT(t)
	const account = "acc-replay-toolarge"
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: func(c *dispatcher.Config) {
		fastReplays(c)
		c.ReplayMaxSelection = 2
	}})
	wh := s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
	since := &metav1.Time{Time: time.Now().Add(-time.Minute)}
	for i := range 3 {
		s.mustPost(t, event(fmt.Sprintf("big-%d", i), account))
	}
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(3))

	// Three delivered notifications: a replay of the failed ones holds none of them.
	failed := waitCompleted(t, createReplay(t, ns, "failed", hooklinev1.WebhookReplaySpec{WebhookName: "orders", Since: since}), 30*time.Second)
	g.Expect(failed.Status.Matched).To(BeEquivalentTo(0))

	// A replay of the delivered ones would hold three. The tenant creates it, with every right in
	// its namespace (impersonated through RBAC).
	rp := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "everything"},
		Spec: hooklinev1.WebhookReplaySpec{WebhookName: "orders", Since: since, States: []hooklinev1.ReplayState{hooklinev1.ReplayDelivered}}}
	g.Expect(tenantClient(t, ns, "tenant-"+ns).Create(context.Background(), rp)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getReplay(g, rp)
		c := meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionStalled)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Reason).To(Equal(hooklinev1.ReasonSelectionTooLarge))
		g.Expect(c.Message).To(ContainSubstring("more than 2 notifications of webhook orders"))
		g.Expect(c.Message).To(ContainSubstring("spec.since and spec.until"))
		g.Expect(got.Status.Queued).To(BeEquivalentTo(0))
		g.Expect(got.Status.WebhookUID).To(Equal(string(wh.UID)))
		g.Expect(replayKstatus(g, rp)).To(Equal(status.FailedStatus))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Eventually(func(g Gomega) []string { return replayEvents(g, rp) }).WithTimeout(10 * time.Second).
		Should(ContainElement(hooklinev1.ReasonSelectionTooLarge))
	// It stays stopped when its Webhook changes (which wakes the replays naming it), and sends nothing.
	setState(t, wh, hooklinev1.StateInactive)
	setState(t, wh, hooklinev1.StateActive)
	g.Consistently(func(g Gomega) {
		c := meta.FindStatusCondition(getReplay(g, rp).Status.Conditions, hooklinev1.ConditionStalled)
		g.Expect(c.Reason).To(Equal(hooklinev1.ReasonSelectionTooLarge))
		g.Expect(rc.got()).To(HaveLen(3))
	}).WithTimeout(time.Second).Should(Succeed())
}

// A tenant holding every right in its namespace creates replays one after another, each making
// the dispatcher walk the delivery log every tenant shares. Past its namespace's budget of log
// reads its replays wait, and say until when; another tenant's replay created meanwhile is read,
// queued and delivered without waiting for them.
func TestATenantsReplaysCannotHoldUpAnothersPastItsReadBudget(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const greedyAccount, victimAccount = "acc-budget-greedy", "acc-budget-victim"
	greedyNS, victimNS := newNamespace(t, greedyAccount, ""), newNamespace(t, victimAccount, "")
	greedyRC, victimRC := newReceiver(t), newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{greedyNS, victimNS}, mutate: func(c *dispatcher.Config) {
		fastReplays(c)
		// Two reads at once, then one every two minutes: nothing refills while the test runs.
		c.ReplayLogReadBurst, c.ReplayLogReadsPerMinute = 2, 0.5
	}})
	s.activeWebhook(t, greedyNS, "orders", accountSpec(greedyRC.URL))
	s.activeWebhook(t, victimNS, "orders", accountSpec(victimRC.URL))
	s.mustPost(t, event("budget-greedy-1", greedyAccount))
	s.mustPost(t, event("budget-victim-1", victimAccount))
	g.Eventually(func() int { return len(greedyRC.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	g.Eventually(func() int { return len(victimRC.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	greedyID := hooklinev1.NotificationID(greedyRC.decoded(t)[0].notificationID)
	victimID := hooklinev1.NotificationID(victimRC.decoded(t)[0].notificationID)

	greedy := tenantClient(t, greedyNS, "tenant-"+greedyNS)
	victim := tenantClient(t, victimNS, "tenant-"+victimNS)
	replayOf := func(ns, name string, id hooklinev1.NotificationID) *hooklinev1.WebhookReplay {
		return &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: hooklinev1.WebhookReplaySpec{WebhookName: "orders", NotificationIDs: []hooklinev1.NotificationID{id}}}
	}
	// heldMessage is the message of rp's Reconciling condition while its read waits for the budget.
	heldMessage := func(g Gomega, rp *hooklinev1.WebhookReplay) string {
		got := getReplay(g, rp)
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, hooklinev1.ConditionReady)).To(BeFalse(), "%s completed", rp.Name)
		c := meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionReconciling)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Message).To(ContainSubstring("has spent its budget of delivery log reads"))
		return c.Message
	}

	// The greedy tenant replays its notification again and again, each replay after the previous
	// one completed, until one waits for the budget.
	var held *hooklinev1.WebhookReplay
	completed := 0
	for i := range 6 {
		rp := replayOf(greedyNS, fmt.Sprintf("again-%d", i), greedyID)
		g.Expect(greedy.Create(ctx, rp)).To(Succeed())
		var isHeld bool
		g.Eventually(func(g Gomega) {
			got := getReplay(g, rp)
			if meta.IsStatusConditionTrue(got.Status.Conditions, hooklinev1.ConditionReady) {
				return
			}
			heldMessage(g, rp)
			isHeld = true
		}).WithTimeout(30 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
		if isHeld {
			held = rp
			break
		}
		completed++
	}
	g.Expect(held).NotTo(BeNil(), "six replays one after another, none waited for the namespace's budget")
	g.Expect(completed).To(BeNumerically(">=", 1), "the budget allows a burst")
	msg := heldMessage(g, held)
	g.Expect(msg).To(MatchRegexp(`namespace %s has spent .*\(2 at once, then 0.5 a minute\).* is read at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`, greedyNS))

	// The victim's replay is read and delivered meanwhile.
	vrp := replayOf(victimNS, "mine", victimID)
	g.Expect(victim.Create(ctx, vrp)).To(Succeed())
	got := waitCompleted(t, vrp, 20*time.Second)
	g.Expect(got.Status.Delivered).To(BeEquivalentTo(1))
	g.Eventually(func() int { return len(victimRC.got()) }).WithTimeout(10 * time.Second).Should(Equal(2))
	g.Expect(victimRC.decoded(t)[1].notificationID).To(BeEquivalentTo(victimID))

	// The greedy namespace's held replay still waits, and sent nothing.
	heldMessage(g, held)
	g.Expect(greedyRC.got()).To(HaveLen(1+completed), "one delivery and one per completed replay")
}
