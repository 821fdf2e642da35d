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

// Package console is hookline's web console: the Webhooks page of Acrobat Sign's account menu as
// a server-rendered web application. Users sign in with a Kubernetes bearer token; every read and
// write is sent to the API server with that token (see kube.go), so Kubernetes RBAC alone decides
// what each user sees and may change. Pages are html/template (every value escaped for its
// context), assets are embedded, and no script runs but console.js from this binary.
package console

import (
	"cmp"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hookline/hookline/internal/keyrate"
)

// Config configures the console.
type Config struct {
	// API is where the API server is and which CA it presents; its credentials, if any, are never
	// used (rest.AnonymousClientConfig): the console acts only with its users' tokens.
	API *rest.Config
	// Namespaces are tried for users who may not list webhooks cluster-wide, besides the
	// namespace of a ServiceAccount user and the namespaces users add themselves.
	Namespaces []string
	// InsecureCookies drops the Secure attribute and the __Host- prefix from cookies, for serving
	// plain http on 127.0.0.1 during development only (cmd/console allows it only on loopback).
	InsecureCookies bool
	// Now is the clock of session expiry and of the sign-ins of all addresses together; time.Now
	// when nil.
	Now func() time.Time
	// Log receives request failures; never tokens.
	Log logr.Logger
	// Deliveries is the dispatcher's read API, for the delivery log; nil leaves the log out.
	Deliveries *LogAPI
	// BehindProxy says that every request comes through a proxy that terminates TLS (an
	// Ingress), which appends the address it took the request from to X-Forwarded-For: the
	// header's last address is the client's, as far as the limits per client address go.
	BehindProxy bool
	// TrustedProxies, when set, are the only peers whose X-Forwarded-For is read behind a proxy (the
	// Ingress controller's pods): a client reaching the console's Service directly, past the proxy, is
	// known by its own address, and cannot make up a new one for each sign-in. Empty: every peer's.
	TrustedProxies []netip.Prefix
	// SignInsPerSecond and SignInBurst bound the sign-ins one client address starts (0: 5 a
	// second, 60 at once).
	SignInsPerSecond rate.Limit
	SignInBurst      int
	// AllSignInsPerSecond and AllSignInBurst bound the sign-ins of all client addresses together
	// (0: 20 a second, 200 at once): a client can make up addresses (a forged X-Forwarded-For, when
	// it reaches the console past the proxy), not make the API server review more tokens than these.
	AllSignInsPerSecond rate.Limit
	AllSignInBurst      int
}

// MaxHeaderBytes bounds a request's header on the console's listener, cookies included; Go's
// default is 1 MiB, and that much is held per connection before anyone is signed in.
const MaxHeaderBytes = 64 << 10

// Server is the console's HTTP handler and session store.
type Server struct {
	cfg      Config
	sessions *SessionStore
	pages    map[string]*template.Template
	static   http.Handler
	// cookie names: __Host- prefixed (Secure, Path=/, no Domain) unless InsecureCookies.
	sessionCookie, signinCookie string
	// turns bounds the pages built at once, sending the bytes of the pages being sent (bounds.go).
	turns   *turns
	sending *semaphore.Weighted
	// signInLimits bounds, per client address, the tokens sent to the API server to sign in;
	// allSignIns bounds them for all addresses together.
	signInLimits *keyrate.Limiters
	allSignIns   *rate.Limiter
}

