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
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/internal/deliveries"
	"github.com/hookline/hookline/internal/echo"
)

// TestOneAccountsRecordsCannotPushAnothersOutOfTheLog performs the producer's attack on the shared
// delivery log: with a token for its own account only, it posts events until its webhook's
// records (its receiver answers with a long body, which each attempt record keeps an excerpt of)
// have filled the log three times over. The log's bound holds, and every notification of the
// other account stays on record with its state; without the share the stream's own bound took
// the oldest records first, the other account's.
func TestOneAccountsRecordsCannotPushAnothersOutOfTheLog(t *testing.T) {
	g := NewWithT(t)
	const bound = shareBound
	a := startShareStack(t, "share")
	s, tokVictim, tokFlood, nsVictim, nsFlood, victim, flooder := a.s, a.tokVictim, a.tokFlood, a.nsVictim, a.nsFlood, a.victim, a.flooder
	whVictim := s.activeWebhook(t, nsVictim, "orders", accountSpec(victim.URL))
	s.activeWebhook(t, nsFlood, "orders", accountSpec(flooder.URL))

	const victims = 40
	for i := range victims {
		s.mustPostWith(t, tokVictim, event(fmt.Sprintf("victim-%02d", i), a.victimAccount))
	}
	g.Eventually(victim.got).WithTimeout(20 * time.Second).Should(HaveLen(victims))
	delivered := func() []string {
		list, err := s.app.Log.Notifications(context.Background(), string(whVictim.UID), deliveries.Query{Limit: 500})
		g.Expect(err).NotTo(HaveOccurred())
		var ids []string
		for _, n := range list.Items {
			if n.State == deliveries.StateDelivered {
				ids = append(ids, n.EventID)
			}
		}
		return ids
	}
	g.Eventually(delivered).Should(HaveLen(victims))

	// Each flood notification leaves about 1.3 KB of records; eight producers post at once.
	const floods = 3 * bound / 1300
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < floods; i += 8 {
				s.mustPostWith(t, tokFlood, event(fmt.Sprintf("flood-%05d", i), a.floodAccount))
			}
		})
	}
	wg.Wait()
	g.Eventually(func() int { return len(flooder.got()) }).WithTimeout(2 * time.Minute).Should(BeNumerically(">=", floods))
	g.Expect(s.app.Log.Barrier(context.Background())).To(Succeed())

	g.Expect(delivered()).To(HaveLen(victims), "the other account's notifications are all still on record")
	g.Expect(s.metric(t, "hookline_delivery_log_stored_bytes")).To(BeNumerically("<=", bound))
	g.Eventually(func() float64 { return s.metric(t, "hookline_delivery_log_trimmed_bytes_total") }).WithTimeout(10 * time.Second).Should(BeNumerically(">=", bound))
}

