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
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/echo"
	"github.com/hookline/hookline/internal/tenancy"
	"github.com/hookline/hookline/internal/testcerts"
	"github.com/hookline/hookline/internal/testsupport"
	"github.com/hookline/hookline/internal/verify"
)

// receiver is a real HTTP(S) endpoint on 127.0.0.1 whose behaviour a test can swap at any time.
type receiver struct {
	*httptest.Server
	gets      atomic.Int64
	mu        sync.Mutex
	handler   http.HandlerFunc
	lastID    atomic.Value // X-AdobeSign-ClientId of the last request
	lastCerts atomic.Int64 // client certificates presented on the last request
}

func newReceiver(t *testing.T, tlsOn bool, h http.HandlerFunc) *receiver {
	rc := &receiver{handler: h}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			rc.gets.Add(1)
		}
		rc.lastID.Store(r.Header.Get(echo.Header))
		if r.TLS != nil {
			rc.lastCerts.Store(int64(len(r.TLS.PeerCertificates)))
		}
		rc.mu.Lock()
		h := rc.handler
		rc.mu.Unlock()
		h(w, r)
	}))
	rc.Server = srv
	if tlsOn {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return rc
}

func (rc *receiver) set(h http.HandlerFunc) {
	rc.mu.Lock()
	rc.handler = h
	rc.mu.Unlock()
}

// echoHeader answers 200 and echoes the client id in the response header.
func echoHeader(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(echo.Header, r.Header.Get(echo.Header))
	w.WriteHeader(http.StatusOK)
}

// echoBody answers 200 and echoes the client id in a JSON body.
func echoBody(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{echo.BodyKey: r.Header.Get(echo.Header)})
}

func createWebhook(t *testing.T, ns, name string, mutate func(*hooklinev1.WebhookSpec)) *hooklinev1.Webhook {
	t.Helper()
	spec := validSpec()
	if mutate != nil {
		mutate(&spec)
	}
	wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
	if err := k8s.Create(context.Background(), wh); err != nil {
		t.Fatalf("creating webhook %s: %v", name, err)
	}
	return wh
}

// distinctURL gives u a last path segment of its own. Parallel cases share one account, and a case's
// receiver may get the port of one that already ended: identical URLs would make the later webhook a
// duplicate of the earlier, which is the manager's rule, not what these cases test.
func distinctURL(t *testing.T, u, name string) string {
	t.Helper()
	out, err := url.JoinPath(u, name)
	if err != nil {
		t.Fatalf("joining %q and %q: %v", u, name, err)
	}
	return out
}

func getWebhook(g Gomega, wh *hooklinev1.Webhook) *hooklinev1.Webhook {
	out := &hooklinev1.Webhook{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(wh), out)).To(Succeed())
	return out
}

