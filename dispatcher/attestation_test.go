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
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/internal/attest"
	"github.com/hookline/hookline/internal/safetext"
	"github.com/hookline/hookline/internal/testcerts"
	"github.com/hookline/hookline/internal/verify"
)

// endpoint is a receiver that would accept every notification POSTed to it (it echoes the client
// id) but answers the manager's verification GET as the test says: the endpoint of someone who
// wants notifications without having proved intent.
type endpoint struct {
	*httptest.Server
	gets, posts atomic.Int64
	mu          sync.Mutex
	onGet       http.HandlerFunc
}

func newEndpoint(t *testing.T, onGet http.HandlerFunc) *endpoint {
	e := &endpoint{onGet: onGet}
	e.Server = httptest.NewServer(e)
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		e.posts.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		echoOK(w, r)
		return
	}
	e.gets.Add(1)
	e.mu.Lock()
	h := e.onGet
	e.mu.Unlock()
	h(w, r)
}

func (e *endpoint) setGet(h http.HandlerFunc) {
	e.mu.Lock()
	e.onGet = h
	e.mu.Unlock()
}

// noEcho answers the verification 200 without echoing the client id.
func noEcho(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }

// tenantClient returns a client acting as user, who holds every right in namespace ns (a Role with
// * on *), webhooks/status included, and nothing outside it.
func tenantClient(t *testing.T, ns, user string) client.Client {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "tenant-admin", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}}
	g.Expect(k8s.Create(ctx, role)).To(Succeed())
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "tenant-admin", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}}
	g.Expect(k8s.Create(ctx, binding)).To(Succeed())
	cfg := rest.CopyConfig(cp.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: cp.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	// RBAC caches catch up asynchronously: wait until the tenant's rights hold.
	g.Eventually(func() error {
		return c.List(ctx, &hooklinev1.WebhookList{}, client.InNamespace(ns))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	return c
}

// forgeVerified writes, as c, the status of a verified Active webhook carrying attestation, unless
// the status says Active already.
func forgeVerified(ctx context.Context, c client.Client, wh *hooklinev1.Webhook, attestation string) error {
	cur := &hooklinev1.Webhook{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(wh), cur); err != nil {
		return err
	}
	if cur.Status.State == hooklinev1.ObservedActive {
		return nil
	}
	base := cur.DeepCopy()
	now := metav1.Now()
	cond := func(typ, reason string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: metav1.ConditionTrue, Reason: reason, Message: "forged",
			ObservedGeneration: cur.Generation, LastTransitionTime: now}
	}
	cur.Status.State = hooklinev1.ObservedActive
	cur.Status.ObservedGeneration = cur.Generation
	cur.Status.LastVerifiedTime = &now
	cur.Status.Attestation = attestation
	cur.Status.Conditions = []metav1.Condition{cond(hooklinev1.ConditionVerified, verify.ReasonVerified), cond(hooklinev1.ConditionReady, hooklinev1.ReasonActive)}
	return c.Status().Patch(ctx, cur, client.MergeFrom(base))
}

// keepForging re-forges every webhook's status whenever the manager has overwritten it, as a
// persistent attacker would, until the returned function is called.
func keepForging(t *testing.T, c client.Client, forged map[*hooklinev1.Webhook]string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			for wh, attestation := range forged {
				if err := forgeVerified(ctx, c, wh, attestation); err != nil && ctx.Err() == nil {
					t.Errorf("forging the status of %s: %v", wh.Name, err)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// watchDeliveringReason watches wh until the test ends; seen reports whether any version of it
// had the Delivering condition with reason.
func watchDeliveringReason(t *testing.T, wh *hooklinev1.Webhook, reason string) (seen func() bool) {
	t.Helper()
	wc, err := client.NewWithWatch(cp.Config, client.Options{Scheme: cp.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := wc.Watch(ctx, &hooklinev1.WebhookList{}, client.InNamespace(wh.Namespace),
		client.MatchingFields{"metadata.name": wh.Name})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var found atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if got, ok := ev.Object.(*hooklinev1.Webhook); ok {
				if d := condition(got, hooklinev1.ConditionDelivering); d != nil && d.Reason == reason {
					found.Store(true)
				}
			}
		}
	}()
	t.Cleanup(func() { w.Stop(); cancel(); <-done })
	return found.Load
}

// routed reports whether the dispatcher's routing table holds wh.
func (s *stack) routed(wh *hooklinev1.Webhook) bool {
	for _, tg := range s.app.Table.Targets() {
		if tg.UID == string(wh.UID) {
			return true
		}
	}
	return false
}

// deliveredTo posts an event and waits until the control receiver got it: the event has been
// routed, so any other webhook it was routed to has had its chance as well.
func (s *stack) deliveredTo(t *testing.T, control *receiver, id, account string) {
	t.Helper()
	s.mustPost(t, event(id, account))
	NewWithT(t).Eventually(func() []string { return agreementIDs(t, control.got()) }).
		WithTimeout(10*time.Second).Should(ContainElement("agr-"+id), "the control webhook did not receive %s", id)
}

// Attack (issue 10, 3a): a tenant who may patch webhooks/status makes a webhook whose endpoint never
// echoed the client id look verified and Active — with an attestation of its own making, or with
// the genuine attestation of another of its webhooks. The dispatcher routes nothing to it, and the
// manager does not take the forgery for a verification: it verifies again and reports the failure.
func TestForgedVerifiedStatusIsNotDelivered(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account = "acc-forge"
	ns := newNamespace(t, account, "")
	s := startStack(t, stackOptions{namespaces: []string{ns}})
	tenant := tenantClient(t, ns, "tenant-forge")

	control := newReceiver(t)
	genuine := s.activeWebhook(t, ns, "control", accountSpec(control.URL))
	attacker := newEndpoint(t, noEcho)

	otherKey := make([]byte, attest.MinKeyBytes)
	_, _ = rand.Read(otherKey)
	tenantKey, err := attest.New(otherKey)
	g.Expect(err).NotTo(HaveOccurred())
	forgeries := map[string]func(*hooklinev1.Webhook) string{
		// An attestation of the right form over the right subject, with a key the tenant chose.
		"own-key": func(wh *hooklinev1.Webhook) string {
			return tenantKey.Sign(attest.Subject{UID: string(wh.UID), URL: wh.Spec.URL, ClientID: testClientID})
		},
		// The manager's genuine attestation of another webhook.
		"replayed": func(*hooklinev1.Webhook) string { return getWebhook(g, genuine).Status.Attestation },
	}
	forged := map[*hooklinev1.Webhook]string{}
	for name, attestation := range forgeries {
		wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: accountSpec(attacker.URL + "/" + name)}
		g.Expect(tenant.Create(ctx, wh)).To(Succeed())
		g.Eventually(func(g Gomega) {
			v := condition(getWebhook(g, wh), hooklinev1.ConditionVerified)
			g.Expect(v).NotTo(BeNil())
			g.Expect(v.Reason).To(Equal(verify.ReasonClientIDNotEchoed))
		}).WithTimeout(20 * time.Second).Should(Succeed())
		forged[wh] = attestation(wh)
	}

	// The dispatcher's explanation in status lasts until the tenant's next forgery, 20 ms later:
	// a poll of the status can miss every one of them on a loaded machine, a watch sees each write.
	explained := map[*hooklinev1.Webhook]func() bool{}
	for wh := range forged {
		explained[wh] = watchDeliveringReason(t, wh, dispatcher.ReasonVerificationNotAttested)
	}

	// The manager retries the failed verification and overwrites the forgery each time; the tenant
	// writes it back at once.
	gets := attacker.gets.Load()
	stop := keepForging(t, tenant, forged)
	// Also on an early failure: the forger must not outlive the test (or the API server it calls).
	t.Cleanup(stop)
	posted := 0
	for wh := range forged {
		// Events keep coming until the dispatcher has seen the forgery and says why it does not
		// deliver; one that trusted the forgery delivers some of them meanwhile.
		g.Eventually(func(g Gomega) {
			code, body := s.postWith(t, testToken, event(fmt.Sprintf("forge-%d", posted), account))
			g.Expect(code).To(Equal(http.StatusAccepted), string(body))
			posted++
			if n := attacker.posts.Load(); n > 0 {
				StopTrying(fmt.Sprintf("a forged status was delivered to: %d POSTs", n)).Now()
			}
			g.Expect(explained[wh]()).To(BeTrue(), "the dispatcher's Delivering condition says %s", dispatcher.ReasonVerificationNotAttested)
		}).WithTimeout(30*time.Second).WithPolling(200*time.Millisecond).Should(Succeed(), wh.Name)
	}
	s.deliveredTo(t, control, "forge-last", account)
	g.Expect(agreementIDs(t, control.got())).To(ContainElement(fmt.Sprintf("agr-forge-%d", posted-1)))
	g.Consistently(func() bool {
		for wh := range forged {
			if s.routed(wh) {
				return true
			}
		}
		return false
	}).WithTimeout(time.Second).Should(BeFalse(), "the dispatcher routes to a webhook with a forged status")
	g.Expect(attacker.posts.Load()).To(BeZero(), "a forged status was delivered to")
	// The manager does not take the forged Verified condition and attestation for a verification:
	// it keeps verifying the endpoint.
	g.Eventually(attacker.gets.Load).WithTimeout(10*time.Second).Should(BeNumerically(">=", gets+2*int64(len(forged))),
		"the manager trusted a forged status and stopped verifying")
	stop()

	for wh := range forged {
		g.Eventually(func(g Gomega) {
			cur := getWebhook(g, wh)
			g.Expect(cur.Status.State).To(Equal(hooklinev1.ObservedInactive))
			g.Expect(cur.Status.Attestation).To(BeEmpty())
			g.Expect(condition(cur, hooklinev1.ConditionVerified)).To(HaveField("Reason", verify.ReasonClientIDNotEchoed))
		}).WithTimeout(20 * time.Second).Should(Succeed())
	}
	s.deliveredTo(t, control, "forge-after", account)
	g.Consistently(attacker.posts.Load).WithTimeout(time.Second).Should(BeZero())
}

// Attack (issue 10, 3b): the URL of an Active webhook, with notifications queued, is changed to an
// endpoint that never echoes. While the manager verifies it (held for a while by the endpoint) the
// status still says Active for the old generation; after that it says Inactive. The new URL gets no
// POST at any point; the queued notifications are held, and delivered there only once it verifies.
func TestChangedURLGetsNothingUntilVerified(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account = "acc-move"
	ns := newNamespace(t, account, "")
	// Retries within moments, so that the held queue would be sent at once if it were not held.
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: func(c *dispatcher.Config) {
		c.Engine.Policy.RetryBase, c.Engine.Policy.RetryCap = 100*time.Millisecond, 500*time.Millisecond
	}})
	control := newReceiver(t)
	s.activeWebhook(t, ns, "control", accountSpec(control.URL, "AGREEMENT_ACTION_DELEGATED"))
	old := newReceiver(t)
	wh := s.activeWebhook(t, ns, "moving", accountSpec(old.URL))
	old.set(fail500)
	for i := range 3 {
		s.mustPost(t, event(fmt.Sprintf("move-q%d", i), account))
	}
	g.Eventually(func() int64 { return deref(getWebhook(g, wh).Status.PendingNotifications) }).
		WithTimeout(10 * time.Second).Should(BeEquivalentTo(3))

	release := make(chan struct{})
	moved := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		select { // the verification is pending until the test releases it
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	})
	cur := getWebhook(g, wh)
	base := cur.DeepCopy()
	cur.Spec.URL = moved.URL
	g.Expect(k8s.Patch(ctx, cur, client.MergeFrom(base))).To(Succeed())
	generation := cur.Generation

	// The manager is verifying; the status is the old generation's Active.
	g.Eventually(moved.gets.Load).WithTimeout(10 * time.Second).Should(BeNumerically(">=", 1))
	g.Expect(getWebhook(g, wh).Status.State).To(Equal(hooklinev1.ObservedActive))
	delegated := func(id string) []byte {
		return []byte(strings.ReplaceAll(string(event(id, account)), "AGREEMENT_ACTION_COMPLETED", "AGREEMENT_ACTION_DELEGATED"))
	}
	s.mustPost(t, delegated("move-during"))
	g.Eventually(func() []string { return agreementIDs(t, control.got()) }).WithTimeout(10 * time.Second).
		Should(ContainElement("agr-move-during"))
	// Long enough for the queue's next retry (at most 500 ms), short of the verification timeout.
	g.Consistently(moved.posts.Load).WithTimeout(time.Second).Should(BeZero(), "the URL being verified was delivered to")
	close(release)

	g.Eventually(func(g Gomega) {
		cur := getWebhook(g, wh)
		g.Expect(cur.Status.ObservedGeneration).To(Equal(generation))
		g.Expect(cur.Status.State).To(Equal(hooklinev1.ObservedInactive))
		g.Expect(cur.Status.Attestation).To(BeEmpty())
	}).WithTimeout(20 * time.Second).Should(Succeed())
	s.mustPost(t, delegated("move-after"))
	g.Eventually(func() []string { return agreementIDs(t, control.got()) }).WithTimeout(10 * time.Second).
		Should(ContainElement("agr-move-after"))
	g.Consistently(moved.posts.Load).WithTimeout(time.Second).Should(BeZero(), "the unverified URL was delivered to")
	g.Expect(deref(getWebhook(g, wh).Status.PendingNotifications)).To(BeEquivalentTo(3), "queued notifications must be held, not dropped")

	// Once the endpoint echoes, the manager's retry verifies it and the held queue goes there.
	moved.setGet(echoOK)
	g.Eventually(moved.posts.Load).WithTimeout(20 * time.Second).Should(BeEquivalentTo(3))
}