// Sign-ins a client address may start: each sends a token to the API server to be reviewed (with
// a webhook or OIDC authenticator, a call beyond it), and the nonce of one sign-in form serves any
// number of them. A person signs in a few times a day; a script guessing tokens, or making the
// API server review them, is held to 5 a second.
//
// All addresses together start at most 20 a second, 200 at once: the address is what the client
// says behind --behind-tls-proxy (X-Forwarded-For, which a pod reaching the console's Service
// directly writes as it likes), so the bound per address alone bounds nothing for a client that
// makes up a new one for each sign-in. A sign-in flood then holds up other users' sign-ins (429),
// not their sessions, and makes the API server review at most these.
const (
	signInsPerSecond    = 5
	signInBurst         = 60
	allSignInsPerSecond = 20
	allSignInBurst      = 200
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pageNames are the templates in templates/, each rendered inside layout.html.
var pageNames = []string{"signin", "list", "form", "detail", "confirm", "error", "notification", "payload", "replayform", "replay"}

// New returns a console for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.API == nil {
		return nil, errors.New("console: Config.API is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, sessions: NewSessionStore(cfg.Now), pages: map[string]*template.Template{}, turns: newTurns(), sending: semaphore.NewWeighted(sendBudget),
		signInLimits: keyrate.New(cmp.Or(cfg.SignInsPerSecond, signInsPerSecond), cmp.Or(cfg.SignInBurst, signInBurst), time.Minute, 4096),
		allSignIns:   rate.NewLimiter(cmp.Or(cfg.AllSignInsPerSecond, allSignInsPerSecond), cmp.Or(cfg.AllSignInBurst, allSignInBurst))}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(templateFuncs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		s.pages[name] = t
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	s.static = http.StripPrefix("/static/", http.FileServerFS(sub))
	s.sessionCookie, s.signinCookie = "__Host-hookline-session", "__Host-hookline-signin"
	if cfg.InsecureCookies {
		s.sessionCookie, s.signinCookie = "hookline-session", "hookline-signin"
	}
	return s, nil
}

// Sessions returns the session store, for sweeping and for tests.
func (s *Server) Sessions() *SessionStore { return s.sessions }

// contentSecurityPolicy allows nothing but this origin's own files: no inline script or style, no
// eval, no framing, forms posting only here.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler returns the console's routes behind its security headers.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /static/", s.static)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/webhooks", http.StatusSeeOther) })
	mux.HandleFunc("GET /signin", s.signinPage)
	mux.HandleFunc("POST /signin", s.signin)
	mux.HandleFunc("GET /lang", s.setLanguage)
	mux.HandleFunc("POST /signout", s.authed(s.signout))
	mux.HandleFunc("GET /webhooks", s.authed(s.list))
	mux.HandleFunc("POST /namespaces", s.authed(s.addNamespace))
	mux.HandleFunc("GET /webhooks/new", s.authed(s.newForm))
	mux.HandleFunc("POST /webhooks/new", s.authed(s.create))
	mux.HandleFunc("GET /webhooks/{ns}/{name}", s.authed(s.detail))
	mux.HandleFunc("GET /webhooks/{ns}/{name}/edit", s.authed(s.editForm))
	mux.HandleFunc("POST /webhooks/{ns}/{name}/edit", s.authed(s.update))
	mux.HandleFunc("GET /webhooks/{ns}/{name}/notifications/{id}", s.authed(s.notification))
	mux.HandleFunc("GET /webhooks/{ns}/{name}/notifications/{id}/body", s.authed(s.payload))
	mux.HandleFunc("GET /webhooks/{ns}/{name}/notifications/{id}/replay", s.authed(s.replayForm))
	mux.HandleFunc("GET /webhooks/{ns}/{name}/recover", s.authed(s.recoverForm))
	mux.HandleFunc("POST /webhooks/{ns}/{name}/replays", s.authed(s.createReplay))
	mux.HandleFunc("GET /webhooks/{ns}/{name}/replays/{replay}", s.authed(s.replayStatus))
	mux.HandleFunc("POST /webhooks/{ns}/{name}/test", s.authed(s.sendTest))
	mux.HandleFunc("GET /webhooks/{ns}/{name}/{action}", s.authed(s.confirmPage))
	mux.HandleFunc("POST /webhooks/{ns}/{name}/{action}", s.authed(s.act))
	return securityHeaders(mux, !s.cfg.InsecureCookies)
}