// eventuallyReady waits until wh's Ready condition has status and reason, for its current generation,
// and returns the webhook as then observed.
// eventuallyReady waits until wh's Ready condition, for its current generation, has status and
// reason and its message matches every one of message.
func eventuallyReady(t *testing.T, wh *hooklinev1.Webhook, status metav1.ConditionStatus, reason string, message ...types.GomegaMatcher) *hooklinev1.Webhook {
	t.Helper()
	var got *hooklinev1.Webhook
	NewWithT(t).Eventually(func(g Gomega) {
		got = getWebhook(g, wh)
		ready := meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(ready.Status).To(Equal(status), "Ready message: %s", ready.Message)
		g.Expect(ready.Reason).To(Equal(reason), "Ready message: %s", ready.Message)
		for _, m := range message {
			g.Expect(ready.Message).To(m)
		}
	}).WithTimeout(20 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	return got
}

func patchSpec(t *testing.T, wh *hooklinev1.Webhook, mutate func(*hooklinev1.WebhookSpec)) {
	t.Helper()
	cur := getWebhook(NewWithT(t), wh)
	base := cur.DeepCopy()
	mutate(&cur.Spec)
	NewWithT(t).Expect(k8s.Patch(context.Background(), cur, client.MergeFrom(base))).To(Succeed())
}

func TestVerificationPasses(t *testing.T) {
	cases := []struct {
		name    string
		tls     bool
		handler http.HandlerFunc
	}{
		{"header echo over https", true, echoHeader},
		{"json body echo over http", false, echoBody},
		{"header echo with other capitalisation", true, func(w http.ResponseWriter, r *http.Request) {
			w.Header()["X-ADOBESIGN-CLIENTID"] = []string{r.Header.Get(echo.Header)}
		}},
		// Either echo is enough (the seeds: "in the response header or in the JSON body").
		{"json body echo beside a header with another id", true, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(echo.Header, "someone-else")
			echoBody(w, r)
		}},
	}
	ns := newNamespace(t, "acc-pass", "")
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			rc := newReceiver(t, tc.tls, tc.handler)
			name := "pass-" + string(rune('a'+i))
			wh := createWebhook(t, ns, name, func(s *hooklinev1.WebhookSpec) { s.URL = distinctURL(t, rc.URL+"/hook", name) })
			got := eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonActive)

			g.Expect(got.Status.State).To(Equal(hooklinev1.ObservedActive))
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			g.Expect(got.Status.LastVerifiedTime).NotTo(BeNil())
			verified := meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionVerified)
			g.Expect(verified.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(rc.gets.Load()).To(BeEquivalentTo(1))
			g.Expect(rc.lastID.Load()).To(Equal(testClientID))
			expectEvent(t, got, corev1.EventTypeNormal, "Verified")
			g.Expect(statusAppliedBy(got)).To(ConsistOf(hooklinev1.FieldManagerManager),
				"status must be written only by server-side apply under the manager's field manager")
		})
	}
}

func TestSpecClientIDIsSentAndExpected(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-clientid", "")
	rc := newReceiver(t, false, echoHeader)
	wh := createWebhook(t, ns, "own-client", func(s *hooklinev1.WebhookSpec) { s.URL, s.ClientID = rc.URL, "CBJCHBCAABAA-custom" })
	eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonActive)
	g.Expect(rc.lastID.Load()).To(Equal("CBJCHBCAABAA-custom"))
}

func TestVerificationFailuresKeepWebhookInactive(t *testing.T) {
	untrusted, err := testcerts.NewCA("untrusted")
	if err != nil {
		t.Fatal(err)
	}
	untrustedLeaf, err := untrusted.Server()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		url    func(t *testing.T) string
		reason string
	}{
		{"non-2xx", func(t *testing.T) string {
			return newReceiver(t, true, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set(echo.Header, r.Header.Get(echo.Header))
				w.WriteHeader(http.StatusInternalServerError)
			}).URL
		}, verify.ReasonNonSuccessStatus},
		{"wrong id", func(t *testing.T) string {
			return newReceiver(t, true, func(w http.ResponseWriter, r *http.Request) { w.Header().Set(echo.Header, "someone-else") }).URL
		}, verify.ReasonClientIDMismatch},
		{"wrong id in body", func(t *testing.T) string {
			return newReceiver(t, true, func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte(`{"xAdobeSignClientId":"someone-else"}`))
			}).URL
		}, verify.ReasonClientIDMismatch},
		{"no echo", func(t *testing.T) string {
			return newReceiver(t, true, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }).URL
		}, verify.ReasonClientIDNotEchoed},
		{"timeout", func(t *testing.T) string {
			return newReceiver(t, true, func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(3 * testVerifyTimeout):
				}
				echoHeader(w, r)
			}).URL
		}, verify.ReasonTimeout},
		{"redirect", func(t *testing.T) string {
			target := newReceiver(t, true, echoHeader)
			t.Cleanup(func() {
				if n := target.gets.Load(); n != 0 {
					t.Errorf("redirect target received %d requests; redirects must not be followed", n)
				}
			})
			return newReceiver(t, true, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set(echo.Header, r.Header.Get(echo.Header))
				http.Redirect(w, r, target.URL, http.StatusFound)
			}).URL
		}, verify.ReasonRedirected},
		{"connection refused", func(t *testing.T) string {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			_ = l.Close()
			return "https://" + addr + "/hook"
		}, verify.ReasonConnectionFailed},
		{"tls error", func(t *testing.T) string {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(echoHeader))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{untrustedLeaf.TLS}}
			srv.StartTLS()
			t.Cleanup(srv.Close)
			return srv.URL
		}, verify.ReasonTLSError},
		// The suite's guard allows loopback only: the metadata address is refused at dial time.
		{"cloud metadata address", func(t *testing.T) string {
			return "https://169.254.169.254/latest/meta-data/"
		}, verify.ReasonBlockedAddress},
	}
	ns := newNamespace(t, "acc-fail", "")
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			name := "fail-" + string(rune('a'+i))
			wh := createWebhook(t, ns, name, func(s *hooklinev1.WebhookSpec) { s.URL = distinctURL(t, tc.url(t), name) })
			got := eventuallyReady(t, wh, metav1.ConditionFalse, tc.reason)
			g.Expect(got.Status.State).To(Equal(hooklinev1.ObservedInactive))
			verified := meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionVerified)
			g.Expect(verified.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(verified.Reason).To(Equal(tc.reason))
			g.Expect(got.Status.LastVerifiedTime).To(BeNil())
			expectEvent(t, got, corev1.EventTypeWarning, tc.reason)
		})
	}
}

