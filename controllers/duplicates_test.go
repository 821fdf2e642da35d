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

package controllers_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// expectDuplicateOf waits until wh is reported as a duplicate of winner: Inactive, Ready=False
// with reason DuplicateConfiguration, neither verified nor attested. The message names no Webhook
// (duplicateStatus), winner included; it names the account.
func expectDuplicateOf(t *testing.T, wh, winner *hooklinev1.Webhook) *hooklinev1.Webhook {
	t.Helper()
	got := eventuallyReady(t, wh, metav1.ConditionFalse, hooklinev1.ReasonDuplicateConfiguration,
		ContainSubstring("an older ACTIVE webhook of account "))
	g := NewWithT(t)
	g.Expect(got.Status.State).To(Equal(hooklinev1.ObservedInactive))
	g.Expect(got.Status.Attestation).To(BeEmpty())
	g.Expect(got.Status.LastVerifiedTime).To(BeNil())
	g.Expect(got.Status.Conditions).NotTo(ContainElement(HaveField("Message", ContainSubstring(winner.Namespace+"/"+winner.Name))))
	return got
}

// createdAfter waits until the API server's clock, which stamps creationTimestamp to the second,
// has passed wh's creation second: a Webhook created next is then younger by creation time, not
// by the uid that breaks ties within one second.
func createdAfter(t *testing.T, wh *hooklinev1.Webhook) {
	t.Helper()
	created := getWebhook(NewWithT(t), wh).CreationTimestamp
	NewWithT(t).Eventually(func() bool { return time.Now().Truncate(time.Second).After(created.Time) }).
		WithTimeout(3 * time.Second).WithPolling(20 * time.Millisecond).Should(BeTrue())
}

func TestDuplicateConfigurationStaysInactive(t *testing.T) {
	cases := []struct {
		name string
		// specs returns the first and second webhook's url and events; port is a receiver's.
		first, second func(port int) (string, []hooklinev1.EventName)
		reachable     bool
	}{
		{"identical", func(p int) (string, []hooklinev1.EventName) {
			return fmt.Sprintf("http://127.0.0.1:%d/hook", p), []hooklinev1.EventName{"AGREEMENT_ALL"}
		}, func(p int) (string, []hooklinev1.EventName) {
			return fmt.Sprintf("http://127.0.0.1:%d/hook", p), []hooklinev1.EventName{"AGREEMENT_ALL"}
		}, true},
		{"events in another order", func(p int) (string, []hooklinev1.EventName) {
			return fmt.Sprintf("http://127.0.0.1:%d/hook", p), []hooklinev1.EventName{"AGREEMENT_ALL", "WIDGET_ALL", "MEGASIGN_ALL"}
		}, func(p int) (string, []hooklinev1.EventName) {
			return fmt.Sprintf("http://127.0.0.1:%d/hook", p), []hooklinev1.EventName{"MEGASIGN_ALL", "AGREEMENT_ALL", "WIDGET_ALL"}
		}, true},
		{"host case and trailing dot", func(p int) (string, []hooklinev1.EventName) {
			return fmt.Sprintf("http://localhost:%d/hook", p), []hooklinev1.EventName{"AGREEMENT_ALL"}
		}, func(p int) (string, []hooklinev1.EventName) {
			return fmt.Sprintf("http://LocalHost.:%d/hook", p), []hooklinev1.EventName{"AGREEMENT_ALL"}
		}, true},
		// Nothing listens on localhost:443: the first is the oldest whether or not it verifies.
		{"scheme case and default port", func(int) (string, []hooklinev1.EventName) {
			return "https://localhost/hook", []hooklinev1.EventName{"AGREEMENT_ALL"}
		}, func(int) (string, []hooklinev1.EventName) {
			return "HTTPS://LOCALHOST:443/hook", []hooklinev1.EventName{"AGREEMENT_ALL"}
		}, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			ns := newNamespace(t, fmt.Sprintf("acc-dup-%d", i), "")
			rc := newReceiver(t, false, echoHeader)
			port := rc.Listener.Addr().(*net.TCPAddr).Port
			spec := func(f func(int) (string, []hooklinev1.EventName)) func(*hooklinev1.WebhookSpec) {
				return func(s *hooklinev1.WebhookSpec) { s.URL, s.Events = f(port) }
			}
			first := createWebhook(t, ns, "first", spec(tc.first))
			if tc.reachable {
				eventuallyReady(t, first, metav1.ConditionTrue, hooklinev1.ReasonActive)
			}
			createdAfter(t, first)
			second := createWebhook(t, ns, "second", spec(tc.second))
			got := expectDuplicateOf(t, second, first)
			g.Expect(meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionStalled).Status).To(Equal(metav1.ConditionTrue))
			expectEvent(t, got, corev1.EventTypeWarning, hooklinev1.ReasonDuplicateConfiguration)
			if tc.reachable {
				g.Expect(rc.gets.Load()).To(BeEquivalentTo(1), "a duplicate must not be verified")
				g.Expect(getWebhook(g, first).Status.State).To(Equal(hooklinev1.ObservedActive))
			}
		})
	}
}

