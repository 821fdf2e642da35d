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

package browser

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/console"
	"github.com/hookline/hookline/internal/echo"
	"github.com/hookline/hookline/internal/tenancy"
)

// tenant is a namespace bound to an account with a ServiceAccount that may manage the webhooks
// there, and nothing else.
type tenant struct {
	ns, user, token string
}

func newTenant(t *testing.T, account string) tenant {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "console-", Labels: map[string]string{tenancy.AccountLabel: account}}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "admin"}})).To(Succeed())
	g.Expect(k8s.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "webhook-admin"}, Rules: tenantRules})).To(Succeed())
	g.Expect(k8s.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "webhook-admin"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "webhook-admin"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns.Name, Name: "admin"}}})).To(Succeed())
	cs, err := kubernetes.NewForConfig(env.Config)
	g.Expect(err).NotTo(HaveOccurred())
	tr, err := cs.CoreV1().ServiceAccounts(ns.Name).CreateToken(ctx, "admin", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	return tenant{ns: ns.Name, user: "system:serviceaccount:" + ns.Name + ":admin", token: tr.Status.Token}
}

// startConsole serves the console on 127.0.0.1 over plain HTTP (cookies without Secure, as
// --insecure-dev-http does), reaching the API server with no credentials of its own.
func startConsole(t *testing.T) string {
	t.Helper()
	return startConsoleWith(t, nil)
}

// startConsoleWith is startConsole reading the delivery log from the read API deliveries.
func startConsoleWith(t *testing.T, deliveries *console.LogAPI) string {
	t.Helper()
	return startConsoleWithConfig(t, console.Config{Deliveries: deliveries})
}

// startConsoleWithConfig is startConsole with cfg's settings.
func startConsoleWithConfig(t *testing.T, cfg console.Config) string {
	t.Helper()
	cfg.API, cfg.InsecureCookies = env.Config, true
	srv, err := console.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}

// startReceiver answers intent verification by echoing the client id, as an Acrobat Sign
// receiver does.
func startReceiver(t *testing.T) string {
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(echo.Header, r.Header.Get(echo.Header))
	}))
	t.Cleanup(rc.Close)
	return rc.URL + "/hooks"
}

// browser is one headless Chromium with its own profile; it records what the page logs so that
// a CSP violation or a script error fails the test.
type browser struct {
	t    *testing.T
	g    *WithT
	ctx  context.Context
	base string
	mu   sync.Mutex
	logs []string
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	b := &browser{t: t, g: NewWithT(t), ctx: ctx, base: base}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.logs = append(b.logs, string(m.Type)+": "+m.Text+" ("+m.URL+")")
			b.mu.Unlock()
		}
	}()
	return b
}

// shot saves the viewport as <name>.png in $HOOKLINE_SCREENSHOTS, when set: make
// console-screenshots refreshes the pictures of docs/console.md this way.
func (b *browser) shot(name string) {
	b.t.Helper()
	dir := os.Getenv("HOOKLINE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatal(err)
	}
}

// submit clicks sel, waits for the page that follows, and returns its HTTP status and path.
func (b *browser) submit(sel chromedp.ID) (int, string) {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Click(sel))
	if err != nil {
		b.t.Fatalf("clicking %s: %v", sel, err)
	}
	u, _ := url.Parse(resp.URL)
	return int(resp.Status), u.Path
}

// open navigates to path and returns the HTTP status.
func (b *browser) open(path string) int {
	b.t.Helper()
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(b.base+path))
	if err != nil {
		b.t.Fatalf("opening %s: %v", path, err)
	}
	return int(resp.Status)
}

func (b *browser) text(sel chromedp.CSS) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(sel))
	if err != nil {
		b.t.Fatalf("reading %s: %v", sel, err)
	}
	return s
}

