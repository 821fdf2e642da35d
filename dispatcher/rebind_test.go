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
	"net/http"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/internal/tenancy"
)

// binding is a namespace's binding labels; an empty account unbinds.
type binding struct{ account, group string }

// rebindNamespace sets ns's binding labels as a cluster admin would (tenants are refused by the
// admission policy; this is about what the dispatcher does with the change).
func rebindNamespace(t *testing.T, ns string, b binding) {
	t.Helper()
	labels := map[string]any{tenancy.AccountLabel: nil, tenancy.GroupLabel: nil}
	if b.account != "" {
		labels[tenancy.AccountLabel] = b.account
	}
	if b.group != "" {
		labels[tenancy.GroupLabel] = b.group
	}
	patch := mustJSON(map[string]any{"metadata": map[string]any{"labels": labels}})
	obj := &corev1.Namespace{}
	obj.Name = ns
	NewWithT(t).Expect(k8s.Patch(context.Background(), obj, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
}

// agreementOf returns the agreement id and accountId of a delivered notification.
func agreementOf(g Gomega, d delivery) (agreement, account string) {
	var body struct {
		AccountID string `json:"accountId"`
		Agreement struct {
			ID string `json:"id"`
		} `json:"agreement"`
	}
	g.Expect(json.Unmarshal(d.Body, &body)).To(Succeed())
	return body.Agreement.ID, body.AccountID
}

// waitRoutedUnder waits until the dispatcher routes to wh under account and group.
func (s *stack) waitRoutedUnder(t *testing.T, wh *hooklinev1.Webhook, b binding) {
	t.Helper()
	NewWithT(t).Eventually(func() bool {
		for _, tg := range s.app.Table.Targets() {
			if tg.UID == string(wh.UID) && tg.AccountID == b.account && tg.NamespaceGroup == b.group {
				return true
			}
		}
		return false
	}).WithTimeout(20*time.Second).WithPolling(10*time.Millisecond).Should(BeTrue(), "the dispatcher does not route to %s under %v", wh.Name, b)
}

// Issue 10, item 1: when a namespace's binding changes, notifications queued under the old binding
// are never delivered under the new one. A failing webhook queues three events of its old binding,
// the first of them in flight (its receiver holds the request) when the namespace is rebound; then
// the receiver recovers and an event of the new binding is posted. The receiver gets that event
// and nothing else: the queued ones are cancelled, the one in flight is not retried, and the status
// counts them (cancelledTotal) and says what happened (Delivering, reason BindingChanged).
func TestRebindingCancelsWhatTheOldBindingQueued(t *testing.T) {
	cases := []struct {
		name       string
		from, to   binding
		unbindMeet bool // unbound in between, then bound to `to`
		before     func(id string) []byte
		after      func(id string) []byte
	}{{
		name: "relabelled to another account",
		from: binding{"acc-rebind-a", ""}, to: binding{"acc-rebind-b", ""},
		before: func(id string) []byte { return event(id, "acc-rebind-a") },
		after:  func(id string) []byte { return event(id, "acc-rebind-b") },
	}, {
		name: "group changed",
		from: binding{"acc-rebind-g", "grp-1"}, to: binding{"acc-rebind-g", "grp-2"},
		before: func(id string) []byte { return groupEvent(id, "acc-rebind-g", "grp-1") },
		after:  func(id string) []byte { return groupEvent(id, "acc-rebind-g", "grp-2") },
	}, {
		name: "unbound, then bound to another account",
		from: binding{"acc-rebind-u", ""}, to: binding{"acc-rebind-v", ""}, unbindMeet: true,
		before: func(id string) []byte { return event(id, "acc-rebind-u") },
		after:  func(id string) []byte { return event(id, "acc-rebind-v") },
	}}
	namespaces := make([]string, len(cases))
	for i, tc := range cases {
		namespaces[i] = newNamespace(t, tc.from.account, tc.from.group)
	}
	s := startStack(t, stackOptions{namespaces: namespaces, mutate: func(c *dispatcher.Config) {
		// Retries come fast, so that anything left in the queue would be sent at once; the
		// attempt held in flight must not time out before the test releases it.
		c.Engine.Policy.RetryBase, c.Engine.Policy.RetryCap = 100*time.Millisecond, 300*time.Millisecond
		c.DeliveryTimeout = time.Minute
	}})
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := namespaces[i]
			rc := newReceiver(t)
			release := make(chan struct{})
			var once sync.Once
			releaseHeld := func() { once.Do(func() { close(release) }) }
			t.Cleanup(releaseHeld) // before rc.Close, which waits for the held request
			rc.set(func(w http.ResponseWriter, _ *http.Request) {
				<-release
				w.WriteHeader(http.StatusInternalServerError)
			})
			wh := s.activeWebhook(t, ns, "hook", accountSpec(rc.URL+"/hook"))
			for _, id := range []string{"1", "2", "3"} {
				s.mustPost(t, tc.before("rebind-old-"+id+"-"+ns))
			}
			// The first is in flight, held by the receiver; all three are pending.
			g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
			g.Eventually(func() int64 { return deref(getWebhook(g, wh).Status.PendingNotifications) }).
				WithTimeout(10 * time.Second).Should(Equal(int64(3)))

			if tc.unbindMeet {
				rebindNamespace(t, ns, binding{})
				g.Eventually(func() string { return string(getWebhook(g, wh).Status.State) }).
					WithTimeout(20 * time.Second).Should(Equal(string(hooklinev1.ObservedInactive)))
			}
			rebindNamespace(t, ns, tc.to)
			// Routed under the new binding once it is recorded; the old binding's notes are cancelled as they come up.
			s.waitRoutedUnder(t, wh, tc.to)
			// The receiver recovers, and the held attempt fails (500). Nothing queued under the old
			// binding arrives, and the held one is not retried (retries come every 100-300 ms).
			rc.set(echoOK)
			releaseHeld()
			g.Consistently(func() int { return len(rc.got()) }).WithTimeout(time.Second).
				Should(Equal(1), "notifications queued under %v were delivered after the namespace was bound to %v", tc.from, tc.to)
			g.Eventually(func(g Gomega) {
				got := getWebhook(g, wh)
				g.Expect(deref(got.Status.CancelledTotal)).To(Equal(int64(3)), "two queued, and the held one that failed")
				g.Expect(deref(got.Status.PendingNotifications)).To(BeZero())
				c := condition(got, hooklinev1.ConditionDelivering)
				g.Expect(c).NotTo(BeNil())
				g.Expect(c.Reason).To(Equal(hooklinev1.ReasonBindingChanged))
				g.Expect(c.Message).To(ContainSubstring("3 notifications queued under the old binding"), "the two queued behind the held one, and the held one")
				g.Expect(c.Message).To(ContainSubstring("account " + tc.from.account))
				g.Expect(c.Message).To(ContainSubstring("account " + tc.to.account))
			}).WithTimeout(20 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())

			newID := "rebind-new-" + ns
			s.mustPost(t, tc.after(newID))
			g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(2))
			g.Consistently(func() int { return len(rc.got()) }).WithTimeout(time.Second).Should(Equal(2))
			posts := rc.got()
			agreement, account := agreementOf(g, posts[1])
			g.Expect(agreement).To(Equal("agr-"+newID), "only the new binding's event is delivered after the rebinding")
			g.Expect(account).To(Equal(tc.to.account))
			var body map[string]any
			g.Expect(json.Unmarshal(posts[1].Body, &body)).To(Succeed())
			g.Expect(body).To(HaveKeyWithValue("webhookId", string(wh.UID)))
			got := getWebhook(g, wh)
			g.Expect(deref(got.Status.CancelledTotal)).To(Equal(int64(3)))
			g.Expect(deref(got.Status.DeliveredTotal)).To(Equal(int64(1)))
		})
	}
}