func TestDifferentConfigurationsAreNotDuplicates(t *testing.T) {
	ns := newNamespace(t, "acc-dup-different", "")
	rc := newReceiver(t, false, echoHeader)
	resource := func(id string) func(*hooklinev1.WebhookSpec) {
		return func(s *hooklinev1.WebhookSpec) {
			s.URL, s.Scope = rc.URL, hooklinev1.ScopeResource
			s.Resource = &hooklinev1.WebhookResource{Type: hooklinev1.ResourceAgreement, ID: id}
		}
	}
	hooks := []*hooklinev1.Webhook{
		createWebhook(t, ns, "base", func(s *hooklinev1.WebhookSpec) { s.URL = rc.URL }),
		createWebhook(t, ns, "other-client", func(s *hooklinev1.WebhookSpec) { s.URL, s.ClientID = rc.URL, "another-client" }),
		createWebhook(t, ns, "other-path", func(s *hooklinev1.WebhookSpec) { s.URL = rc.URL + "/Hook" }),
		createWebhook(t, ns, "agreement-1", resource("agr-1")),
		createWebhook(t, ns, "agreement-2", resource("agr-2")),
		createWebhook(t, ns, "widget-1", func(s *hooklinev1.WebhookSpec) {
			resource("agr-1")(s)
			s.Resource.Type = hooklinev1.ResourceWidget
		}),
	}
	for _, wh := range hooks {
		eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonActive)
	}
	NewWithT(t).Expect(rc.gets.Load()).To(BeEquivalentTo(len(hooks)))
}

func TestDuplicatesSpanNamespacesOfOneAccountOnly(t *testing.T) {
	rc := newReceiver(t, false, echoHeader)
	same := func(s *hooklinev1.WebhookSpec) { s.URL = rc.URL }
	first := createWebhook(t, newNamespace(t, "acc-dup-span", ""), "hook", same)
	eventuallyReady(t, first, metav1.ConditionTrue, hooklinev1.ReasonActive)
	createdAfter(t, first)
	// Another namespace of the same account: a duplicate, although its name is the same.
	sameAccount := createWebhook(t, newNamespace(t, "acc-dup-span", ""), "hook", same)
	// A namespace of another account: not a duplicate.
	otherAccount := createWebhook(t, newNamespace(t, "acc-dup-span-other", ""), "hook", same)
	expectDuplicateOf(t, sameAccount, first)
	eventuallyReady(t, otherAccount, metav1.ConditionTrue, hooklinev1.ReasonActive)
	NewWithT(t).Expect(rc.gets.Load()).To(BeEquivalentTo(2))
}

// A namespace bound to a group receives only that group's events (dispatcher/route), so Webhooks
// of one account in namespaces with different bindings (another group, or a group and none) are
// not duplicates of each other; in namespaces with the same binding they are.
func TestDuplicatesSpanNamespacesOfOneBindingOnly(t *testing.T) {
	const account = "acc-dup-groups"
	rc := newReceiver(t, false, echoHeader)
	same := func(s *hooklinev1.WebhookSpec) { s.URL = rc.URL }
	first := createWebhook(t, newNamespace(t, account, "grp-a"), "hook", same)
	eventuallyReady(t, first, metav1.ConditionTrue, hooklinev1.ReasonActive)
	createdAfter(t, first)
	noGroup := createWebhook(t, newNamespace(t, account, ""), "hook", same)
	otherGroup := createWebhook(t, newNamespace(t, account, "grp-b"), "hook", same)
	sameGroup := createWebhook(t, newNamespace(t, account, "grp-a"), "hook", same)
	expectDuplicateOf(t, sameGroup, first)
	for _, wh := range []*hooklinev1.Webhook{noGroup, otherGroup, first} {
		got := eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonActive)
		NewWithT(t).Expect(got.Status.Attestation).NotTo(BeEmpty(), "%s/%s", wh.Namespace, wh.Name)
	}
	NewWithT(t).Expect(rc.gets.Load()).To(BeEquivalentTo(3))
}

