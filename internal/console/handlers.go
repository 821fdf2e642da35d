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
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/deliveries"
	"github.com/hookline/hookline/internal/kubeauth"
)

// apiTimeout bounds the API calls of one page.
const apiTimeout = 15 * time.Second

// page is what every template gets.
type page struct {
	L     Localizer
	Title string
	// User and CSRF are empty on the sign-in page.
	User, CSRF string
	// Path is the current path and query, for the language switch to come back to.
	Path  string
	Langs []langOption
	Data  any
	// Refresh, when set, reloads the page after this many seconds (a meta refresh: a running
	// replay's progress, without script).
	Refresh int
}

// langOption is one entry of the language switch.
type langOption struct {
	Tag, Name string
	Current   bool
}

// fmtTime shows a status time in UTC, or a dash when unset.
func fmtTime(t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// fmtNum shows a status counter, or a dash when unset.
func fmtNum(p *int64) string {
	if p == nil {
		return "—"
	}
	return strconv.FormatInt(*p, 10)
}

var templateFuncs = template.FuncMap{
	"time":      fmtTime,
	"num":       fmtNum,
	"has":       func(m map[string]bool, k string) bool { return m[k] },
	"list":      func(v ...string) []string { return v },
	"ptr":       func(t metav1.Time) *metav1.Time { return &t },
	"eventTime": func(e corev1.Event) string { return fmtTime(&metav1.Time{Time: eventTime(&e)}) },
	"logTime":   fmtLogTime,
	"isTest":    deliveries.IsTest,
	"dict":      dict,
	"clip":      clip,
	"params":    enabledParams,
}

// dict makes a map of key, value pairs, for passing several values to a template.
func dict(kv ...any) map[string]any {
	m := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// render writes a page with status code; a template error is a 500 without a half-written page.
// A request holding a turn (authed) builds its page within maxPage, then waits for room to send
// it; any other builds it only once it holds room for maxOpenPage (renderOpen).
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	if !hasTurn(r) {
		s.renderOpen(w, r, status, name, p)
		return
	}
	s.write(w, r, status, s.build(r, name, p, maxPage))
}

// renderOpen builds and sends a page for a request that holds no turn, which anyone may send, in
// any number: it takes maxOpenPage of the sending budget first, at its place in line with the pages
// being sent (503 after pageWait), builds the page within that and gives back the rest, so that a
// request waiting for room holds no page.
func (s *Server) renderOpen(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	ctx, cancel := context.WithTimeout(r.Context(), pageWait)
	defer cancel()
	if err := s.sending.Acquire(ctx, maxOpenPage); err != nil {
		busy(w)
		return
	}
	b := s.build(r, name, p, maxOpenPage)
	n := int64(len(b.page))
	s.sending.Release(maxOpenPage - n)
	s.send(w, r, status, b, n)
}

// built is a page built, or why not.
type built struct {
	page []byte
	// status replaces the page's status when set: the page is an error page instead.
	status int
}

// build renders a page. A failed template is nil (logged); a page larger than limit bytes is an
// error page saying so.
func (s *Server) build(r *http.Request, name string, p page, limit int) built {
	p.Path = returnPath(r)
	for _, tag := range languages {
		t := tag.String()
		p.Langs = append(p.Langs, langOption{Tag: t, Name: langNames[t], Current: t == p.L.Lang})
	}
	buf := pageBuffer{max: limit}
	err := s.pages[name].ExecuteTemplate(&buf, "layout.html", p)
	if errors.Is(err, errPageTooLarge) && name != "error" {
		s.cfg.Log.Info("A page grew past the bound; shown as an error", "page", name, "bound", limit)
		ep := page{L: p.L, Title: p.L.T("error.title"), User: p.User, CSRF: p.CSRF, Data: p.L.T("error.pageTooLarge")}
		return built{page: s.build(r, "error", ep, limit).page, status: http.StatusInternalServerError}
	}
	if err != nil {
		s.cfg.Log.Error(err, "Rendering page", "page", name)
		return built{}
	}
	return built{page: buf.Bytes()}
}

// maxReturnPath bounds the path and query that the language links bring the user back to
// (page.Path). The console's own links are a few hundred bytes at most (a namespace, a Webhook's
// name, a notification id, a cursor, the filters); a request URI is as long as its client makes it,
// within the header's 64 KiB, and each of the three links printed it percent-encoded: a sign-in
// page, which anyone may ask for, grew to 582 KB for one request of 64 KiB.
const maxReturnPath = 2 << 10

// returnPath is where the language links bring r back to: the page it asked for, with its query;
// without the query when that makes it longer than maxReturnPath (the same page, unfiltered); the
// start page when even the path is longer.
func returnPath(r *http.Request) string {
	if p := r.URL.RequestURI(); len(p) <= maxReturnPath {
		return p
	}
	if p := r.URL.EscapedPath(); len(p) <= maxReturnPath {
		return p
	}
	return "/"
}

// write sends a page built for status code; a failed build (nil) is a 500. The page waits for its
// size of the sending budget (503 after pageWait), then holds it, instead of r's turn, until it is
// sent (send).
func (s *Server) write(w http.ResponseWriter, r *http.Request, status int, b built) {
	if b.page == nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), pageWait)
	defer cancel()
	n := int64(len(b.page))
	if err := s.sending.Acquire(ctx, n); err != nil {
		busy(w)
		return
	}
	s.send(w, r, status, b, n)
}

