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
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/dispatcher/partition"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/notify"
	"github.com/hookline/hookline/internal/testsupport/freeport"
)

// activeActive is two dispatchers delivering at once: one embeds NATS and lets the other in.
type activeActive struct {
	one, two *stack
	// accounts, their namespaces and receivers, and which dispatcher each account's partition
	// belongs to while both run.
	accounts []string
	ns       map[string]string
	rc       map[string]*receiver
	owner    map[string]string
	hooks    map[string]*hooklinev1.Webhook
}

const aaPartitions = 8

// startActiveActive starts dispatchers "one" and "two" sharing one NATS server, over accounts
// chosen so that each dispatcher delivers at least two of them.
func startActiveActive(t *testing.T, mutate ...func(*dispatcher.Config)) *activeActive {
	t.Helper()
	aa := &activeActive{ns: map[string]string{}, rc: map[string]*receiver{}, owner: map[string]string{}, hooks: map[string]*hooklinev1.Webhook{}}
	members := []string{"one", "two"}
	count := map[string]int{}
	prefix := fmt.Sprintf("aa%d-", time.Now().UnixNano()%1_000_000)
	for i := 0; len(aa.accounts) < 6 || count["one"] < 2 || count["two"] < 2; i++ {
		acc := fmt.Sprintf("%s%d", prefix, i)
		o := partition.Owner(members, partition.Of(acc, aaPartitions))
		if count[o] >= 4 {
			continue
		}
		count[o]++
		aa.accounts = append(aa.accounts, acc)
		aa.owner[acc] = o
	}
	var namespaces []string
	for _, acc := range aa.accounts {
		aa.ns[acc] = newNamespace(t, acc, "grp-1")
		aa.rc[acc] = newReceiver(t)
		namespaces = append(namespaces, aa.ns[acc])
	}
	addr := freeport.Addr(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(strings.Repeat("t0ken", 8)), 0o600); err != nil {
		t.Fatal(err)
	}
	group := func(identity string) dispatcher.Partitioning {
		return dispatcher.Partitioning{Partitions: aaPartitions, Identity: identity, TTL: 2 * time.Second}
	}
	aa.one = startStack(t, stackOptions{namespaces: namespaces, mutate: func(c *dispatcher.Config) {
		c.Store.ListenAddress, c.Store.ListenTokenFile = addr, tokenFile
		c.Partitioning = group("one")
		fastReplays(c)
		for _, m := range mutate {
			m(c)
		}
	}})
	aa.two = startStack(t, stackOptions{namespaces: namespaces, mutate: func(c *dispatcher.Config) {
		c.Store = store.Config{URL: "nats://" + addr, Auth: store.Auth{TokenFile: tokenFile}}
		c.Partitioning = group("two")
		fastReplays(c)
		for _, m := range mutate {
			m(c)
		}
	}})
	for _, acc := range aa.accounts {
		aa.hooks[acc] = aa.one.activeWebhook(t, aa.ns[acc], "orders", accountSpec(aa.rc[acc].URL))
		aa.two.waitRouted(t, aa.hooks[acc])
	}
	return aa
}

// stackOf is the dispatcher named identity.
func (aa *activeActive) stackOf(identity string) *stack {
	if identity == "one" {
		return aa.one
	}
	return aa.two
}

// waitShared waits until each dispatcher delivers exactly the accounts the assignment gives it.
func (aa *activeActive) waitShared(t *testing.T) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		for _, acc := range aa.accounts {
			uid := string(aa.hooks[acc].UID)
			g.Expect(aa.stackOf(aa.owner[acc]).app.Engine.Owns(uid)).To(BeTrue(), "%s delivers %s", aa.owner[acc], acc)
			other := "one"
			if aa.owner[acc] == "one" {
				other = "two"
			}
			g.Expect(aa.stackOf(other).app.Engine.Owns(uid)).To(BeFalse(), "%s does not deliver %s", other, acc)
		}
	}).WithTimeout(20 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
}