// The review's attack: a tenant of a group namespace edits its older Webhook into the
// configuration of a younger Active one of a namespace of the account without a group. The younger
// one keeps receiving, rather than its receiver getting the group's events in place of its own.
// (An edit into the configuration of a younger one with the same binding demotes it:
// TestNextInLineTakesOver.)
func TestAnOlderWebhookOfAnotherGroupDoesNotDemote(t *testing.T) {
	const account = "acc-dup-groups-edit"
	g := NewWithT(t)
	rc := newReceiver(t, false, echoHeader)
	old := createWebhook(t, newNamespace(t, account, "grp-a"), "old", func(s *hooklinev1.WebhookSpec) { s.URL = rc.URL + "/other" })
	eventuallyReady(t, old, metav1.ConditionTrue, hooklinev1.ReasonActive)
	createdAfter(t, old)
	same := func(s *hooklinev1.WebhookSpec) { s.URL = rc.URL }
	victim := createWebhook(t, newNamespace(t, account, ""), "hook", same)
	eventuallyReady(t, victim, metav1.ConditionTrue, hooklinev1.ReasonActive)

	patchSpec(t, old, same)
	// old's reconcile of the edit (its Ready for the new generation) demotes its younger
	// duplicates before it writes its own status.
	eventuallyReady(t, old, metav1.ConditionTrue, hooklinev1.ReasonActive)
	got := getWebhook(g, victim)
	g.Expect(got.Status.State).To(Equal(hooklinev1.ObservedActive))
	g.Expect(got.Status.Attestation).NotTo(BeEmpty())
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionReady).Reason).To(Equal(hooklinev1.ReasonActive))
}

// The next in line is verified as on creation when the oldest is deleted, set INACTIVE or changed;
// an older one reactivated or changed back takes over again.
func TestNextInLineTakesOver(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acc-dup-next", "")
	rc := newReceiver(t, false, echoHeader)
	same := func(s *hooklinev1.WebhookSpec) { s.URL = rc.URL }
	w1 := createWebhook(t, ns, "w1", same)
	eventuallyReady(t, w1, metav1.ConditionTrue, hooklinev1.ReasonActive)
	createdAfter(t, w1)
	w2 := createWebhook(t, ns, "w2", same)
	createdAfter(t, w2)
	w3 := createWebhook(t, ns, "w3", same)
	expectDuplicateOf(t, w2, w1)
	expectDuplicateOf(t, w3, w1)
	g.Expect(rc.gets.Load()).To(BeEquivalentTo(1))

	// Deleted: the next in line is verified and Active; the third now names it.
	g.Expect(k8s.Delete(ctx, w1)).To(Succeed())
	eventuallyReady(t, w2, metav1.ConditionTrue, hooklinev1.ReasonActive)
	g.Expect(rc.gets.Load()).To(BeEquivalentTo(2), "the promoted webhook must be verified")
	expectDuplicateOf(t, w3, w2)

	// Set INACTIVE: the third takes over.
	patchSpec(t, w2, func(s *hooklinev1.WebhookSpec) { s.State = hooklinev1.StateInactive })
	eventuallyReady(t, w3, metav1.ConditionTrue, hooklinev1.ReasonActive)
	g.Expect(rc.gets.Load()).To(BeEquivalentTo(3))

	// Reactivated, the older one takes over again: the younger stops before it is attested.
	patchSpec(t, w2, func(s *hooklinev1.WebhookSpec) { s.State = hooklinev1.StateActive })
	eventuallyReady(t, w2, metav1.ConditionTrue, hooklinev1.ReasonActive)
	expectDuplicateOf(t, w3, w2)

	// Changed so that it no longer matches: the third takes over; changed back, it is the oldest
	// again, and re-attested without a verification (its endpoint did not change).
	patchSpec(t, w2, func(s *hooklinev1.WebhookSpec) { s.Events = []hooklinev1.EventName{"WIDGET_ALL"} })
	eventuallyReady(t, w3, metav1.ConditionTrue, hooklinev1.ReasonActive)
	eventuallyReady(t, w2, metav1.ConditionTrue, hooklinev1.ReasonActive)
	gets := rc.gets.Load()
	patchSpec(t, w2, func(s *hooklinev1.WebhookSpec) { s.Events = []hooklinev1.EventName{"AGREEMENT_ALL"} })
	expectDuplicateOf(t, w3, w2)
	eventuallyReady(t, w2, metav1.ConditionTrue, hooklinev1.ReasonActive)
	g.Expect(rc.gets.Load()).To(Equal(gets), "a change of events alone must not verify again")
}

