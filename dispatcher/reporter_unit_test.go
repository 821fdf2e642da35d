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
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/deliver"
)

// manyWebhooks is DeliveryState for n webhooks named wh-0… in namespace ns, uid "uid-i".
type manyWebhooks struct{ ns string }

func (m manyWebhooks) Status(string) (deliver.Status, bool) {
	return deliver.Status{Delivered: 1, LastSuccess: time.Unix(1_700_000_000, 0)}, true
}
func (m manyWebhooks) Webhook(uid string) (deliver.Webhook, bool) {
	var i int
	_, _ = fmt.Sscanf(uid, "uid-%d", &i)
	return deliver.Webhook{Namespace: m.ns, Name: fmt.Sprintf("wh-%d", i)}, true
}

// reporterWithBlockedWrites returns a reporter of n dirty webhooks whose status writes call write.
func reporterWithBlockedWrites(t *testing.T, n int, write func(ctx context.Context) error) *Reporter {
	t.Helper()
	var objs []client.Object
	for i := range n {
		objs = append(objs, &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{
			Namespace: "team-a", Name: fmt.Sprintf("wh-%d", i), UID: types.UID(fmt.Sprintf("uid-%d", i))}})
	}
	c := fakeClientBuilder(t).WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		SubResourceApply: func(ctx context.Context, _ client.Client, _ string, _ runtime.ApplyConfiguration, _ ...client.SubResourceApplyOption) error {
			return write(ctx)
		},
	}).Build()
	r := &Reporter{Client: c, Engine: manyWebhooks{ns: "team-a"}, Recorder: &events.FakeRecorder{},
		Clock: clocktesting.NewFakePassiveClock(time.Unix(1_700_000_000, 0)), Interval: time.Hour, Log: logr.Discard()}
	for i := range n {
		r.Mark(fmt.Sprintf("uid-%d", i), false)
	}
	return r
}

// A stop writes every dirty status, thousands of them: the writes overlap, up to reportWorkers
// at once (one at a time took 27 s for 2,300 webhooks at a dispatcher's stop).
func TestReporterWritesStatusesInParallel(t *testing.T) {
	g := NewWithT(t)
	var inFlight, most atomic.Int64
	release := make(chan struct{})
	r := reporterWithBlockedWrites(t, 3*reportWorkers, func(context.Context) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		return nil
	})
	flushed := make(chan struct{})
	go func() { defer close(flushed); r.flush(context.Background(), flushAll) }()
	g.Eventually(inFlight.Load).Should(BeNumerically("==", reportWorkers), "writes in flight at once")
	close(release)
	g.Eventually(flushed).Should(BeClosed())
	g.Expect(most.Load()).To(BeNumerically("==", reportWorkers), "never more than reportWorkers")
}

// A dispatcher's stop writes the last statuses within StopTimeout, however slow the API server:
// the engine saved the counters already, and a stop must fit in the pod's grace period.
func TestReporterStopIsBounded(t *testing.T) {
	g := NewWithT(t)
	var writes sync.WaitGroup
	r := reporterWithBlockedWrites(t, 100, func(ctx context.Context) error {
		writes.Add(1)
		defer writes.Done()
		<-ctx.Done() // an API server that never answers
		return ctx.Err()
	})
	r.StopTimeout = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	returned := make(chan error, 1)
	go func() { returned <- r.Start(ctx) }()
	g.Eventually(returned).WithTimeout(10 * time.Second).Should(Receive(BeNil()))
	writes.Wait()
	g.Expect(r.Known()).To(HaveLen(100), "what was not written is still marked for the next flush")
}

// changingWebhooks is manyWebhooks whose counters change at every read, as a delivering webhook's
// do: no status is ever unchanged.
type changingWebhooks struct {
	manyWebhooks
	reads *atomic.Int64
}

func (c changingWebhooks) Status(string) (deliver.Status, bool) {
	return deliver.Status{Delivered: c.reads.Add(1)}, true
}

