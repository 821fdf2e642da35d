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

package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// A replay whose start could not be written keeps its turn, and its retry records the time it was
// admitted, not the time of the retry: a replay admitted in between (a turn freed meanwhile) must
// not appear to have started before it. Under a loaded API server the retry came a second later
// and the recorded start times went out of creation order.
func TestRetriedStartKeepsTheAdmissionTime(t *testing.T) {
	g := NewWithT(t)
	base := time.Unix(1_700_000_000, 0)
	replay := func(name string, created time.Duration) *hooklinev1.WebhookReplay {
		return &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name, UID: types.UID("uid-" + name),
			CreationTimestamp: metav1.NewTime(base.Add(created))}, Spec: hooklinev1.WebhookReplaySpec{WebhookName: "orders"}}
	}
	first, second := replay("first", 0), replay("second", time.Second)
	failing := true
	c := fakeClientBuilder(t).WithObjects(first, second).WithInterceptorFuncs(interceptor.Funcs{
		SubResourceApply: func(ctx context.Context, c client.Client, sub string, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
			if failing {
				return errors.New("the API server timed out")
			}
			return nil
		},
	}).Build()
	clk := clocktesting.NewFakePassiveClock(base.Add(2 * time.Second))
	r := &Replayer{Client: c, Clock: clk, Recorder: &events.FakeRecorder{}, MaxPerNamespace: 2, Log: &countingLog{}}
	r.init()
	wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "orders", UID: "wh-uid"}}

	st := first.Status.DeepCopy()
	ok, err := r.start(context.Background(), first, wh, st)
	g.Expect(err).To(HaveOccurred())
	g.Expect(ok).To(BeFalse())

	clk.SetTime(base.Add(3 * time.Second))
	failing = false
	st2 := second.Status.DeepCopy()
	ok, err = r.start(context.Background(), second, wh, st2)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeTrue(), "a turn is left for the second")

	clk.SetTime(base.Add(5 * time.Second))
	st = first.Status.DeepCopy()
	ok, err = r.start(context.Background(), first, wh, st)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeTrue(), "the first kept its turn")
	g.Expect(st.StartedAt.Time).To(BeTemporally("==", base.Add(2*time.Second)), "admitted then")
	g.Expect(st.StartedAt.Time).NotTo(BeTemporally(">", st2.StartedAt.Time), "not after the one admitted since")
}

// Replays that wait their turn start in creation order even when a later one is reconciled first
// with room for both: the earlier ones are admitted with it, at the same moment (seen in the flood
// test: a later replay started a second before an earlier one).
func TestReplaysWithRoomStartInCreationOrder(t *testing.T) {
	g := NewWithT(t)
	base := time.Unix(1_700_000_000, 0)
	queued := []metav1.Condition{{Type: hooklinev1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: hooklinev1.ReasonQueued,
		LastTransitionTime: metav1.NewTime(base)}}
	replay := func(name string, created time.Duration) *hooklinev1.WebhookReplay {
		return &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name, UID: types.UID("uid-" + name),
			CreationTimestamp: metav1.NewTime(base.Add(created))}, Spec: hooklinev1.WebhookReplaySpec{WebhookName: "orders"},
			Status: hooklinev1.WebhookReplayStatus{Conditions: queued}}
	}
	earlier, later := replay("earlier", 0), replay("later", time.Second)
	c := fakeClientBuilder(t).WithObjects(earlier, later).WithStatusSubresource(earlier, later).
		WithInterceptorFuncs(interceptor.Funcs{
			SubResourceApply: func(context.Context, client.Client, string, runtime.ApplyConfiguration, ...client.SubResourceApplyOption) error {
				return nil
			},
		}).Build()
	clk := clocktesting.NewFakePassiveClock(base.Add(2 * time.Second))
	r := &Replayer{Client: c, Clock: clk, Recorder: &events.FakeRecorder{}, MaxPerNamespace: 2, Log: &countingLog{}}
	r.init()
	wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "orders", UID: "wh-uid"}}

	stLater := later.Status.DeepCopy()
	ok, err := r.start(context.Background(), later, wh, stLater)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeTrue(), "room for both")

	clk.SetTime(base.Add(5 * time.Second)) // the earlier one is reconciled a while later
	stEarlier := earlier.Status.DeepCopy()
	ok, err = r.start(context.Background(), earlier, wh, stEarlier)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeTrue())
	g.Expect(stEarlier.StartedAt.Time).NotTo(BeTemporally(">", stLater.StartedAt.Time), "the earlier replay did not start after the later one")
}

