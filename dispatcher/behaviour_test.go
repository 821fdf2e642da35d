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
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/dispatcher/payload"
	"github.com/hookline/hookline/internal/samples"
	"github.com/hookline/hookline/internal/testcerts"
)

func TestIngestAuthAndIdempotency(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-ingest", "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}})
	tokens, err := ingest.StaticTokens(
		ingest.TokenEntry{Name: "a", Token: "token-for-account-ingest-only", Accounts: []string{"acc-ingest"}})
	g.Expect(err).NotTo(HaveOccurred())
	s.app.Ingest.Tokens = tokens
	s.activeWebhook(t, ns, "idem", accountSpec(rc.URL))

	post := func(token string, body []byte) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, s.url+"/v1/events", bytes.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		var out map[string]any
		g.Expect(json.NewDecoder(resp.Body).Decode(&out)).To(Succeed())
		return resp.StatusCode, out
	}
	code, body := post("", event("i1", "acc-ingest"))
	g.Expect(code).To(Equal(http.StatusUnauthorized))
	g.Expect(body).To(HaveKeyWithValue("code", "NO_AUTHORIZATION_HEADER"))
	code, body = post("wrong-token-wrong-token", event("i1", "acc-ingest"))
	g.Expect(code).To(Equal(http.StatusUnauthorized))
	g.Expect(body).To(HaveKeyWithValue("code", "INVALID_ACCESS_TOKEN"))
	code, body = post("token-for-account-ingest-only", event("i1", "acc-other"))
	g.Expect(code).To(Equal(http.StatusForbidden))
	g.Expect(body).To(HaveKeyWithValue("code", "PERMISSION_DENIED"))
	code, body = post("token-for-account-ingest-only", []byte(`{"id":"x"}`))
	g.Expect(code).To(Equal(http.StatusBadRequest))
	g.Expect(body["message"]).NotTo(BeEmpty())

	code, body = post("token-for-account-ingest-only", event("i1", "acc-ingest"))
	g.Expect(code).To(Equal(http.StatusAccepted))
	g.Expect(body).To(HaveKeyWithValue("duplicate", false))
	g.Expect(body).To(HaveKeyWithValue("notifications", BeNumerically("==", 1)))
	code, body = post("token-for-account-ingest-only", event("i1", "acc-ingest"))
	g.Expect(code).To(Equal(http.StatusAccepted))
	g.Expect(body).To(HaveKeyWithValue("duplicate", true))
	s.mustPostWith(t, "token-for-account-ingest-only", event("i2", "acc-ingest"))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(2))
	g.Consistently(func() int { return len(rc.got()) }).WithTimeout(300*time.Millisecond).Should(Equal(2),
		"a re-posted event must be delivered once")
}

func TestLargeEventIsAcceptedAndTrimmed(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-large", "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}})
	spec := accountSpec(rc.URL, "AGREEMENT_WORKFLOW_COMPLETED")
	spec.ConditionalParams = &hooklinev1.ConditionalParams{Agreement: &hooklinev1.AgreementConditionalParams{
		IncludeDetailedInfo: true, IncludeParticipantsInfo: true, IncludeDocumentsInfo: true, IncludeSignedDocuments: true}}
	s.activeWebhook(t, ns, "large", spec)

	raw, err := samples.Event("agreement_workflow_completed")
	g.Expect(err).NotTo(HaveOccurred())
	var ev map[string]any
	g.Expect(json.Unmarshal(raw, &ev)).To(Succeed())
	ev["accountId"] = "acc-large"
	// A 24 MiB signed PDF in base64: the whole event is just under the 25 MiB ingest limit.
	ev["notification"].(map[string]any)["agreement"].(map[string]any)["signedDocumentInfo"] =
		map[string]any{"document": strings.Repeat("QUJD", 6<<20)}
	big := mustJSON(ev)
	g.Expect(len(big)).To(BeNumerically(">", 24<<20))
	g.Expect(len(big)).To(BeNumerically("<", 25<<20))
	s.mustPost(t, big)

	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(30 * time.Second).Should(Equal(1))
	d := rc.got()[0]
	g.Expect(len(d.Body)).To(BeNumerically("<=", 10<<20))
	var body map[string]any
	g.Expect(json.Unmarshal(d.Body, &body)).To(Succeed())
	agreement := body["agreement"].(map[string]any)
	g.Expect(agreement).To(HaveKeyWithValue("conditionalParametersTrimmed", []any{"includeSignedDocuments"}))
	g.Expect(agreement).NotTo(HaveKey("signedDocumentInfo"))
	g.Expect(agreement).To(HaveKey("participantSetsInfo"))
	g.Expect(agreement).To(HaveKey("documentsInfo"))
}