// The same across a restart: the binding a queue was filled under is saved with it, so a namespace
// rebound while the dispatcher was down is noticed when it starts again, before anything is sent.
func TestRebindingWhileStoppedCancelsAtStart(t *testing.T) {
	g := NewWithT(t)
	from, to := binding{"acc-rebind-stop-a", ""}, binding{"acc-rebind-stop-b", ""}
	ns := newNamespace(t, from.account, "")
	fast := func(c *dispatcher.Config) {
		c.Engine.Policy.RetryBase, c.Engine.Policy.RetryCap = 100*time.Millisecond, 300*time.Millisecond
	}
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: fast})
	rc := newReceiver(t)
	rc.set(fail500)
	wh := s.activeWebhook(t, ns, "hook", accountSpec(rc.URL+"/hook"))
	for _, id := range []string{"1", "2", "3"} {
		s.mustPost(t, event("rebind-stop-old-"+id, from.account))
	}
	g.Eventually(func(g Gomega) {
		got := getWebhook(g, wh)
		g.Expect(deref(got.Status.PendingNotifications)).To(Equal(int64(3)))
		g.Expect(deref(got.Status.ConsecutiveFailures)).To(BeNumerically(">=", 1))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	s.stop()
	failed := len(rc.got())

	rebindNamespace(t, ns, to)
	rc.set(echoOK)
	s = startStack(t, stackOptions{namespaces: []string{ns}, dir: s.dir, mutate: fast})
	s.waitRoutedUnder(t, wh, to)
	g.Consistently(func() int { return len(rc.got()) }).WithTimeout(time.Second).
		Should(Equal(failed), "notifications queued under %v were delivered after the restart under %v", from, to)
	g.Eventually(func(g Gomega) {
		got := getWebhook(g, wh)
		g.Expect(deref(got.Status.CancelledTotal)).To(Equal(int64(3)))
		g.Expect(deref(got.Status.PendingNotifications)).To(BeZero())
		c := condition(got, hooklinev1.ConditionDelivering)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(hooklinev1.ReasonBindingChanged))
		g.Expect(c.Message).To(ContainSubstring("3 notifications queued under the old binding"))
	}).WithTimeout(20 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	s.mustPost(t, event("rebind-stop-new", to.account))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(failed + 1))
	g.Consistently(func() int { return len(rc.got()) }).WithTimeout(500 * time.Millisecond).Should(Equal(failed + 1))
	agreement, account := agreementOf(g, rc.got()[failed])
	g.Expect(agreement).To(Equal("agr-rebind-stop-new"))
	g.Expect(account).To(Equal(to.account))
}