// Turns held by replays whose status says started but that this dispatcher did not admit (a
// status the tenant wrote, for replays of a Webhook it keeps INACTIVE, so that they never run)
// are seen without listing the namespace again for turnsSeenFor: before, each of the tenant's
// waiting replays listed (and copied) every replay of the namespace at each poll.
func TestTurnsHeldElsewhereAreSeenWithoutListingAgain(t *testing.T) {
	g := NewWithT(t)
	base := time.Unix(1_700_000_000, 0)
	queued := []metav1.Condition{{Type: hooklinev1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: hooklinev1.ReasonQueued,
		LastTransitionTime: metav1.NewTime(base)}}
	var objs []client.Object
	for i := range 2 {
		objs = append(objs, &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: fmt.Sprintf("forged-%d", i),
			CreationTimestamp: metav1.NewTime(base)}, Spec: hooklinev1.WebhookReplaySpec{WebhookName: "inactive"},
			Status: hooklinev1.WebhookReplayStatus{WebhookUID: "wh-inactive", StartedAt: &metav1.Time{Time: base}}})
	}
	var waiting []*hooklinev1.WebhookReplay
	for i := range 50 {
		rp := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: fmt.Sprintf("waiting-%02d", i),
			CreationTimestamp: metav1.NewTime(base.Add(time.Second))}, Spec: hooklinev1.WebhookReplaySpec{WebhookName: "orders"},
			Status: hooklinev1.WebhookReplayStatus{Conditions: queued}}
		waiting = append(waiting, rp)
		objs = append(objs, rp)
	}
	lists := 0
	c := fakeClientBuilder(t).WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			lists++
			return c.List(ctx, list, opts...)
		},
	}).Build()
	clk := clocktesting.NewFakePassiveClock(base.Add(2 * time.Second))
	r := &Replayer{Client: c, Clock: clk, Recorder: &events.FakeRecorder{}, MaxPerNamespace: 2, Log: &countingLog{}}
	r.init()

	for _, rp := range waiting {
		ok, _, err := r.admit(context.Background(), rp)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ok).To(BeFalse(), "both turns are held")
	}
	g.Expect(lists).To(Equal(1), "one listing for the fifty")

	clk.SetTime(base.Add(2*time.Second + turnsSeenFor))
	ok, _, err := r.admit(context.Background(), waiting[0])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeFalse())
	g.Expect(lists).To(Equal(2), "listed again once the count is old")
}

// A replay left started by a previous run is not kept waiting by its own turn, counted among those
// the cache showed held elsewhere: with two turns, one new replay admitted beside it leaves it the
// second.
func TestAReplayHeldElsewhereDoesNotCountItselfAgainstItsTurn(t *testing.T) {
	g := NewWithT(t)
	base := time.Unix(1_700_000_000, 0)
	left := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "left", CreationTimestamp: metav1.NewTime(base)},
		Spec:   hooklinev1.WebhookReplaySpec{WebhookName: "orders"},
		Status: hooklinev1.WebhookReplayStatus{WebhookUID: "wh-uid", StartedAt: &metav1.Time{Time: base}}}
	fresh := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "fresh", CreationTimestamp: metav1.NewTime(base.Add(time.Second))},
		Spec: hooklinev1.WebhookReplaySpec{WebhookName: "orders"}}
	c := fakeClientBuilder(t).WithObjects(left, fresh).Build()
	clk := clocktesting.NewFakePassiveClock(base.Add(2 * time.Second))
	r := &Replayer{Client: c, Clock: clk, Recorder: &events.FakeRecorder{}, MaxPerNamespace: 2, Log: &countingLog{}}
	r.init()

	ok, _, err := r.admit(context.Background(), fresh)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeTrue(), "the left one and the fresh one fit")
	ok, err = r.resume(context.Background(), left)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeTrue(), "the second turn is the left one's")
}

// Replays whose status says started, more than the turns (a tenant wrote it), resume in creation
// order: the first in line is not kept waiting by the ones created after it. Before, the turns
// seen held elsewhere counted every such replay, so that the later ones listing the namespace
// each time that count expired (polls in step with it) kept the first from its turn for ever.
func TestAReplayWaitingToResumeCountsOnlyThoseCreatedBeforeIt(t *testing.T) {
	g := NewWithT(t)
	base := time.Unix(1_700_000_000, 0)
	var replays []*hooklinev1.WebhookReplay
	var objs []client.Object
	for i := range 3 {
		rp := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: fmt.Sprintf("forged-%d", i),
			CreationTimestamp: metav1.NewTime(base.Add(time.Duration(i) * time.Second))}, Spec: hooklinev1.WebhookReplaySpec{WebhookName: "orders"},
			Status: hooklinev1.WebhookReplayStatus{WebhookUID: "wh-uid", StartedAt: &metav1.Time{Time: base}}}
		replays = append(replays, rp)
		objs = append(objs, rp)
	}
	c := fakeClientBuilder(t).WithObjects(objs...).Build()
	clk := clocktesting.NewFakePassiveClock(base.Add(time.Minute))
	r := &Replayer{Client: c, Clock: clk, Recorder: &events.FakeRecorder{}, MaxPerNamespace: 1, Log: &countingLog{}}
	r.init()

	// The last lists first: two ahead of it.
	ok, err := r.resume(context.Background(), replays[2])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeFalse(), "two were created before it")
	// The first, within the listing's memo: nothing is ahead of it.
	ok, err = r.resume(context.Background(), replays[0])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeTrue(), "the first in line waited for replays created after it")
	ok, err = r.resume(context.Background(), replays[1])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeFalse(), "the only turn is the first's")
}

// A namespace's budget of notifications queued again: a replay may start while some are left, and
// is charged for all it queues (below zero); the namespace then waits until the balance is above
// zero again, at the budget's rate. Namespaces are independent.
func TestNotesBudget(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	b := newNotesBudget(60, 10) // one a second, 10 at once
	if w := b.wait("a", t0); w != 0 {
		t.Fatalf("a fresh namespace waits %v", w)
	}
	b.charge("a", 15, t0) // balance -5
	if w := b.wait("a", t0); w != 6*time.Second {
		t.Fatalf("after 15 of 10: wait %v, want 6s (until the balance is 1)", w)
	}
	if w := b.wait("a", t0.Add(6*time.Second)); w != 0 {
		t.Fatalf("6 s later: wait %v", w)
	}
	if w := b.wait("b", t0); w != 0 {
		t.Fatalf("another namespace waits %v", w)
	}
	b.charge("a", 1, t0.Add(time.Hour)) // refilled to the burst, not beyond
	b.charge("a", 9, t0.Add(time.Hour))
	if w := b.wait("a", t0.Add(time.Hour)); w != time.Second {
		t.Fatalf("10 of a full 10: wait %v, want 1s", w)
	}
}
