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
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/dispatcher/logapi"
	"github.com/hookline/hookline/internal/deliveries"
	"github.com/hookline/hookline/internal/samples"
	"github.com/hookline/hookline/internal/testcerts"
	"github.com/hookline/hookline/internal/testsupport"
)

// logOn turns the delivery log on.
func logOn(c *dispatcher.Config) { c.DeliveryLog.Enabled = true }

// apiClient calls a stack's read API over TLS, as the CLI and console do.
type apiClient struct {
	base string
	ca   *testcerts.CA
	http *http.Client
}

// eventually polls f as a wait on the read API should: slower than the API's per-identity rate
// (logapi.DefaultRate), so that the wait does not spend the caller's burst, which the requests
// after it need (at Gomega's default of every 10 ms, a wait of a few seconds on a loaded machine
// left the caller answered 429 TooManyRequests).
func (c *apiClient) eventually(g Gomega, f any) AsyncAssertion {
	return g.Eventually(f).WithPolling(3 * time.Second / (2 * logapi.DefaultRate))
}

// serveAPI serves s's read API over TLS (the ingest's certificate files, as in production) on a
// free loopback port.
func (s *stack) serveAPI(t *testing.T) *apiClient {
	t.Helper()
	g := NewWithT(t)
	ca, err := testcerts.NewCA("api-ca")
	g.Expect(err).NotTo(HaveOccurred())
	leaf, err := ca.Server()
	g.Expect(err).NotTo(HaveOccurred())
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	g.Expect(os.WriteFile(certFile, leaf.CertPEM, 0o600)).To(Succeed())
	g.Expect(os.WriteFile(keyFile, leaf.KeyPEM, 0o600)).To(Succeed())
	addr := testsupport.FreeAddr(t)
	srv := dispatcher.NewAPIServer(addr, s.app.API)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- dispatcher.ServeAPI(ctx, srv, nil, certFile, keyFile, false) }()
	t.Cleanup(func() {
		cancel()
		_ = srv.Shutdown(context.Background())
		<-served //nolint:errcheck // served only reports how serving ended
	})
	c := &apiClient{base: "https://" + addr, ca: ca,
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}}
	g.Eventually(func() error {
		resp, err := c.http.Get(c.base + "/")
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	}).WithTimeout(5 * time.Second).Should(Succeed())
	return c
}

// get sends GET path with token (none when empty) and returns the status, headers and body.
func (c *apiClient) get(t *testing.T, token, path string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// getJSON GETs path, expects status want and decodes the body into v.
func (c *apiClient) getJSON(t *testing.T, token, path string, want int, v any) {
	t.Helper()
	code, _, b := c.get(t, token, path)
	if code != want {
		t.Fatalf("GET %s: %d %s, want %d", path, code, b, want)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, b)
	}
}

// apiError GETs path, expects status want, and returns the error body.
func (c *apiClient) apiError(t *testing.T, token, path string, want int) deliveries.Error {
	t.Helper()
	var e deliveries.Error
	c.getJSON(t, token, path, want, &e)
	if e.Status != want || e.Reason == "" || e.Message == "" {
		t.Fatalf("GET %s: error body %+v", path, e)
	}
	return e
}

func notificationsPath(ns, name string) string {
	return "/v1/namespaces/" + ns + "/webhooks/" + name + "/notifications"
}

// serviceAccountToken creates ServiceAccount ns/name and returns a token of it (TokenRequest).
func serviceAccountToken(t *testing.T, cs kubernetes.Interface, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// installDeliveryRoles creates the ClusterRoles hookline ships (config/rbac/deliveries_roles.yaml)
// and returns them by name.
func installDeliveryRoles(t *testing.T) map[string]*rbacv1.ClusterRole {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(cp.Root, "config", "rbac", "deliveries_roles.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]*rbacv1.ClusterRole{}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		role := &rbacv1.ClusterRole{}
		if err := yaml.UnmarshalStrict([]byte(doc), role); err != nil {
			t.Fatal(err)
		}
		roles[role.Name] = role.DeepCopy()
		if err := k8s.Create(context.Background(), role); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	return roles
}

// viewerToken returns a token of a new ServiceAccount name of ns, bound in ns to the role that
// reads its Webhooks' delivery log.
func viewerToken(t *testing.T, cs kubernetes.Interface, ns, name string) string {
	t.Helper()
	token := serviceAccountToken(t, cs, ns, name)
	bind(t, ns, "hookline-deliveries-viewer", ns, name)
	waitAllowed(t, cs, ns, name, logapi.Verb, logapi.Subresource)
	return token
}

// waitAllowed waits until the API server's authorizer allows ServiceAccount ns/sa verb on
// webhooks/subresource in ns: a RoleBinding just created takes effect a little later, and a
// request in between was refused (404) as if it had none.
func waitAllowed(t *testing.T, cs kubernetes.Interface, ns, sa, verb, subresource string) {
	t.Helper()
	NewWithT(t).Eventually(func() (bool, error) {
		r, err := cs.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{
				User:   "system:serviceaccount:" + ns + ":" + sa,
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb,
					Group: hooklinev1.GroupVersion.Group, Resource: logapi.Resource, Subresource: subresource},
			}}, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		return r.Status.Allowed, nil
	}).WithTimeout(10*time.Second).Should(BeTrue(), "%s/%s may %s webhooks/%s", ns, sa, verb, subresource)
}