// Acrobat Sign refuses to reactivate an INACTIVE webhook while an identical ACTIVE one exists.
func TestReactivatingDuplicateStaysInactive(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-dup-reactivate", "")
	rc := newReceiver(t, false, echoHeader)
	original := createWebhook(t, ns, "original", func(s *hooklinev1.WebhookSpec) { s.URL = rc.URL })
	eventuallyReady(t, original, metav1.ConditionTrue, hooklinev1.ReasonActive)
	createdAfter(t, original)
	copyOf := createWebhook(t, ns, "copy", func(s *hooklinev1.WebhookSpec) { s.URL, s.State = rc.URL, hooklinev1.StateInactive })
	eventuallyReady(t, copyOf, metav1.ConditionTrue, hooklinev1.ReasonInactive)

	patchSpec(t, copyOf, func(s *hooklinev1.WebhookSpec) { s.State = hooklinev1.StateActive })
	expectDuplicateOf(t, copyOf, original)
	g.Expect(rc.gets.Load()).To(BeEquivalentTo(1), "a reactivated duplicate must not be verified")
	g.Expect(getWebhook(g, original).Status.State).To(Equal(hooklinev1.ObservedActive))
}

func TestManyIdenticalWebhooksOneActive(t *testing.T) {
	const n = 100
	ns := newNamespace(t, "acc-dup-many", "")
	rc := newReceiver(t, false, echoHeader)
	hooks := make([]*hooklinev1.Webhook, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("same-%03d", i), Namespace: ns}, Spec: validSpec()}
			wh.Spec.URL = rc.URL
			if err := k8s.Create(context.Background(), wh); err != nil {
				t.Errorf("creating %s: %v", wh.Name, err)
			}
			hooks[i] = wh
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	oldest := hooks[0]
	for _, wh := range hooks[1:] {
		if wh.CreationTimestamp.Before(&oldest.CreationTimestamp) ||
			(wh.CreationTimestamp.Equal(&oldest.CreationTimestamp) && wh.UID < oldest.UID) {
			oldest = wh
		}
	}
	eventuallyReady(t, oldest, metav1.ConditionTrue, hooklinev1.ReasonActive)
	for _, wh := range hooks {
		if wh != oldest {
			expectDuplicateOf(t, wh, oldest)
		}
	}
	list := &hooklinev1.WebhookList{}
	NewWithT(t).Expect(k8s.List(context.Background(), list)).To(Succeed())
	active := 0
	for _, wh := range list.Items {
		if wh.Namespace == ns && wh.Status.State == hooklinev1.ObservedActive {
			active++
		}
	}
	NewWithT(t).Expect(active).To(Equal(1))
}