// Both dispatchers ingest, and each delivers its share of the accounts: every event posted to
// either is delivered once, in the order posted, by the dispatcher that owns its account, and
// only that one reports the webhook's status. When one stops, the other delivers everything.
func TestActiveActiveDispatchersShareDelivery(t *testing.T) {
	g := NewWithT(t)
	aa := startActiveActive(t)
	aa.waitShared(t)
	g.Expect(aa.one.metric(t, "hookline_partitions_owned") + aa.two.metric(t, "hookline_partitions_owned")).To(BeEquivalentTo(aaPartitions))
	g.Expect(aa.one.metric(t, "hookline_partition_members")).To(BeEquivalentTo(2))

	const perAccount = 6
	for i := range perAccount {
		for j, acc := range aa.accounts {
			// Alternately to each: a note stored by one for the other's account is announced.
			s := aa.one
			if (i+j)%2 == 1 {
				s = aa.two
			}
			s.mustPost(t, event(fmt.Sprintf("%s-e%d", acc, i), acc))
		}
	}
	for _, acc := range aa.accounts {
		var want []string
		for i := range perAccount {
			want = append(want, fmt.Sprintf("%s-e%d", acc, i))
		}
		g.Eventually(func() []string {
			var ids []string
			for _, p := range aa.rc[acc].decoded(t) {
				ids = append(ids, p.eventID)
			}
			return ids
		}).WithTimeout(20*time.Second).Should(Equal(want), "%s (delivered by %s): each once, in the order posted", acc, aa.owner[acc])
		// Only the owner has the webhook's delivery state; the other keeps its configuration.
		uid := string(aa.hooks[acc].UID)
		// The receiver has the body before the owner has read its answer, so the count follows.
		g.Eventually(func(g Gomega) {
			st, ok := aa.stackOf(aa.owner[acc]).app.Engine.Status(uid)
			g.Expect(ok).To(BeTrue())
			g.Expect(st.Delivered).To(BeEquivalentTo(perAccount))
		}).WithTimeout(10*time.Second).Should(Succeed(), acc)
		for _, s := range []*stack{aa.one, aa.two} {
			if s != aa.stackOf(aa.owner[acc]) {
				_, ok := s.app.Engine.Status(uid)
				g.Expect(ok).To(BeFalse(), "%s: no status on the dispatcher that does not deliver it", acc)
			}
		}
		g.Eventually(func(g Gomega) {
			g.Expect(deref(getWebhook(g, aa.hooks[acc]).Status.DeliveredTotal)).To(BeEquivalentTo(perAccount))
		}).WithTimeout(10*time.Second).Should(Succeed(), acc)
	}

	// A replay runs on the dispatcher that delivers its webhook, and only there: each replayed
	// notification arrives once more, not once per dispatcher.
	for _, acc := range aa.accounts {
		id := hooklinev1.NotificationID(aa.rc[acc].decoded(t)[0].notificationID)
		rp := createReplay(t, aa.ns[acc], "again", hooklinev1.WebhookReplaySpec{WebhookName: "orders", NotificationIDs: []hooklinev1.NotificationID{id}})
		g.Expect(waitCompleted(t, rp, 20*time.Second).Status.Delivered).To(BeEquivalentTo(1), acc)
	}
	for _, acc := range aa.accounts {
		g.Consistently(func() int { return len(aa.rc[acc].got()) }).WithTimeout(time.Second).Should(Equal(perAccount+1), acc)
	}

	// "two" stops: "one" takes its partitions over at once (given up, not expired), with their
	// counters, and delivers what is posted from then on.
	aa.two.stop()
	g.Eventually(func(g Gomega) {
		for _, acc := range aa.accounts {
			g.Expect(aa.one.app.Engine.Owns(string(aa.hooks[acc].UID))).To(BeTrue(), acc)
		}
	}).WithTimeout(10 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	g.Expect(aa.one.metric(t, "hookline_partitions_owned")).To(BeEquivalentTo(aaPartitions))
	for _, acc := range aa.accounts {
		aa.one.mustPost(t, event(acc+"-after", acc))
	}
	for _, acc := range aa.accounts {
		g.Eventually(func() int { return len(aa.rc[acc].got()) }).WithTimeout(20*time.Second).Should(Equal(perAccount+2), acc)
		g.Expect(aa.rc[acc].decoded(t)[perAccount+1].eventID).To(Equal(acc + "-after"))
		g.Eventually(func() int64 {
			st, _ := aa.one.app.Engine.Status(string(aa.hooks[acc].UID))
			return st.Delivered
		}).Should(BeEquivalentTo(perAccount+2), "%s: the counters moved with the partition", acc)
	}
}

// Events accepted while a dispatcher is still taking its partitions (ready as soon as it is a
// member, its queues dormant or loading) are all delivered.
func TestActiveActiveEventsAcceptedWhileTakingPartitions(t *testing.T) {
	g := NewWithT(t)
	var accounts, namespaces []string
	rcs := map[string]*receiver{}
	prefix := fmt.Sprintf("aas%d-", time.Now().UnixNano()%1_000_000)
	for i := range 4 {
		acc := fmt.Sprintf("%s%d", prefix, i)
		accounts = append(accounts, acc)
		ns := newNamespace(t, acc, "grp-1")
		namespaces = append(namespaces, ns)
		rcs[acc] = newReceiver(t)
		wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: ns}, Spec: accountSpec(rcs[acc].URL)}
		g.Expect(k8s.Create(context.Background(), wh)).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(getWebhook(g, wh).Status.State).To(Equal(hooklinev1.ObservedActive))
		}).WithTimeout(20 * time.Second).Should(Succeed())
	}
	s := startStack(t, stackOptions{namespaces: namespaces, mutate: func(c *dispatcher.Config) {
		c.Partitioning = dispatcher.Partitioning{Partitions: aaPartitions, Identity: "only", TTL: 2 * time.Second}
	}})
	const per = 10
	for i := range per {
		for _, acc := range accounts {
			s.mustPost(t, event(fmt.Sprintf("%s-e%d", acc, i), acc))
		}
	}
	for _, acc := range accounts {
		g.Eventually(func() int { return len(rcs[acc].got()) }).WithTimeout(15*time.Second).Should(Equal(per), acc)
	}
}