// payloadReaderToken is viewerToken for a ServiceAccount that may also read the notifications'
// bodies (as the built-in edit role may).
func payloadReaderToken(t *testing.T, cs kubernetes.Interface, ns, name string) string {
	t.Helper()
	token := viewerToken(t, cs, ns, name)
	bind(t, ns, "hookline-replay-editor", ns, name)
	waitAllowed(t, cs, ns, name, logapi.BodyVerb, logapi.BodySubresource)
	return token
}

// bind binds ServiceAccount saNS/sa to ClusterRole role in namespace ns.
func bind(t *testing.T, ns, role, saNS, sa string) {
	t.Helper()
	NewWithT(t).Expect(k8s.Create(context.Background(), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "deliveries-", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: saNS, Name: sa}},
	})).To(Succeed())
}

// Two tenants in two namespaces, each allowed to read its own webhooks' deliveries through a
// RoleBinding to the shipped ClusterRole: each reads its own log; the other tenant, a user without
// RBAC and a caller without a valid token learn nothing, not even whether the webhook or a guessed
// notification id exists.
func TestReadAPITenancy(t *testing.T) {
	g := NewWithT(t)
	nsA, nsB := newNamespace(t, "acc-logapi-a", ""), newNamespace(t, "acc-logapi-b", "")
	rcA, rcB := newReceiver(t), newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{nsA, nsB}, mutate: logOn})
	s.activeWebhook(t, nsA, "orders", accountSpec(rcA.URL))
	s.activeWebhook(t, nsB, "orders", accountSpec(rcB.URL))
	// This test is about who may read what, not how fast: its many reads are not limited.
	s.app.API.Limits = &logapi.Limits{Rate: 1e6, Burst: 1e6, NamespaceRate: 1e6, NamespaceBurst: 1e6}
	api := s.serveAPI(t)

	cs, err := kubernetes.NewForConfig(cp.Config)
	g.Expect(err).NotTo(HaveOccurred())
	installDeliveryRoles(t)
	alice := serviceAccountToken(t, cs, nsA, "alice")
	bob := serviceAccountToken(t, cs, nsB, "bob")
	carol := serviceAccountToken(t, cs, nsA, "carol") // no RoleBinding at all
	bind(t, nsA, "hookline-deliveries-viewer", nsA, "alice")
	bind(t, nsB, "hookline-deliveries-viewer", nsB, "bob")

	for i := range 3 {
		s.mustPost(t, event(fmt.Sprintf("evt-a-%d", i), "acc-logapi-a"))
	}
	s.mustPost(t, event("evt-b-0", "acc-logapi-b"))
	g.Eventually(func() int { return len(rcA.got()) }).WithTimeout(10 * time.Second).Should(Equal(3))
	g.Eventually(func() int { return len(rcB.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))

	// Alice lists her webhook's notifications, newest first, each delivered once.
	pathA := notificationsPath(nsA, "orders")
	var page deliveries.NotificationList
	api.eventually(g, func(g Gomega) {
		page = deliveries.NotificationList{}
		api.getJSON(t, alice, pathA+"?state=delivered", http.StatusOK, &page)
		g.Expect(page.Items).To(HaveLen(3))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Expect(page.Items[0].EventID).To(Equal("evt-a-2"))
	g.Expect(page.Items[2].EventID).To(Equal("evt-a-0"))
	for _, n := range page.Items {
		g.Expect(n.State).To(Equal(deliveries.StateDelivered))
		g.Expect(n.Attempts).To(Equal(1))
		g.Expect(n.EventName).To(Equal("AGREEMENT_ACTION_COMPLETED"))
	}
	idA := page.Items[0].NotificationID

	// Her notification's attempts, and its body: the bytes the receiver got.
	var al deliveries.AttemptList
	api.getJSON(t, alice, pathA+"/"+idA, http.StatusOK, &al)
	g.Expect(al.Notification.NotificationID).To(Equal(idA))
	g.Expect(al.Records).To(HaveLen(1))
	g.Expect(al.Records[0].HTTPStatus).To(Equal(http.StatusOK))
	g.Expect(al.Records[0].State).To(Equal(deliveries.StateDelivered))
	// Bound to the viewer alone (as the built-in view role is), she does not get its body: it
	// holds the agreement's participants and, with conditional parameters, its documents.
	g.Expect(api.apiError(t, alice, pathA+"/"+idA+"/body", http.StatusForbidden).Message).To(ContainSubstring("get on webhooks/payloads"))
	bind(t, nsA, "hookline-replay-editor", nsA, "erin")
	erin := serviceAccountToken(t, cs, nsA, "erin")
	code, hdr, body := api.get(t, erin, pathA+"/"+idA+"/body")
	g.Expect(code).To(Equal(http.StatusOK), string(body))
	g.Expect(hdr.Get("Content-Type")).To(Equal("application/json"))
	var sent []byte
	for _, d := range rcA.got() {
		if strings.Contains(string(d.Body), idA) {
			sent = d.Body
		}
	}
	g.Expect(sent).NotTo(BeEmpty(), "the receiver got notification %s", idA)
	g.Expect(body).To(Equal(sent), "the body endpoint answers exactly the bytes the receiver got")

	// Bob, Carol, and any caller, get the answer of a webhook that does not exist.
	missing := func(ns, name string) deliveries.Error {
		return deliveries.Error{Status: http.StatusNotFound, Reason: "NotFound", Message: "webhook " + ns + "/" + name + " not found"}
	}
	g.Expect(api.apiError(t, alice, notificationsPath(nsA, "ghost"), http.StatusNotFound)).To(Equal(missing(nsA, "ghost")))
	for _, who := range []string{bob, carol} {
		g.Expect(api.apiError(t, who, pathA, http.StatusNotFound)).To(Equal(missing(nsA, "orders")))
		g.Expect(api.apiError(t, who, pathA+"/"+idA, http.StatusNotFound)).To(Equal(missing(nsA, "orders")))
		g.Expect(api.apiError(t, who, pathA+"/"+idA+"/body", http.StatusNotFound)).To(Equal(missing(nsA, "orders")))
	}
	// Alice cannot read Bob's namespace either, even for a webhook of the same name.
	g.Expect(api.apiError(t, alice, notificationsPath(nsB, "orders"), http.StatusNotFound)).To(Equal(missing(nsB, "orders")))
	// Bob guessing Alice's notification id on his own webhook finds nothing: ids are per webhook.
	pathB := notificationsPath(nsB, "orders")
	api.apiError(t, bob, pathB+"/"+idA, http.StatusNotFound)
	api.apiError(t, bob, pathB+"/"+idA+"/body", http.StatusNotFound)
	var pageB deliveries.NotificationList
	api.getJSON(t, bob, pathB+"?notificationId="+idA, http.StatusOK, &pageB)
	g.Expect(pageB.Items).To(BeEmpty())
	api.getJSON(t, bob, pathB, http.StatusOK, &pageB)
	g.Expect(pageB.Items).To(HaveLen(1))
	g.Expect(pageB.Items[0].EventID).To(Equal("evt-b-0"))

	// Without a valid token: 401 with a challenge, before anything else is looked at.
	for _, token := range []string{"", "garbage-token", alice + "x"} {
		code, hdr, b := api.get(t, token, pathA)
		g.Expect(code).To(Equal(http.StatusUnauthorized), string(b))
		g.Expect(hdr.Get("WWW-Authenticate")).To(HavePrefix("Bearer"))
		var e deliveries.Error
		g.Expect(json.Unmarshal(b, &e)).To(Succeed())
		g.Expect(e.Reason).To(Equal("Unauthorized"))
	}

	// An unknown notification of a readable webhook: 404.
	e := api.apiError(t, alice, pathA+"/0000000000notanid", http.StatusNotFound)
	g.Expect(e.Message).To(ContainSubstring("notification 0000000000notanid"))
	api.apiError(t, alice, pathA+"/0000000000notanid/body", http.StatusNotFound)

	// Pages follow the cursor; a tampered cursor is refused.
	var p1, p2 deliveries.NotificationList
	api.getJSON(t, alice, pathA+"?limit=2", http.StatusOK, &p1)
	g.Expect(p1.Items).To(HaveLen(2))
	g.Expect(p1.Next).NotTo(BeEmpty())
	api.getJSON(t, alice, pathA+"?limit=2&cursor="+p1.Next, http.StatusOK, &p2)
	g.Expect(p2.Items).To(HaveLen(1))
	g.Expect(p2.Items[0].EventID).To(Equal("evt-a-0"))
	tampered := []byte(p1.Next)
	tampered[len(tampered)/2] ^= 1
	if tampered[len(tampered)/2] == '=' || tampered[len(tampered)/2] == '&' {
		tampered[len(tampered)/2] = 'A'
	}
	e = api.apiError(t, alice, pathA+"?limit=2&cursor="+string(tampered), http.StatusBadRequest)
	g.Expect(e.Message).To(HavePrefix("cursor:"))
	// A cursor of other filters is refused too.
	api.apiError(t, alice, pathA+"?limit=2&state=dropped&cursor="+p1.Next, http.StatusBadRequest)

	// Bad parameters name themselves.
	for q, field := range map[string]string{
		"?state=bogus": "state:", "?limit=0": "limit:", "?limit=501": "limit:", "?since=yesterday": "since:",
		"?until=2h&since=1h": "until", "?colour=red": "unknown parameter", "?event=AGREEMENT%3BX": "event:",
		"?limit=1&limit=2": "limit:",
	} {
		g.Expect(api.apiError(t, alice, pathA+q, http.StatusBadRequest).Message).To(HavePrefix(field), q)
	}
	// "failed" selects the states of notifications given up on: none here.
	api.getJSON(t, alice, pathA+"?state=failed", http.StatusOK, &page)
	g.Expect(page.Items).To(BeEmpty())

	// The statistics: Alice's three deliveries in the current hour (read by Dave, a second viewer
	// of nsA: Alice has spent her request rate); Bob and Carol get the 404 of a webhook that does
	// not exist.
	dave := serviceAccountToken(t, cs, nsA, "dave")
	bind(t, nsA, "hookline-deliveries-viewer", nsA, "dave")
	statsA := "/v1/namespaces/" + nsA + "/webhooks/orders/stats"
	api.eventually(g, func() int { // the new RoleBinding reaches the API server's authorizer
		code, _, _ := api.get(t, dave, statsA)
		return code
	}).WithTimeout(20 * time.Second).Should(Equal(http.StatusOK))
	for _, w := range []string{"", "?window=24h", "?window=7d"} {
		var st deliveries.Stats
		api.getJSON(t, dave, statsA+w, http.StatusOK, &st)
		g.Expect(st.Total.Delivered).To(Equal(3), w)
		g.Expect(st.Total.Attempts).To(Equal(3), w)
		g.Expect(st.Buckets[len(st.Buckets)-1].Delivered).To(Equal(3), w)
	}
	for _, who := range []string{bob, carol} {
		g.Expect(api.apiError(t, who, statsA, http.StatusNotFound)).To(Equal(missing(nsA, "orders")))
	}
	g.Expect(api.apiError(t, dave, statsA+"?window=1y", http.StatusBadRequest).Message).To(HavePrefix("window:"))
	g.Expect(api.apiError(t, dave, statsA+"?colour=red", http.StatusBadRequest).Message).To(HavePrefix("unknown parameter"))
}

// One identity asking too much is slowed down (429) without affecting another; a token the API
// server refused is remembered, so repeating it costs no further reviews.
func TestReadAPILimitsEachIdentity(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-logapi-limits", "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: logOn})
	s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
	s.app.API.Limits = &logapi.Limits{Rate: 0.01, Burst: 3}
	api := s.serveAPI(t)
	cs, err := kubernetes.NewForConfig(cp.Config)
	g.Expect(err).NotTo(HaveOccurred())
	installDeliveryRoles(t)
	// calm is another owner's: a ServiceAccount of another namespace (those of one namespace
	// share their rate: TestANamespacesServiceAccountsShareOneRate).
	other := newNamespace(t, "acc-logapi-limits-other", "")
	greedy, calm := serviceAccountToken(t, cs, ns, "greedy"), serviceAccountToken(t, cs, other, "calm")
	bind(t, ns, "hookline-deliveries-viewer", ns, "greedy")
	bind(t, ns, "hookline-deliveries-viewer", other, "calm")

	path := notificationsPath(ns, "orders")
	var page deliveries.NotificationList
	for range 3 {
		api.getJSON(t, greedy, path, http.StatusOK, &page)
	}
	code, hdr, b := api.get(t, greedy, path)
	g.Expect(code).To(Equal(http.StatusTooManyRequests), string(b))
	g.Expect(hdr.Get("Retry-After")).NotTo(BeEmpty())
	api.getJSON(t, calm, path, http.StatusOK, &page)
}