// send sends a page built for status code (a failed build, nil, is a 500), holding held bytes of
// the sending budget until it is sent, within a deadline its size sets; r's turn, if any, is
// given back first.
func (s *Server) send(w http.ResponseWriter, r *http.Request, status int, b built, held int64) {
	defer s.sending.Release(held)
	if b.page == nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if b.status != 0 {
		status = b.status
	}
	giveTurnBack(r)
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(sendGrace + time.Duration(len(b.page))*time.Second/sendRate))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.page)
}

// busy answers 503: no room to send a page within pageWait.
func busy(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
	http.Error(w, "the console is sending as many pages as it may at once; try again in a few seconds", http.StatusServiceUnavailable)
}

func (s *Server) page(rc *reqCtx, title string, data any) page {
	return page{L: rc.L, Title: title, User: rc.sess.User, CSRF: rc.sess.CSRF, Data: data}
}

// renderError shows msg on an error page with status code.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, L Localizer, sess *Session, status int, msg string) {
	p := page{L: L, Title: L.T("error.title"), Data: msg}
	if sess != nil {
		p.User, p.CSRF = sess.User, sess.CSRF
	}
	s.render(w, r, status, "error", p)
}

func (s *Server) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: !s.cfg.InsecureCookies, SameSite: http.SameSiteStrictMode}
}

// signinData is the sign-in page's data.
type signinData struct {
	Nonce, Error string
	Expired      bool
}

// signinPage shows the token form. Sign-in has no session yet, so its CSRF protection is a
// double-submit nonce: a random cookie that the form must repeat, which a cross-site page can
// neither read nor set (login CSRF would sign the victim in as the attacker).
func (s *Server) signinPage(w http.ResponseWriter, r *http.Request) {
	s.showSignin(w, r, negotiate(r), http.StatusOK, "")
}

func (s *Server) showSignin(w http.ResponseWriter, r *http.Request, L Localizer, status int, msg string) {
	nonce := randomID()
	http.SetCookie(w, s.cookie(s.signinCookie, nonce, 600))
	s.render(w, r, status, "signin", page{L: L, Title: L.T("signin.title"),
		Data: signinData{Nonce: nonce, Error: msg, Expired: r.URL.Query().Get("expired") != ""}})
}

// maxTokenBytes bounds a bearer token; OIDC ID tokens with many groups reach a few KiB.
const maxTokenBytes = 16 << 10

