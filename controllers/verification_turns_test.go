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
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// The namespaces bound to one account (a group each) take turns for its verification slots. A
// tenant (impersonated through RBAC) with a hundred webhooks at receivers that hold each
// verification for half the timeout, then fail it, keeps the account's ten slots busy; another
// namespace's five new webhooks are verified within a few of the tenant's verifications, not
// after about a hundred of them: a freed slot went to whoever asked first, the tenant's hundred
// waiting webhooks as often as the other's five, and the other namespace's events were not routed
// meanwhile.
func TestNamespacesOfAnAccountTakeTurnsForVerifications(t *testing.T) {
	g := NewWithT(t)
	const (
		account        = "acc-verification-turns"
		tenantWebhooks = 100
		victimWebhooks = 5
	)
	slow := &gate{open: make(chan struct{}), holdFor: testVerifyTimeout / 2}
	t.Cleanup(func() { close(slow.open) })
	var tenantAsked atomic.Int64
	slowRc := newReceiver(t, true, func(w http.ResponseWriter, r *http.Request) {
		tenantAsked.Add(1)
		slow.handler(w, r)
	})
	// The tenant's verifications begun when the other namespace's last was asked.
	var victimAsked, tenantAskedThen atomic.Int64
	fast := newReceiver(t, true, func(w http.ResponseWriter, r *http.Request) {
		if victimAsked.Add(1) == victimWebhooks {
			tenantAskedThen.Store(tenantAsked.Load())
		}
		echoHeader(w, r)
	})
	nsT, nsV := newNamespace(t, account, "group-t"), newNamespace(t, account, "group-v")
	tenant, victim := impersonatedTenant(t, nsT, "tenant-"+nsT), impersonatedTenant(t, nsV, "victim-"+nsV)
	ctx := context.Background()
	for i := range tenantWebhooks {
		spec := validSpec()
		spec.URL = fmt.Sprintf("%s/hooks/%d", slowRc.URL, i)
		g.Expect(tenant.Create(ctx, &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("hook-%03d", i), Namespace: nsT}, Spec: spec})).To(Succeed())
	}
	g.Eventually(func() int { n, _ := slow.stats(); return n }).WithTimeout(10*time.Second).Should(Equal(10), "the tenant holds the account's ten slots")
	// A few of the tenant's verifications are over and it still holds the slots: it keeps them busy.
	before := tenantAsked.Load()
	g.Eventually(tenantAsked.Load).WithTimeout(10 * time.Second).Should(BeNumerically(">=", before+20))
	g.Eventually(func() int { n, _ := slow.stats(); return n }).WithTimeout(5*time.Second).Should(Equal(10), "and keeps them")

	// Created at once, so that how long the creates take one after another is not counted.
	start := tenantAsked.Load()
	others := make([]*hooklinev1.Webhook, victimWebhooks)
	var wg sync.WaitGroup
	errs := make(chan error, victimWebhooks)
	for i := range others {
		spec := validSpec()
		spec.URL = fmt.Sprintf("%s/hooks/%d", fast.URL, i)
		others[i] = &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("hook-%03d", i), Namespace: nsV}, Spec: spec}
		wg.Go(func() { errs <- victim.Create(ctx, others[i]) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		g.Expect(err).NotTo(HaveOccurred())
	}
	for _, wh := range others {
		g.Eventually(func(g Gomega) {
			got := getWebhook(g, wh)
			v := meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionVerified)
			g.Expect(v).NotTo(BeNil())
			g.Expect(v.Status).To(Equal(metav1.ConditionTrue), "Verified: %s %s", v.Reason, v.Message)
		}).WithTimeout(30*time.Second).Should(Succeed(), "%s verified", wh.Name)
	}
	// The tenant's verifications begun from the other namespace's creation until its last was
	// asked: those begun before its webhooks were first reconciled (and so waited) and a few more;
	// measured 0–6. Before, a freed slot went to the other namespace about once in twenty: 130–172.
	t.Logf("%d of the tenant's verifications begun while the other namespace waited", tenantAskedThen.Load()-start)
	g.Expect(victimAsked.Load()).To(BeEquivalentTo(victimWebhooks), "each asked once")
	g.Expect(tenantAskedThen.Load()-start).To(BeNumerically("<=", 40), "the tenant's verifications begun while the other namespace waited")
	_, peak := slow.stats()
	g.Expect(peak).To(BeNumerically("<=", 10), "ten at once at most for the account")
}