// A tenant that creates ServiceAccounts to multiply its identities still shares one budget for its
// namespace's Webhooks; another namespace's reader is not slowed down.
func TestReadAPILimitsEachNamespace(t *testing.T) {
	g := NewWithT(t)
	nsA := newNamespace(t, "acc-logapi-ns-a", "")
	nsB := newNamespace(t, "acc-logapi-ns-b", "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{nsA, nsB}, mutate: logOn})
	s.activeWebhook(t, nsA, "orders", accountSpec(rc.URL))
	s.activeWebhook(t, nsB, "orders", accountSpec(rc.URL))
	s.app.API.Limits = &logapi.Limits{Rate: 100, Burst: 100, NamespaceRate: 0.01, NamespaceBurst: 3}
	api := s.serveAPI(t)
	cs, err := kubernetes.NewForConfig(cp.Config)
	g.Expect(err).NotTo(HaveOccurred())
	installDeliveryRoles(t)
	other := viewerToken(t, cs, nsB, "reader")
	// A reader of namespace B cannot spend namespace A's budget by asking for A's Webhooks: it is
	// refused (404) before anything is counted.
	for range 5 {
		g.Expect(api.apiError(t, other, notificationsPath(nsA, "orders"), http.StatusNotFound).Reason).To(Equal("NotFound"))
	}
	var page deliveries.NotificationList
	for i := range 3 {
		name := fmt.Sprintf("reader-%d", i)
		api.getJSON(t, viewerToken(t, cs, nsA, name), notificationsPath(nsA, "orders"), http.StatusOK, &page)
	}
	fresh := viewerToken(t, cs, nsA, "reader-fresh")
	code, hdr, b := api.get(t, fresh, notificationsPath(nsA, "orders"))
	g.Expect(code).To(Equal(http.StatusTooManyRequests), "a new identity of the same namespace: %s", b)
	g.Expect(string(b)).To(ContainSubstring("namespace " + nsA))
	g.Expect(hdr.Get("Retry-After")).NotTo(BeEmpty())

	api.getJSON(t, other, notificationsPath(nsB, "orders"), http.StatusOK, &page)
}

// A tenant creates ServiceAccounts in its namespace and has each ask for Webhooks by names never
// asked before: each request cost an access review (SubjectAccessReview) with the dispatcher's
// identity, and the per-identity rate, one per ServiceAccount, multiplied with them. Now a
// namespace's ServiceAccounts also share one rate (by default four identities' worth).
func TestANamespacesServiceAccountsShareOneRate(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-logapi-sa-rate", "")
	requests := &testsupport.APIRequests{}
	s := startStack(t, stackOptions{namespaces: []string{ns}, requests: requests, mutate: logOn})
	s.app.API.Limits = &logapi.Limits{Rate: 0.01, Burst: 5, OwnerRate: 0.01, OwnerBurst: 8}
	api := s.serveAPI(t)
	cs, err := kubernetes.NewForConfig(cp.Config)
	g.Expect(err).NotTo(HaveOccurred())
	installDeliveryRoles(t)
	var tokens []string
	for i := range 4 {
		tokens = append(tokens, viewerToken(t, cs, ns, fmt.Sprintf("minted-%d", i)))
	}
	reviews := func() int {
		return requests.Count(http.MethodPost, "/apis/authorization.k8s.io/v1/subjectaccessreviews")
	}
	before := reviews()
	limited := 0
	for i, tok := range tokens {
		for j := range 5 {
			code, _, _ := api.get(t, tok, notificationsPath(ns, fmt.Sprintf("never-%d-%d", i, j)))
			if code == http.StatusTooManyRequests {
				limited++
			}
		}
	}
	g.Expect(reviews()-before).To(BeNumerically("<=", 8), "access reviews past the namespace's burst")
	g.Expect(limited).To(Equal(4*5 - 8))
}

// Anyone who can reach the read API sends a new random token with every request, from many
// connections at once: each would cost the API server a TokenReview asked with the dispatcher's
// identity, and held one of the read API's shared slots while it ran. Now a client address brings
// so many new tokens a second (429 beyond), the reviews of new tokens have a budget of their own,
// and the shared slots are taken once the caller is known: an authorized reader meanwhile gets
// every page.
func TestRandomTokensCannotCrowdOutReaders(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-logapi-random-tokens", "")
	rc := newReceiver(t)
	requests := &testsupport.APIRequests{}
	const ttl = 200 * time.Millisecond
	s := startStack(t, stackOptions{namespaces: []string{ns}, requests: requests, mutate: func(c *dispatcher.Config) {
		logOn(c)
		c.APIAuthTTL = ttl // the reader's token is reviewed again during the flood
	}})
	s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
	// The reader's own rates are not this test's subject: it reads as fast as it can (over 2,000
	// pages a second once the flood is over, seen in CI).
	s.app.API.Limits = &logapi.Limits{Concurrent: 2, NamespaceConcurrent: 2, Rate: 1e6, Burst: 1e6, NamespaceRate: 1e6, NamespaceBurst: 1e6,
		NewTokenRate: 1, NewTokenBurst: 5}
	api := s.serveAPI(t)
	cs, err := kubernetes.NewForConfig(cp.Config)
	g.Expect(err).NotTo(HaveOccurred())
	installDeliveryRoles(t)
	reader := viewerToken(t, cs, ns, "reader")
	path := notificationsPath(ns, "orders")
	var page deliveries.NotificationList
	api.getJSON(t, reader, path, http.StatusOK, &page) // its review is remembered from now on

	reviews := func() int { return requests.Count(http.MethodPost, "/apis/authentication.k8s.io/v1/tokenreviews") }
	before := reviews()
	var wg sync.WaitGroup
	var answers sync.Map // status → count
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				req, _ := http.NewRequest(http.MethodGet, api.base+path, nil)
				req.Header.Set("Authorization", "Bearer "+rand.Text())
				resp, err := api.http.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				n, _ := answers.LoadOrStore(resp.StatusCode, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		}()
	}
	// The reader reads for several of its answers' lifetimes: each time its token is reviewed
	// again, as a token the API server accepted lately, outside the budget the flood spends.
	started := time.Now()
	pages := 0
	for time.Since(started) < 5*ttl {
		code, _, b := api.get(t, reader, path)
		g.Expect(code).To(Equal(http.StatusOK), "the reader's page %d during the flood: %s", pages, b)
		pages++
	}
	wg.Wait()
	elapsed := time.Since(started)
	flood := map[int]int64{}
	answers.Range(func(k, v any) bool { flood[k.(int)] = v.(*atomic.Int64).Load(); return true })
	t.Logf("flood answers in %s: %v; the reader's pages %d; TokenReviews %d", elapsed.Round(time.Millisecond), flood, pages, reviews()-before)
	g.Expect(flood[http.StatusTooManyRequests]).To(BeNumerically(">", 700), "the flood was refused")
	g.Expect(flood[http.StatusOK]).To(BeZero())
	// The burst, then one a second, and the reader's own (one per ttl).
	g.Expect(reviews() - before).To(BeNumerically("<=", 5+int(elapsed.Seconds())+1+int(elapsed/ttl)+1))
}