// Routine writes stay within the budget whatever the number of webhooks, come a few at a time
// every routinePace, serve each webhook at most once an interval and every webhook in turn (the
// longest-waiting first); state changes are written at once beyond the budget.
func TestReporterBoundsRoutineWrites(t *testing.T) {
	g := NewWithT(t)
	const n = 50
	r, total, each := reporterCountingWrites(t, n)
	// 10 writes a second, passes every 100 ms: one write a pass.
	r.Interval, r.WritesPerSecond = 10*time.Second, 10
	every := int(r.passesPerInterval())
	g.Expect(every).To(Equal(100))
	markAll := func() {
		for i := range n {
			r.Mark(fmt.Sprintf("uid-%d", i), false)
		}
	}
	pass := func() { r.flush(context.Background(), flushRoutine) }

	// Every webhook changing before each pass: one write a pass, and each webhook is written once,
	// not the same one every time.
	for i := 1; i <= n; i++ {
		markAll()
		pass()
		g.Expect(total()).To(Equal(i), "pass %d writes within the budget", i)
		g.Expect(r.Known()).To(HaveLen(n), "the others stay dirty for the next pass")
	}
	g.Expect(each()).To(HaveLen(n), "every webhook had its turn")
	for name, w := range each() {
		g.Expect(w).To(Equal(1), "%s written once", name)
	}
	// All dirty, none served an interval ago yet: nothing is written until the first one's
	// interval is over, then it is due again.
	for range every - n {
		markAll()
		pass()
	}
	g.Expect(total()).To(Equal(n), "no webhook is written twice within an interval")
	pass()
	g.Expect(total()).To(Equal(n+1), "the longest-waiting is due again")

	// State changes are written at once, beyond the budget.
	for i := range 30 {
		r.Mark(fmt.Sprintf("uid-%d", i), true)
	}
	r.flush(context.Background(), flushUrgent)
	g.Expect(total()).To(Equal(n+31), "urgent writes are not bounded")

	// The last flush at a stop writes everything dirty.
	markAll()
	r.flush(context.Background(), flushAll)
	g.Expect(total()).To(Equal(2*n + 31))
}

// The routine writes come evenly, not in a burst a second: at the default 20 a second, two a pass
// every 100 ms; a rate below one write a pass holds on average; a quiet spell earns no burst.
func TestReporterSpreadsRoutineWrites(t *testing.T) {
	g := NewWithT(t)
	const n = 200
	r, total, _ := reporterCountingWrites(t, n)
	r.Interval = time.Hour
	markAll := func() {
		for i := range n {
			r.Mark(fmt.Sprintf("uid-%d", i), false)
		}
	}
	// passes runs k routine passes and returns the most writes one of them made.
	passes := func(k int) (most int) {
		for range k {
			before := total()
			r.flush(context.Background(), flushRoutine)
			most = max(most, total()-before)
		}
		return most
	}
	markAll()
	g.Expect(passes(10)).To(Equal(2), "the default rate: two writes a pass")
	g.Expect(total()).To(Equal(DefaultStatusWritesPerSecond), "a second's passes write the second's budget")

	r.WritesPerSecond = 2.5 // a quarter of a write a pass
	before := total()
	g.Expect(passes(40)).To(Equal(1))
	g.Expect(total()-before).To(Equal(10), "four seconds at 2.5 a second")

	r.WritesPerSecond = 20
	r.Interval = time.Second // everyone written is due again after 10 passes
	r.flush(context.Background(), flushAll)
	before = total()
	for range 50 {
		r.flush(context.Background(), flushRoutine) // nothing dirty: credit does not pile up
	}
	g.Expect(total()).To(Equal(before), "nothing dirty, nothing written")
	markAll()
	g.Expect(passes(1)).To(Equal(2), "after a quiet spell, still one pass's share")
}

// reporterCountingWrites returns a reporter of n webhooks whose counters change at every read and
// functions that count the status writes so far, in all and per webhook name.
func reporterCountingWrites(t *testing.T, n int) (r *Reporter, total func() int, each func() map[string]int) {
	var mu sync.Mutex
	writes := map[string]int{}
	r = reporterWithBlockedWrites(t, 0, nil)
	scheme := r.Client.Scheme()
	var objs []client.Object
	for i := range n {
		objs = append(objs, &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{
			Namespace: "team-a", Name: fmt.Sprintf("wh-%d", i), UID: types.UID(fmt.Sprintf("uid-%d", i))}})
	}
	r.Client = fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		SubResourceApply: func(_ context.Context, _ client.Client, _ string, obj runtime.ApplyConfiguration, _ ...client.SubResourceApplyOption) error {
			mu.Lock()
			defer mu.Unlock()
			writes[obj.(interface{ GetName() string }).GetName()]++
			return nil
		},
	}).Build()
	r.Engine = changingWebhooks{manyWebhooks: manyWebhooks{ns: "team-a"}, reads: &atomic.Int64{}}
	total = func() (sum int) {
		mu.Lock()
		defer mu.Unlock()
		for _, w := range writes {
			sum += w
		}
		return sum
	}
	each = func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(writes)
	}
	return r, total, each
}