func TestEnvelopeEventIsPassedThroughByteForByte(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-1", "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}})
	spec := hooklinev1.WebhookSpec{URL: rc.URL, Scope: hooklinev1.ScopeResource, Events: []hooklinev1.EventName{"envelopeExpired"},
		Resource: &hooklinev1.WebhookResource{Type: hooklinev1.ResourceEnvelope, ID: "2229bf86-fc00-40be-986a-b98e5c047d22"}}
	wh := s.activeWebhook(t, ns, "envelope", spec)
	raw, err := samples.Event("envelope_expired")
	g.Expect(err).NotTo(HaveOccurred())
	s.mustPost(t, raw)
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	g.Expect(rc.got()[0].Body).To(Equal(samples.SeedEnvelopeNotification()))
	// Its body carries no id: the webhook-id header does, for the receiver to dedupe on (the seeds:
	// deduplicate by the event's id), the webhookNotificationId it would have had.
	var posted struct{ ID string }
	g.Expect(json.Unmarshal(raw, &posted)).To(Succeed())
	g.Expect(rc.got()[0].Header.Get("webhook-id")).To(Equal(payload.NotificationID(string(wh.UID), "acc-1", posted.ID)))

	// Delivered as it came, an envelope notification may not speak for hookline: a producer's
	// accountId (another account's), webhookNotificationId or a key given twice is refused by the
	// running dispatcher, and nothing more is delivered.
	for name, edit := range map[string]func(string) string{
		"another account": func(b string) string {
			return strings.Replace(b, `"notification": {`, `"notification": {"accountId": "acc-victim", `, 1)
		},
		"a chosen notification id": func(b string) string {
			return strings.Replace(b, `"notification": {`, `"notification": {"WebhookNotificationId": "dedupe-me", `, 1)
		},
		"a key twice": func(b string) string {
			return strings.Replace(b, `"notification": {`, `"notification": {"Data": {}, `, 1)
		},
	} {
		forged := strings.Replace(edit(string(raw)), `"id": "`, `"id": "forged-`, 1)
		g.Expect(forged).NotTo(Equal(string(raw)), name)
		code, body := s.postWith(t, testToken, []byte(forged))
		g.Expect(code).To(Equal(http.StatusBadRequest), "%s: %s", name, body)
		g.Expect(string(body)).To(ContainSubstring("INVALID_NOTIFICATION"), name)
	}
	g.Consistently(func() int { return len(rc.got()) }).WithTimeout(500 * time.Millisecond).Should(Equal(1))
}