// Attack (issue 10, 3c): the new URL of an Active webhook answers the verification with text that
// would make the status too large (a 40 KB Location on a redirect; a 40 KB malformed status line,
// which Go's client quotes in its error), with control characters in it. The status is written,
// clipped and cleaned, and says Inactive for the new generation; the endpoint gets no POST.
func TestHugeVerificationAnswerIsClippedAndNotDelivered(t *testing.T) {
	const account = "acc-huge"
	ns := newNamespace(t, account, "")
	s := startStack(t, stackOptions{namespaces: []string{ns}})
	control := newReceiver(t)
	s.activeWebhook(t, ns, "control", accountSpec(control.URL, "AGREEMENT_ACTION_DELEGATED"))
	// Header values may not hold ASCII control characters (Go's client refuses them, quoting the
	// line), so the Location carries other Unicode line separators and invalid UTF-8.
	junk := strings.Repeat("\u2028\xff-abcdefghijk", 40<<10/16)
	junkWithControls := strings.Repeat("\x1b[31m\u2028\xff-abcdefgh", 40<<10/16)
	raw := func(answer string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			c, err := hijack(w)
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = io.WriteString(c, answer)
		}
	}
	for _, tc := range []struct {
		name, reason string
		answer       http.HandlerFunc
	}{
		{"location", verify.ReasonRedirected, raw("HTTP/1.1 302 Found\r\nLocation: https://example.com/" + junk + "\r\nContent-Length: 0\r\n\r\n")},
		{"status-line", verify.ReasonConnectionFailed, raw("HTTP/1.1 " + junkWithControls + "\r\n\r\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			old := newReceiver(t)
			wh := s.activeWebhook(t, ns, tc.name, accountSpec(old.URL))
			old.set(fail500)
			s.mustPost(t, event("huge-q-"+tc.name, account))
			g.Eventually(func() int64 { return deref(getWebhook(g, wh).Status.PendingNotifications) }).
				WithTimeout(10 * time.Second).Should(BeEquivalentTo(1))

			hostile := newEndpoint(t, tc.answer)
			cur := getWebhook(g, wh)
			base := cur.DeepCopy()
			cur.Spec.URL = hostile.URL
			g.Expect(k8s.Patch(ctx, cur, client.MergeFrom(base))).To(Succeed())

			g.Eventually(func(g Gomega) {
				cur := getWebhook(g, wh)
				g.Expect(cur.Status.ObservedGeneration).To(Equal(cur.Generation))
				g.Expect(cur.Status.State).To(Equal(hooklinev1.ObservedInactive))
				g.Expect(cur.Status.Attestation).To(BeEmpty())
				v := condition(cur, hooklinev1.ConditionVerified)
				g.Expect(v).NotTo(BeNil())
				g.Expect(v.Reason).To(Equal(tc.reason), v.Message)
				expectSafe(g, v.Message)
			}).WithTimeout(20 * time.Second).Should(Succeed())
			// The Event about the failure is clipped and cleaned too.
			g.Eventually(func(g Gomega) {
				list := &eventsv1.EventList{}
				g.Expect(k8s.List(ctx, list, client.InNamespace(ns))).To(Succeed())
				found := 0
				for _, e := range list.Items {
					if e.Regarding.UID == wh.UID && e.Reason == tc.reason {
						expectSafe(g, e.Note)
						found++
					}
				}
				g.Expect(found).To(BeNumerically(">", 0))
			}).WithTimeout(10 * time.Second).Should(Succeed())

			id := "huge-after-" + tc.name
			s.mustPost(t, []byte(strings.ReplaceAll(string(event(id, account)), "AGREEMENT_ACTION_COMPLETED", "AGREEMENT_ACTION_DELEGATED")))
			g.Eventually(func() []string { return agreementIDs(t, control.got()) }).WithTimeout(10 * time.Second).
				Should(ContainElement("agr-" + id))
			g.Consistently(hostile.posts.Load).WithTimeout(time.Second).Should(BeZero(), "the unverified URL was delivered to")
		})
	}
}