// A dispatcher that does not deliver a webhook (it knows no binding for it) keeps routing to it
// through every reconcile: the route was withdrawn and set again each time, and the events
// accepted in between were acknowledged without the webhook's notification.
func TestActiveActiveReconcileKeepsTheRoutesOfOthersWebhooks(t *testing.T) {
	g := NewWithT(t)
	aa := startActiveActive(t)
	aa.waitShared(t)
	var acc string
	for _, a := range aa.accounts {
		if aa.owner[a] == "one" {
			acc = a
		}
	}
	wh := aa.hooks[acc]
	routed := func() bool {
		for _, tg := range aa.two.app.Table.Targets() {
			if tg.UID == string(wh.UID) {
				return true
			}
		}
		return false
	}
	var gone atomic.Bool
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if !routed() {
				gone.Store(true)
			}
		}
	}()
	for range 50 {
		_, err := aa.two.app.Syncer.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(wh)})
		g.Expect(err).NotTo(HaveOccurred())
	}
	close(stop)
	<-done
	g.Expect(gone.Load()).To(BeFalse(), "two withdrew the route of a webhook one delivers while reconciling it")
}

// Problem e-mails are sent by the dispatcher that delivers the webhook, once: the other one, which
// runs a problem mailer too and routes the same events, sends none.
func TestActiveActiveProblemEmailsComeFromTheOwnerOnly(t *testing.T) {
	g := NewWithT(t)
	mb := startMailbox(t)
	aa := startActiveActive(t, func(c *dispatcher.Config) {
		c.Problems = notify.Config{Address: mb.addr, From: "hookline@example.com", StartTLS: notify.StartTLSNever,
			AllowedDomains: notify.AllowedDomains{notify.AnyAccount: {"example.com"}}}
		c.ProblemAfter = 300 * time.Millisecond
		c.Engine.Policy = deliver.Policy{RetryBase: 50 * time.Millisecond, RetryCap: 100 * time.Millisecond, MaxRetries: 10_000,
			DropAfter: time.Hour, DisableAfter: time.Hour}
	})
	aa.waitShared(t)
	for _, owner := range []string{"one", "two"} {
		var acc string
		for _, a := range aa.accounts {
			if aa.owner[a] == owner {
				acc = a
			}
		}
		wh := getWebhook(g, aa.hooks[acc])
		wh.Spec.ProblemNotificationEmails = []hooklinev1.Email{hooklinev1.Email("ops-" + owner + "@example.com")}
		g.Expect(k8s.Update(context.Background(), wh)).To(Succeed())
		aa.rc[acc].set(fail500)
		// Posted to the dispatcher that does not deliver it: routed there, failing at the owner.
		other := aa.one
		if owner == "one" {
			other = aa.two
		}
		other.mustPost(t, event(acc+"-fails", acc))
	}
	g.Eventually(func() int { return len(mb.got()) }).WithTimeout(20*time.Second).Should(Equal(2), func() string { return fmt.Sprintf("%+v", mb.got()) })
	g.Consistently(func() int { return len(mb.got()) }).WithTimeout(time.Second).Should(Equal(2), "one e-mail per failing webhook, from its owner only")
	var to []string
	for _, m := range mb.got() {
		to = append(to, m.to...)
	}
	g.Expect(to).To(ConsistOf("ops-one@example.com", "ops-two@example.com"))
}

