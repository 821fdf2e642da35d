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
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/cachetrim"
	"github.com/hookline/hookline/internal/testcerts"
)

// A webhook waiting for one of its account's verification slots reads no Secret (see
// TestAWebhookWaitingForASlotReadsNoSecret), against the real API server, counting the manager's
// requests: a tenant (impersonated through RBAC) creates twenty webhooks with a client certificate
// each, for an account that verifies ten at a time, at receivers that hold every verification
// for half the verification timeout, then fail it. A webhook reads its Secret only when it has a slot, and then verifies: its
// Secret is read at most once more than its endpoint was asked (the read just before the request).
// Before, each waiting webhook read its Secret at every retry, 5–10 times a second here.
func TestWebhooksWaitingForTheirAccountsSlotsReadNoSecretFromTheAPIServer(t *testing.T) {
	g := NewWithT(t)
	const webhooks = 20
	slow := &gate{open: make(chan struct{}), holdFor: testVerifyTimeout / 2}
	t.Cleanup(func() {
		select {
		case <-slow.open:
		default:
			close(slow.open)
		}
	})
	ns := newNamespace(t, "acc-secret-reads", "")
	counts := &secretReads{ns: ns}
	rc := newReceiver(t, true, func(w http.ResponseWriter, r *http.Request) {
		counts.asked(r)
		slow.handler(w, r)
	})
	tenant := impersonatedTenant(t, ns, "tenant-"+ns)
	names := certWebhooks(t, tenant, ns, rc.URL, webhooks)
	reads := counts.reads
	readsBeyondRequests := func() []string { return counts.beyondRequests(names) }
	g.Eventually(func() int { n, _ := slow.stats(); return n }).WithTimeout(10*time.Second).Should(Equal(10), "the account's ten slots are busy")
	// Every verification is held for a second (the verification timeout) and retried; the ten
	// waiting retry every 100–200 ms meanwhile.
	g.Consistently(readsBeyondRequests).WithTimeout(3 * time.Second).WithPolling(100 * time.Millisecond).Should(BeEmpty())
	_, peak := slow.stats()
	g.Expect(peak).To(Equal(10), "at most ten verifications at once")

	close(slow.open)
	for _, name := range names {
		eventuallyReady(t, &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}, metav1.ConditionTrue, hooklinev1.ReasonActive)
		g.Expect(reads(name)).To(BeNumerically(">=", 1), "the manager's reads of %s are counted", name)
	}
}

// secretReads counts, per webhook of namespace ns, the requests its endpoint got (asked, from the
// receiver's handler) and the manager's reads of its client-certificate Secret, since mark (or
// since the start).
type secretReads struct {
	ns                            string
	mu                            sync.Mutex
	requests, requestsAt, readsAt map[string]int
}

// asked counts r, a request to the endpoint .../<webhook name>.
func (c *secretReads) asked(r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.requests == nil {
		c.requests = map[string]int{}
	}
	c.requests[path.Base(r.URL.Path)]++
}

// reads is how many times the manager read name's Secret, in all.
func (c *secretReads) reads(name string) int {
	return managerRequests.Count(http.MethodGet, "/api/v1/namespaces/"+c.ns+"/secrets/"+name)
}

// mark starts the counts of names again from now.
func (c *secretReads) mark(names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requestsAt, c.readsAt = map[string]int{}, map[string]int{}
	for _, name := range names {
		c.requestsAt[name], c.readsAt[name] = c.requests[name], c.reads(name)
	}
}

// askedSince is how many requests name's endpoint got since mark.
func (c *secretReads) askedSince(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests[name] - c.requestsAt[name]
}

// beyondRequests names the webhooks whose Secret was read, since mark, more than once more than
// their endpoint was asked.
func (c *secretReads) beyondRequests(names []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, name := range names {
		if n, m := c.reads(name)-c.readsAt[name], c.requests[name]-c.requestsAt[name]; n > m+1 {
			out = append(out, fmt.Sprintf("%s: %d reads, %d requests", name, n, m))
		}
	}
	return out
}

// switchableGates returns a gate that answers at once, one that holds each verification for half
// the verification timeout and then fails it, and the current one, set to the first.
func switchableGates(t *testing.T) (open, slow *gate, current *atomic.Pointer[gate]) {
	open = &gate{open: make(chan struct{})}
	close(open.open)
	slow = &gate{open: make(chan struct{}), holdFor: testVerifyTimeout / 2}
	t.Cleanup(func() { close(slow.open) })
	current = &atomic.Pointer[gate]{}
	current.Store(open)
	return open, slow, current
}