// signin checks the token with the API server (SelfSubjectReview, as the token's holder) and
// starts a session. The token is kept only in the session store, never logged.
func (s *Server) signin(w http.ResponseWriter, r *http.Request) {
	L := negotiate(r)
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenBytes+4096)
	if err := r.ParseForm(); err != nil {
		s.showSignin(w, r, L, http.StatusBadRequest, L.T("error.badForm"))
		return
	}
	c, err := r.Cookie(s.signinCookie)
	if err != nil || !equalTokens(c.Value, r.PostFormValue("nonce")) {
		s.showSignin(w, r, L, http.StatusForbidden, L.T("signin.expiredForm"))
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	token = strings.TrimPrefix(token, "Bearer ")
	if token == "" || len(token) > maxTokenBytes || strings.ContainsAny(token, " \t\r\n") {
		s.showSignin(w, r, L, http.StatusBadRequest, L.T("signin.badToken"))
		return
	}
	// The address's own bound first, so that one flooding address spends only its share of the
	// bound of all.
	if !s.signInLimits.Get(s.clientAddress(r)).Allow() || !s.allSignIns.AllowN(s.cfg.Now(), 1) {
		w.Header().Set("Retry-After", "1")
		s.showSignin(w, r, L, http.StatusTooManyRequests, L.T("signin.tooMany"))
		return
	}
	uc, err := userClient(s.cfg.API, token)
	if err != nil {
		s.showSignin(w, r, L, http.StatusInternalServerError, L.T("error.internal"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	user, err := whoAmI(ctx, uc)
	switch {
	case apierrors.IsForbidden(err):
		// Authenticated (a rejected token is 401) but not allowed to ask who it is: a cluster that
		// removed SelfSubjectReview from system:basic-user. The token is good; the name unknown.
		user = ""
	case apierrors.IsUnauthorized(err):
		s.showSignin(w, r, L, http.StatusUnauthorized, L.T("signin.rejected"))
		return
	case err != nil:
		s.cfg.Log.Error(err, "Checking a token with the API server")
		s.showSignin(w, r, L, http.StatusBadGateway, L.T("signin.unreachable"))
		return
	}
	sess, err := s.sessions.Create(token, user)
	if err != nil {
		s.showSignin(w, r, L, http.StatusServiceUnavailable, L.T("signin.busy"))
		return
	}
	s.cfg.Log.Info("Signed in", "user", user)
	http.SetCookie(w, s.cookie(s.signinCookie, "", -1))
	http.SetCookie(w, s.cookie(s.sessionCookie, sess.ID, 0))
	http.Redirect(w, r, "/webhooks", http.StatusSeeOther)
}

// clientAddress is the address r came from, as a limit's key (kubeauth.ClientAddress): behind a
// proxy, the address X-Forwarded-For names last, the one the proxy appended (the ones before it are
// the client's to write). With trusted proxies (Config.TrustedProxies), the header is read only
// from one of them, and from the right past every address of theirs (a load balancer in front of
// the Ingress appends its own too); the peer's own address otherwise, or when there is none.
func (s *Server) clientAddress(r *http.Request) string {
	if s.cfg.BehindProxy && s.trusted(peerAddr(r)) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break
			}
			if i == 0 || len(s.cfg.TrustedProxies) == 0 || !s.trusted(a) {
				return kubeauth.AddressKey(a)
			}
		}
	}
	return kubeauth.ClientAddress(r)
}

// peerAddr is r's peer's address (invalid when RemoteAddr does not parse).
func peerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