func TestFailedVerificationIsRetriedUntilItPasses(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-retry", "")
	rc := newReceiver(t, false, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	wh := createWebhook(t, ns, "retried", func(s *hooklinev1.WebhookSpec) { s.URL = rc.URL })
	eventuallyReady(t, wh, metav1.ConditionFalse, verify.ReasonNonSuccessStatus)
	// Backoff doubles from 200ms: several retries arrive within a few seconds without any change.
	g.Eventually(rc.gets.Load).WithTimeout(10 * time.Second).Should(BeNumerically(">=", 3))
	rc.set(echoHeader)
	eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonActive)
}

func TestInactiveToActiveReverifies(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-toggle", "")
	rc := newReceiver(t, true, echoHeader)
	wh := createWebhook(t, ns, "toggled", func(s *hooklinev1.WebhookSpec) { s.URL, s.State = rc.URL, hooklinev1.StateInactive })
	got := eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonInactive)
	g.Expect(got.Status.State).To(Equal(hooklinev1.ObservedInactive))
	g.Expect(rc.gets.Load()).To(BeZero(), "an INACTIVE webhook must not be verified")

	patchSpec(t, wh, func(s *hooklinev1.WebhookSpec) { s.State = hooklinev1.StateActive })
	eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonActive)
	g.Expect(rc.gets.Load()).To(BeEquivalentTo(1))

	patchSpec(t, wh, func(s *hooklinev1.WebhookSpec) { s.State = hooklinev1.StateInactive })
	eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonInactive)
	patchSpec(t, wh, func(s *hooklinev1.WebhookSpec) { s.State = hooklinev1.StateActive })
	eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonActive)
	g.Expect(rc.gets.Load()).To(BeEquivalentTo(2), "INACTIVE→ACTIVE must verify again")
}