// gatedReceiver answers POSTs for one path according to a switch, recording order.
func TestFailingHeadHoldsBackOnlyItsWebhook(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-order", "")
	dead := newReceiver(t)
	healthy := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: func(c *dispatcherConfig) {
		c.Engine.Policy.RetryBase, c.Engine.Policy.RetryCap = 50*time.Millisecond, 200*time.Millisecond
	}})
	s.activeWebhook(t, ns, "dead", accountSpec(dead.URL))
	s.activeWebhook(t, ns, "healthy", accountSpec(healthy.URL))
	dead.set(fail500)

	const n = 20
	for i := range n {
		s.mustPost(t, event(fmt.Sprintf("o%02d", i), "acc-order"))
	}
	// The healthy webhook of the same account gets everything, in order, while the dead one is stuck.
	g.Eventually(func() int { return len(healthy.got()) }).WithTimeout(10 * time.Second).Should(Equal(n))
	g.Eventually(func() float64 { return s.metric(t, "hookline_queue_depth") }).WithTimeout(5 * time.Second).Should(BeEquivalentTo(n))
	g.Expect(s.metric(t, "hookline_queue_oldest_pending_age_seconds")).To(BeNumerically(">", 0))
	g.Expect(agreementIDs(t, healthy.got())).To(Equal(wantIDs("o", n)))
	g.Eventually(func() int { return len(dead.got()) }).WithTimeout(5*time.Second).Should(BeNumerically(">=", 3), "the failing head is retried")
	for _, d := range dead.got() {
		g.Expect(agreementID(t, d)).To(Equal("agr-o00"), "only the head may be attempted while it fails")
	}

	// Once the receiver recovers, the held notifications follow in order.
	dead.set(echoOK)
	g.Eventually(func() []string { return distinct(agreementIDs(t, dead.got())) }).WithTimeout(15 * time.Second).Should(Equal(wantIDs("o", n)))
}

func TestAccountConcurrencyCap(t *testing.T) {
	g := NewWithT(t)
	const limit = 30
	slowNS := newNamespace(t, "acc-slowcap", "")
	fastNS := newNamespace(t, "acc-fastcap", "")
	gate := &gate{open: make(chan struct{})}
	slow := newReceiver(t)
	slow.set(gate.handler)
	fast := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{slowNS, fastNS}, mutate: func(c *dispatcherConfig) {
		c.DeliveryTimeout = 20 * time.Second
	}})
	// 40 webhooks of one account, each with one notification: only 30 may be in flight at once.
	for i := range 40 {
		s.activeWebhook(t, slowNS, fmt.Sprintf("slow-%02d", i), accountSpec(fmt.Sprintf("%s/w%02d", slow.URL, i)))
	}
	s.activeWebhook(t, fastNS, "fast", accountSpec(fast.URL))
	s.mustPost(t, event("cap-1", "acc-slowcap"))
	g.Eventually(gate.inFlight).WithTimeout(10 * time.Second).Should(Equal(limit))
	g.Consistently(gate.inFlight).WithTimeout(300 * time.Millisecond).Should(Equal(limit))

	// Another account is not held up.
	s.mustPost(t, event("cap-2", "acc-fastcap"))
	g.Eventually(func() int { return len(fast.got()) }).WithTimeout(5 * time.Second).Should(Equal(1))

	// Waiting is not failing: once the receiver answers, all 40 succeed without a single failure.
	close(gate.open)
	g.Eventually(func() int { return len(slow.got()) }).WithTimeout(15 * time.Second).Should(Equal(40))
	g.Expect(gate.peak()).To(Equal(limit))
	list := &hooklinev1.WebhookList{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.List(context.Background(), list, client.InNamespace(slowNS))).To(Succeed())
		for _, wh := range list.Items {
			g.Expect(deref(wh.Status.DeliveredTotal)).To(BeEquivalentTo(1), wh.Name)
			g.Expect(deref(wh.Status.ConsecutiveFailures)).To(BeEquivalentTo(0), wh.Name)
		}
	}).WithTimeout(10 * time.Second).Should(Succeed())
}

func TestClientCertificateIsPresentedOnDelivery(t *testing.T) {
	g := NewWithT(t)
	ca, err := testcerts.NewCA("customer")
	g.Expect(err).NotTo(HaveOccurred())
	leaf, err := ca.Client("hookline")
	g.Expect(err).NotTo(HaveOccurred())
	rc := &receiver{answer: echoOK, now: time.Now}
	rc.Server = httptest.NewUnstartedServer(rc)
	rc.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	rc.StartTLS()
	t.Cleanup(rc.Close)

	ns := newNamespace(t, "acc-mtls", "")
	g.Expect(k8s.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "client-tls", Namespace: ns}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: leaf.CertPEM, corev1.TLSPrivateKeyKey: leaf.KeyPEM},
	})).To(Succeed())
	s := startStack(t, stackOptions{namespaces: []string{ns}})
	spec := accountSpec(rc.URL)
	spec.ClientCertificateSecretRef = &hooklinev1.SecretReference{Name: "client-tls"}
	s.activeWebhook(t, ns, "mtls", spec)
	s.mustPost(t, event("m1", "acc-mtls"))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	g.Expect(rc.got()[0].Certs).To(Equal(1))
}