// The built-in roles aggregate the shipped ClusterRoles: their aggregation rules (bootstrapped by
// the real API server) select the roles' labels. The test control plane runs no
// kube-controller-manager, whose ClusterRole aggregation controller would copy the rules, so a
// RoleBinding to view cannot be exercised end to end here; the selection is what it acts on.
func TestDeliveryRolesAggregateIntoBuiltInRoles(t *testing.T) {
	g := NewWithT(t)
	roles := installDeliveryRoles(t)
	selects := func(builtin string, role *rbacv1.ClusterRole) bool {
		var agg rbacv1.ClusterRole
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Name: builtin}, &agg)).To(Succeed())
		g.Expect(agg.AggregationRule).NotTo(BeNil(), builtin)
		for _, sel := range agg.AggregationRule.ClusterRoleSelectors {
			s, err := metav1.LabelSelectorAsSelector(&sel)
			g.Expect(err).NotTo(HaveOccurred())
			if s.Matches(labels.Set(role.Labels)) {
				return true
			}
		}
		return false
	}
	viewer, editor := roles["hookline-deliveries-viewer"], roles["hookline-replay-editor"]
	g.Expect(viewer).NotTo(BeNil())
	g.Expect(editor).NotTo(BeNil())
	for _, builtin := range []string{"view", "edit", "admin"} {
		g.Expect(selects(builtin, viewer)).To(BeTrue(), "%s aggregates the deliveries viewer", builtin)
	}
	g.Expect(selects("view", editor)).To(BeFalse(), "viewers do not replay")
	g.Expect(selects("edit", editor)).To(BeTrue())
	g.Expect(selects("admin", editor)).To(BeTrue())
	// The viewer grants exactly what the read API asks the API server for.
	g.Expect(viewer.Rules).To(Equal([]rbacv1.PolicyRule{{APIGroups: []string{"hookline.io"},
		Resources: []string{logapi.Resource + "/" + logapi.Subresource}, Verbs: []string{logapi.Verb}}}))
}