// A rebind cancels what the old binding queued; a WebhookReplay the tenant creates afterwards
// selects those cancelled notifications from its webhook's log and queues them again, but none is
// sent: the engine sends no event of another binding (account, or group), whatever queued it.
// Before, the replay delivered the old account's (or group's) events under the new binding.
func TestReplayCannotCarryNotificationsAcrossARebind(t *testing.T) {
	cases := []struct {
		name     string
		from, to binding
		before   func(id string) []byte
		after    func(id string) []byte
	}{{
		name: "another account", from: binding{"acc-rereplay-a", ""}, to: binding{"acc-rereplay-b", ""},
		before: func(id string) []byte { return event(id, "acc-rereplay-a") },
		after:  func(id string) []byte { return event(id, "acc-rereplay-b") },
	}, {
		name: "another group", from: binding{"acc-rereplay-g", "grp-1"}, to: binding{"acc-rereplay-g", "grp-2"},
		before: func(id string) []byte { return groupEvent(id, "acc-rereplay-g", "grp-1") },
		after:  func(id string) []byte { return groupEvent(id, "acc-rereplay-g", "grp-2") },
	}}
	namespaces := make([]string, len(cases))
	for i, tc := range cases {
		namespaces[i] = newNamespace(t, tc.from.account, tc.from.group)
	}
	s := startStack(t, stackOptions{namespaces: namespaces, mutate: func(c *dispatcher.Config) {
		fastReplays(c)
		c.Engine.Policy = retryingForAnHour
	}})
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			ns := namespaces[i]
			rc := newReceiver(t)
			rc.set(fail500)
			wh := s.activeWebhook(t, ns, "hook", accountSpec(rc.URL+"/hook"))
			since := metav1.NewTime(time.Now().Add(-time.Hour))
			for _, id := range []string{"1", "2"} {
				s.mustPost(t, tc.before("rereplay-old-"+id+"-"+ns))
			}
			g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(BeNumerically(">=", 1))

			rebindNamespace(t, ns, tc.to)
			g.Eventually(func(g Gomega) {
				got := getWebhook(g, wh)
				g.Expect(deref(got.Status.PendingNotifications)).To(BeZero())
				g.Expect(deref(got.Status.CancelledTotal)).To(BeEquivalentTo(2))
			}).WithTimeout(20 * time.Second).Should(Succeed())
			rc.set(echoOK)
			before := len(rc.got())

			rp := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "carry-over"},
				Spec: hooklinev1.WebhookReplaySpec{WebhookName: "hook", Since: &since, States: []hooklinev1.ReplayState{hooklinev1.ReplayCancelled}}}
			g.Expect(tenantClient(t, ns, "tenant-"+ns).Create(ctx, rp)).To(Succeed())
			got := waitCompleted(t, rp, 30*time.Second)
			g.Expect(got.Status.Queued).To(BeEquivalentTo(2), "the log still holds them")
			g.Expect(got.Status.Delivered).To(BeZero())
			g.Expect(got.Status.Failed).To(BeEquivalentTo(2))
			g.Expect(rc.got()).To(HaveLen(before), "nothing of the old binding is sent")

			// The new binding's events are delivered.
			s.mustPost(t, tc.after("rereplay-new-"+ns))
			g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(before + 1))
		})
	}
}

