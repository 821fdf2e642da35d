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

package console

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/net/html"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/rest"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// fakeClock is a settable clock for session expiry.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// newTestServer returns a console whose API server is unreachable: enough for everything that
// happens before an API call (headers, sessions, CSRF, rendering).
func newTestServer(t *testing.T, insecure bool) (*Server, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, err := New(Config{API: &rest.Config{Host: "https://127.0.0.1:1"}, InsecureCookies: insecure, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

func TestSessionsExpireWhenIdleAndAfterEightHours(t *testing.T) {
	g := NewWithT(t)
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	st := NewSessionStore(clk.Now)
	a, err := st.Create("token-a", "alice")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(a.ID).To(HaveLen(43), "256 bits, base64url")
	g.Expect(a.CSRF).To(HaveLen(43))
	g.Expect(a.CSRF).NotTo(Equal(a.ID))

	// Used every 29 minutes, the session lives on ...
	for elapsed := time.Duration(0); elapsed < AbsoluteTimeout-29*time.Minute; elapsed += 29 * time.Minute {
		clk.t = clk.t.Add(29 * time.Minute)
		_, ok := st.Get(a.ID)
		g.Expect(ok).To(BeTrue(), "after %s", elapsed)
	}
	// ... but not past 8 hours after sign-in, however active.
	clk.t = a.Created.Add(AbsoluteTimeout)
	_, ok := st.Get(a.ID)
	g.Expect(ok).To(BeFalse())
	g.Expect(st.Len()).To(Equal(0), "an expired session is removed, token and all")

	b, _ := st.Create("token-b", "bob")
	clk.t = clk.t.Add(IdleTimeout)
	_, ok = st.Get(b.ID)
	g.Expect(ok).To(BeFalse(), "30 minutes idle ends the session")

	c, _ := st.Create("token-c", "carol")
	clk.t = clk.t.Add(IdleTimeout + time.Second)
	st.Sweep()
	g.Expect(st.Len()).To(Equal(0), "the sweep removes idle sessions nobody asks for")
	_, ok = st.Get(c.ID)
	g.Expect(ok).To(BeFalse())
}

// A page that reloads itself (a running replay's, whose status a tenant can keep "running" for
// ever) does not keep its session alive: a tab left open on it signs out after the idle timeout,
// as any other. Its reloads ask with ?auto=1, which does not count as use.
func TestAPageReloadingItselfDoesNotKeepItsSessionAlive(t *testing.T) {
	g := NewWithT(t)
	s, clk := newTestServer(t, true)
	h := s.Handler()
	a, _ := s.Sessions().Create("token-a", "alice")
	open := func(path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.AddCookie(&http.Cookie{Name: s.sessionCookie, Value: a.ID})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	signedOut := func(rec *httptest.ResponseRecorder) bool {
		return rec.Code == http.StatusSeeOther && rec.Header().Get("Location") == "/signin"
	}
	const page = "/webhooks/team-a/hook/replays/again"
	for range 20 { // reloads every 2 s for 20 minutes
		clk.t = clk.t.Add(time.Minute)
		g.Expect(signedOut(open(page + "?auto=1"))).To(BeFalse())
	}
	clk.t = clk.t.Add(IdleTimeout - 19*time.Minute)
	g.Expect(signedOut(open(page+"?auto=1"))).To(BeTrue(), "30 minutes after the user's last request")

	a, _ = s.Sessions().Create("token-b", "bob")
	for range 40 { // the user's own requests keep it alive
		clk.t = clk.t.Add(time.Minute)
		g.Expect(signedOut(open(page))).To(BeFalse())
	}
}

func TestSessionIDsAreUnique(t *testing.T) {
	st := NewSessionStore(nil)
	seen := map[string]bool{}
	for range 1000 {
		s, err := st.Create("t", "u")
		if err != nil {
			t.Fatal(err)
		}
		if seen[s.ID] || seen[s.CSRF] {
			t.Fatal("repeated random id")
		}
		seen[s.ID], seen[s.CSRF] = true, true
	}
}

// One signer cannot fill the store: a user's sixth session ends its oldest, and the ServiceAccounts
// of one namespace (which its tenant creates at will) share fifty; the store then still has room
// for everyone else. Before, one tenant replaying its own token ten thousand times made every
// other sign-in fail.
func TestOneSignerCannotFillTheSessionStore(t *testing.T) {
	g := NewWithT(t)
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	st := NewSessionStore(clk.Now)
	var first []*Session
	for i := range 2 * maxSessions {
		clk.t = clk.t.Add(time.Millisecond)
		sa := fmt.Sprintf("system:serviceaccount:tenant-a:flood-%d", i%200)
		sess, err := st.Create("token", sa)
		g.Expect(err).NotTo(HaveOccurred(), "sign-in %d", i)
		if i < 5 {
			first = append(first, sess)
		}
	}
	g.Expect(st.Len()).To(Equal(maxPerServiceAccountNamespace), "one namespace's ServiceAccounts share fifty sessions")
	for _, sess := range first {
		_, ok := st.Get(sess.ID)
		g.Expect(ok).To(BeFalse(), "the oldest made room")
	}
	for i := range 7 {
		clk.t = clk.t.Add(time.Millisecond)
		_, err := st.Create("token", "alice")
		g.Expect(err).NotTo(HaveOccurred(), "alice's sign-in %d", i)
	}
	g.Expect(st.Len()).To(Equal(maxPerServiceAccountNamespace+maxPerUser), "a user holds five")
	_, err := st.Create("token", "system:serviceaccount:tenant-b:reader")
	g.Expect(err).NotTo(HaveOccurred(), "another tenant signs in")
	g.Expect(serviceAccountNamespace("system:serviceaccount:ns:name")).To(Equal("ns"))
	g.Expect(serviceAccountNamespace("system:serviceaccounts")).To(BeEmpty())
	g.Expect(serviceAccountNamespace("alice")).To(BeEmpty())
}

// On a cluster that does not let its users ask who they are, the console knows no user name:
// such sign-ins count against the ServiceAccount their token names, or against the token, never
// against one shared "unknown user" (the sixth sign-in of anybody ended the first's session).
func TestUnnamedSignersDoNotShareOneShare(t *testing.T) {
	g := NewWithT(t)
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	st := NewSessionStore(clk.Now)
	var first *Session
	for i := range 2 * maxPerUser {
		clk.t = clk.t.Add(time.Millisecond)
		sess, err := st.Create(fmt.Sprintf("opaque-token-%d", i), "")
		g.Expect(err).NotTo(HaveOccurred())
		if i == 0 {
			first = sess
		}
	}
	g.Expect(st.Len()).To(Equal(2*maxPerUser), "ten users with tokens of their own")
	_, ok := st.Get(first.ID)
	g.Expect(ok).To(BeTrue())
	for range maxPerUser {
		clk.t = clk.t.Add(time.Millisecond)
		_, err := st.Create("opaque-token-1", "")
		g.Expect(err).NotTo(HaveOccurred())
	}
	_, ok = st.Get(first.ID)
	g.Expect(ok).To(BeTrue(), "one token's sign-ins end only that token's sessions")
	unnamed := 2*maxPerUser - 1 + maxPerUser
	g.Expect(st.Len()).To(Equal(unnamed), "that token holds five")

	// ServiceAccount tokens (bound and legacy claims) count against their namespace's share.
	jwt := func(claims string) string {
		return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + ".c2ln"
	}
	for i := range maxPerServiceAccountNamespace + 10 {
		clk.t = clk.t.Add(time.Millisecond)
		claims := fmt.Sprintf(`{"sub":"system:serviceaccount:tenant-a:flood-%[1]d","kubernetes.io":{"namespace":"tenant-a","serviceaccount":{"name":"flood-%[1]d"}}}`, i)
		if i%2 == 1 {
			claims = fmt.Sprintf(`{"sub":"system:serviceaccount:tenant-a:flood-%[1]d","kubernetes.io/serviceaccount/namespace":"tenant-a","kubernetes.io/serviceaccount/service-account.name":"flood-%[1]d"}`, i)
		}
		_, err := st.Create(jwt(claims), "")
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(st.Len()).To(Equal(unnamed+maxPerServiceAccountNamespace), "one namespace's ServiceAccounts share fifty")
	g.Expect(signerOf(jwt(`{"sub":"system:serviceaccount:ns:sa","kubernetes.io":{"namespace":"ns","serviceaccount":{"name":"sa"}}}`), "")).To(Equal("system:serviceaccount:ns:sa"))
	g.Expect(signerOf(jwt(`{"sub":"oidc-user","kubernetes.io":{"namespace":"ns","serviceaccount":{"name":"sa"}}}`), "")).To(HavePrefix("token:"),
		"another issuer's token with ServiceAccount claims counts as itself")
	g.Expect(signerOf("a.b.c", "alice")).To(Equal("alice"), "the API server's name wins")
	g.Expect(signerOf("not-a-jwt", "")).To(HavePrefix("token:"))
	g.Expect(signerOf("not-a-jwt", "")).NotTo(ContainSubstring("not-a-jwt"))
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	s, _ := newTestServer(t, false)
	h := s.Handler()
	for _, path := range []string{"/signin", "/static/console.css", "/static/console.js", "/webhooks", "/nope"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		g := NewWithT(t)
		csp := rec.Header().Get("Content-Security-Policy")
		g.Expect(csp).To(ContainSubstring("default-src 'self'"), path)
		g.Expect(csp).To(ContainSubstring("script-src 'self';"), path)
		g.Expect(csp).To(ContainSubstring("frame-ancestors 'none'"), path)
		g.Expect(csp).NotTo(ContainSubstring("unsafe-"), path)
		g.Expect(rec.Header().Get("X-Content-Type-Options")).To(Equal("nosniff"), path)
		g.Expect(rec.Header().Get("Referrer-Policy")).To(Equal("no-referrer"), path)
		g.Expect(rec.Header().Get("X-Frame-Options")).To(Equal("DENY"), path)
		g.Expect(rec.Header().Get("Strict-Transport-Security")).To(Equal("max-age=31536000"), path)
	}
	dev, _ := newTestServer(t, true)
	rec := httptest.NewRecorder()
	dev.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/signin", nil))
	NewWithT(t).Expect(rec.Header().Get("Strict-Transport-Security")).To(BeEmpty(), "no HSTS for plain-HTTP development on 127.0.0.1")
}

// No template may need 'unsafe-inline': no inline script, event handler attribute or style.
func TestTemplatesHaveNoInlineScriptOrStyle(t *testing.T) {
	files, err := filepath.Glob("templates/*.html")
	if err != nil || len(files) == 0 {
		t.Fatal("no templates", err)
	}
	bad := []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`), // a script element with content
		regexp.MustCompile(`<script\b(?:[^>](?:[^s]|s[^r]|sr[^c]))*>`),
		regexp.MustCompile(`\son[a-z]+\s*=`),
		regexp.MustCompile(`\sstyle\s*=`),
		regexp.MustCompile(`<style\b`),
		regexp.MustCompile(`javascript:`),
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range bad {
			if m := re.Find(b); m != nil && !strings.Contains(string(m), `src="/static/`) {
				t.Errorf("%s: %q", f, m)
			}
		}
	}
}

func TestSignInCookiesAreHostOnlySecureStrict(t *testing.T) {
	g := NewWithT(t)
	s, _ := newTestServer(t, false)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/signin", nil))
	g.Expect(rec.Code).To(Equal(http.StatusOK))
	cookies := rec.Result().Cookies()
	g.Expect(cookies).To(HaveLen(1))
	c := cookies[0]
	g.Expect(c.Name).To(HavePrefix("__Host-"))
	g.Expect(c.Secure).To(BeTrue())
	g.Expect(c.HttpOnly).To(BeTrue())
	g.Expect(c.SameSite).To(Equal(http.SameSiteStrictMode))
	g.Expect(c.Path).To(Equal("/"))
	g.Expect(c.Domain).To(BeEmpty())
	g.Expect(rec.Body.String()).To(ContainSubstring(`name="nonce" value="` + c.Value + `"`))

	dev, _ := newTestServer(t, true)
	rec = httptest.NewRecorder()
	dev.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/signin", nil))
	c = rec.Result().Cookies()[0]
	g.Expect(c.Secure).To(BeFalse(), "dev mode on http://127.0.0.1")
	g.Expect(c.Name).NotTo(HavePrefix("__Host-"))
	g.Expect(c.HttpOnly).To(BeTrue())
	g.Expect(c.SameSite).To(Equal(http.SameSiteStrictMode))
}

// Login CSRF: a cross-site form posting a token (the attacker's) without the nonce cookie, or with
// a nonce that is not the cookie's, signs nobody in.
func TestSignInNeedsTheFormsNonce(t *testing.T) {
	g := NewWithT(t)
	s, _ := newTestServer(t, true)
	h := s.Handler()
	post := func(nonceCookie, nonceField string) *httptest.ResponseRecorder {
		form := url.Values{"token": {"attacker-token"}, "nonce": {nonceField}}
		req := httptest.NewRequest(http.MethodPost, "/signin", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if nonceCookie != "" {
			req.AddCookie(&http.Cookie{Name: s.signinCookie, Value: nonceCookie})
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	g.Expect(post("", "").Code).To(Equal(http.StatusForbidden))
	g.Expect(post("", "guess").Code).To(Equal(http.StatusForbidden))
	g.Expect(post("abc", "abd").Code).To(Equal(http.StatusForbidden))
	g.Expect(s.Sessions().Len()).To(Equal(0))
	// With a matching nonce the token goes to the API server (here unreachable): 502, no session.
	g.Expect(post("abc", "abc").Code).To(Equal(http.StatusBadGateway))
	g.Expect(s.Sessions().Len()).To(Equal(0))
}

// Anyone on the network may fetch a sign-in form and post tokens with its nonce, each sent to the
// API server to be reviewed: one client address gets signInBurst of them, then 429, while another
// address still signs in.
func TestSignInsFromOneAddressAreBounded(t *testing.T) {
	g := NewWithT(t)
	s, _ := newTestServer(t, true)
	h := s.Handler()
	post := func(addr, forwarded string) int { return postSignIn(s, h, addr, forwarded) }
	reviewed := 0
	for range signInBurst + 20 {
		if post("192.0.2.7:40000", "") == http.StatusBadGateway { // the token went to the (unreachable) API server
			reviewed++
		}
	}
	g.Expect(reviewed).To(BeNumerically("<=", signInBurst+1), "a refill of at most one during the loop")
	g.Expect(post("192.0.2.7:40001", "")).To(Equal(http.StatusTooManyRequests))
	g.Expect(post("198.51.100.9:40000", "")).To(Equal(http.StatusBadGateway), "another address is not held up")

	// Behind a proxy every request comes from the proxy: the client is the address the proxy
	// appended to X-Forwarded-For, whatever the client wrote before it.
	proxied, err := New(Config{API: &rest.Config{Host: "https://127.0.0.1:1"}, InsecureCookies: true, BehindProxy: true})
	g.Expect(err).NotTo(HaveOccurred())
	s, h = proxied, proxied.Handler()
	for i := range signInBurst + 1 {
		post("10.0.0.1:5000", fmt.Sprintf("198.51.100.%d, 203.0.113.5", i))
	}
	g.Expect(post("10.0.0.1:5000", "192.0.2.99, 203.0.113.5")).To(Equal(http.StatusTooManyRequests), "the flooding client")
	g.Expect(post("10.0.0.1:5000", "203.0.113.6")).To(Equal(http.StatusBadGateway), "another client behind the same proxy")
}

// postSignIn posts a guessed token to s's sign-in form, with the form's nonce, from addr (and
// X-Forwarded-For forwarded, when set), and returns the answer's status: 502 when the token went to
// the (unreachable) API server to be reviewed.
func postSignIn(s *Server, h http.Handler, addr, forwarded string) int {
	form := url.Values{"token": {"guessed-token"}, "nonce": {"abc"}}
	req := httptest.NewRequest(http.MethodPost, "/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: s.signinCookie, Value: "abc"})
	req.RemoteAddr = addr
	if forwarded != "" {
		req.Header.Set("X-Forwarded-For", forwarded)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// Behind --behind-tls-proxy the client's address is what X-Forwarded-For says last, and a pod that
// reaches the console's Service directly, past the proxy, writes it as it likes: with a new
// address for each sign-in it escaped the bound per address, and made the API server review as
// many guessed tokens as it sent. All addresses together now start allSignInBurst, then
// allSignInsPerSecond (the clock is the console's, here a fake one).
func TestSignInsFromAllAddressesAreBounded(t *testing.T) {
	g := NewWithT(t)
	clk := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, err := New(Config{API: &rest.Config{Host: "https://127.0.0.1:1"}, InsecureCookies: true, BehindProxy: true, Now: clk.Now})
	g.Expect(err).NotTo(HaveOccurred())
	h := s.Handler()
	i := 0
	reviews := func(n int) (reviewed int) {
		for range n {
			i++
			code := postSignIn(s, h, "10.0.0.1:5000", fmt.Sprintf("198.51.%d.%d", i/256, i%256))
			if code == http.StatusBadGateway {
				reviewed++
			} else {
				g.Expect(code).To(Equal(http.StatusTooManyRequests))
			}
		}
		return reviewed
	}
	g.Expect(reviews(allSignInBurst+50)).To(Equal(allSignInBurst), "a new address each time")
	clk.t = clk.t.Add(time.Second)
	g.Expect(reviews(allSignInsPerSecond+10)).To(Equal(allSignInsPerSecond), "a second later")

	// The bound is the console's to set.
	s, err = New(Config{API: &rest.Config{Host: "https://127.0.0.1:1"}, InsecureCookies: true, BehindProxy: true, Now: clk.Now,
		AllSignInsPerSecond: 1, AllSignInBurst: 3})
	g.Expect(err).NotTo(HaveOccurred())
	h = s.Handler()
	g.Expect(reviews(10)).To(Equal(3))
	clk.t = clk.t.Add(2 * time.Second)
	g.Expect(reviews(10)).To(Equal(2))
}

// With --trusted-proxies, X-Forwarded-For is read only from the proxies: a pod reaching the console's
// Service directly is known by its own address however many it writes there, and held to the bound
// per address (signInBurst); the proxy's requests still count per client.
func TestXForwardedForIsReadOnlyFromTrustedProxies(t *testing.T) {
	g := NewWithT(t)
	clk := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, err := New(Config{API: &rest.Config{Host: "https://127.0.0.1:1"}, InsecureCookies: true, BehindProxy: true, Now: clk.Now,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}})
	g.Expect(err).NotTo(HaveOccurred())
	h := s.Handler()
	reviews := func(peer string, n, from int) (reviewed int) {
		for i := from; i < from+n; i++ {
			switch code := postSignIn(s, h, peer, fmt.Sprintf("198.51.%d.%d", i/256, i%256)); code {
			case http.StatusBadGateway:
				reviewed++
			default:
				g.Expect(code).To(Equal(http.StatusTooManyRequests))
			}
		}
		return reviewed
	}
	g.Expect(reviews("192.0.2.7:5000", signInBurst+10, 0)).To(Equal(signInBurst), "a peer that is not a proxy, with a new X-Forwarded-For each time")
	g.Expect(reviews("10.0.0.9:5000", signInBurst+10, 1000)).To(Equal(signInBurst+10), "the proxy, for as many clients")
	g.Expect(reviews("[::ffff:10.0.0.9]:5000", signInBurst+10, 2000)).To(Equal(signInBurst+10), "the proxy, IPv4-mapped")

	// Two proxies (a load balancer in front of the Ingress): the client is the address left of every
	// trusted one, not the load balancer's for everybody; what the client wrote further left counts
	// for nothing.
	key := func(peer string, forwarded ...string) string {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = peer
		for _, f := range forwarded {
			req.Header.Add("X-Forwarded-For", f)
		}
		return s.clientAddress(req)
	}
	g.Expect(key("10.0.0.9:5000", "203.0.113.5, 198.51.100.7, 10.0.0.3")).To(Equal("198.51.100.7"))
	g.Expect(key("10.0.0.9:5000", "203.0.113.5", "198.51.100.7", "10.0.0.3")).To(Equal("198.51.100.7"), "one header per hop")
	g.Expect(key("10.0.0.9:5000", "10.0.0.4, 10.0.0.3")).To(Equal("10.0.0.4"), "only proxies: the first")
	g.Expect(key("10.0.0.9:5000", "junk, 10.0.0.3")).To(Equal("10.0.0.9"), "unreadable: the peer")
	g.Expect(key("192.0.2.7:5000", "198.51.100.7")).To(Equal("192.0.2.7"), "not a proxy")
}

// Every POST of a signed-in user must carry the session's CSRF token.
func TestPostsNeedTheSessionsCSRFToken(t *testing.T) {
	s, clk := newTestServer(t, true)
	h := s.Handler()
	sess, err := s.Sessions().Create("token", "system:serviceaccount:team-a:alice")
	if err != nil {
		t.Fatal(err)
	}
	post := func(path, csrf string, cookie bool) *httptest.ResponseRecorder {
		form := url.Values{"namespace": {"team-b"}}
		if csrf != "" {
			form.Set("csrf", csrf)
		}
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if cookie {
			req.AddCookie(&http.Cookie{Name: s.sessionCookie, Value: sess.ID})
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	g := NewWithT(t)
	for _, path := range []string{"/signout", "/namespaces", "/webhooks/new", "/webhooks/team-a/w/edit",
		"/webhooks/team-a/w/delete", "/webhooks/team-a/w/deactivate", "/webhooks/team-a/w/reactivate", "/webhooks/team-a/w/replays",
		"/webhooks/team-a/w/test"} {
		g.Expect(post(path, "", true).Code).To(Equal(http.StatusForbidden), path)
		g.Expect(post(path, "wrong", true).Code).To(Equal(http.StatusForbidden), path)
		g.Expect(post(path, sess.ID, true).Code).To(Equal(http.StatusForbidden), "the session id is not the CSRF token: %s", path)
		g.Expect(post(path, sess.CSRF, false).Code).To(Equal(http.StatusForbidden), "no session: %s", path)
	}
	got, ok := s.Sessions().Get(sess.ID)
	g.Expect(ok).To(BeTrue())
	g.Expect(got.Namespaces).To(BeEmpty(), "no forged POST changed anything")

	rec := post("/namespaces", sess.CSRF, true)
	g.Expect(rec.Code).To(Equal(http.StatusSeeOther))
	got, _ = s.Sessions().Get(sess.ID)
	g.Expect(got.Namespaces).To(Equal([]string{"team-b"}))

	rec = post("/signout", sess.CSRF, true)
	g.Expect(rec.Code).To(Equal(http.StatusSeeOther))
	g.Expect(rec.Header().Get("Location")).To(Equal("/signin"))
	_, ok = s.Sessions().Get(sess.ID)
	g.Expect(ok).To(BeFalse(), "signed out")

	// An expired session is sent to sign in.
	sess2, _ := s.Sessions().Create("token", "bob")
	clk.t = clk.t.Add(IdleTimeout)
	req := httptest.NewRequest(http.MethodGet, "/webhooks", nil)
	req.AddCookie(&http.Cookie{Name: s.sessionCookie, Value: sess2.ID})
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	g.Expect(rec.Code).To(Equal(http.StatusSeeOther))
	g.Expect(rec.Header().Get("Location")).To(Equal("/signin"))
}

func TestPathsThatAreNotNamesAreNotFound(t *testing.T) {
	s, _ := newTestServer(t, true)
	h := s.Handler()
	sess, _ := s.Sessions().Create("token", "alice")
	for _, path := range []string{"/webhooks/team-a/x%2Fstatus", "/webhooks/Team_A/x", "/webhooks/team-a/x/suspend"} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.AddCookie(&http.Cookie{Name: s.sessionCookie, Value: sess.ID})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, rec.Code)
		}
	}
}

func TestErrorTextIsEscaped(t *testing.T) {
	s, _ := newTestServer(t, true)
	rec := httptest.NewRecorder()
	s.renderError(rec, httptest.NewRequest(http.MethodGet, "/x", nil), localizerFor("en"), nil, http.StatusBadGateway, `<script>alert(1)</script>`)
	body := rec.Body.String()
	if strings.Contains(body, "<script>alert") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatalf("not escaped: %s", body)
	}
}

// fakeKubeAPI stands in for the API server: team-a/hook is the one Webhook the user may get, and
// everything else is forbidden, the refusal quoting what was asked as the API server's quotes the
// namespace.
func fakeKubeAPI(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodGet && r.URL.Path == "/apis/hookline.io/v1alpha1/namespaces/team-a/webhooks/hook" {
			_ = json.NewEncoder(w).Encode(hooklinev1.Webhook{TypeMeta: metav1.TypeMeta{Kind: "Webhook", APIVersion: hooklinev1.GroupVersion.String()},
				ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "hook", UID: "uid-1"}})
			return
		}
		st := apierrors.NewForbidden(schema.GroupResource{Group: "hookline.io", Resource: "webhooks"}, "", fmt.Errorf("may not %s %q", r.Method, r.URL.Path)).ErrStatus
		st.Kind, st.APIVersion = "Status", "v1"
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(st)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Anyone can link to the list page with a namespace filter: a name that is not a namespace's is
// refused in the console's words before any call, never shown. The API server's refusal of such a
// "namespace" was listed as a namespace one may not list, and client-go's refusal of one with a
// slash was quoted whole on a 502 page: either way, a link chose a sentence of the page.
func TestALinkCannotPutItsTextOnTheListPage(t *testing.T) {
	api := fakeKubeAPI(t)
	s, err := New(Config{API: &rest.Config{Host: api.URL}, InsecureCookies: true})
	if err != nil {
		t.Fatal(err)
	}
	sess, _ := s.Sessions().Create("token-b", "bob")
	get := func(namespace string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, "/webhooks?namespace="+url.QueryEscape(namespace), nil)
		req.AddCookie(&http.Cookie{Name: s.sessionCookie, Value: sess.ID})
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	for _, sentence := range []string{
		"Your session expired so call the help desk at 555 0100 with your token",
		"Your session expired: sign in again at evil.example/console with your token",
	} {
		code, body := get(sentence)
		if strings.Contains(body, sentence) || strings.Contains(body, "with your token") {
			t.Errorf("%q: the page says it (%d): %s", sentence, code, body)
		}
		if code != http.StatusBadRequest || !strings.Contains(body, "not a valid namespace name") {
			t.Errorf("%q: %d, want 400 with the console's own message", sentence, code)
		}
	}
	// A namespace's name is still asked for, and a refusal named.
	if code, body := get("team-b"); code != http.StatusOK || !strings.Contains(body, "You may not list webhooks in: team-b") {
		t.Errorf("team-b: %d, want the list saying team-b may not be listed: %s", code, body)
	}
}

func TestCatalogsComplete(t *testing.T) {
	g := NewWithT(t)
	en := catalogs["en"]
	verbs := regexp.MustCompile(`%(\[\d+\])?[sdv]`)
	for tag, m := range catalogs {
		for k, v := range en {
			other, ok := m[k]
			g.Expect(ok).To(BeTrue(), "%s lacks %q", tag, k)
			g.Expect(other).NotTo(BeEmpty(), "%s: %q is empty", tag, k)
			g.Expect(verbs.FindAllString(other, -1)).To(HaveLen(len(verbs.FindAllString(v, -1))), "%s: %q has other arguments than English", tag, k)
		}
		for k := range m {
			_, ok := en[k]
			g.Expect(ok).To(BeTrue(), "%s has %q, which English lacks", tag, k)
		}
	}
	g.Expect(catalogs).To(HaveLen(4))
	for _, tag := range []string{"en", "zh-Hant", "zh-Hans", "da"} {
		g.Expect(catalogs).To(HaveKey(tag))
	}
}

// Every message key the templates and the code use exists: literal keys are read from the
// sources, keys built with printf are expanded from the values they are built from.
func TestEveryUsedKeyIsInTheCatalog(t *testing.T) {
	used := map[string]bool{}
	literal := regexp.MustCompile(`\bT "([a-zA-Z.]+)"|L\.T\("([a-zA-Z.]+)"`)
	files, _ := filepath.Glob("templates/*.html")
	gofiles, _ := filepath.Glob("*.go")
	for _, f := range append(files, gofiles...) {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range literal.FindAllStringSubmatch(string(b), -1) {
			k := m[1] + m[2]
			if !strings.HasSuffix(k, ".") {
				used[k] = true
			}
		}
	}
	for _, s := range []string{"Active", "Inactive", "Disabled", "ACTIVE", "INACTIVE"} {
		used["state."+s] = true
	}
	for _, s := range []string{"ACCOUNT", "GROUP", "USER", "RESOURCE"} {
		used["scope."+s] = true
	}
	for _, f := range eventFamilies {
		used["family."+string(f.Family)] = true
	}
	for _, p := range conditionalParams {
		used["family."+p.Family] = true
		used["param."+p.Field] = true
	}
	for a := range actions {
		used["action."+a] = true
		for _, part := range []string{"title", "question", "effect"} {
			used["confirm."+a+"."+part] = true
		}
	}
	for _, st := range logStates {
		used["log.state."+st] = true
	}
	for _, k := range []string{"attempt", "dropped", "cancelled", "lost", "replayQueued"} {
		used["log.kind."+k] = true
	}
	for _, d := range []string{"created", "updated", "deactivated", "reactivated"} {
		used["done."+d] = true
	}
	for _, refused := range []string{testNotActive, testTooMany} {
		used["test."+refused] = true
	}
	var missing []string
	for k := range used {
		if _, ok := catalogs["en"][k]; !ok {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("keys missing from the catalog: %v", missing)
	}
	if len(used) < 100 {
		t.Fatalf("found only %d keys: is the key pattern still right?", len(used))
	}
}

func TestLanguageNegotiation(t *testing.T) {
	for _, tc := range []struct{ accept, cookie, want string }{
		{"", "", "en"},
		{"zh-TW,zh;q=0.9,en;q=0.8", "", "zh-Hant"},
		{"zh-Hant-HK", "", "zh-Hant"},
		{"zh-CN", "", "zh-Hans"},
		{"zh", "", "zh-Hans"},
		{"zh-SG,en;q=0.5", "", "zh-Hans"},
		{"zh-HK", "", "zh-Hant"},
		{"da", "zh-Hans", "zh-Hans"},
		{"da-DK,da;q=0.9", "", "da"},
		{"fr-FR,de;q=0.5", "", "en"},
		{"en-GB,da;q=0.8", "", "en"},
		{"da", "zh-Hant", "zh-Hant"},
		{"da", "xx", "da"},
		{"garbage;;;", "", "en"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tc.accept != "" {
			r.Header.Set("Accept-Language", tc.accept)
		}
		if tc.cookie != "" {
			r.AddCookie(&http.Cookie{Name: langCookie, Value: tc.cookie})
		}
		if got := negotiate(r).Lang; got != tc.want {
			t.Errorf("Accept-Language %q, cookie %q: %s, want %s", tc.accept, tc.cookie, got, tc.want)
		}
	}
}

func TestLanguageSwitchSetsACookieAndStaysOnSite(t *testing.T) {
	g := NewWithT(t)
	s, _ := newTestServer(t, true)
	h := s.Handler()
	for next, want := range map[string]string{
		"/webhooks?q=a": "/webhooks?q=a", "//evil.example/": "/", "https://evil.example/": "/", "/\\evil.example": "/", "": "/",
		// A browser drops tabs and line breaks and reads a backslash as a slash: each of these is
		// "//evil.example" to it. An escaped tab stays a path on this site.
		"/\t/evil.example": "/", "/\t\\evil.example": "/", "/\n/evil.example": "/", "/webhooks\\..\\/evil.example": "/",
		"/\x7f/evil.example": "/", "/%09/evil.example": "/%09/evil.example",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/lang?l=da&next="+url.QueryEscape(next), nil))
		g.Expect(rec.Code).To(Equal(http.StatusSeeOther))
		g.Expect(rec.Header().Get("Location")).To(Equal(want), next)
		g.Expect(rec.Result().Cookies()[0].Value).To(Equal("da"))
	}
	// The page comes back in Danish.
	req := httptest.NewRequest(http.MethodGet, "/signin", nil)
	req.AddCookie(&http.Cookie{Name: langCookie, Value: "da"})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Body)
	g.Expect(string(body)).To(ContainSubstring(`<html lang="da">`))
	g.Expect(string(body)).To(ContainSubstring(catalogs["da"]["signin.submit"]))
}

func TestAPIFieldErrorsGoNextToTheirFields(t *testing.T) {
	g := NewWithT(t)
	err := apierrors.NewInvalid(schema.GroupKind{Group: "hookline.io", Kind: "Webhook"}, "w", field.ErrorList{
		field.Invalid(field.NewPath("spec", "url"), "ftp://x", "spec.url must be an absolute http(s) URL"),
		field.Invalid(field.NewPath("spec", "events").Index(2), "NOPE", "unknown event name"),
		field.Required(field.NewPath("spec", "resource", "id"), ""),
		field.Invalid(field.NewPath("spec", "conditionalParams", "agreement"), nil, "needs an agreement event"),
		field.Invalid(field.NewPath("metadata", "name"), "A", "a lowercase RFC 1123 subdomain"),
		field.Forbidden(field.NewPath("spec", "somethingNew"), "nope"),
	})
	fe := errorsFromAPI(err)
	g.Expect(fe.Fields["url"]).To(ConsistOf(ContainSubstring("absolute http(s) URL")))
	g.Expect(fe.Fields["events"]).To(ConsistOf(ContainSubstring("unknown event name")))
	g.Expect(fe.Fields["resourceId"]).To(HaveLen(1))
	g.Expect(fe.Fields["conditionalParams"]).To(HaveLen(1))
	g.Expect(fe.Fields["name"]).To(HaveLen(1))
	g.Expect(fe.General).To(ConsistOf(ContainSubstring("spec.somethingNew")))
}

func TestFormRoundTripsEverySpecField(t *testing.T) {
	g := NewWithT(t)
	spec := hooklinev1.WebhookSpec{
		URL: "https://r.example/h", State: hooklinev1.StateInactive, Scope: hooklinev1.ScopeResource,
		Resource: &hooklinev1.WebhookResource{Type: hooklinev1.ResourceAgreement, ID: "CBJ123"},
		Events:   []hooklinev1.EventName{"AGREEMENT_ALL", "WIDGET_CREATED", "envelopeExpired"},
		ConditionalParams: &hooklinev1.ConditionalParams{
			Agreement: &hooklinev1.AgreementConditionalParams{IncludeDetailedInfo: true, IncludeSignedDocuments: true},
			Widget:    &hooklinev1.WidgetConditionalParams{IncludeDocumentsInfo: true},
		},
		ClientID:                   "client-1",
		ClientCertificateSecretRef: &hooklinev1.SecretReference{Name: "mtls"},
		Signing:                    &hooklinev1.WebhookSigning{SecretRef: hooklinev1.SecretReference{Name: "sig"}},
		ProblemNotificationEmails:  []hooklinev1.Email{"a@example.com", "b@example.com"},
	}
	wh := &hooklinev1.Webhook{Spec: spec}
	var back hooklinev1.WebhookSpec
	formFromWebhook(wh).applyTo(&back)
	want, _ := json.Marshal(spec)
	got, _ := json.Marshal(back)
	g.Expect(string(got)).To(MatchJSON(string(want)))

	// Through an HTTP form too.
	f := formFromWebhook(wh)
	vals := url.Values{"url": {f.URL}, "state": {f.State}, "scope": {f.Scope}, "resourceType": {f.ResourceType},
		"resourceId": {f.ResourceID}, "extraEvents": {f.ExtraEvents}, "clientId": {f.ClientID},
		"clientCertificateSecret": {f.ClientCertSecret}, "signingSecret": {f.SigningSecret}, "problemNotificationEmails": {f.Emails}}
	for e := range f.Events {
		vals.Add("events", e)
	}
	for p := range f.Params {
		vals.Set(p, "on")
	}
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(vals.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	g.Expect(req.ParseForm()).To(Succeed())
	var viaHTTP hooklinev1.WebhookSpec
	formFromRequest(req).applyTo(&viaHTTP)
	got, _ = json.Marshal(viaHTTP)
	g.Expect(string(got)).To(MatchJSON(string(want)))
}

func TestCandidateNamespaces(t *testing.T) {
	g := NewWithT(t)
	g.Expect(candidateNamespaces("system:serviceaccount:team-a:alice", []string{"shared", "team-a"}, []string{"team-b", "shared"})).
		To(Equal([]string{"team-a", "shared", "team-b"}))
	g.Expect(candidateNamespaces("oidc:alice@example.com", nil, []string{"x"})).To(Equal([]string{"x"}))
}

// Screen readers: every control of the form, the list's filters and the sign-in page has a label.
func TestEveryControlHasALabel(t *testing.T) {
	s, _ := newTestServer(t, true)
	sess, _ := s.Sessions().Create("token", "system:serviceaccount:team-a:alice")
	rc := &reqCtx{sess: *sess, L: localizerFor("da")}
	pages := map[string]string{}
	for _, editing := range []bool{false, true} {
		rec := httptest.NewRecorder()
		f := webhookForm{Namespace: "team-a", Name: "w", Scope: "RESOURCE", State: "ACTIVE", Events: map[string]bool{"AGREEMENT_ALL": true}, Params: map[string]bool{}}
		s.showForm(rec, httptest.NewRequest(http.MethodGet, "/webhooks/new", nil), rc, http.StatusOK, f, editing,
			formErrors{Fields: map[string][]string{"url": {"bad <url>"}}}, false)
		pages[fmt.Sprintf("form (editing %v)", editing)] = rec.Body.String()
	}
	rec := httptest.NewRecorder()
	s.render(rec, httptest.NewRequest(http.MethodGet, "/webhooks", nil), http.StatusOK, "list", s.page(rc, "x", listData{}))
	pages["list"] = rec.Body.String()
	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/signin", nil))
	pages["signin"] = rec.Body.String()

	for name, body := range pages {
		doc, err := html.Parse(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		labels := map[string]bool{}
		var controls []string
		var walk func(n *html.Node)
		walk = func(n *html.Node) {
			if n.Type == html.ElementNode {
				attr := map[string]string{}
				for _, a := range n.Attr {
					attr[a.Key] = a.Val
				}
				switch n.Data {
				case "label":
					labels[attr["for"]] = true
				case "input":
					if attr["type"] != "hidden" && attr["type"] != "submit" {
						controls = append(controls, attr["id"])
					}
				case "select", "textarea":
					controls = append(controls, attr["id"])
				}
			}
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				walk(c)
			}
		}
		walk(doc)
		if len(controls) == 0 {
			t.Fatalf("%s: no controls found", name)
		}
		for _, id := range controls {
			if id == "" || !labels[id] {
				t.Errorf("%s: control %q has no label", name, id)
			}
		}
		if !strings.Contains(body, `class="skip" href="#main"`) {
			t.Errorf("%s: no skip link", name)
		}
	}
	if !strings.Contains(pages["form (editing false)"], `aria-invalid="true"`) || !strings.Contains(pages["form (editing false)"], "bad &lt;url&gt;") {
		t.Error("the field error is not tied to its field or not escaped")
	}
}