// A pass picks the webhooks served longest ago, for a pick of one as for one of all of them.
func TestReporterPicksTheLongestWaiting(t *testing.T) {
	g := NewWithT(t)
	r := &Reporter{}
	r.init()
	const n = 500
	for i := range n {
		uid := fmt.Sprintf("uid-%d", i)
		r.dirty[uid] = true
		if i%5 != 0 { // every fifth never served: the zero service, first
			r.served[uid] = service{seq: uint64((i * 7919) % 1000)}
		}
	}
	notEvery7th := func(uid string) bool { var i int; _, _ = fmt.Sscanf(uid, "uid-%d", &i); return i%7 != 0 }
	var due []string
	for uid := range r.dirty {
		if notEvery7th(uid) {
			due = append(due, uid)
		}
	}
	seq := func(uid string) uint64 { return r.served[uid].seq }
	for _, k := range []int{1, 2, 64, 65, 300, len(due), len(due) + 10} {
		got := r.longestWaiting(k, notEvery7th)
		g.Expect(got).To(HaveLen(min(k, len(due))), "pick %d", k)
		// Exactly the k smallest services: the largest picked is at most the smallest left out.
		picked := map[string]bool{}
		var most uint64
		for _, uid := range got {
			g.Expect(notEvery7th(uid)).To(BeTrue(), "only due webhooks")
			picked[uid] = true
			most = max(most, seq(uid))
		}
		for _, uid := range due {
			if !picked[uid] {
				g.Expect(seq(uid)).To(BeNumerically(">=", most), "pick %d: %s (served %d) waited longer than one picked (served %d)", k, uid, seq(uid), most)
			}
		}
	}
	g.Expect(r.longestWaiting(0, notEvery7th)).To(BeEmpty())
}

// changingWebhook is one webhook whose delivered count the test sets.
type changingWebhook struct {
	delivered atomic.Int64
	disabled  atomic.Bool
}

func (c *changingWebhook) Status(string) (deliver.Status, bool) {
	return deliver.Status{Delivered: c.delivered.Load(), Disabled: c.disabled.Load()}, true
}

func (c *changingWebhook) Webhook(string) (deliver.Webhook, bool) {
	return deliver.Webhook{Namespace: "team-a", Name: "wh-0"}, true
}

// A tenant's changes are written at once within its namespace's share (UrgentBurst), with the
// routine writes beyond; only writes are charged: reconciles that change nothing (a resync, the
// manager's own status write) leave the share to the next real change, which is written at once.
func TestReporterChargesATenantsShareOnlyForWrites(t *testing.T) {
	g := NewWithT(t)
	var writes atomic.Int64
	c := fakeClientBuilder(t).WithObjects(&hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "wh-0", UID: "uid-0"}}).
		WithInterceptorFuncs(interceptor.Funcs{SubResourceApply: func(context.Context, client.Client, string, runtime.ApplyConfiguration, ...client.SubResourceApplyOption) error {
			writes.Add(1)
			return nil
		}}).Build()
	wh := &changingWebhook{}
	r := &Reporter{Client: c, Engine: wh, Recorder: &events.FakeRecorder{},
		Clock: clocktesting.NewFakePassiveClock(time.Unix(1_700_000_000, 0)), Interval: time.Hour, Log: logr.Discard()}
	ctx := context.Background()
	for range 3 * UrgentBurst {
		r.MarkTenant("team-a", "uid-0") // nothing changes
		r.flush(ctx, flushUrgent)
	}
	g.Expect(writes.Load()).To(BeEquivalentTo(1), "the first report is written, the unchanged ones not")
	for i := range UrgentBurst - 1 { // the first write took one
		wh.delivered.Store(int64(i + 1))
		r.MarkTenant("team-a", "uid-0")
		r.flush(ctx, flushUrgent)
	}
	g.Expect(writes.Load()).To(BeEquivalentTo(UrgentBurst), "changes written at once within the share (the reporter's clock stands still)")
	wh.delivered.Add(1)
	r.MarkTenant("team-a", "uid-0")
	r.flush(ctx, flushUrgent)
	g.Expect(writes.Load()).To(BeEquivalentTo(UrgentBurst), "beyond the share, not at once")
	// An auto-disable is written at once, the share used up or not (its mark may come with the
	// tenant's change).
	wh.disabled.Store(true)
	r.MarkTenant("team-a", "uid-0")
	r.flush(ctx, flushUrgent)
	g.Expect(writes.Load()).To(BeEquivalentTo(UrgentBurst+1), "an auto-disable at once")
	wh.delivered.Add(1)
	r.MarkTenant("team-a", "uid-0")
	r.flush(ctx, flushUrgent)
	g.Expect(writes.Load()).To(BeEquivalentTo(UrgentBurst+1), "then the share again")
	r.flush(ctx, flushAll)
	g.Expect(writes.Load()).To(BeEquivalentTo(UrgentBurst+2), "but with the routine writes")
	// The last flush at a stop writes everything, the share used up or not.
	wh.delivered.Add(1)
	r.MarkTenant("team-a", "uid-0")
	r.flush(ctx, flushAll)
	g.Expect(writes.Load()).To(BeEquivalentTo(UrgentBurst+3), "the last flush at a stop")
}