// staleNamespaces is an informer cache that has not seen the namespaces' changes since it was
// taken: Gets of a namespace in it answer the copy taken then.
type staleNamespaces struct {
	client.Client
	mu     sync.Mutex
	frozen map[string]*metav1.PartialObjectMetadata
}

func (c *staleNamespaces) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.mu.Lock()
	f, ok := c.frozen[key.Name]
	c.mu.Unlock()
	if m, is := obj.(*metav1.PartialObjectMetadata); is && ok && key.Namespace == "" {
		f.DeepCopyInto(m)
		return nil
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

// freeze makes Gets of ns answer its metadata now; thaw lets them through again (caught up).
func (c *staleNamespaces) freeze(t *testing.T, ns string) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	NewWithT(t).Expect(k8s.Get(context.Background(), client.ObjectKey{Name: ns}, m)).To(Succeed())
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen[ns] = m
}

// snapshot returns ns's metadata now; show makes Gets of ns answer it (an older copy: an informer
// replaying a change it had missed, or a read that was slow to arrive).
func (c *staleNamespaces) snapshot(t *testing.T, ns string) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	NewWithT(t).Expect(k8s.Get(context.Background(), client.ObjectKey{Name: ns}, m)).To(Succeed())
	return m
}

func (c *staleNamespaces) show(ns string, m *metav1.PartialObjectMetadata) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen[ns] = m
}

func (c *staleNamespaces) thaw(ns string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.frozen, ns)
}