// TestATenantDeletingItsWebhooksCannotPushAnothersRecordsOut is the tenant's side of the attack:
// holding every right in its namespace (impersonated through RBAC against the API server), it
// floods through one Webhook, deletes it and floods again through a new one, so that its records
// spread over a Webhook that no longer exists and one that does. The deleted Webhook's records
// are trimmed first (nobody can read them), then the live one's oldest; every notification of
// the other account stays on record.
func TestATenantDeletingItsWebhooksCannotPushAnothersRecordsOut(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const bound = shareBound
	a := startShareStack(t, "sharedel")
	s, tokVictim, tokFlood, nsVictim, nsFlood, victim, flooder := a.s, a.tokVictim, a.tokFlood, a.nsVictim, a.nsFlood, a.victim, a.flooder
	tenant := tenantClient(t, nsFlood, "sharedel-f-admin")
	whVictim := s.activeWebhook(t, nsVictim, "orders", accountSpec(victim.URL))

	const victims = 40
	for i := range victims {
		s.mustPostWith(t, tokVictim, event(fmt.Sprintf("victim-%02d", i), a.victimAccount))
	}
	g.Eventually(victim.got).WithTimeout(20 * time.Second).Should(HaveLen(victims))
	onRecord := func(uid string, state deliveries.State) []string {
		list, err := s.app.Log.Notifications(ctx, uid, deliveries.Query{Limit: 500})
		g.Expect(err).NotTo(HaveOccurred())
		var ids []string
		for _, n := range list.Items {
			if n.State == state {
				ids = append(ids, n.EventID)
			}
		}
		return ids
	}
	g.Eventually(func() []string { return onRecord(string(whVictim.UID), deliveries.StateDelivered) }).Should(HaveLen(victims))

	// The tenant's own Webhook, created, and later deleted, by the tenant.
	tenantWebhook := func(name string) *hooklinev1.Webhook {
		wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: nsFlood}, Spec: accountSpec(flooder.URL)}
		g.Expect(tenant.Create(ctx, wh)).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(tenant.Get(ctx, client.ObjectKeyFromObject(wh), wh)).To(Succeed())
			g.Expect(wh.Status.State).To(Equal(hooklinev1.ObservedActive))
		}).WithTimeout(20 * time.Second).Should(Succeed())
		s.waitRouted(t, wh)
		return wh
	}
	// Each flood notification leaves about 1.3 KB of records; eight producers post at once.
	sent := 0
	flood := func(n int) {
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < n; i += 8 {
					s.mustPostWith(t, tokFlood, event(fmt.Sprintf("flood-%06d", sent+i), a.floodAccount))
				}
			})
		}
		wg.Wait()
		sent += n
		g.Eventually(func() int { return len(flooder.got()) }).WithTimeout(2 * time.Minute).Should(BeNumerically(">=", sent))
		g.Expect(s.app.Log.Barrier(ctx)).To(Succeed())
	}

	first := tenantWebhook("flood-1")
	flood(bound / 1300)
	g.Expect(tenant.Delete(ctx, first)).To(Succeed())
	g.Eventually(func() bool {
		return dispatcher.AccountsOf(s.app).Deleted(string(first.UID))
	}).WithTimeout(10*time.Second).Should(BeTrue(), "the dispatcher saw the deletion")
	kept := len(onRecord(string(first.UID), deliveries.StateDelivered))
	g.Expect(kept).To(BeNumerically(">", 0), "the deleted Webhook's records are on record before the second flood")

	second := tenantWebhook("flood-2")
	flood(2 * bound / 1300)

	g.Expect(onRecord(string(whVictim.UID), deliveries.StateDelivered)).To(HaveLen(victims), "the other account's notifications are all still on record")
	g.Eventually(func() []string { return onRecord(string(first.UID), deliveries.StateDelivered) }).WithTimeout(10*time.Second).Should(BeEmpty(),
		"the deleted Webhook's records went first")
	g.Expect(onRecord(string(second.UID), deliveries.StateDelivered)).NotTo(BeEmpty(), "the live Webhook keeps its newest records")
	g.Expect(s.metric(t, "hookline_delivery_log_stored_bytes")).To(BeNumerically("<=", bound))
}

// shareBound is the delivery log's bound in the share's attack tests.
const shareBound = 2 << 20

// shareStack is a stack whose delivery log is bounded to shareBound, with two accounts
// (prefix-v, prefix-f), a namespace and a producer token each, and two receivers: the victim's,
// and the flooder's, which answers every notification with 1 KiB (kept as each attempt record's
// excerpt), so that its records fill the log fast.
type shareStack struct {
	s                           *stack
	victimAccount, floodAccount string
	tokVictim, tokFlood         string
	nsVictim, nsFlood           string
	victim, flooder             *receiver
}

func startShareStack(t *testing.T, prefix string) shareStack {
	t.Helper()
	a := shareStack{victimAccount: prefix + "-v", floodAccount: prefix + "-f",
		tokVictim: "token-for-" + prefix + "-v-only-0123456789", tokFlood: "token-for-" + prefix + "-f-only-0123456789"}
	a.nsVictim, a.nsFlood = newNamespace(t, a.victimAccount, ""), newNamespace(t, a.floodAccount, "")
	a.victim, a.flooder = newReceiver(t), newReceiver(t)
	long := strings.Repeat("x", 1024)
	a.flooder.set(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(echo.Header, r.Header.Get(echo.Header))
		_, _ = w.Write([]byte(long))
	})
	a.s = startStack(t, stackOptions{
		namespaces: []string{a.nsVictim, a.nsFlood},
		tokens: []ingest.TokenEntry{
			{Name: "victim", Token: a.tokVictim, Accounts: []string{a.victimAccount}},
			{Name: "flood", Token: a.tokFlood, Accounts: []string{a.floodAccount}},
		},
		mutate: func(c *dispatcher.Config) {
			withDeliveryLog(time.Second, 2*time.Second)(c)
			// The writer's records in flight must fit in the tenth of the bound above the share's
			// high mark (deliverylog.share); the default's 4,096 do for bounds from about 100 MiB.
			c.DeliveryLog.MaxBytes, c.DeliveryLog.Buffer = shareBound, 32
		},
	})
	return a
}