// The body endpoint rebuilds what was sent with the Webhook's conditional parameters and the size
// cap: the trimmed sections are left out exactly as they were for the receiver, and an envelope
// event's notification comes back byte for byte.
func TestReadAPIBodyIsWhatWasSent(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-logapi-body", "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: func(c *dispatcher.Config) {
		logOn(c)
		c.Engine.MaxPayloadBytes = 16 << 10
	}})
	spec := accountSpec(rc.URL, "AGREEMENT_WORKFLOW_COMPLETED", "ENVELOPE_ALL")
	spec.ConditionalParams = &hooklinev1.ConditionalParams{Agreement: &hooklinev1.AgreementConditionalParams{
		IncludeDetailedInfo: true, IncludeParticipantsInfo: true, IncludeDocumentsInfo: true, IncludeSignedDocuments: true}}
	s.activeWebhook(t, ns, "detailed", spec)
	api := s.serveAPI(t)
	cs, err := kubernetes.NewForConfig(cp.Config)
	g.Expect(err).NotTo(HaveOccurred())
	installDeliveryRoles(t)
	token := payloadReaderToken(t, cs, ns, "owner")

	for _, name := range []string{"agreement_workflow_completed", "envelope_expired"} {
		raw, err := samples.Event(name)
		g.Expect(err).NotTo(HaveOccurred())
		var ev map[string]any
		g.Expect(json.Unmarshal(raw, &ev)).To(Succeed())
		ev["accountId"] = "acc-logapi-body"
		if name == "agreement_workflow_completed" {
			// A signed PDF larger than the cap: trimmed from the body.
			ev["notification"].(map[string]any)["agreement"].(map[string]any)["signedDocumentInfo"] =
				map[string]any{"document": strings.Repeat("QUJD", 8<<10)}
		}
		s.mustPost(t, mustJSON(ev))
	}
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(2))

	path := notificationsPath(ns, "detailed")
	var page deliveries.NotificationList
	api.eventually(g, func(g Gomega) {
		api.getJSON(t, token, path+"?state=delivered", http.StatusOK, &page)
		g.Expect(page.Items).To(HaveLen(2))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	for i, n := range page.Items {
		code, hdr, body := api.get(t, token, path+"/"+n.NotificationID+"/body")
		g.Expect(code).To(Equal(http.StatusOK), string(body))
		// Newest first: the envelope event, then the agreement.
		sent := rc.got()[1-i].Body
		g.Expect(body).To(Equal(sent), n.EventName)
		if n.EventName == "AGREEMENT_WORKFLOW_COMPLETED" {
			g.Expect(hdr.Get("Hookline-Trimmed")).To(Equal("includeSignedDocuments"))
			g.Expect(string(body)).NotTo(ContainSubstring("signedDocumentInfo"))
		} else {
			g.Expect(hdr.Get("Hookline-Trimmed")).To(BeEmpty())
		}
	}
}

// A tenant asks for the body of a large notification and never reads the answer. The write
// blocked until the server's WriteTimeout (5 minutes), holding one of the namespace's request
// slots (four such namespaces held all eight of the read API's) and the body's tens of MiB, which
// nothing counted. A body is now written within a grace plus its size at a minimum rate, or the
// connection is cut, and the bodies being written at once are bounded in bytes.
func TestReadersThatStallOnALargeBodyLetGoOfTheirSlots(t *testing.T) {
	g := NewWithT(t)
	nsA, nsB := newNamespace(t, "acc-logapi-stall-a", ""), newNamespace(t, "acc-logapi-stall-b", "")
	rc := newReceiver(t)
	const size = 12 << 20 // more than the sockets of a reader that does not read take in
	s := startStack(t, stackOptions{namespaces: []string{nsA, nsB}, mutate: func(c *dispatcher.Config) {
		logOn(c)
		// Envelope notifications above the cap (10 MiB by default) are refused at ingest.
		c.Engine.MaxPayloadBytes = size + 1<<20
	}})
	s.activeWebhook(t, nsA, "envelopes", accountSpec(rc.URL, "ENVELOPE_ALL"))
	s.activeWebhook(t, nsB, "envelopes", accountSpec(rc.URL, "ENVELOPE_ALL"))
	s.app.API.Limits = &logapi.Limits{Rate: 100, Burst: 100, NamespaceConcurrent: 1,
		BodyWriteGrace: 4 * time.Second, BodyWriteRate: 1 << 30, BodyBytes: 16 << 20}
	api := s.serveAPI(t)
	cs, err := kubernetes.NewForConfig(cp.Config)
	g.Expect(err).NotTo(HaveOccurred())
	installDeliveryRoles(t)
	staller, readerA, readerB := payloadReaderToken(t, cs, nsA, "staller"), payloadReaderToken(t, cs, nsA, "reader"), payloadReaderToken(t, cs, nsB, "reader")

	for _, account := range []string{"acc-logapi-stall-a", "acc-logapi-stall-b"} {
		raw, err := samples.Event("envelope_expired")
		g.Expect(err).NotTo(HaveOccurred())
		var ev map[string]any
		g.Expect(json.Unmarshal(raw, &ev)).To(Succeed())
		ev["accountId"] = account
		ev["notification"].(map[string]any)["data"].(map[string]any)["filler"] = strings.Repeat("x", size)
		s.mustPost(t, mustJSON(ev))
	}
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(20 * time.Second).Should(Equal(2))
	bodyOf := func(token, ns string) string {
		var page deliveries.NotificationList
		api.eventually(g, func(g Gomega) {
			api.getJSON(t, token, notificationsPath(ns, "envelopes")+"?state=delivered", http.StatusOK, &page)
			g.Expect(page.Items).To(HaveLen(1))
		}).WithTimeout(10 * time.Second).Should(Succeed())
		return notificationsPath(ns, "envelopes") + "/" + page.Items[0].NotificationID + "/body"
	}
	bodyA, bodyB := bodyOf(readerA, nsA), bodyOf(readerB, nsB)
	bodyOf(staller, nsA) // its token reviewed: the stall below starts at once

	// The staller asks for the body and reads the status line only (a request of before may still
	// hold the namespace's slot for a moment: it asks again then).
	g.Eventually(func() string {
		conn, err := tls.Dial("tcp", strings.TrimPrefix(api.base, "https://"), &tls.Config{RootCAs: api.ca.Pool()})
		if err != nil {
			return err.Error()
		}
		t.Cleanup(func() { _ = conn.Close() })
		if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer %s\r\n\r\n", bodyA, staller); err != nil {
			return err.Error()
		}
		status := make([]byte, len("HTTP/1.1 200"))
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(conn, status); err != nil {
			return err.Error()
		}
		return string(status)
	}).WithTimeout(10 * time.Second).Should(Equal("HTTP/1.1 200"))
	// The stalled body holds namespace A's one slot, and 12 of the 16 MiB for bodies.
	g.Eventually(func() string {
		code, _, b := api.get(t, readerA, notificationsPath(nsA, "envelopes"))
		return fmt.Sprint(code, " ", string(b))
	}).WithTimeout(3 * time.Second).WithPolling(50 * time.Millisecond).Should(ContainSubstring("for namespace " + nsA))
	code, _, b := api.get(t, readerB, bodyB)
	g.Expect(code).To(Equal(http.StatusServiceUnavailable), "another namespace's large body meanwhile")
	g.Expect(string(b)).To(ContainSubstring("large bodies are being read"))
	// Its write is cut after the grace: both are served again.
	g.Eventually(func() int { code, _, _ := api.get(t, readerA, notificationsPath(nsA, "envelopes")); return code }).
		WithTimeout(10 * time.Second).WithPolling(200 * time.Millisecond).Should(Equal(http.StatusOK))
	code, _, b = api.get(t, readerB, bodyB)
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(len(b)).To(BeNumerically(">", size))
}