// trusted reports whether a may say who the client is: any address, unless Config.TrustedProxies
// names some (compared without zone, an IPv4-mapped IPv6 address as IPv4).
func (s *Server) trusted(a netip.Addr) bool {
	if len(s.cfg.TrustedProxies) == 0 {
		return true
	}
	a = a.WithZone("").Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (s *Server) signout(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.sessions.Delete(rc.sess.ID)
	s.cfg.Log.Info("Signed out", "user", rc.sess.User)
	http.SetCookie(w, s.cookie(s.sessionCookie, "", -1))
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// setLanguage is the language switch: it remembers the choice in a cookie and goes back.
func (s *Server) setLanguage(w http.ResponseWriter, r *http.Request) {
	tag := r.URL.Query().Get("l")
	if _, ok := catalogs[tag]; ok {
		c := s.cookie(langCookie, tag, 365*24*3600)
		http.SetCookie(w, c)
	}
	http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
}

// listRow is one webhook of the list page.
type listRow struct {
	Namespace, Name, URL, State, Desired, Scope, Events, LastSuccess, Failures, Pending, Ready string
}

// listData is the list page's data.
type listData struct {
	Rows                    []listRow
	Query, State, Namespace string
	Denied                  []string
	ClusterWide             bool
	// Truncated says that only the first maxListed webhooks were read.
	Truncated                bool
	Total                    int
	DefaultNamespace, Notice string
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	candidates := candidateNamespaces(rc.sess.User, s.cfg.Namespaces, rc.sess.Namespaces)
	q := r.URL.Query()
	// The namespace filter is checked before any call: anyone can link to it, and a refused one
	// was shown as the page said it ("You may not list webhooks in: <any sentence>"), or in the
	// API server's error, quoted whole.
	only := strings.TrimSpace(q.Get("namespace"))
	if only != "" && len(validation.IsDNS1123Label(only)) > 0 {
		s.renderError(w, r, rc.L, &rc.sess, http.StatusBadRequest, rc.L.T("list.badNamespace"))
		return
	}
	items, denied, clusterWide, truncated, err := visibleWebhooks(ctx, rc.client, candidates, only)
	if err != nil {
		s.apiError(w, r, rc, err)
		return
	}
	d := listData{Query: strings.TrimSpace(q.Get("q")), State: q.Get("state"), Namespace: only,
		Denied: denied, ClusterWide: clusterWide, Truncated: truncated, Total: len(items), DefaultNamespace: serviceAccountNamespace(rc.sess.User)}
	// The notices come from the console's own redirects, but anyone can link to them: only a
	// namespace or a Webhook name is shown, never a sentence a link chose ("session expiring,
	// re-enter your token at ...").
	switch added, deleted := q.Get("added"), q.Get("deleted"); {
	case added != "" && len(validation.IsDNS1123Label(added)) == 0:
		d.Notice = rc.L.T("list.added", added)
	case deleted != "" && len(validation.IsDNS1123Subdomain(deleted)) == 0:
		d.Notice = rc.L.T("list.deleted", deleted)
	}
	needle := strings.ToLower(d.Query)
	for i := range items {
		wh := &items[i]
		if d.State != "" && string(wh.Status.State) != d.State {
			continue
		}
		if d.Namespace != "" && wh.Namespace != d.Namespace {
			continue
		}
		events := make([]string, len(wh.Spec.Events))
		for j, e := range wh.Spec.Events {
			events[j] = string(e)
		}
		row := listRow{Namespace: wh.Namespace, Name: wh.Name, URL: wh.Spec.URL, State: string(wh.Status.State),
			Desired: string(wh.Spec.State), Scope: string(wh.Spec.Scope), Events: strings.Join(events, ", "),
			LastSuccess: fmtTime(wh.Status.LastSuccessTime), Failures: fmtNum(wh.Status.ConsecutiveFailures),
			Pending: fmtNum(wh.Status.PendingNotifications)}
		if c := meta.FindStatusCondition(wh.Status.Conditions, "Ready"); c != nil {
			row.Ready = c.Reason
		}
		if needle != "" && !strings.Contains(strings.ToLower(strings.Join([]string{row.Namespace, row.Name, row.URL, row.Events}, " ")), needle) {
			continue
		}
		d.Rows = append(d.Rows, row)
	}
	s.render(w, r, http.StatusOK, "list", s.page(rc, rc.L.T("list.title"), d))
}

// addNamespace adds a namespace to the ones the list page tries.
func (s *Server) addNamespace(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	ns := strings.TrimSpace(r.PostFormValue("namespace"))
	if len(validation.IsDNS1123Label(ns)) > 0 {
		s.renderError(w, r, rc.L, &rc.sess, http.StatusBadRequest, rc.L.T("list.badNamespace"))
		return
	}
	s.sessions.AddNamespace(rc.sess.ID, ns)
	http.Redirect(w, r, "/webhooks?added="+ns, http.StatusSeeOther)
}

// formData is the create/edit page's data.
type formData struct {
	Form       webhookForm
	Errors     formErrors
	Editing    bool
	Valid      bool
	Families   []eventFamily
	Params     []conditionalParam
	States     []string
	Scopes     []string
	Resources  []string
	FormAction string
}

func (s *Server) showForm(w http.ResponseWriter, r *http.Request, rc *reqCtx, status int, f webhookForm, editing bool, fe formErrors, valid bool) {
	d := formData{Form: f, Errors: fe, Editing: editing, Valid: valid, Families: eventFamilies, Params: conditionalParams,
		States: []string{string(hooklinev1.StateActive), string(hooklinev1.StateInactive)},
		Scopes: []string{string(hooklinev1.ScopeAccount), string(hooklinev1.ScopeGroup), string(hooklinev1.ScopeUser), string(hooklinev1.ScopeResource)},
		Resources: []string{string(hooklinev1.ResourceAgreement), string(hooklinev1.ResourceWidget), string(hooklinev1.ResourceMegaSign),
			string(hooklinev1.ResourceLibraryDocument), string(hooklinev1.ResourceEnvelope)},
	}
	title := rc.L.T("form.createTitle")
	d.FormAction = "/webhooks/new"
	if editing {
		title = rc.L.T("form.editTitle", f.Name)
		d.FormAction = "/webhooks/" + f.Namespace + "/" + f.Name + "/edit"
	}
	if d.Errors.Fields == nil {
		d.Errors.Fields = map[string][]string{}
	}
	s.render(w, r, status, "form", s.page(rc, title, d))
}

func (s *Server) newForm(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	ns := r.URL.Query().Get("namespace")
	if ns == "" {
		ns = serviceAccountNamespace(rc.sess.User)
	}
	f := webhookForm{Namespace: ns, State: string(hooklinev1.StateActive), Scope: string(hooklinev1.ScopeAccount),
		Events: map[string]bool{}, Params: map[string]bool{}}
	s.showForm(w, r, rc, http.StatusOK, f, false, formErrors{}, false)
}

// create validates the form with a dry run (the API server's schema, CEL rules and admission, as
// for a real create) and, unless the user only asked to check it, creates the webhook.
func (s *Server) create(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	f := formFromRequest(r)
	wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: f.Namespace, Name: f.Name}}
	f.applyTo(&wh.Spec)
	fe := formErrors{Fields: map[string][]string{}}
	if len(validation.IsDNS1123Label(f.Namespace)) > 0 {
		fe.Fields["namespace"] = []string{rc.L.T("form.namespaceRequired")}
		s.showForm(w, r, rc, http.StatusUnprocessableEntity, f, false, fe, false)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	if err := rc.client.Create(ctx, wh.DeepCopy(), client.DryRunAll); err != nil {
		s.formFailed(w, r, rc, f, false, err)
		return
	}
	if r.PostFormValue("check") != "" {
		s.showForm(w, r, rc, http.StatusOK, f, false, fe, true)
		return
	}
	if err := rc.client.Create(ctx, wh); err != nil {
		s.formFailed(w, r, rc, f, false, err)
		return
	}
	s.cfg.Log.Info("Created webhook", "user", rc.sess.User, "namespace", wh.Namespace, "name", wh.Name)
	http.Redirect(w, r, "/webhooks/"+wh.Namespace+"/"+wh.Name+"?done=created", http.StatusSeeOther)
}

// formFailed shows the API server's answer next to the fields; a session-ending or a 5xx answer
// is handled as on every page.
func (s *Server) formFailed(w http.ResponseWriter, r *http.Request, rc *reqCtx, f webhookForm, editing bool, err error) {
	switch {
	case apierrors.IsInvalid(err) || apierrors.IsAlreadyExists(err) || apierrors.IsBadRequest(err):
		fe := errorsFromAPI(err)
		if apierrors.IsAlreadyExists(err) {
			fe = formErrors{Fields: map[string][]string{"name": {apiMessage(err)}}}
		}
		s.showForm(w, r, rc, http.StatusUnprocessableEntity, f, editing, fe, false)
	case apierrors.IsConflict(err):
		s.showForm(w, r, rc, http.StatusConflict, f, editing, formErrors{General: []string{rc.L.T("form.conflict")}}, false)
	case apierrors.IsForbidden(err):
		// RBAC, or an admission policy such as hookline's own: either way the user's edits are
		// kept, to be corrected.
		s.showForm(w, r, rc, http.StatusForbidden, f, editing, refusalErrors(rc.L, apiMessage(err)), false)
	default:
		s.apiError(w, r, rc, err)
	}
}

// pathWebhook reads the webhook the path names, as the user; invalid names are 404 like
// invisible ones.
func (s *Server) pathWebhook(w http.ResponseWriter, r *http.Request, rc *reqCtx) (*hooklinev1.Webhook, bool) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		s.apiError(w, r, rc, errNotVisible)
		return nil, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	wh, err := getWebhook(ctx, rc.client, ns, name)
	if err != nil {
		s.apiError(w, r, rc, err)
		return nil, false
	}
	return wh, true
}