// A namespace bound to another account takes its Webhooks out of the old account's duplicates.
func TestRebindingWinnersNamespacePromotesNext(t *testing.T) {
	g := NewWithT(t)
	rc := newReceiver(t, false, echoHeader)
	same := func(s *hooklinev1.WebhookSpec) { s.URL = rc.URL }
	firstNS := newNamespace(t, "acc-dup-rebind", "")
	first := createWebhook(t, firstNS, "hook", same)
	eventuallyReady(t, first, metav1.ConditionTrue, hooklinev1.ReasonActive)
	createdAfter(t, first)
	second := createWebhook(t, newNamespace(t, "acc-dup-rebind", ""), "hook", same)
	expectDuplicateOf(t, second, first)

	nsObj := &corev1.Namespace{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Name: firstNS}, nsObj)).To(Succeed())
	base := nsObj.DeepCopy()
	nsObj.Labels["hookline.io/account"] = "acc-dup-rebind-other"
	g.Expect(k8s.Patch(context.Background(), nsObj, client.MergeFrom(base))).To(Succeed())
	eventuallyReady(t, second, metav1.ConditionTrue, hooklinev1.ReasonActive)
	eventuallyReady(t, first, metav1.ConditionTrue, hooklinev1.ReasonActive)
}

// A tenant (impersonated through RBAC) holding many identical Webhooks sets the oldest INACTIVE and
// ACTIVE again. Only the two whose decision changes are written: the next in line takes over and
// is demoted again. Before, every duplicate was reconciled at each change (each reconcile listing
// and copying the whole group) and its status rewritten to name the new oldest: the manager every
// tenant shares wrote the group's size in statuses per change.
func TestTogglingTheOldestOfManyDuplicatesWritesOnlyTheTwo(t *testing.T) {
	const n = 40
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acc-dup-toggle", "")
	tenant := impersonatedTenant(t, ns, "tenant-"+ns)
	rc := newReceiver(t, false, echoHeader)
	hooks := make([]*hooklinev1.Webhook, n)
	for i := range n {
		hooks[i] = &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("same-%03d", i), Namespace: ns}, Spec: validSpec()}
		hooks[i].Spec.URL = rc.URL
		g.Expect(tenant.Create(ctx, hooks[i])).To(Succeed())
	}
	slices.SortFunc(hooks, func(a, b *hooklinev1.Webhook) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(string(a.UID), string(b.UID))
	})
	oldest, next := hooks[0], hooks[1]
	eventuallyReady(t, oldest, metav1.ConditionTrue, hooklinev1.ReasonActive)
	// The same configuration in another account: not a duplicate, and none of this tenant's
	// business.
	stranger := createWebhook(t, newNamespace(t, "acc-dup-toggle-other", ""), "same", func(s *hooklinev1.WebhookSpec) { s.URL = rc.URL })
	eventuallyReady(t, stranger, metav1.ConditionTrue, hooklinev1.ReasonActive)
	strangerLogged := func() int { return strings.Count(managerLogs.String(), string(stranger.UID)) }
	for _, wh := range hooks[1:] {
		expectDuplicateOf(t, wh, oldest)
	}

	writes := func(wh *hooklinev1.Webhook) int {
		return managerRequests.Count(http.MethodPatch, "/apis/hookline.io/v1alpha1/namespaces/"+ns+"/webhooks/"+wh.Name+"/status")
	}
	othersWritten := func() (sum int) {
		for _, wh := range hooks[2:] {
			sum += writes(wh)
		}
		return sum
	}
	// Each reconcile of a duplicate logs this line (V(1)) with the Webhook's uid.
	othersReconciled := func() (count int) {
		for _, l := range strings.Split(managerLogs.String(), "\n") {
			if !strings.Contains(l, "Duplicate of an older ACTIVE webhook; not verifying") {
				continue
			}
			for _, wh := range hooks[2:] {
				if strings.Contains(l, string(wh.UID)) {
					count++
				}
			}
		}
		return count
	}
	before, reconciledBefore, strangerBefore := othersWritten(), othersReconciled(), strangerLogged()
	setState := func(wh *hooklinev1.Webhook, state hooklinev1.WebhookState) {
		// A merge patch, as kubectl patch: the manager writes the status meanwhile, which an
		// Update of the object read before would conflict with.
		cur := &hooklinev1.Webhook{}
		g.Expect(tenant.Get(ctx, client.ObjectKeyFromObject(wh), cur)).To(Succeed())
		base := cur.DeepCopy()
		cur.Spec.State = state
		g.Expect(tenant.Patch(ctx, cur, client.MergeFrom(base))).To(Succeed())
	}
	for range 2 {
		setState(oldest, hooklinev1.StateInactive)
		eventuallyReady(t, next, metav1.ConditionTrue, hooklinev1.ReasonActive)
		setState(oldest, hooklinev1.StateActive)
		eventuallyReady(t, oldest, metav1.ConditionTrue, hooklinev1.ReasonActive)
		expectDuplicateOf(t, next, oldest)
	}
	g.Expect(writes(next)).To(BeNumerically(">=", 4), "the next in line was written at each change (the count is of the manager's requests)")
	g.Consistently(othersWritten).WithTimeout(time.Second).WithPolling(100*time.Millisecond).Should(Equal(before),
		"the %d younger duplicates' statuses are not written", n-2)
	g.Expect(othersReconciled()).To(Equal(reconciledBefore), "nor are they reconciled")
	g.Expect(strangerLogged()).To(Equal(strangerBefore), "another account's Webhook of the same configuration is not reconciled")
}