// The owner of a webhook's partition that has not yet seen its namespace bound to another group
// (its reconciles held back, as a dispatcher too busy to keep up) gets a note the other dispatcher,
// which saw the change first, routed under the new binding. It does not cancel it as another
// binding's (an event lost after its 202): it asks the API server, finds the namespace bound as the
// note says, and holds the note until it is rebound itself; then it delivers it.
func TestActiveActiveALaggingOwnerKeepsANewBindingsEvents(t *testing.T) {
	g := NewWithT(t)
	aa := startActiveActive(t)
	aa.waitShared(t)
	acc := aa.accounts[0]
	owner, other := aa.stackOf(aa.owner[acc]), aa.one
	if owner == aa.one {
		other = aa.two
	}
	wh := aa.hooks[acc]
	uid := string(wh.UID)

	resume := dispatcher.PauseSyncer(owner.app.Syncer)
	defer resume()
	rebindNamespace(t, aa.ns[acc], binding{account: acc, group: "grp-2"})
	other.waitRoutedUnder(t, wh, binding{account: acc, group: "grp-2"})
	other.mustPost(t, groupEvent(acc+"-g2", acc, "grp-2"))
	g.Consistently(func() int64 {
		st, _ := owner.app.Engine.Status(uid)
		return st.Cancelled
	}).WithTimeout(2*time.Second).Should(BeZero(), "the owner cancelled a note of the namespace's binding it had not seen yet")
	g.Expect(aa.rc[acc].got()).To(BeEmpty(), "nothing is sent under the binding the owner knows")

	resume()
	g.Eventually(func() []string {
		var ids []string
		for _, p := range aa.rc[acc].decoded(t) {
			ids = append(ids, p.eventID)
		}
		return ids
	}).WithTimeout(20 * time.Second).Should(Equal([]string{acc + "-g2"}))
	st, _ := owner.app.Engine.Status(uid)
	g.Expect(st.Cancelled).To(BeZero())
}

// A replay whose webhook is deleted while it runs is reported by the owner of its namespace's
// account only: every replica wrote its stalled status and recorded its Warning Event (found by a
// review helper), as they all wrote the status of a replay whose webhook does not exist.
func TestActiveActiveAReplaysLostWebhookIsReportedOnce(t *testing.T) {
	g := NewWithT(t)
	aa := startActiveActive(t)
	aa.waitShared(t)
	acc := aa.accounts[0]
	rc := aa.rc[acc]
	aa.one.mustPost(t, event(acc+"-once", acc))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	id := rc.decoded(t)[0].notificationID
	rc.set(fail500) // the replayed notification keeps retrying: the replay runs on
	rp := createReplay(t, aa.ns[acc], "again", hooklinev1.WebhookReplaySpec{WebhookName: "orders",
		NotificationIDs: []hooklinev1.NotificationID{hooklinev1.NotificationID(id)}})
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(BeNumerically(">=", 2))
	g.Expect(k8s.Delete(context.Background(), getWebhook(g, aa.hooks[acc]))).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getReplay(g, rp)
		g.Expect(meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionStalled)).NotTo(BeNil())
		g.Expect(meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionStalled).Reason).To(Equal(hooklinev1.ReasonWebhookDeleted))
	}).WithTimeout(20 * time.Second).Should(Succeed())
	deleted := func(g Gomega) (n int) {
		for _, reason := range replayEvents(g, rp) {
			if reason == hooklinev1.ReasonWebhookDeleted {
				n++
			}
		}
		return n
	}
	g.Eventually(deleted).WithTimeout(10 * time.Second).Should(Equal(1))
	g.Consistently(deleted).WithTimeout(2*time.Second).Should(Equal(1), "one Event, from the owner")
}
