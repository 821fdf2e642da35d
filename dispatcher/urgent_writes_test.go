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
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/internal/testsupport"
)

// A tenant (impersonated through RBAC) stamps the reactivation annotation of its Webhook in a
// loop: each value was a reactivation to report, and each was written at once, outside the
// routine writes' budget: one dispatcher write per write of the tenant's, through the dispatcher's
// API priority and report workers. Now a namespace's changes are written at once within
// UrgentBurst and UrgentWritesPerSecond, with the routine writes beyond; the last is still
// reported.
func TestATenantsChangesAreWrittenAtOnceWithinItsShare(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const stamps, interval = 60, 5 * time.Second
	account := "acc-urgent-writes"
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	requests := &testsupport.APIRequests{}
	s := startStack(t, stackOptions{namespaces: []string{ns}, requests: requests, mutate: func(c *dispatcher.Config) {
		c.StatusInterval = interval // routine writes: at most one an interval per Webhook
	}})
	wh := s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
	tenant := tenantClient(t, ns, "tenant-"+ns)
	writes := func() int {
		return requests.Count(http.MethodPatch, "/apis/hookline.io/v1alpha1/namespaces/"+ns+"/webhooks/"+wh.Name+"/status")
	}
	before, start := writes(), time.Now()
	var last string
	for i := range stamps {
		cur := &hooklinev1.Webhook{}
		g.Expect(tenant.Get(ctx, client.ObjectKeyFromObject(wh), cur)).To(Succeed())
		base := cur.DeepCopy()
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		last = fmt.Sprintf("stamp-%d", i)
		cur.Annotations[hooklinev1.ReactivateAnnotation] = last
		g.Expect(tenant.Patch(ctx, cur, client.MergeFrom(base))).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		g.Expect(getWebhook(g, wh).Status.LastHandledReactivation).To(Equal(hooklinev1.ReactivationToken(last)))
	}).WithTimeout(30*time.Second).Should(Succeed(), "the last reactivation is reported")
	elapsed := time.Since(start)
	written := writes() - before
	// The burst, a second's worth for each second, and the routine writes (one an interval).
	bound := dispatcher.UrgentBurst + int(elapsed.Seconds()*dispatcher.UrgentWritesPerSecond) + int(elapsed/interval) + 2
	t.Logf("%d stamps, %d status writes in %s (bound %d)", stamps, written, elapsed.Round(time.Millisecond), bound)
	g.Expect(written).To(BeNumerically("<=", bound))
}