// activeCertWebhooks is certWebhooks, once each of them is Active.
func activeCertWebhooks(t *testing.T, tenant client.Client, ns, url string, n int) []string {
	t.Helper()
	names := certWebhooks(t, tenant, ns, url, n)
	for _, name := range names {
		eventuallyReady(t, &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}, metav1.ConditionTrue, hooklinev1.ReasonActive)
	}
	return names
}

// certWebhooks creates, as tenant, n webhooks of namespace ns (hook-00, hook-01, …) at url/hooks/
// <name>, each with a client certificate in a Secret of its own, and returns their names.
func certWebhooks(t *testing.T, tenant client.Client, ns, url string, n int) []string {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	ca, err := testcerts.NewCA("tenant-mtls")
	g.Expect(err).NotTo(HaveOccurred())
	leaf, err := ca.Client("hookline-webhooks")
	g.Expect(err).NotTo(HaveOccurred())
	var names []string
	for i := range n {
		name := fmt.Sprintf("hook-%02d", i)
		names = append(names, name)
		g.Expect(tenant.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: leaf.CertPEM, corev1.TLSPrivateKeyKey: leaf.KeyPEM}})).To(Succeed())
		spec := validSpec()
		spec.URL = url + "/hooks/" + name
		spec.ClientCertificateSecretRef = &hooklinev1.SecretReference{Name: name}
		g.Expect(tenant.Create(ctx, &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec})).To(Succeed())
	}
	return names
}

// impersonatedTenant returns a client acting as user, who may do anything in namespace ns and
// nothing elsewhere (a Role and a RoleBinding).
func impersonatedTenant(t *testing.T, ns, user string) client.Client {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(k8s.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "tenant-admin", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}})).To(Succeed())
	g.Expect(k8s.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "tenant-admin", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "tenant-admin"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}})).To(Succeed())
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func() error { return c.List(ctx, &hooklinev1.WebhookList{}, client.InNamespace(ns)) }).WithTimeout(10 * time.Second).Should(Succeed())
	return c
}

// A verified webhook whose attestation covers no verification time (a tenant cut its v3 down to
// a v2's tags) is verified again; while it waits for one of its account's slots it is still
// routed on its recorded verification, and it reads no Secret: the tenant's twenty webhooks, their
// attestations cut, at receivers that now hold every verification, then fail it. Before, the
// ten waiting read their Secrets at every retry, 5–10 times a second each here, and without the
// jitter all in step.
func TestVerifiedWebhooksWaitingToBeVerifiedAgainReadNoSecret(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const webhooks = 20
	_, slow, current := switchableGates(t)
	ns := newNamespace(t, "acc-secret-reads-again", "")
	counts := &secretReads{ns: ns}
	rc := newReceiver(t, true, func(w http.ResponseWriter, r *http.Request) {
		counts.asked(r)
		current.Load().handler(w, r)
	})
	tenant := impersonatedTenant(t, ns, "tenant-"+ns)
	names := activeCertWebhooks(t, tenant, ns, rc.URL, webhooks)

	current.Store(slow)
	counts.mark(names)
	// The tenant cuts every attestation down to a v2's tags: the time tag goes.
	for _, name := range names {
		g.Eventually(func() error {
			wh := &hooklinev1.Webhook{}
			if err := tenant.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, wh); err != nil {
				return err
			}
			parts := strings.Split(wh.Status.Attestation, ".")
			if len(parts) != 5 || parts[0] != "v3" {
				return fmt.Errorf("%s: not a v3 attestation: %q", name, wh.Status.Attestation)
			}
			wh.Status.Attestation = strings.Join(append([]string{"v2"}, parts[1:4]...), ".")
			if err := tenant.Status().Update(ctx, wh); err != nil {
				return err
			}
			// The reactivation annotation's change has the manager look at the webhook now.
			wh.Annotations = map[string]string{hooklinev1.ReactivateAnnotation: "1"}
			return tenant.Update(ctx, wh)
		}).WithTimeout(10 * time.Second).Should(Succeed())
	}
	readsBeyondRequests := func() []string { return counts.beyondRequests(names) }
	g.Eventually(func() int { n, _ := slow.stats(); return n }).WithTimeout(10*time.Second).Should(Equal(10), "the account's ten slots are busy")
	// Those waiting are still routed on their recorded verification.
	var waiting []string
	for _, name := range names {
		if counts.askedSince(name) == 0 {
			waiting = append(waiting, name)
		}
	}
	g.Expect(waiting).NotTo(BeEmpty())
	for _, name := range waiting {
		wh := &hooklinev1.Webhook{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, wh)).To(Succeed())
		g.Expect(wh.Status.State).To(Equal(hooklinev1.ObservedActive), name)
	}
	g.Consistently(readsBeyondRequests).WithTimeout(3 * time.Second).WithPolling(100 * time.Millisecond).Should(BeEmpty())
	_, peak := slow.stats()
	g.Expect(peak).To(Equal(10), "at most ten verifications at once")
}