func TestURLAndClientIDChangesReverify(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-urlchange", "")
	first := newReceiver(t, true, echoHeader)
	second := newReceiver(t, true, echoBody)
	broken := newReceiver(t, true, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) })
	wh := createWebhook(t, ns, "moving", func(s *hooklinev1.WebhookSpec) { s.URL = first.URL })
	eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonActive)

	patchSpec(t, wh, func(s *hooklinev1.WebhookSpec) { s.URL = second.URL + "/v2" })
	eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonActive)
	g.Expect(second.gets.Load()).To(BeEquivalentTo(1))

	patchSpec(t, wh, func(s *hooklinev1.WebhookSpec) { s.ClientID = "rotated-client" })
	g.Eventually(second.gets.Load).WithTimeout(10 * time.Second).Should(BeEquivalentTo(2))
	eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonActive)
	g.Expect(second.lastID.Load()).To(Equal("rotated-client"))

	patchSpec(t, wh, func(s *hooklinev1.WebhookSpec) { s.URL = broken.URL })
	got := eventuallyReady(t, wh, metav1.ConditionFalse, verify.ReasonNonSuccessStatus)
	g.Expect(got.Status.State).To(Equal(hooklinev1.ObservedInactive))

	// A change that touches neither url nor client id keeps an existing verification.
	patchSpec(t, wh, func(s *hooklinev1.WebhookSpec) { s.URL = first.URL })
	eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonActive)
	before := first.gets.Load()
	patchSpec(t, wh, func(s *hooklinev1.WebhookSpec) { s.Events = []hooklinev1.EventName{"AGREEMENT_ALL", "WIDGET_ALL"} })
	eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonActive)
	g.Expect(first.gets.Load()).To(Equal(before), "an events change must not re-verify")
}

// The seeds: group administrators create and control webhooks that operate only within their
// group. A GROUP webhook of another group in a namespace bound to a group would receive nothing
// (the namespace gets its group's events only): it is not verified, and says why; one of the
// namespace's own group is.
func TestAGroupWebhookOfAnotherGroupIsRefused(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-groups", "grp-b")
	rc := newReceiver(t, true, echoHeader)
	other := createWebhook(t, ns, "other-group", func(s *hooklinev1.WebhookSpec) {
		s.URL, s.Scope, s.GroupID = distinctURL(t, rc.URL, "other"), hooklinev1.ScopeGroup, "grp-a"
	})
	got := eventuallyReady(t, other, metav1.ConditionFalse, hooklinev1.ReasonGroupOutsideNamespace)
	g.Expect(got.Status.State).To(Equal(hooklinev1.ObservedInactive))
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionReady).Message).To(
		And(ContainSubstring("grp-b"), ContainSubstring(`"grp-a"`)))
	g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, hooklinev1.ConditionStalled)).To(BeTrue())
	g.Expect(rc.gets.Load()).To(BeZero(), "a webhook of another group must not be verified")

	own := createWebhook(t, ns, "own-group", func(s *hooklinev1.WebhookSpec) {
		s.URL, s.Scope, s.GroupID = distinctURL(t, rc.URL, "own"), hooklinev1.ScopeGroup, "grp-b"
	})
	eventuallyReady(t, own, metav1.ConditionTrue, hooklinev1.ReasonActive)
}

func TestUnboundNamespaceIsReported(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "", "")
	rc := newReceiver(t, true, echoHeader)
	wh := createWebhook(t, ns, "unbound", func(s *hooklinev1.WebhookSpec) { s.URL = rc.URL })
	got := eventuallyReady(t, wh, metav1.ConditionFalse, hooklinev1.ReasonNamespaceNotBound)
	g.Expect(got.Status.State).To(Equal(hooklinev1.ObservedInactive))
	g.Expect(rc.gets.Load()).To(BeZero(), "a webhook in an unbound namespace must not be verified")
	expectEvent(t, got, corev1.EventTypeWarning, hooklinev1.ReasonNamespaceNotBound)

	// Binding the namespace afterwards is enough: the namespace watch brings the webhook back.
	nsObj := &corev1.Namespace{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Name: ns}, nsObj)).To(Succeed())
	base := nsObj.DeepCopy()
	nsObj.Labels["hookline.io/account"] = "acc-late"
	g.Expect(k8s.Patch(context.Background(), nsObj, client.MergeFrom(base))).To(Succeed())
	eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonActive)
}