func TestInactiveCancelsAndDeletionRemovesTheQueue(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acc-cancel", "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}})
	wh := s.activeWebhook(t, ns, "cancelled", accountSpec(rc.URL))
	rc.set(fail500)
	for i := range 5 {
		s.mustPost(t, event(fmt.Sprintf("c%d", i), "acc-cancel"))
	}
	g.Eventually(func(g Gomega) {
		g.Expect(deref(getWebhook(g, wh).Status.PendingNotifications)).To(BeEquivalentTo(5))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	queues, err := s.app.Store.Queues(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(queues).To(HaveKeyWithValue(string(wh.UID), BeEquivalentTo(5)))

	cur := getWebhook(g, wh)
	base := cur.DeepCopy()
	cur.Spec.State = hooklinev1.StateInactive
	g.Expect(k8s.Patch(ctx, cur, client.MergeFrom(base))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(deref(getWebhook(g, wh).Status.PendingNotifications)).To(BeEquivalentTo(0))
		q, err := s.app.Store.Queues(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(q).NotTo(HaveKey(string(wh.UID)))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	// An INACTIVE webhook gets nothing queued.
	s.mustPost(t, event("c-inactive", "acc-cancel"))
	attempts := len(rc.got())
	g.Consistently(func() int { return len(rc.got()) }).WithTimeout(300 * time.Millisecond).Should(Equal(attempts))

	// Deletion removes queue and state from the store.
	rc2 := newReceiver(t)
	rc2.set(fail500)
	wh2 := s.activeWebhook(t, ns, "deleted", accountSpec(rc2.URL))
	s.mustPost(t, event("d1", "acc-cancel"))
	g.Eventually(func() int { return len(rc2.got()) }).WithTimeout(10 * time.Second).Should(BeNumerically(">=", 1))
	g.Expect(k8s.Delete(ctx, wh2)).To(Succeed())
	g.Eventually(func(g Gomega) {
		q, err := s.app.Store.Queues(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(q).NotTo(HaveKey(string(wh2.UID)))
		st, _, err := s.app.Store.GetState(ctx, string(wh2.UID))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(st).To(BeNil())
	}).WithTimeout(10 * time.Second).Should(Succeed())
}

// gate holds POSTs until opened and records how many were held at once.
type gate struct {
	mu   sync.Mutex
	now  int
	max  int
	open chan struct{}
}

func (g *gate) handler(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.now++
	g.max = max(g.max, g.now)
	g.mu.Unlock()
	defer func() { g.mu.Lock(); g.now--; g.mu.Unlock() }()
	select {
	case <-g.open:
		echoOK(w, r)
	case <-r.Context().Done():
	}
}

func (g *gate) inFlight() int { g.mu.Lock(); defer g.mu.Unlock(); return g.now }
func (g *gate) peak() int     { g.mu.Lock(); defer g.mu.Unlock(); return g.max }

func agreementID(t *testing.T, d delivery) string {
	t.Helper()
	var body struct {
		Agreement struct {
			ID string `json:"id"`
		} `json:"agreement"`
	}
	if err := json.Unmarshal(d.Body, &body); err != nil {
		t.Fatalf("delivery body: %v", err)
	}
	return body.Agreement.ID
}

func agreementIDs(t *testing.T, ds []delivery) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, agreementID(t, d))
	}
	return out
}

// distinct keeps the first occurrence of each id, in order: retries of a head repeat it.
func distinct(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func wantIDs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("agr-%s%02d", prefix, i)
	}
	return out
}