// A tenant (or a tool stamping annotations) changes annotations of its verified webhooks with a
// client certificate again and again. Any annotation woke the manager, and each wake of such a
// webhook read its Secret from the API server: one uncached read per write. Now only annotations
// of hookline's prefix (hookline.io/reactivate, hookline.io/verify-at) wake it.
func TestOtherAnnotationsReadNoSecret(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acc-annotation-reads", "")
	rc := newReceiver(t, true, echoHeader)
	tenant := impersonatedTenant(t, ns, "tenant-"+ns)
	names := activeCertWebhooks(t, tenant, ns, rc.URL, 3)
	counts := &secretReads{ns: ns}
	annotate := func(name, key, value string) {
		g.Eventually(func() error {
			wh := &hooklinev1.Webhook{}
			if err := tenant.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, wh); err != nil {
				return err
			}
			if wh.Annotations == nil {
				wh.Annotations = map[string]string{}
			}
			wh.Annotations[key] = value
			return tenant.Update(ctx, wh)
		}).WithTimeout(10 * time.Second).Should(Succeed())
	}
	// Verified (the Secret read before), then resynced only every 5 minutes.
	before := map[string]int{}
	for _, name := range names {
		before[name] = counts.reads(name)
	}
	for i := range 10 {
		for _, name := range names {
			annotate(name, "example.com/stamp", fmt.Sprint(i))
		}
	}
	g.Consistently(func() int {
		n := 0
		for _, name := range names {
			n += counts.reads(name) - before[name]
		}
		return n
	}).WithTimeout(2*time.Second).WithPolling(100*time.Millisecond).Should(BeZero(), "Secret reads for annotations the manager does not read")
	// Positive control: the reactivation annotation wakes it, and it reads the Secret again.
	annotate(names[0], hooklinev1.ReactivateAnnotation, "1")
	g.Eventually(func() int { return counts.reads(names[0]) - before[names[0]] }).WithTimeout(10 * time.Second).Should(BeNumerically(">=", 1))
}

// Someone who may create Webhooks in a namespace bound to no account (not an onboarded tenant)
// creates one with another account's configuration and sets it INACTIVE and ACTIVE again and
// again. Its changes had every account's oldest Webhook with that configuration reconciled, each
// reconcile of a verified one with a client certificate reading its Secret from the API server.
// A Webhook of an unbound namespace competes in no account: its changes reconcile nothing else.
func TestAnUnboundNamespacesWebhookReconcilesNoOtherAccount(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acc-dup-victim", "")
	rc := newReceiver(t, true, echoHeader)
	tenant := impersonatedTenant(t, ns, "tenant-"+ns)
	names := certWebhooks(t, tenant, ns, rc.URL, 1)
	victim := &hooklinev1.Webhook{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: names[0]}, victim)).To(Succeed())
	eventuallyReady(t, victim, metav1.ConditionTrue, hooklinev1.ReasonActive)
	counts := &secretReads{ns: ns}
	before := counts.reads(names[0])

	unbound := newNamespace(t, "", "")
	stranger := impersonatedTenant(t, unbound, "stranger-"+unbound)
	flipCopycat(t, stranger, unbound, victim, 10)
	g.Consistently(func() int { return counts.reads(names[0]) - before }).
		WithTimeout(2*time.Second).WithPolling(100*time.Millisecond).Should(BeZero(), "the victim's Secret read for another namespace's changes")
}