// expectSafe asserts that receiver-derived text was clipped and cleaned.
func expectSafe(g Gomega, text string) {
	g.Expect(len(text)).To(BeNumerically("<=", safetext.MaxReceiverText), text)
	g.Expect(utf8.ValidString(text)).To(BeTrue(), text)
	g.Expect(strings.ContainsFunc(text, safetext.IsControl)).To(BeFalse(), text)
}

// A rotated client certificate is sent only once the manager has verified the endpoint with it;
// notifications meanwhile are queued and held, not lost.
func TestRotatedClientCertificateIsVerifiedBeforeUse(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account = "acc-rotate"
	ca, err := testcerts.NewCA("customer")
	g.Expect(err).NotTo(HaveOccurred())
	first, err := ca.Client("hookline-1")
	g.Expect(err).NotTo(HaveOccurred())
	second, err := ca.Client("hookline-2")
	g.Expect(err).NotTo(HaveOccurred())

	// The receiver records, in order, each request's method, the leaf certificate presented and,
	// for POSTs, the agreement id.
	type seen struct{ method, cn, id string }
	var mu sync.Mutex
	var log []seen
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := ""
		if r.Method == http.MethodPost {
			id = agreementID(t, delivery{Body: body})
		}
		mu.Lock()
		log = append(log, seen{r.Method, r.TLS.PeerCertificates[0].Subject.CommonName, id})
		mu.Unlock()
		echoOK(w, r)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	requests := func() []seen { mu.Lock(); defer mu.Unlock(); return append([]seen(nil), log...) }

	ns := newNamespace(t, account, "")
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "client-tls", Namespace: ns}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: first.CertPEM, corev1.TLSPrivateKeyKey: first.KeyPEM},
	}
	g.Expect(k8s.Create(ctx, secret)).To(Succeed())
	s := startStack(t, stackOptions{namespaces: []string{ns}})
	spec := accountSpec(srv.URL)
	spec.ClientCertificateSecretRef = &hooklinev1.SecretReference{Name: "client-tls"}
	wh := s.activeWebhook(t, ns, "rotating", spec)
	s.mustPost(t, event("rot-1", account))
	g.Eventually(requests).WithTimeout(10 * time.Second).Should(ContainElement(seen{http.MethodPost, "hookline-1", "agr-rot-1"}))

	secret.Data = map[string][]byte{corev1.TLSCertKey: second.CertPEM, corev1.TLSPrivateKeyKey: second.KeyPEM}
	g.Expect(k8s.Update(ctx, secret)).To(Succeed())
	for i := range 5 {
		s.mustPost(t, event(fmt.Sprintf("rot-2-%d", i), account))
	}
	g.Eventually(func() []string {
		var ids []string
		for _, r := range requests() {
			if r.method == http.MethodPost {
				ids = append(ids, r.id)
			}
		}
		return ids
	}).WithTimeout(20*time.Second).Should(ContainElements("agr-rot-2-0", "agr-rot-2-1", "agr-rot-2-2", "agr-rot-2-3", "agr-rot-2-4"),
		"notifications posted during the rotation were lost")
	// The first request presenting the new certificate is the manager's verification.
	for _, r := range requests() {
		if r.cn == "hookline-2" {
			g.Expect(r.method).To(Equal(http.MethodGet), "the new certificate was used before it was verified")
			break
		}
	}

	// While the Secret is missing (deleted to be created again), the verification stands: events
	// keep queueing, held, and go out once the certificate is back.
	g.Expect(k8s.Delete(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) {
		d := condition(getWebhook(g, wh), hooklinev1.ConditionDelivering)
		g.Expect(d).NotTo(BeNil())
		g.Expect(d.Reason).To(Equal(hooklinev1.ReasonClientCertificateUnavailable))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	s.mustPost(t, event("rot-3", account))
	// Longer than the manager's certificate resync (1 s, jittered): it finds no Secret and keeps the
	// webhook Active.
	g.Consistently(func(g Gomega) {
		g.Expect(getWebhook(g, wh).Status.State).To(Equal(hooklinev1.ObservedActive))
	}).WithTimeout(2500 * time.Millisecond).Should(Succeed())
	secret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "client-tls", Namespace: ns}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: second.CertPEM, corev1.TLSPrivateKeyKey: second.KeyPEM}}
	g.Expect(k8s.Create(ctx, secret)).To(Succeed())
	g.Eventually(requests).WithTimeout(10 * time.Second).Should(ContainElement(seen{http.MethodPost, "hookline-2", "agr-rot-3"}))
}