func (s *Server) editForm(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	wh, ok := s.pathWebhook(w, r, rc)
	if !ok {
		return
	}
	s.showForm(w, r, rc, http.StatusOK, formFromWebhook(wh), true, formErrors{}, false)
}

// update applies the form to the webhook the user saw (its resourceVersion, so a change made
// meanwhile is a conflict, not overwritten), dry run first.
func (s *Server) update(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	wh, ok := s.pathWebhook(w, r, rc)
	if !ok {
		return
	}
	f := formFromRequest(r)
	f.Namespace, f.Name = wh.Namespace, wh.Name
	if f.ResourceVersion != "" {
		wh.ResourceVersion = f.ResourceVersion
	}
	f.applyTo(&wh.Spec)
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	if err := rc.client.Update(ctx, wh.DeepCopy(), client.DryRunAll); err != nil {
		s.formFailed(w, r, rc, f, true, err)
		return
	}
	if r.PostFormValue("check") != "" {
		s.showForm(w, r, rc, http.StatusOK, f, true, formErrors{}, true)
		return
	}
	if err := rc.client.Update(ctx, wh); err != nil {
		s.formFailed(w, r, rc, f, true, err)
		return
	}
	s.cfg.Log.Info("Updated webhook", "user", rc.sess.User, "namespace", wh.Namespace, "name", wh.Name)
	http.Redirect(w, r, "/webhooks/"+wh.Namespace+"/"+wh.Name+"?done=updated", http.StatusSeeOther)
}