// A verified webhook whose client certificate is rotated while its account's slots are all busy
// (another namespace's webhooks being verified slowly: anyone sharing the account can keep them
// so) stays routed on its recorded verification until it gets a slot: the dispatcher keeps
// queueing its events and holds them until the new certificate is verified. Before, it was
// reported throttled, its attestation dropped: Inactive, unroutable, its events of the wait never
// queued. While it waits it reads its Secret no more: the next tries take a slot first.
func TestARotatedCertificateWaitingForASlotKeepsItsRoute(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const webhooks = 21
	open, slow, current := switchableGates(t)
	ns := newNamespace(t, "acc-rotate-wait", "")
	counts := &secretReads{ns: ns}
	const rotated = "hook-20"
	rc := newReceiver(t, true, func(w http.ResponseWriter, r *http.Request) {
		counts.asked(r)
		if path.Base(r.URL.Path) == rotated {
			echoHeader(w, r) // its endpoint agrees at once, whenever it is asked
			return
		}
		current.Load().handler(w, r)
	})
	tenant := impersonatedTenant(t, ns, "tenant-"+ns)
	names := activeCertWebhooks(t, tenant, ns, rc.URL, webhooks)
	// Twenty webhooks need verifying again (their attestations cut to a v2's tags) at endpoints
	// that hold each verification: the account's ten slots stay busy, each freed one taken at once
	// by one of the ten waiting.
	current.Store(slow)
	touch := func(name string, change func(*hooklinev1.Webhook) error) {
		g.Eventually(func() error {
			wh := &hooklinev1.Webhook{}
			if err := tenant.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, wh); err != nil {
				return err
			}
			if err := change(wh); err != nil {
				return err
			}
			wh.Annotations = map[string]string{hooklinev1.ReactivateAnnotation: fmt.Sprint(time.Now().UnixNano())}
			return tenant.Update(ctx, wh)
		}).WithTimeout(10 * time.Second).Should(Succeed())
	}
	for _, name := range names[:20] {
		touch(name, func(wh *hooklinev1.Webhook) error {
			parts := strings.Split(wh.Status.Attestation, ".")
			wh.Status.Attestation = strings.Join(append([]string{"v2"}, parts[1:4]...), ".")
			return tenant.Status().Update(ctx, wh)
		})
	}
	g.Eventually(func() int { n, _ := slow.stats(); return n }).WithTimeout(10*time.Second).Should(Equal(10), "the account's ten slots are busy")

	// The last one's certificate is rotated. A slot may be free at that moment (between one
	// verification's end and a waiting webhook's next try): then it is verified at once, and the
	// certificate is rotated again, until it has to wait.
	wh := &hooklinev1.Webhook{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: rotated}, wh)).To(Succeed())
	waited := func() int {
		n := 0
		for _, l := range strings.Split(managerLogs.String(), "\n") {
			if strings.Contains(l, "routed on the recorded verification meanwhile") && strings.Contains(l, string(wh.UID)) {
				n++
			}
		}
		return n
	}
	var readsBefore int
	for try := 0; waited() == 0; try++ {
		g.Expect(try).To(BeNumerically("<", 5), "it never had to wait for a slot")
		ca, err := testcerts.NewCA(fmt.Sprintf("tenant-mtls-rotated-%d", try))
		g.Expect(err).NotTo(HaveOccurred())
		leaf, err := ca.Client("hookline-webhooks")
		g.Expect(err).NotTo(HaveOccurred())
		secret := &corev1.Secret{}
		g.Expect(tenant.Get(ctx, client.ObjectKey{Namespace: ns, Name: rotated}, secret)).To(Succeed())
		secret.Data = map[string][]byte{corev1.TLSCertKey: leaf.CertPEM, corev1.TLSPrivateKeyKey: leaf.KeyPEM}
		g.Expect(tenant.Update(ctx, secret)).To(Succeed())
		counts.mark([]string{rotated})
		readsBefore = counts.reads(rotated)
		touch(rotated, func(*hooklinev1.Webhook) error { return nil })
		g.Eventually(func() bool { return waited() > 0 || counts.askedSince(rotated) > 0 }).WithTimeout(10*time.Second).
			Should(BeTrue(), "it either waits for a slot or is verified")
	}
	g.Consistently(func(g Gomega) {
		cur := &hooklinev1.Webhook{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: rotated}, cur)).To(Succeed())
		g.Expect(cur.Status.State).To(Equal(hooklinev1.ObservedActive))
		g.Expect(cur.Status.Attestation).NotTo(BeEmpty())
		if counts.askedSince(rotated) == 0 {
			// Not verified yet: the Secret was read when the rotation was found, and perhaps
			// just now for a verification about to ask.
			g.Expect(counts.reads(rotated)-readsBefore).To(BeNumerically("<=", 2), "Secret reads while waiting")
		}
	}).WithTimeout(2 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())

	// Once the slots free up, the new certificate is verified.
	current.Store(open)
	g.Eventually(func() int { return counts.askedSince(rotated) }).WithTimeout(15 * time.Second).Should(BeNumerically(">=", 1))
	eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonActive)
}