// The read API carries bearer tokens: HTTPS with HTTP/1.1 only (no HTTP/2 resets before any token
// is checked); plain HTTP is refused on its port, and served only when explicitly allowed.
func TestReadAPIServesTLSOnly(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-logapi-tls", "")
	s := startStack(t, stackOptions{namespaces: []string{ns}})
	api := s.serveAPI(t)
	addr := strings.TrimPrefix(api.base, "https://")

	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: api.ca.Pool(), NextProtos: []string{"h2", "http/1.1"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(conn.ConnectionState().NegotiatedProtocol).To(Equal("http/1.1"))
	_ = conn.Close()
	// A client offering only h2 is not served it (ServeTLS used to add it back to the offer).
	if conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: api.ca.Pool(), NextProtos: []string{"h2"}}); err == nil {
		g.Expect(conn.ConnectionState().NegotiatedProtocol).NotTo(Equal("h2"))
		_ = conn.Close()
	}
	resp, err := http.Get("http://" + addr + notificationsPath(ns, "x"))
	if err == nil {
		_ = resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusBadRequest), "plain HTTP is not served")
	}

	// This dispatcher keeps no delivery log: every request is answered so.
	g.Expect(api.apiError(t, "", notificationsPath(ns, "x"), http.StatusServiceUnavailable).Reason).To(Equal("LogOff"))

	srv := dispatcher.NewAPIServer(testsupport.FreeAddr(t), s.app.API)
	g.Expect(dispatcher.ServeAPI(context.Background(), srv, nil, "", "", false)).To(MatchError(dispatcher.ErrAPINeedsTLS))
}