// textContent reads an element's text whether or not it is rendered (in a closed <details>).
func (b *browser) textContent(sel chromedp.CSS) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.TextContent(sel))
	if err != nil {
		b.t.Fatalf("reading %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func (b *browser) attr(sel chromedp.CSS, name string) chromedp.AttributeResult {
	b.t.Helper()
	a, err := chromedp.Run(b.ctx, chromedp.AttributeValue(sel, name))
	if err != nil {
		b.t.Fatalf("reading %s[%s]: %v", sel, name, err)
	}
	return a
}

// attrNow reads an attribute of the first element matching sel as the page is now, without
// waiting for one to appear ("" when none matches): for polls that re-open a page until a row
// shows up, where attr would wait on a page that no longer changes.
func (b *browser) attrNow(sel chromedp.CSS, name string) string {
	b.t.Helper()
	nodes, err := chromedp.Run(b.ctx, chromedp.Nodes(chromedp.CSSAll(string(sel)), chromedp.AtLeast(0)))
	if err != nil {
		b.t.Fatalf("reading %s[%s]: %v", sel, name, err)
	}
	if len(nodes) == 0 {
		return ""
	}
	return nodes[0].AttributeValue(name)
}

func (b *browser) html(sel chromedp.CSS) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.OuterHTML(sel))
	if err != nil {
		b.t.Fatalf("reading %s: %v", sel, err)
	}
	return s
}

func (b *browser) signIn(tn tenant) {
	b.t.Helper()
	b.g.Expect(b.open("/signin")).To(Equal(http.StatusOK))
	b.do(chromedp.SetValue(chromedp.ID("token"), tn.token))
	status, path := b.submit("signin")
	b.g.Expect(status).To(Equal(http.StatusOK))
	b.g.Expect(path).To(Equal("/webhooks"))
	b.g.Expect(b.text("#user")).To(ContainSubstring(tn.user))
}

// sessionCookie returns the session cookie as the browser stores it.
func (b *browser) sessionCookie() *network.Cookie {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.base}})
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == "hookline-session" {
			return c
		}
	}
	return nil
}

// webhookState polls the webhook's page until it shows the observed state want.
func (b *browser) eventuallyShowsState(tn tenant, name, want string) {
	b.t.Helper()
	b.g.Eventually(func() string {
		b.open("/webhooks/" + tn.ns + "/" + name)
		return b.attr("#observed-state", "data-state").Value
	}).WithTimeout(30 * time.Second).WithPolling(300 * time.Millisecond).Should(Equal(want))
}

func (b *browser) expectCleanConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.logs {
		// The error pages (404, 422, 403) are logged as failed loads; they are expected.
		if strings.Contains(l, "Failed to load resource: the server responded with a status of") && !strings.Contains(l, "/static/") {
			continue
		}
		if strings.HasPrefix(l, "error") || strings.HasPrefix(l, "exception") || strings.Contains(l, "Content Security Policy") {
			b.t.Errorf("browser console: %s", l)
		}
	}
}

// rawRequest sends a request with a session cookie outside the browser, as a forged request would.
func rawRequest(t *testing.T, method, u, session string, form url.Values) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "hookline-session", Value: session})
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp
}

