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
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/internal/testsupport"
)

// --metrics-secure: the dispatcher's metrics answer only over HTTPS to a token the API server
// authenticates (TokenReview) and authorizes for GET /metrics (SubjectAccessReview).
func TestSecureMetricsNeedAnAuthorizedToken(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acc-metrics-auth", "")
	addr := testsupport.FreeAddr(t)
	startStack(t, stackOptions{namespaces: []string{ns}, mutate: func(c *dispatcher.Config) {
		c.MetricsAddress, c.MetricsSecure = addr, true
	}})

	cs, err := kubernetes.NewForConfig(cp.Config)
	g.Expect(err).NotTo(HaveOccurred())
	token := func(sa string) string {
		_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		return tr.Status.Token
	}
	scraper, stranger := token("prometheus"), token("stranger")
	allowMetrics(t, ns, "prometheus")

	// The certificate is self-signed, as in the chart's ServiceMonitor (insecureSkipVerify).
	httpc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed on purpose
	scrape := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := httpc.Do(req)
		if err != nil {
			return 0
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	g.Eventually(func() int { return scrape(scraper) }).WithTimeout(20 * time.Second).Should(Equal(http.StatusOK))
	g.Expect(scrape("")).To(Equal(http.StatusUnauthorized))
	g.Expect(scrape("not-a-token")).To(Equal(http.StatusUnauthorized))
	g.Expect(scrape(stranger)).To(Equal(http.StatusForbidden))
	// A 401 says which credentials it wants (RFC 9110).
	if resp, err := httpc.Get("https://" + addr + "/metrics"); g.Expect(err).NotTo(HaveOccurred()) {
		_ = resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusUnauthorized))
		g.Expect(resp.Header.Get("WWW-Authenticate")).To(HavePrefix("Bearer "))
	}
	// The answers are remembered (securemetrics.ReviewTTL), each for its own token.
	g.Expect(scrape(scraper)).To(Equal(http.StatusOK))
	g.Expect(scrape(stranger)).To(Equal(http.StatusForbidden))
	g.Expect(scrape("not-a-token")).To(Equal(http.StatusUnauthorized))
	plain, err := http.Get("http://" + addr + "/metrics")
	if err == nil {
		_ = plain.Body.Close()
		g.Expect(plain.StatusCode).To(Equal(http.StatusBadRequest), "plain HTTP is not served")
	}
}

// allowMetrics lets ServiceAccount ns/sa get /metrics (a ClusterRole and its binding).
func allowMetrics(t *testing.T, ns, sa string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	reader := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{GenerateName: "metrics-reader-"},
		Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}}
	g.Expect(k8s.Create(ctx, reader)).To(Succeed())
	g.Expect(k8s.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{GenerateName: "metrics-reader-"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: reader.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}}})).To(Succeed())
}