// detailData is the webhook page's data.
type detailData struct {
	WH            *hooklinev1.Webhook
	Events        []corev1.Event
	EventsAllowed bool
	// MoreEvents says that there are more Events than the page shows (or reads).
	MoreEvents   bool
	Done         string
	Reactivation string
	Log          logData
	Chart        chartData
	// TestEvents are the choices of "Send a test notification".
	TestEvents []string
	// Replays of the webhook, newest first; ReplaysAllowed is false when RBAC forbids listing them.
	Replays        []replayRow
	ReplaysAllowed bool
}

func (s *Server) detail(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	wh, ok := s.pathWebhook(w, r, rc)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	events, allowed, more, err := webhookEvents(ctx, rc.client, wh)
	if err != nil {
		s.apiError(w, r, rc, err)
		return
	}
	d := detailData{WH: wh, Events: events, EventsAllowed: allowed, MoreEvents: more, Reactivation: wh.Annotations[hooklinev1.ReactivateAnnotation], TestEvents: testEvents(wh)}
	if d.Log, err = s.deliveryLog(ctx, r, rc, wh.Namespace, wh.Name); err != nil {
		s.apiError(w, r, rc, err)
		return
	}
	if d.Replays, d.ReplaysAllowed, err = webhookReplays(ctx, rc.client, wh.Namespace, wh.Name); err != nil {
		s.apiError(w, r, rc, err)
		return
	}
	if !d.Log.Off && !d.Log.Denied {
		if d.Chart, err = s.deliveryChart(ctx, r, rc, wh.Namespace, wh.Name); err != nil {
			s.apiError(w, r, rc, err)
			return
		}
	}
	d.Done = detailNotice(rc.L, r.URL.Query())
	s.render(w, r, http.StatusOK, "detail", s.page(rc, wh.Namespace+"/"+wh.Name, d))
}