// A binding the engine had confirmed from the API server (a note of it found in a queue) is the
// one the Syncer reconciles under while its informer cache lags behind it: a reconcile from the
// stale cache would rebind the queue to the old binding, cancelling the new one's notes (and,
// active-active, move it back to the old account's partition). The namespace's webhooks are
// reconciled whenever the engine's binding is not the namespace's, or the binding acted on changes
// (also when the cache catches up with no change of its own to report, as after a relist); a
// confirmation that finds everything up to date changes nothing.
func TestAConfirmedBindingOutranksALaggingCache(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acct-lag-a", "")
	wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: ns}, Spec: accountSpec("https://example.test/hook")}
	g.Expect(k8s.Create(ctx, wh)).To(Succeed())
	cache := &staleNamespaces{Client: k8s, frozen: map[string]*metav1.PartialObjectMetadata{}}
	api := &staleNamespaces{Client: k8s, frozen: map[string]*metav1.PartialObjectMetadata{}}
	s := &dispatcher.Syncer{Client: cache, APIReader: api}
	clk := clocktesting.NewFakePassiveClock(time.Now())
	dispatcher.SetSyncerClock(s, clk)
	queued := dispatcher.ConfirmedReconciles(s)
	a, b := tenancy.Binding{AccountID: "acct-lag-a"}, tenancy.Binding{AccountID: "acct-lag-b", GroupID: "grp-b"}
	engineOn := func(x tenancy.Binding) deliver.Webhook { // the engine's view of the webhook
		return deliver.Webhook{UID: "u-lag", Namespace: ns, Name: "orders", AccountID: x.AccountID, NamespaceGroup: x.GroupID}
	}
	confirm := func(engine tenancy.Binding) tenancy.Binding {
		t.Helper()
		got, bound, err := s.ConfirmBinding(ctx, engineOn(engine))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(bound).To(BeTrue())
		return tenancy.Binding{AccountID: got.AccountID, GroupID: got.GroupID}
	}
	effective := func() tenancy.Binding {
		t.Helper()
		got, bound, err := dispatcher.BindingOf(ctx, s, ns)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(bound).To(BeTrue())
		return got
	}
	reconciled := func() bool {
		select {
		case ev := <-queued:
			g.Expect(client.ObjectKeyFromObject(ev.Object)).To(Equal(client.ObjectKeyFromObject(wh)))
			return true
		default:
			return false
		}
	}

	// Up to date: nothing to keep, nothing to reconcile.
	g.Expect(confirm(a)).To(Equal(a))
	g.Expect(reconciled()).To(BeFalse())

	// Rebound to b; the cache still says a. (Each change of the binding acted on is reconciled at
	// once, however recently the namespace was: the steps below follow each other within a second.)
	cache.freeze(t, ns)
	rebindNamespace(t, ns, binding{account: "acct-lag-b", group: "grp-b"})
	asB := cache.snapshot(t, ns)
	g.Expect(effective()).To(Equal(a), "the lagging cache, until confirmed")
	g.Expect(confirm(a)).To(Equal(b))
	g.Expect(reconciled()).To(BeTrue())
	g.Expect(effective()).To(Equal(b), "never back to the cache's older binding")
	g.Expect(effective()).To(Equal(b))

	// Bound back to a while the cache still says a (from before b): the engine, rebound to b, finds
	// a note of a; a is acted on, and the webhooks are reconciled.
	rebindNamespace(t, ns, binding{account: "acct-lag-a"})
	g.Expect(confirm(b)).To(Equal(a))
	g.Expect(reconciled()).To(BeTrue())
	g.Expect(effective()).To(Equal(a))
	// The cache then replays b, which it had missed; and a read of b that was slow to arrive comes
	// after the read of a: neither takes the namespace back to b.
	cache.show(ns, asB)
	g.Expect(effective()).To(Equal(a), "the cache replaying an older change")
	api.show(ns, asB)
	g.Expect(confirm(a)).To(Equal(b))
	g.Expect(effective()).To(Equal(a), "an older read")
	api.thaw(ns)
	g.Expect(reconciled()).To(BeFalse())

	// Confirmed b again; then the cache jumps to a later a (a relist: no change of its own to
	// report): the confirmed b is dropped, and the webhooks are reconciled under a.
	rebindNamespace(t, ns, binding{account: "acct-lag-b", group: "grp-b"})
	g.Expect(confirm(a)).To(Equal(b))
	g.Expect(reconciled()).To(BeTrue())
	rebindNamespace(t, ns, binding{account: "acct-lag-a"})
	cache.thaw(ns)
	g.Expect(effective()).To(Equal(a))
	g.Expect(reconciled()).To(BeTrue(), "the binding acted on changed")

	// Caught up: the cache's binding, nothing reconciled.
	c := tenancy.Binding{AccountID: "acct-lag-c"}
	rebindNamespace(t, ns, binding{account: "acct-lag-c"})
	g.Expect(effective()).To(Equal(c))
	g.Expect(confirm(c)).To(Equal(c))
	g.Expect(reconciled()).To(BeFalse())
	// An engine still on a is reconciled, at most once a second per namespace (the steps above took
	// no time on the Syncer's clock).
	g.Expect(confirm(a)).To(Equal(c))
	g.Expect(reconciled()).To(BeFalse(), "asked less than a second ago")
	clk.SetTime(clk.Now().Add(time.Second))
	g.Expect(confirm(a)).To(Equal(c))
	g.Expect(reconciled()).To(BeTrue())
	g.Expect(confirm(a)).To(Equal(c))
	g.Expect(reconciled()).To(BeFalse())

	// A confirmed binding outranks the cache for confirmedFor at most (an informer lagging longer
	// is broken): then the sweep drops it and reconciles the namespace's webhooks under the cache's.
	cache.freeze(t, ns)
	rebindNamespace(t, ns, binding{account: "acct-lag-b", group: "grp-b"})
	g.Expect(confirm(c)).To(Equal(b))
	g.Expect(reconciled()).To(BeTrue())
	clk.SetTime(clk.Now().Add(11 * time.Minute))
	dispatcher.ExpireConfirmed(ctx, s)
	g.Expect(reconciled()).To(BeTrue())
	g.Expect(effective()).To(Equal(c))
}
