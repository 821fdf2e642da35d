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
	"testing"
	"time"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/dispatcher/route"
)

// namespaceAdminClient returns a client acting as a tenant whose Role grants * on * in ns only.
func namespaceAdminClient(t *testing.T, ns string) client.Client {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	user := "tenant-of-" + ns
	g.Expect(k8s.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "tenant-admin", Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}},
	})).To(Succeed())
	g.Expect(k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "tenant-admin", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "tenant-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	})).To(Succeed())
	cfg := rest.CopyConfig(cp.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: cp.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	return c
}

// routedUIDs lists the uids in the dispatcher's routing table.
func (s *stack) routedUIDs() []string {
	var out []string
	for _, tg := range s.app.Table.Targets() {
		out = append(out, tg.UID)
	}
	return out
}

// Issue 10, item 2: a tenant deletes its Webhook (pointing at receiver X) and recreates it under
// the same name (pointing at Y) while the dispatcher is busy, so that it sees only the new object
// for that name. The old uid must lose its route, queue and status entry at once: X gets nothing,
// with the old webhookId or any other, neither while the namespace is bound nor after it is
// unbound. A webhook of the same account in another namespace is the positive control.
func TestRecreatedWebhookLeavesNoRouteBehind(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account = "acc-recreate"
	ns, nsControl := newNamespace(t, account, ""), newNamespace(t, account, "")
	s := startStack(t, stackOptions{namespaces: []string{ns, nsControl}})
	tenant := namespaceAdminClient(t, ns)
	rcX, rcY, rcControl := newReceiver(t), newReceiver(t), newReceiver(t)
	s.activeWebhook(t, nsControl, "control", accountSpec(rcControl.URL+"/control"))

	old := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: ns}, Spec: accountSpec(rcX.URL + "/x")}
	g.Expect(tenant.Create(ctx, old)).To(Succeed())
	g.Eventually(func() hooklinev1.ObservedState { return getWebhook(g, old).Status.State }).
		WithTimeout(20 * time.Second).Should(Equal(hooklinev1.ObservedActive))
	s.waitRouted(t, old)

	// The dispatcher is busy: its reconciles wait while the tenant deletes and recreates.
	resume := dispatcher.PauseSyncer(s.app.Syncer)
	defer resume()
	g.Expect(tenant.Delete(ctx, old)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(old), &hooklinev1.Webhook{}))
	}).
		WithTimeout(10 * time.Second).Should(BeTrue())
	recreated := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: ns}, Spec: accountSpec(rcY.URL + "/y")}
	g.Expect(tenant.Create(ctx, recreated)).To(Succeed())
	g.Expect(recreated.UID).NotTo(Equal(old.UID))
	// The dispatcher's informer has seen both changes before any reconcile runs again.
	g.Eventually(func() types.UID {
		cached := &hooklinev1.Webhook{}
		_ = s.app.Manager.GetCache().Get(ctx, client.ObjectKeyFromObject(recreated), cached)
		return cached.UID
	}).WithTimeout(10 * time.Second).Should(Equal(recreated.UID))
	g.Expect(s.routedUIDs()).To(ContainElement(string(old.UID)), "while paused, the old route is still there")
	resume()

	g.Eventually(func() hooklinev1.ObservedState { return getWebhook(g, recreated).Status.State }).
		WithTimeout(20 * time.Second).Should(Equal(hooklinev1.ObservedActive))
	s.waitRouted(t, recreated)

	s.mustPost(t, event("recreate-1", account))
	g.Eventually(func() int { return len(rcY.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	g.Eventually(func() int { return len(rcControl.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	var body map[string]any
	g.Expect(json.Unmarshal(rcY.got()[0].Body, &body)).To(Succeed())
	g.Expect(body).To(HaveKeyWithValue("webhookId", string(recreated.UID)))
	g.Consistently(func() int { return len(rcX.got()) }).WithTimeout(500*time.Millisecond).Should(BeZero(), "the deleted webhook's URL got a notification")
	g.Expect(s.routedUIDs()).NotTo(ContainElement(string(old.UID)), "the old uid's route is gone")
	g.Expect(s.app.Engine.Known()).NotTo(ContainElement(string(old.UID)), "the old uid's queue and state are gone")
	g.Expect(s.app.Reporter.Known()).NotTo(ContainElement(string(old.UID)), "the reporter forgot the old uid")

	// Unbound: nothing of the namespace is routed, old uid or new.
	rebindNamespace(t, ns, binding{})
	g.Eventually(func() []string { return s.routedUIDs() }).WithTimeout(10 * time.Second).
		ShouldNot(ContainElement(string(recreated.UID)))
	s.mustPost(t, event("recreate-2", account))
	g.Eventually(func() int { return len(rcControl.got()) }).WithTimeout(10 * time.Second).Should(Equal(2))
	g.Consistently(func() int { return len(rcX.got()) + len(rcY.got()) }).WithTimeout(500 * time.Millisecond).Should(Equal(1))
	g.Expect(rcX.got()).To(BeEmpty())
}

// The sweep is the backstop for what reconciles cannot see (webhooks deleted while the dispatcher
// was down, a removal that failed): every SweepInterval it drops the route, queue, saved state and
// status entry of any uid that the informer cache does not hold, and withdraws any route that its
// namespace's binding no longer allows. A live webhook's are kept.
func TestSweepDropsWhatNoWebhookHolds(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account = "acc-sweep"
	ns := newNamespace(t, account, "")
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: func(c *dispatcher.Config) {
		c.SweepInterval = 100 * time.Millisecond
	}})
	rc := newReceiver(t)
	live := s.activeWebhook(t, ns, "live", accountSpec(rc.URL+"/live"))
	misrouted := s.activeWebhook(t, ns, "misrouted", accountSpec(rc.URL+"/misrouted"))

	// Held while the ghost is planted, so that no sweep sees half of it.
	resume := dispatcher.PauseSyncer(s.app.Syncer)
	defer resume()
	const ghost = "00000000-0000-0000-0000-00000000dead"
	s.app.Table.Set(&route.Target{UID: ghost, Namespace: ns, Name: "ghost", AccountID: account,
		Scope: hooklinev1.ScopeAccount, Events: []hooklinev1.EventName{"AGREEMENT_ALL"}})
	s.app.Engine.Upsert(deliver.Webhook{UID: ghost, Namespace: ns, Name: "ghost", AccountID: account}) // not deliverable: it keeps its queue
	g.Expect(s.app.Engine.Rebind(ctx, ghost, deliver.Binding{AccountID: account})).To(Succeed())       // saved state
	s.app.Reporter.Mark(ghost, false)
	// A route of a live webhook under a binding its namespace does not have.
	s.app.Table.Set(&route.Target{UID: string(misrouted.UID), Namespace: ns, Name: misrouted.Name, AccountID: "acc-sweep-other",
		Scope: hooklinev1.ScopeAccount, Events: []hooklinev1.EventName{"AGREEMENT_ALL"}})
	s.mustPost(t, event("sweep-1", account))
	st, ok := s.app.Engine.Status(ghost)
	g.Expect(ok).To(BeTrue())
	g.Expect(st.Pending).To(Equal(int64(1)), "the ghost was routed to and queued for")
	queues, err := s.app.Store.Queues(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(queues).To(HaveKey(ghost))
	resume()

	g.Eventually(func(g Gomega) {
		g.Expect(s.routedUIDs()).NotTo(ContainElement(ghost))
		g.Expect(s.app.Engine.Known()).NotTo(ContainElement(ghost))
		g.Expect(s.app.Reporter.Known()).NotTo(ContainElement(ghost))
		g.Expect(s.routedUIDs()).NotTo(ContainElement(string(misrouted.UID)))
	}).WithTimeout(10 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
	queues, err = s.app.Store.Queues(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(queues).NotTo(HaveKey(ghost), "the ghost's queue left the store")
	state, _, err := s.app.Store.GetState(ctx, ghost)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(state).To(BeNil(), "the ghost's saved state left the store")

	// The live webhook keeps its route, queue and status; it got the event.
	g.Expect(s.routedUIDs()).To(ContainElement(string(live.UID)))
	g.Expect(s.app.Engine.Known()).To(ContainElement(string(live.UID)))
	g.Eventually(func() int64 { return deref(getWebhook(g, live).Status.DeliveredTotal) }).WithTimeout(10 * time.Second).Should(Equal(int64(1)))
}