// detailNotice is the notice the console's own redirects ask the webhook page for: what was done,
// or why a test notification was refused. Anyone can link to them: only these words are shown.
func detailNotice(L Localizer, q url.Values) string {
	switch done := q.Get("done"); done {
	case "created", "updated", "deactivated", "reactivated", "tested":
		return L.T("done." + done)
	}
	switch refused := q.Get("test"); refused {
	case testNotActive, testTooMany:
		return L.T("test." + refused)
	}
	return ""
}

// actions are the changes that need a confirmation step.
var actions = map[string]bool{"deactivate": true, "reactivate": true, "delete": true}

// confirmData is the confirmation page's data.
type confirmData struct {
	WH     *hooklinev1.Webhook
	Action string
}

func (s *Server) confirmPage(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	action := r.PathValue("action")
	if !actions[action] {
		s.apiError(w, r, rc, errNotVisible)
		return
	}
	wh, ok := s.pathWebhook(w, r, rc)
	if !ok {
		return
	}
	s.render(w, r, http.StatusOK, "confirm", s.page(rc, rc.L.T("confirm."+action+".title"), confirmData{WH: wh, Action: action}))
}

// act performs a confirmed action. Each carries the uid the user confirmed, so a webhook deleted
// and re-created under the same name meanwhile is not the one changed.
func (s *Server) act(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	action := r.PathValue("action")
	if !actions[action] {
		s.apiError(w, r, rc, errNotVisible)
		return
	}
	wh, ok := s.pathWebhook(w, r, rc)
	if !ok {
		return
	}
	if string(wh.UID) != r.PostFormValue("uid") {
		s.renderError(w, r, rc.L, &rc.sess, http.StatusConflict, rc.L.T("form.conflict"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	var err error
	done := ""
	switch action {
	case "delete":
		uid := wh.UID
		err = rc.client.Delete(ctx, wh, client.Preconditions{UID: &uid})
	case "deactivate":
		err = s.mergePatch(ctx, rc, wh, map[string]any{"spec": map[string]any{"state": hooklinev1.StateInactive}})
		done = "deactivated"
	case "reactivate":
		// One step for both ways a webhook stops: INACTIVE by choice (spec.state back to ACTIVE)
		// and Disabled by the dispatcher (a new value of the reactivation annotation, as
		// `hookline reactivate` sets it).
		err = s.mergePatch(ctx, rc, wh, map[string]any{
			"metadata": map[string]any{"annotations": map[string]string{hooklinev1.ReactivateAnnotation: s.cfg.Now().UTC().Format(time.RFC3339Nano)}},
			"spec":     map[string]any{"state": hooklinev1.StateActive},
		})
		done = "reactivated"
	}
	if err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			err = errNotVisible
		}
		s.apiError(w, r, rc, err)
		return
	}
	s.cfg.Log.Info("Webhook action", "action", action, "user", rc.sess.User, "namespace", wh.Namespace, "name", wh.Name)
	if action == "delete" {
		http.Redirect(w, r, "/webhooks?deleted="+wh.Name, http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/webhooks/"+wh.Namespace+"/"+wh.Name+"?done="+done, http.StatusSeeOther)
}

// mergePatch applies a JSON merge patch with the uid as a precondition inside the patch.
func (s *Server) mergePatch(ctx context.Context, rc *reqCtx, wh *hooklinev1.Webhook, patch map[string]any) error {
	md, _ := patch["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		patch["metadata"] = md
	}
	md["uid"] = wh.UID
	b, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	return rc.client.Patch(ctx, wh, client.RawPatch(types.MergePatchType, b))
}