// A tenant writes a verification time far in the future into its own Webhook's status, and its
// endpoint then stops answering: the webhook is auto-disabled all the same. The dispatcher counts
// the rule's days from the time the manager's attestation covers (a v3), not from the status's;
// before, it took the status's time, and the webhook was never disabled, so an endpoint handed to
// someone else kept getting its retries instead of a re-verification.
func TestForgedVerificationTimeDoesNotPostponeAutoDisable(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account = "acc-forged-time"
	s, ns, rc, wh := stackWithWebhook(t, account, autoDisabling)
	g.Expect(getWebhook(g, wh).Status.Attestation).To(HavePrefix("v3."), "the manager attests the verification's time")

	tenant := tenantClient(t, ns, "tenant-"+ns)
	cur := &hooklinev1.Webhook{}
	g.Expect(tenant.Get(ctx, client.ObjectKeyFromObject(wh), cur)).To(Succeed())
	base := cur.DeepCopy()
	future := metav1.NewTime(time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC))
	cur.Status.LastVerifiedTime = &future
	g.Expect(tenant.Status().Patch(ctx, cur, client.MergeFrom(base))).To(Succeed())
	// The dispatcher has seen the forged time (its routing reads the cache). It takes none then: the
	// attestation covers another, so the rule counts from the last success.
	g.Eventually(func(g Gomega) {
		seen := &hooklinev1.Webhook{}
		g.Expect(s.app.Manager.GetCache().Get(ctx, client.ObjectKeyFromObject(wh), seen)).To(Succeed())
		g.Expect(seen.Status.LastVerifiedTime).NotTo(BeNil())
		g.Expect(seen.Status.LastVerifiedTime.Time).To(BeTemporally("==", future.Time))
	}).WithTimeout(10 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())

	rc.set(fail500)
	s.mustPost(t, event("after-forgery", account))
	g.Eventually(func(g Gomega) {
		got := getWebhook(g, wh)
		g.Expect(condition(got, hooklinev1.ConditionAutoDisabled)).NotTo(BeNil())
		g.Expect(condition(got, hooklinev1.ConditionAutoDisabled).Status).To(Equal(metav1.ConditionTrue))
	}).WithTimeout(20 * time.Second).Should(Succeed())
}