// A tenant of another namespace bound to the same account and group (so its Webhooks compete with
// the victim's in one binding) creates a Webhook with the victim's configuration and sets it
// INACTIVE and ACTIVE again and again: each change wakes the oldest of that configuration, the
// victim's, and each of its reconciles read its client-certificate Secret from the API server:
// another namespace's Secret read at the tenant's will. A verified Webhook's Secret is now read
// again for such wakes at most every 30 s (half the resync, if shorter); its own spec changes and
// reactivations still read it.
func TestAnotherNamespacesChangesDoNotReadTheVictimsSecret(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acc-dup-shared", "grp")
	rc := newReceiver(t, true, echoHeader)
	owner := impersonatedTenant(t, ns, "owner-"+ns)
	names := certWebhooks(t, owner, ns, rc.URL, 1)
	victim := &hooklinev1.Webhook{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: names[0]}, victim)).To(Succeed())
	eventuallyReady(t, victim, metav1.ConditionTrue, hooklinev1.ReasonActive)
	counts := &secretReads{ns: ns}
	before := counts.reads(names[0])

	other := newNamespace(t, "acc-dup-shared", "grp")
	tenant := impersonatedTenant(t, other, "tenant-"+other)
	// Created in a later second than the victim: creation times are kept to the second, and a tie
	// goes to the smaller uid, which could make the copycat the older.
	g.Eventually(func() time.Time { return time.Now() }).WithTimeout(3 * time.Second).
		Should(BeTemporally(">=", victim.CreationTimestamp.Add(time.Second)))
	flipCopycat(t, tenant, other, victim, 10)
	g.Consistently(func() int { return counts.reads(names[0]) - before }).
		WithTimeout(2*time.Second).WithPolling(100*time.Millisecond).Should(BeNumerically("<=", 1), "the victim's Secret read for another namespace's changes")
	eventuallyReady(t, victim, metav1.ConditionTrue, hooklinev1.ReasonActive)
	// Positive controls: its owner's reactivation, and verify-at (the step after rotating a
	// certificate), read it at once.
	for _, key := range []string{hooklinev1.ReactivateAnnotation, cachetrim.VerifyAtAnnotation} {
		reads := counts.reads(names[0])
		g.Eventually(func() error {
			cur := &hooklinev1.Webhook{}
			if err := owner.Get(ctx, client.ObjectKeyFromObject(victim), cur); err != nil {
				return err
			}
			if cur.Annotations == nil {
				cur.Annotations = map[string]string{}
			}
			cur.Annotations[key] = "1"
			return owner.Update(ctx, cur)
		}).WithTimeout(10 * time.Second).Should(Succeed())
		g.Eventually(func() int { return counts.reads(names[0]) - reads }).WithTimeout(10*time.Second).Should(BeNumerically(">=", 1), key)
	}
}

// flipCopycat has c create, in namespace ns, a Webhook with victim's configuration (its client
// certificate is no part of it) and set it INACTIVE and ACTIVE again, flips times in all.
func flipCopycat(t *testing.T, c client.Client, ns string, victim *hooklinev1.Webhook, flips int) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	spec := victim.Spec
	spec.ClientCertificateSecretRef = nil
	copycat := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "copycat"}, Spec: spec}
	g.Expect(c.Create(ctx, copycat)).To(Succeed())
	for i := range flips {
		state := hooklinev1.StateInactive
		if i%2 == 1 {
			state = hooklinev1.StateActive
		}
		g.Eventually(func() error {
			cur := &hooklinev1.Webhook{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(copycat), cur); err != nil {
				return err
			}
			cur.Spec.State = state
			return c.Update(ctx, cur)
		}).WithTimeout(10 * time.Second).Should(Succeed())
	}
}