func TestClientCertificateIsPresented(t *testing.T) {
	g := NewWithT(t)
	ca, err := testcerts.NewCA("customer-mtls")
	g.Expect(err).NotTo(HaveOccurred())
	leaf, err := ca.Client("hookline-webhooks")
	g.Expect(err).NotTo(HaveOccurred())

	rc := &receiver{handler: echoHeader}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.gets.Add(1)
		rc.lastCerts.Store(int64(len(r.TLS.PeerCertificates)))
		echoHeader(w, r)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	ns := newNamespace(t, "acc-mtls", "")
	wh := createWebhook(t, ns, "mtls", func(s *hooklinev1.WebhookSpec) {
		s.URL, s.ClientCertificateSecretRef = srv.URL, &hooklinev1.SecretReference{Name: "client-cert"}
	})
	// The secret does not exist yet: reported, retried.
	eventuallyReady(t, wh, metav1.ConditionFalse, hooklinev1.ReasonClientCertificateNotFound)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "client-cert", Namespace: ns},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: leaf.CertPEM, corev1.TLSPrivateKeyKey: leaf.KeyPEM},
	}
	g.Expect(k8s.Create(context.Background(), secret)).To(Succeed())
	eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonActive)
	g.Expect(rc.lastCerts.Load()).To(BeEquivalentTo(1))
}

// expectEvent waits for an Event about wh with the given type and reason.
func expectEvent(t *testing.T, wh *hooklinev1.Webhook, eventType, reason string) {
	t.Helper()
	testsupport.ExpectEvent(t, k8s, wh, eventType, reason)
}

// statusAppliedBy lists the field managers that own wh's status subresource through server-side apply.
func statusAppliedBy(wh *hooklinev1.Webhook) []string {
	var out []string
	for _, mf := range wh.ManagedFields {
		if mf.Subresource == "status" {
			if mf.Operation != metav1.ManagedFieldsOperationApply {
				return append(out, mf.Manager+" ("+string(mf.Operation)+")")
			}
			out = append(out, mf.Manager)
		}
	}
	return out
}

// A tenant may set labels other than the binding's on its namespace (the policy allows them): each
// such change reconciled every Webhook of the namespace, in the manager every tenant shares (each
// reconcile reads a client-certificate Secret uncached). Now only a change of the binding does.
func TestOtherNamespaceLabelsReconcileNothing(t *testing.T) {
	g := NewWithT(t)
	const n = 5
	ns := newNamespace(t, "acc-labels", "")
	for i := range n {
		wh := createWebhook(t, ns, fmt.Sprintf("quiet-%d", i), func(s *hooklinev1.WebhookSpec) { s.State = hooklinev1.StateInactive })
		eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonInactive)
	}
	// Each reconcile of an INACTIVE Webhook logs this line (V(1)), naming the namespace.
	reconciles := func() int {
		count := 0
		for _, l := range strings.Split(managerLogs.String(), "\n") {
			if strings.Contains(l, "Webhook is INACTIVE; not verifying") && strings.Contains(l, `"namespace"="`+ns+`"`) {
				count++
			}
		}
		return count
	}
	g.Eventually(reconciles).WithTimeout(10 * time.Second).Should(BeNumerically(">=", n))
	before := reconciles()
	label := func(key, value string) {
		nsObj := &corev1.Namespace{}
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Name: ns}, nsObj)).To(Succeed())
		base := nsObj.DeepCopy()
		nsObj.Labels[key] = value
		g.Expect(k8s.Patch(context.Background(), nsObj, client.MergeFrom(base))).To(Succeed())
	}
	for i := range 3 {
		label("team", fmt.Sprintf("blue-%d", i))
	}
	// An absence, over a window of many reconciles' length (each takes milliseconds here).
	g.Consistently(reconciles).WithTimeout(2 * time.Second).WithPolling(50 * time.Millisecond).Should(Equal(before))
	// A change of the binding still reaches every Webhook of the namespace.
	label(tenancy.GroupLabel, "grp-1")
	g.Eventually(reconciles).WithTimeout(10 * time.Second).Should(BeNumerically(">=", before+n))
}