// A tenant sharing an account with a victim copies the victim's Webhook into its own namespace
// (the copy, younger, is a duplicate) and fills the copy's status with conditions of its own
// types. The manager's conditions then no longer fitted the list's 16, so every status write to
// the copy failed, and with it every reconcile of the victim's Webhook that had to stop the copy
// first: set INACTIVE and ACTIVE again (or auto-disabled, or its certificate rotated), it was
// never verified again. The API server now accepts only the six condition types hookline writes.
func TestATenantCannotCrowdOutTheManagersConditions(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	victimNS, tenantNS := newNamespace(t, "acc-crowded-conditions", ""), newNamespace(t, "acc-crowded-conditions", "")
	tenant := impersonatedTenant(t, tenantNS, "tenant-"+tenantNS)
	rc := newReceiver(t, false, echoHeader)
	victim := createWebhook(t, victimNS, "orders", func(s *hooklinev1.WebhookSpec) { s.URL = rc.URL })
	eventuallyReady(t, victim, metav1.ConditionTrue, hooklinev1.ReasonActive)
	createdAfter(t, victim)
	cp := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "copy"}, Spec: getWebhook(g, victim).Spec}
	g.Expect(tenant.Create(ctx, cp)).To(Succeed())
	expectDuplicateOf(t, cp, victim)

	// The tenant may write its own status with hookline's types (a forged attestation too): that
	// routes nothing and stops nobody.
	g.Expect(tenant.Get(ctx, client.ObjectKeyFromObject(cp), cp)).To(Succeed())
	forged := cp.DeepCopy()
	forged.Status.Attestation = "x"
	forged.Status.Conditions = []metav1.Condition{{Type: hooklinev1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Forged", LastTransitionTime: metav1.Now()}}
	g.Expect(tenant.Status().Patch(ctx, forged, client.MergeFrom(cp))).To(Succeed())
	// But not fill the list with types of its own.
	cp, forged = forged, forged.DeepCopy()
	for i := range 15 {
		forged.Status.Conditions = append(forged.Status.Conditions, metav1.Condition{Type: fmt.Sprintf("Forged%02d", i),
			Status: metav1.ConditionTrue, Reason: "Forged", LastTransitionTime: metav1.Now()})
	}
	err := tenant.Status().Patch(ctx, forged, client.MergeFrom(cp))
	g.Expect(err).To(HaveOccurred(), "conditions of made-up types are refused")
	g.Expect(err.Error()).To(And(ContainSubstring("status.conditions"), ContainSubstring("only the condition types")))

	// The victim sets its Webhook INACTIVE (the copy becomes the oldest and is verified) and ACTIVE
	// again: it is verified again and the copy stopped.
	asked := rc.gets.Load()
	setVictimState := func(state hooklinev1.WebhookState) {
		cur := getWebhook(g, victim)
		base := cur.DeepCopy()
		cur.Spec.State = state
		g.Expect(k8s.Patch(ctx, cur, client.MergeFrom(base))).To(Succeed())
	}
	setVictimState(hooklinev1.StateInactive)
	eventuallyReady(t, cp, metav1.ConditionTrue, hooklinev1.ReasonActive)
	setVictimState(hooklinev1.StateActive)
	eventuallyReady(t, victim, metav1.ConditionTrue, hooklinev1.ReasonActive)
	g.Expect(rc.gets.Load()).To(BeNumerically(">", asked+1), "both were verified")
	expectDuplicateOf(t, cp, victim)
}