// A tenant signs in with a ServiceAccount token, creates a webhook through the form (an invalid
// form first: the API server's message shows next to the field), sees it become Active,
// deactivates, reactivates and edits it; another tenant can neither see nor open nor change it;
// the first deletes it.
func TestWebhookLifecycleInTheBrowser(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	base := startConsole(t)
	a, bTenant := newTenant(t, "acc-console-a"), newTenant(t, "acc-console-b")
	receiver := startReceiver(t)
	br := newBrowser(t, base)

	// Sign-in, and the cookie as the browser keeps it.
	br.signIn(a)
	c := br.sessionCookie()
	g.Expect(c).NotTo(BeNil())
	g.Expect(c.HTTPOnly).To(BeTrue())
	g.Expect(c.SameSite).To(Equal(network.CookieSameSiteStrict))
	g.Expect(c.Value).To(HaveLen(43))
	aSession := c.Value

	// The form: console.js runs under the CSP and hides the fields other scopes use.
	g.Expect(br.open("/webhooks/new")).To(Equal(http.StatusOK))
	br.do(chromedp.Query(chromedp.CSS(`[data-scope="GROUP"][hidden]`)))
	g.Expect(br.attr(`#namespace`, "value").Value).To(Equal(a.ns), "a ServiceAccount's namespace is the default")

	// An invalid URL: the API server's dry run answers, its message shows next to the field.
	br.do(chromedp.SetValue(chromedp.ID("name"), "orders"), chromedp.SetValue(chromedp.ID("url"), "ftp://receiver.example/hooks"),
		chromedp.Click(chromedp.CSS("details.family summary")), chromedp.Click(chromedp.ID("ev-AGREEMENT_ALL")))
	status, _ := br.submit("save")
	g.Expect(status).To(Equal(http.StatusUnprocessableEntity))
	g.Expect(br.text("#url-error .field-error")).To(ContainSubstring("spec.url must be an absolute http(s) URL"))
	g.Expect(br.attr("#url", "aria-invalid").Value).To(Equal("true"))
	g.Expect(br.attr("#ev-AGREEMENT_ALL", "checked").Exists).To(BeTrue(), "the form keeps what was entered")
	br.do(chromedp.ScrollIntoView(chromedp.ID("url")))
	br.shot("form-error")
	err := k8s.Get(ctx, client.ObjectKey{Namespace: a.ns, Name: "orders"}, &hooklinev1.Webhook{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "a dry run creates nothing: %v", err)

	// Fixed, created, verified: Active.
	br.do(chromedp.SetValue(chromedp.ID("url"), receiver))
	status, path := br.submit("save")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(path).To(Equal("/webhooks/" + a.ns + "/orders"))
	g.Expect(br.text("#done")).NotTo(BeEmpty())
	br.eventuallyShowsState(a, "orders", "Active")
	g.Expect(br.html("#conditions")).To(ContainSubstring(`data-condition="Ready"`))
	br.shot("webhook")

	// The list shows it, filtered and searched.
	g.Expect(br.open("/webhooks?q=orders&state=Active")).To(Equal(http.StatusOK))
	g.Expect(br.attr(chromedp.CSS(`tr[data-webhook="`+a.ns+`/orders"] td[data-state]`), "data-state").Value).To(Equal("Active"))
	br.shot("list")
	g.Expect(br.open("/webhooks?q=no-such-thing")).To(Equal(http.StatusOK))
	g.Expect(br.html("#webhooks")).NotTo(ContainSubstring("orders"))

	// Deactivate, with a confirmation step.
	br.open("/webhooks/" + a.ns + "/orders")
	status, path = br.submit("deactivate")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(path).To(Equal("/webhooks/" + a.ns + "/orders/deactivate"))
	g.Expect(br.text("#confirm-question")).To(ContainSubstring(a.ns + "/orders"))
	br.shot("confirm-deactivate")
	status, _ = br.submit("confirm")
	g.Expect(status).To(Equal(http.StatusOK))
	var wh hooklinev1.Webhook
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: a.ns, Name: "orders"}, &wh)).To(Succeed())
	g.Expect(wh.Spec.State).To(Equal(hooklinev1.StateInactive))
	br.eventuallyShowsState(a, "orders", "Inactive")

	// Reactivate: spec.state ACTIVE and a new reactivation annotation, as `hookline reactivate`.
	status, _ = br.submit("reactivate")
	g.Expect(status).To(Equal(http.StatusOK))
	status, _ = br.submit("confirm")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: a.ns, Name: "orders"}, &wh)).To(Succeed())
	g.Expect(wh.Spec.State).To(Equal(hooklinev1.StateActive))
	g.Expect(wh.Annotations[hooklinev1.ReactivateAnnotation]).NotTo(BeEmpty())
	g.Expect(br.text("#reactivation")).To(Equal(wh.Annotations[hooklinev1.ReactivateAnnotation]))
	br.eventuallyShowsState(a, "orders", "Active")

	// Edit: a field added, the rest kept.
	status, _ = br.submit("edit")
	g.Expect(status).To(Equal(http.StatusOK))
	br.do(chromedp.SetValue(chromedp.ID("problemNotificationEmails"), "ops@example.com"))
	status, _ = br.submit("save")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: a.ns, Name: "orders"}, &wh)).To(Succeed())
	g.Expect(wh.Spec.ProblemNotificationEmails).To(Equal([]hooklinev1.Email{"ops@example.com"}))
	g.Expect(wh.Spec.Events).To(Equal([]hooklinev1.EventName{"AGREEMENT_ALL"}))
	g.Expect(wh.Spec.URL).To(Equal(receiver))

	// The language switch: Traditional Chinese, then back.
	status, _ = br.submit("lang-zh-Hant")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(br.attr("html", "lang").Value).To(Equal("zh-Hant"))
	g.Expect(br.text("#deactivate")).To(Equal("停用"))
	br.shot("webhook-zh-Hant")
	br.submit("lang-en")
	g.Expect(br.attr("html", "lang").Value).To(Equal("en"))

	// Sign-out ends the session on the server: the old cookie is worth nothing.
	status, path = br.submit("signout")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(path).To(Equal("/signin"))
	resp := rawRequest(t, http.MethodGet, base+"/webhooks", aSession, nil)
	g.Expect(resp.StatusCode).To(Equal(http.StatusSeeOther))
	g.Expect(resp.Header.Get("Location")).To(Equal("/signin"))

	// Tenant B: sees nothing of A's, not in the list, not by URL, not even with A's namespace added.
	br.signIn(bTenant)
	g.Expect(br.html("#webhooks")).NotTo(ContainSubstring(a.ns))
	br.do(chromedp.SetValue(chromedp.ID("add-namespace"), a.ns))
	status, _ = br.submit("add-namespace-submit")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(br.text("#denied")).To(ContainSubstring(a.ns))
	g.Expect(br.html("#webhooks")).NotTo(ContainSubstring("orders"))
	for _, p := range []string{"", "/edit", "/delete", "/deactivate", "/reactivate"} {
		g.Expect(br.open("/webhooks/"+a.ns+"/orders"+p)).To(Equal(http.StatusNotFound), p)
		g.Expect(br.text("#error-message")).To(ContainSubstring("No such webhook"))
	}
	g.Expect(br.open("/webhooks/"+a.ns+"/no-such-webhook")).To(Equal(http.StatusNotFound), "the same answer as for one that exists")
	// B's own valid session and CSRF token, with A's webhook's uid: still 404, nothing changes.
	br.open("/webhooks")
	csrf := br.attr(`input[name="csrf"]`, "value").Value
	bSession := br.sessionCookie().Value
	for _, action := range []string{"delete", "deactivate"} {
		resp = rawRequest(t, http.MethodPost, base+"/webhooks/"+a.ns+"/orders/"+action, bSession, url.Values{"csrf": {csrf}, "uid": {string(wh.UID)}})
		g.Expect(resp.StatusCode).To(Equal(http.StatusNotFound), action)
	}
	resp = rawRequest(t, http.MethodPost, base+"/webhooks/new", bSession, url.Values{"csrf": {csrf}, "namespace": {a.ns}, "name": {"intruder"},
		"url": {receiver}, "scope": {"ACCOUNT"}, "state": {"ACTIVE"}, "events": {"AGREEMENT_ALL"}})
	g.Expect(resp.StatusCode).To(Equal(http.StatusForbidden))
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: a.ns, Name: "orders"}, &wh)).To(Succeed())
	g.Expect(wh.Spec.State).To(Equal(hooklinev1.StateActive))
	g.Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: a.ns, Name: "intruder"}, &hooklinev1.Webhook{}))).To(BeTrue())
	br.submit("signout")

	// A deletes it, with a confirmation step.
	br.signIn(a)
	br.open("/webhooks/" + a.ns + "/orders")
	status, _ = br.submit("delete")
	g.Expect(status).To(Equal(http.StatusOK))
	status, path = br.submit("confirm")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(path).To(Equal("/webhooks"))
	g.Expect(br.text("#notice")).To(ContainSubstring("orders"))
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: a.ns, Name: "orders"}, &hooklinev1.Webhook{}))
	}).WithTimeout(10 * time.Second).Should(BeTrue())

	// The notice is the console's own word: a link cannot put a sentence of its choosing there.
	for _, q := range []string{"deleted=orders.+Session+expiring%3A+re-enter+your+token+at+evil.example", "added=x+y"} {
		g.Expect(br.open("/webhooks?" + q)).To(Equal(http.StatusOK))
		notices, err := chromedp.Run(br.ctx, chromedp.Nodes(chromedp.CSSAll("#notice"), chromedp.AtLeast(0)))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(notices).To(BeEmpty(), q)
	}

	br.expectCleanConsole()
}