// securityHeaders sets the headers every response carries; hsts adds Strict-Transport-Security,
// for a console that browsers reach over HTTPS only (everything but --insecure-dev-http).
func securityHeaders(next http.Handler, hsts bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if hsts {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-cache")
		} else {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// reqCtx is what an authenticated handler gets: the session, the language and a client acting as
// the user.
type reqCtx struct {
	sess   Session
	L      Localizer
	client client.Client
}

// autoReload is the query parameter of a page's own reloads (layout.html's meta refresh).
const autoReload = "auto"

// maxFormBytes bounds a POST body: the largest form (a webhook with 100 events) is a few KiB.
const maxFormBytes = 64 << 10

// authed wraps a handler that needs a signed-in user: no or an expired session redirects to the
// sign-in page; a POST must carry the session's CSRF token (synchronizer token pattern), which a
// cross-site form cannot know.
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, *reqCtx)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		L := negotiate(r)
		c, err := r.Cookie(s.sessionCookie)
		var sess Session
		ok := false
		switch {
		case err != nil:
		case r.Method == http.MethodGet && r.URL.Query().Get(autoReload) == "1":
			sess, ok = s.sessions.Peek(c.Value) // the page reloading itself: not the user's doing
		default:
			sess, ok = s.sessions.Get(c.Value)
		}
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/signin", http.StatusSeeOther)
				return
			}
			s.renderError(w, r, L, nil, http.StatusForbidden, L.T("error.signedOut"))
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				s.renderError(w, r, L, &sess, http.StatusBadRequest, L.T("error.badForm"))
				return
			}
			if !equalTokens(r.PostFormValue("csrf"), sess.CSRF) {
				s.renderError(w, r, L, &sess, http.StatusForbidden, L.T("error.csrf"))
				return
			}
		}
		release, ok := s.turns.take(r, sess.signer) // per owner: a user, or a namespace's ServiceAccounts
		if !ok {
			w.Header().Set("Retry-After", "5")
			s.renderError(w, r, L, &sess, http.StatusServiceUnavailable, L.T("error.busy"))
			return
		}
		defer release() // given back even if the handler panics (once: write gives it back earlier)
		r = withTurn(r, release)
		uc, err := userClient(s.cfg.API, sess.Token)
		if err != nil {
			s.cfg.Log.Error(err, "Building the user's client", "user", sess.User)
			s.renderError(w, r, L, &sess, http.StatusInternalServerError, L.T("error.internal"))
			return
		}
		h(w, r, &reqCtx{sess: sess, L: L, client: uc})
	}
}

// apiError answers a failed API call: a token the API server no longer accepts ends the session;
// a webhook that does not exist or may not be seen is 404 either way; anything else is shown.
func (s *Server) apiError(w http.ResponseWriter, r *http.Request, rc *reqCtx, err error) {
	var le *logError
	switch {
	case apierrors.IsUnauthorized(err) || errors.Is(err, errLogSignedOut):
		s.sessions.Delete(rc.sess.ID)
		http.Redirect(w, r, "/signin?expired=1", http.StatusSeeOther)
	case errors.Is(err, errNotVisible):
		s.renderError(w, r, rc.L, &rc.sess, http.StatusNotFound, rc.L.T("error.notFound"))
	case apierrors.IsForbidden(err):
		s.renderError(w, r, rc.L, &rc.sess, http.StatusForbidden, rc.L.T("error.forbidden", apiMessage(err)))
	case errors.Is(err, errAnswerTooLarge):
		s.renderError(w, r, rc.L, &rc.sess, http.StatusBadGateway, rc.L.T("error.api", errAnswerTooLarge.Error()))
	case errors.As(err, &le) && le.body.Status >= 400 && le.body.Status < 500:
		// The read API's own answer (a bad filter or cursor, an event past retention, too many
		// requests): the user's to read, with its status.
		s.renderError(w, r, rc.L, &rc.sess, le.body.Status, rc.L.T("error.logAPI", le.body.Message))
	default:
		s.cfg.Log.Error(err, "API request failed", "user", rc.sess.User, "path", r.URL.Path)
		s.renderError(w, r, rc.L, &rc.sess, http.StatusBadGateway, rc.L.T("error.api", apiMessage(err)))
	}
}

// apiMessage is the API server's message for err, or err's text.
func apiMessage(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Message != "" {
		return status.Status().Message
	}
	return err.Error()
}