// A tenant cuts its Webhook's v3 attestation down to its first tags, which check as a v2 (an
// attestation of before the verification's time was attested), writes its own verification time
// and touches an annotation to have the manager reconcile. The manager must verify the endpoint
// again rather than attest the status's time: before, it signed a v3 over the tenant's time, and a
// tenant repeating this weekly was never auto-disabled.
func TestCutDownAttestationIsVerifiedAgain(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account = "acc-cut-attestation"
	_, ns, rc, wh := stackWithWebhook(t, account, nil)
	att := getWebhook(g, wh).Status.Attestation
	g.Expect(att).To(HavePrefix("v3."))
	parts := strings.Split(att, ".")
	g.Expect(parts).To(HaveLen(5))
	gets := rc.gets.Load()

	tenant := tenantClient(t, ns, "tenant-"+ns)
	cur := &hooklinev1.Webhook{}
	g.Expect(tenant.Get(ctx, client.ObjectKeyFromObject(wh), cur)).To(Succeed())
	base := cur.DeepCopy()
	forged := metav1.NewTime(time.Now().Add(time.Hour).Truncate(time.Second))
	cur.Status.Attestation = strings.Join(append([]string{"v2"}, parts[1:4]...), ".")
	cur.Status.LastVerifiedTime = &forged
	g.Expect(tenant.Status().Patch(ctx, cur, client.MergeFrom(base))).To(Succeed())
	g.Expect(tenant.Get(ctx, client.ObjectKeyFromObject(wh), cur)).To(Succeed())
	base = cur.DeepCopy()
	cur.Annotations = map[string]string{"example.com/touched": "1"}
	g.Expect(tenant.Patch(ctx, cur, client.MergeFrom(base))).To(Succeed())

	g.Eventually(rc.gets.Load).WithTimeout(20*time.Second).Should(BeNumerically(">", gets), "the endpoint is verified again")
	g.Eventually(func(g Gomega) {
		got := getWebhook(g, wh)
		g.Expect(got.Status.Attestation).To(HavePrefix("v3."))
		g.Expect(got.Status.LastVerifiedTime).NotTo(BeNil())
		g.Expect(got.Status.LastVerifiedTime.Time).To(BeTemporally("<", forged.Time), "the verification's own time, not the tenant's")
	}).WithTimeout(20 * time.Second).Should(Succeed())
}