// A receiver's words reach the page through status conditions and Events (here: the Location of
// a refused redirect). They must show as the characters they are, never as markup or script.
func TestReceiverTextShowsAsText(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	base := startConsole(t)
	tn := newTenant(t, "acc-console-hostile")
	const payload = `/x"><img src=x id=injected><script>window.pwned=1</script>`
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", payload)
		w.WriteHeader(http.StatusFound)
	}))
	t.Cleanup(rc.Close)
	wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: "hostile"},
		Spec: hooklinev1.WebhookSpec{URL: rc.URL + "/hooks", Scope: hooklinev1.ScopeAccount, Events: []hooklinev1.EventName{"AGREEMENT_ALL"}}}
	g.Expect(k8s.Create(ctx, wh)).To(Succeed())

	br := newBrowser(t, base)
	br.signIn(tn)
	g.Eventually(func() string {
		br.open("/webhooks/" + tn.ns + "/hostile")
		return br.text("#conditions")
	}).WithTimeout(30 * time.Second).WithPolling(300 * time.Millisecond).Should(ContainSubstring(`<script>window.pwned=1</script>`))
	g.Expect(br.text("#k8s-events")).To(ContainSubstring(`<img src=x id=injected>`))
	scripts, err := chromedp.Run(br.ctx, chromedp.Nodes(chromedp.CSSAll("script"), chromedp.AtLeast(0)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(scripts).To(HaveLen(1), "console.js only")
	injected, err := chromedp.Run(br.ctx, chromedp.Nodes(chromedp.CSSAll("#injected"), chromedp.AtLeast(0)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(injected).To(BeEmpty())
	br.expectCleanConsole()
}

// A token the API server stops accepting (its ServiceAccount deleted) ends the session at the next
// request: the console never keeps acting on a credential Kubernetes has revoked.
func TestRevokedTokenEndsTheSession(t *testing.T) {
	g := NewWithT(t)
	base := startConsole(t)
	tn := newTenant(t, "acc-console-revoked")
	br := newBrowser(t, base)
	br.signIn(tn)
	g.Expect(k8s.Delete(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: "admin"}})).To(Succeed())
	g.Eventually(func() string {
		resp, err := chromedp.Run(br.ctx, chromedp.NavigateResponse(base+"/webhooks"))
		if err != nil {
			return err.Error()
		}
		u, _ := url.Parse(resp.URL)
		return u.Path
	}).WithTimeout(30*time.Second).WithPolling(250*time.Millisecond).Should(Equal("/signin"), "the API server caches token checks for seconds")
	g.Expect(br.text(".notice")).To(ContainSubstring("session has ended"))
	g.Expect(br.open("/webhooks")).To(Equal(http.StatusOK))
	g.Expect(br.html("body")).To(ContainSubstring(`id="token"`), "still signed out")
	br.expectCleanConsole()
}
