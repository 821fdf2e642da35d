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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// webhookIDs returns the webhookId of each notification the receiver got.
func webhookIDs(t *testing.T, ds []delivery) []string {
	t.Helper()
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		var body struct {
			WebhookID string `json:"webhookId"`
		}
		if err := json.Unmarshal(d.Body, &body); err != nil {
			t.Fatalf("delivery body: %v", err)
		}
		out = append(out, body.WebhookID)
	}
	return out
}

// waitDuplicateOf waits until the manager reports wh as a duplicate, and winner as Active (the
// duplicate's message names no Webhook).
func waitDuplicateOf(t *testing.T, wh, winner *hooklinev1.Webhook) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		cur := getWebhook(g, wh)
		ready := condition(cur, hooklinev1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.ObservedGeneration).To(Equal(cur.Generation))
		g.Expect(ready.Reason).To(Equal(hooklinev1.ReasonDuplicateConfiguration))
		g.Expect(ready.Message).To(ContainSubstring("an older ACTIVE webhook of account "))
		g.Expect(cur.Status.Attestation).To(BeEmpty())
		g.Expect(getWebhook(g, winner).Status.State).To(Equal(hooklinev1.ObservedActive))
	}).WithTimeout(30 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
}

// Issue 13: of 100 identical Webhooks created at once, one event reaches the receiver once, from
// the oldest.
func TestIdenticalWebhooksDeliverOnce(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account, n = "acc-dup-once", 100
	ns := newNamespace(t, account, "")
	s := startStack(t, stackOptions{namespaces: []string{ns}})
	rc := newReceiver(t)
	// Events keep coming while the manager sorts the duplicates out: none may reach the receiver
	// twice, whichever webhooks are Active at the moment it is ingested.
	stopPosting := make(chan struct{})
	posted := make(chan int)
	go func() {
		i := 0
		defer func() { posted <- i }()
		for {
			select {
			case <-stopPosting:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if code, body := s.postWith(t, testToken, event(fmt.Sprintf("dup-flow-%d", i), account)); code != http.StatusAccepted {
				t.Errorf("post: %d %s", code, body)
				return
			}
			i++
		}
	}()
	hooks := make([]*hooklinev1.Webhook, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("same-%03d", i), Namespace: ns}, Spec: accountSpec(rc.URL)}
			if err := k8s.Create(ctx, wh); err != nil {
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
	g.Eventually(func(g Gomega) {
		g.Expect(getWebhook(g, oldest).Status.State).To(Equal(hooklinev1.ObservedActive))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	for _, wh := range hooks {
		if wh != oldest {
			waitDuplicateOf(t, wh, oldest)
		}
	}
	s.waitRouted(t, oldest)
	g.Eventually(func() []string { return s.routedUIDs() }).WithTimeout(10 * time.Second).Should(ConsistOf(string(oldest.UID)))
	close(stopPosting)
	t.Logf("%d events posted while the webhooks were created and sorted out", <-posted)

	s.mustPost(t, event("dup-once", account))
	g.Eventually(func() []string { return agreementIDs(t, rc.got()) }).WithTimeout(10 * time.Second).Should(ContainElement("agr-dup-once"))
	g.Consistently(func() []delivery { return rc.got() }).WithTimeout(time.Second).Should(HaveLen(len(distinct(agreementIDs(t, rc.got())))),
		"an event reached the receiver twice")
	ids := agreementIDs(t, rc.got())
	g.Expect(ids).To(HaveLen(len(distinct(ids))), "an event reached the receiver twice")
	g.Expect(webhookIDs(t, rc.got())[len(ids)-1]).To(Equal(string(oldest.UID)))
}

// busyManager occupies every worker of the suite's manager (16) with verifications that hang until
// released or timed out, so that the manager reconciles nothing else meanwhile: what the dispatcher
// does until the manager has looked at a change is then observable.
func busyManager(t *testing.T) (release func()) {
	t.Helper()
	g := NewWithT(t)
	var inFlight atomic.Int64
	gate := make(chan struct{})
	hang := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		select {
		case <-gate:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	var hooks []*hooklinev1.Webhook
	for a := range 2 { // the manager verifies at most 10 per account at once
		ns := newNamespace(t, fmt.Sprintf("acc-busy-%d", a), "")
		for i := range 10 {
			wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("busy-%d", i), Namespace: ns},
				Spec: accountSpec(fmt.Sprintf("%s/busy/%d", hang.URL, i))}
			g.Expect(k8s.Create(context.Background(), wh)).To(Succeed())
			hooks = append(hooks, wh)
		}
	}
	g.Eventually(inFlight.Load).WithTimeout(10 * time.Second).Should(BeEquivalentTo(16))
	var once sync.Once
	release = func() {
		once.Do(func() {
			for _, wh := range hooks {
				g.Expect(client.IgnoreNotFound(k8s.Delete(context.Background(), wh))).To(Succeed())
			}
			close(gate)
		})
	}
	t.Cleanup(release)
	return release
}

// Attack (issue 13): a tenant edits an Active webhook into a duplicate of an older one and
// producers send events at once. The edited webhook gets no notification at any moment, not even
// while the manager has not yet looked at the edit: its attestation covers its configuration, so
// the dispatcher stops routing to it as soon as it sees the edit.
func TestEditedIntoDuplicateGetsNothing(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account = "acc-dup-edit"
	ns := newNamespace(t, account, "")
	s := startStack(t, stackOptions{namespaces: []string{ns}})
	tenant := tenantClient(t, ns, "tenant-dup")
	rc := newReceiver(t)
	original := s.activeWebhook(t, ns, "original", accountSpec(rc.URL, "AGREEMENT_ALL"))
	created := original.CreationTimestamp
	g.Eventually(func() bool { return time.Now().Truncate(time.Second).After(created.Time) }).
		WithTimeout(3 * time.Second).WithPolling(20 * time.Millisecond).Should(BeTrue())
	edited := s.activeWebhook(t, ns, "edited", accountSpec(rc.URL, "WIDGET_ALL"))

	release := busyManager(t)
	cur := &hooklinev1.Webhook{}
	g.Expect(tenant.Get(ctx, client.ObjectKeyFromObject(edited), cur)).To(Succeed())
	base := cur.DeepCopy()
	cur.Spec.Events = []hooklinev1.EventName{"AGREEMENT_ALL"}
	g.Expect(tenant.Patch(ctx, cur, client.MergeFrom(base))).To(Succeed())
	// The manager is busy: the edit is seen by the dispatcher only.
	var ids []string
	for i := range 10 {
		id := fmt.Sprintf("dup-edit-%d", i)
		s.mustPost(t, event(id, account))
		ids = append(ids, "agr-"+id)
		time.Sleep(20 * time.Millisecond) // spreads the events over the window; not a synchronisation
	}
	g.Eventually(func() []string { return agreementIDs(t, rc.got()) }).WithTimeout(10 * time.Second).Should(ContainElements(ids))
	g.Expect(getWebhook(g, edited).Status.ObservedGeneration).To(BeNumerically("<", cur.Generation),
		"the manager reconciled the edit while it was meant to be busy: the test proves nothing")
	g.Expect(webhookIDs(t, rc.got())).NotTo(ContainElement(string(edited.UID)), "the edited duplicate received a notification")

	release()
	waitDuplicateOf(t, edited, original)
	s.mustPost(t, event("dup-edit-after", account))
	g.Eventually(func() []string { return agreementIDs(t, rc.got()) }).WithTimeout(10 * time.Second).Should(ContainElement("agr-dup-edit-after"))
	g.Consistently(func() []string { return webhookIDs(t, rc.got()) }).WithTimeout(time.Second).
		ShouldNot(ContainElement(string(edited.UID)), "the duplicate received a notification")
	g.Expect(rc.got()).To(HaveLen(len(ids) + 1))
}