// A caller holding a token (any ServiceAccount of a tenant's namespace: the metrics port is open
// to the pod network) sends requests with made-up methods. The access review's verb was the
// method, so that each new method was a SubjectAccessReview the cache had not seen, made with the
// dispatcher's identity. Now only GET and HEAD are served, any other method is refused before a
// review, and the review asks for get.
func TestMadeUpMethodsCostTheMetricsNoReview(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acc-metrics-methods", "")
	addr := testsupport.FreeAddr(t)
	requests := &testsupport.APIRequests{}
	startStack(t, stackOptions{namespaces: []string{ns}, requests: requests, mutate: func(c *dispatcher.Config) {
		c.MetricsAddress, c.MetricsSecure = addr, true
	}})
	cs, err := kubernetes.NewForConfig(cp.Config)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "tenant"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "tenant", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	httpc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed on purpose
	send := func(method string) int {
		req, _ := http.NewRequest(method, "https://"+addr+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+tr.Status.Token)
		resp, err := httpc.Do(req)
		if err != nil {
			return 0
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	// Reviewed once: the token is not allowed to read the metrics.
	g.Eventually(func() int { return send(http.MethodGet) }).WithTimeout(20 * time.Second).Should(Equal(http.StatusForbidden))
	const sar = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
	before := requests.Count(http.MethodPost, sar)
	for i := range 20 {
		g.Expect(send(fmt.Sprintf("X%d", i))).To(Equal(http.StatusMethodNotAllowed))
	}
	g.Expect(send(http.MethodHead)).To(Equal(http.StatusForbidden), "HEAD reads, as GET")
	g.Expect(requests.Count(http.MethodPost, sar)).To(Equal(before), "access reviews for made-up methods")
}

// Anyone on the pod network sends random bearer tokens to the metrics port, as fast as it can. The
// reviewer's budget of new tokens (50 a second) is shared: the flood spent it alone, and a
// scraper's new token (a projected ServiceAccount token is rotated about hourly) was answered 503
// for as long as it lasted, blinding the alerts. One address now spends at most 5 a second of it.
func TestARandomTokenFloodDoesNotLockOutANewScraperToken(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acc-metrics-flood", "")
	addr := testsupport.FreeAddr(t)
	startStack(t, stackOptions{namespaces: []string{ns}, mutate: func(c *dispatcher.Config) {
		c.MetricsAddress, c.MetricsSecure = addr, true
	}})
	cs, err := kubernetes.NewForConfig(cp.Config)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "prometheus"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	newToken := func() string { // a new token each time, as the kubelet rotates them
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "prometheus", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		return tr.Status.Token
	}
	allowMetrics(t, ns, "prometheus")
	client := func(local string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed on purpose
	}
	scrape := func(c *http.Client, token string) int {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		if err != nil {
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	prometheus := client("127.0.0.1")
	g.Eventually(func() int { return scrape(prometheus, newToken()) }).WithTimeout(20 * time.Second).Should(Equal(http.StatusOK))

	// The flood, from another address of the pod network.
	flooder := client("127.0.0.2")
	var sent atomic.Int64
	var answers sync.Map // status → count
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code := scrape(flooder, rand.Text())
				sent.Add(1)
				n, _ := answers.LoadOrStore(code, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		}()
	}
	// Well past the reviewer's burst of 100 new tokens.
	g.Eventually(sent.Load).WithTimeout(20 * time.Second).Should(BeNumerically(">=", 300))
	for i := range 3 {
		g.Expect(scrape(prometheus, newToken())).To(Equal(http.StatusOK), "the scraper's new token %d during the flood", i)
	}
	close(stop)
	wg.Wait()
	flood := map[int]int64{}
	answers.Range(func(k, v any) bool { flood[k.(int)] = v.(*atomic.Int64).Load(); return true })
	t.Logf("flood answers: %v", flood)
	g.Expect(flood[http.StatusTooManyRequests]).To(BeNumerically(">", 250), "the flood was refused")
}

// The probe and metrics ports answer anyone on the pod network before any token is checked: a
// header beyond 64 KiB is refused (controller-runtime's servers, which served them before, read
// 1 MiB headers for 32 s, and a few hundred stalled connections took a dispatcher's memory).
func TestProbeAndMetricsListenersBoundTheHeader(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprint("secure metrics=", secure), func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t, "acc-probe-headers", "")
			probes, metrics := testsupport.FreeAddr(t), testsupport.FreeAddr(t)
			startStack(t, stackOptions{namespaces: []string{ns}, mutate: func(c *dispatcher.Config) {
				c.ProbeAddress, c.MetricsAddress, c.MetricsSecure = probes, metrics, secure
			}})
			scheme := "http"
			if secure {
				scheme = "https"
			}
			httpc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed on purpose
			get := func(url string, headerBytes int) int {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("X-Padding", strings.Repeat("x", headerBytes))
				resp, err := httpc.Do(req)
				if err != nil {
					return 0
				}
				_ = resp.Body.Close()
				return resp.StatusCode
			}
			for _, url := range []string{"http://" + probes + "/healthz", "http://" + probes + "/readyz", scheme + "://" + metrics + "/metrics"} {
				want := http.StatusOK
				if secure && strings.HasSuffix(url, "/metrics") {
					want = http.StatusUnauthorized // no token
				}
				g.Eventually(func() int { return get(url, 1<<10) }).WithTimeout(20*time.Second).Should(Equal(want), url)
				g.Expect(get(url, dispatcher.MaxHeaderBytes+8<<10)).To(Equal(http.StatusRequestHeaderFieldsTooLarge), url)
			}
		})
	}
}