// A hostile receiver answers with line breaks around a record of its own making (a "delivered"
// notification of the same webhook): the delivery log keeps one record per line, and the answer
// must stay inside the attempt's excerpt. Its owner, reading through RBAC, sees only the real
// notification, still failing.
func TestHostileAnswerCannotForgeARecord(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-logapi-forge", "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: logOn})
	wh := s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
	api := s.serveAPI(t)
	cs, err := kubernetes.NewForConfig(cp.Config)
	g.Expect(err).NotTo(HaveOccurred())
	installDeliveryRoles(t)
	alice := serviceAccountToken(t, cs, ns, "alice")
	bind(t, ns, "hookline-deliveries-viewer", ns, "alice")

	const forgedID = "forged-notification-0001"
	forged := "\n" + `{"kind":"attempt","webhookUid":"` + string(wh.UID) + `","namespace":"` + ns + `","name":"orders",` +
		`"webhookNotificationId":"` + forgedID + `","eventSeq":1,"eventId":"evt-forged","event":"AGREEMENT_ACTION_COMPLETED",` +
		`"created":"2026-01-01T00:00:00Z","at":"2026-01-01T00:00:00Z","state":"delivered","attempt":1,"httpStatus":200}` + "\n"
	rc.set(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, forged)
	})
	s.mustPost(t, event("evt-real", "acc-logapi-forge"))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(BeNumerically(">=", 1))

	path := notificationsPath(ns, "orders")
	var page deliveries.NotificationList
	api.eventually(g, func(g Gomega) {
		page = deliveries.NotificationList{}
		api.getJSON(t, alice, path, http.StatusOK, &page)
		g.Expect(page.Items).To(HaveLen(1))
		g.Expect(page.Items[0].Attempts).To(BeNumerically(">=", 1))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Expect(page.Items[0].EventID).To(Equal("evt-real"))
	g.Expect(page.Items[0].NotificationID).NotTo(Equal(forgedID))
	g.Expect(page.Items[0].State).NotTo(Equal(deliveries.StateDelivered))

	var al deliveries.AttemptList
	api.getJSON(t, alice, path+"/"+page.Items[0].NotificationID, http.StatusOK, &al)
	g.Expect(al.Records).NotTo(BeEmpty())
	g.Expect(al.Records[0].HTTPStatus).To(Equal(http.StatusInternalServerError))
	g.Expect(al.Records[0].Response).To(ContainSubstring(forgedID), "the answer is kept, as an excerpt")
	api.apiError(t, alice, path+"/"+forgedID, http.StatusNotFound)
	var byID deliveries.NotificationList
	api.getJSON(t, alice, path+"?notificationId="+forgedID, http.StatusOK, &byID)
	g.Expect(byID.Items).To(BeEmpty())
}
