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

// Package logapi serves the delivery log to the owners of webhooks: a Webhook's notifications with
// their state, one notification's attempts, and its body as it was (or would now be) sent. Callers
// authenticate with a Kubernetes bearer token (TokenReview) and are authorized per Webhook by a
// SubjectAccessReview for `get` on webhooks/deliveries; a Webhook the caller may not read is
// answered exactly like one that does not exist (404), so that existence does not leak.
package logapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/validation"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/dispatcher/deliverylog"
	"github.com/hookline/hookline/dispatcher/payload"
	"github.com/hookline/hookline/internal/deliveries"
	"github.com/hookline/hookline/internal/kubeauth"
)

// RBAC of the read API: the dispatcher reviews callers' tokens and their access.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// The attributes a caller needs on a Webhook to read its deliveries.
const (
	Verb        = "get"
	Resource    = "webhooks"
	Subresource = "deliveries"
)

// The attributes a caller needs on a Webhook to read a notification's body, besides reading its
// deliveries: a body holds the agreement's participants and, with the Webhook's conditional
// parameters, its signed documents, which the built-in view role must not give (its
// hookline-deliveries-viewer aggregation gives the log alone).
const (
	BodyVerb        = "get"
	BodySubresource = "payloads"
)

// Log is what the API reads of the delivery log (deliverylog.Log).
type Log interface {
	Notifications(ctx context.Context, uid string, q deliveries.Query) (deliveries.NotificationList, error)
	Attempts(ctx context.Context, uid, notificationID string) (deliveries.AttemptList, error)
}

// Stats sums a webhook's deliveries over a window (deliverystats.Cache).
type Stats interface {
	Stats(ctx context.Context, namespace, uid string, w deliveries.Window) (deliveries.Stats, error)
}

// Tester queues a test notification for one webhook (dispatcher.Intake).
type Tester interface {
	SendTest(ctx context.Context, uid, event string) (deliveries.TestReceipt, error)
}

// Errors a Tester answers with.
var (
	// ErrTestNotActive: the webhook is not Active (unverified, INACTIVE, Disabled, or in an
	// unbound namespace): a test notification would not be delivered.
	ErrTestNotActive = errors.New("the webhook is not active: it receives no notifications, test ones included")
)

// TestRequestError is a test request the Tester refuses (an event the webhook does not subscribe
// to, or one no sample exists for): a 400 with its message.
type TestRequestError struct{ Message string }

func (e *TestRequestError) Error() string { return e.Message }

// The attributes a caller needs on a Webhook to send it a test notification, besides reading its
// deliveries.
const (
	TestVerb        = "create"
	TestSubresource = "test"
)

// DefaultTestInterval is the least time between two test notifications of one webhook.
const DefaultTestInterval = 5 * time.Second

// DefaultTestsPerNamespace is how many test notifications one namespace may send per minute, all
// its webhooks together: each is an event stored in the shared event log, and a tenant may create
// as many Webhooks as it likes.
const DefaultTestsPerNamespace = 30

// Bodies builds notification bodies as deliveries build them (deliver.Engine).
type Bodies interface {
	Body(ctx context.Context, wh payload.Webhook, seq uint64) (payload.Result, string, error)
}

// Handler serves the read API under /v1/namespaces/{ns}/webhooks/{name}/notifications.
type Handler struct {
	// Webhooks finds a Webhook by namespace and name: the dispatcher's informer cache (its uid keys
	// the log).
	Webhooks client.Reader
	// Log is the delivery log; nil when the dispatcher keeps none (every request is answered 503).
	Log    Log
	Bodies Bodies
	// Stats answers the stats endpoint; nil: it is answered 503 like the rest without a log.
	Stats Stats
	// Tester sends test notifications; nil: the test endpoint answers 503.
	Tester Tester
	// TestInterval is the least time between two test notifications of one webhook; 0 means
	// DefaultTestInterval.
	TestInterval time.Duration
	// TestsPerNamespace is how many test notifications one namespace may send per minute (at
	// most that many at once); 0 means DefaultTestsPerNamespace.
	TestsPerNamespace int
	Auth              *Auth
	// Limits bounds what one identity and all callers together may ask at once.
	Limits *Limits
	// Now is the clock of relative times (since=2h); nil means time.Now.
	Now func() time.Time
	// Timeout bounds one request's work (log reads, reviews); 0 means 30 s.
	Timeout time.Duration
	Logger  logr.Logger

	mux       *http.ServeMux
	testMu    sync.Mutex
	lastTests *utilcache.LRUExpireCache // webhook uid → its last test, while TestInterval runs
	nsTests   *utilcache.LRUExpireCache // namespace → its *testBudget
}

// Routes.
const (
	listPattern    = "GET /v1/namespaces/{ns}/webhooks/{name}/notifications"
	attemptPattern = "GET /v1/namespaces/{ns}/webhooks/{name}/notifications/{id}"
	bodyPattern    = "GET /v1/namespaces/{ns}/webhooks/{name}/notifications/{id}/body"
	statsPattern   = "GET /v1/namespaces/{ns}/webhooks/{name}/stats"
	testPattern    = "POST /v1/namespaces/{ns}/webhooks/{name}/test"
)

func (h *Handler) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(listPattern, h.guard(h.list))
	mux.Handle(attemptPattern, h.guard(h.attempts))
	mux.Handle(bodyPattern, h.guard(h.body))
	mux.Handle(statsPattern, h.guard(h.stats))
	mux.Handle(testPattern, h.guard(h.test))
	// Everything else, including other methods on these paths: a JSON 404 (405 would confirm the
	// path before authentication).
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "NotFound", "no such endpoint: the read API serves GET "+
			"/v1/namespaces/{namespace}/webhooks/{name}/notifications[/{id}[/body]] and .../stats, and POST .../test")
	})
	return mux
}

// Init builds the routes; ServeHTTP calls it when it was not called.
func (h *Handler) Init() *Handler {
	if h.mux == nil {
		h.mux = h.routes()
		h.lastTests = utilcache.NewLRUExpireCache(cacheSize)
		h.nsTests = utilcache.NewLRUExpireCache(cacheSize)
	}
	return h
}

// ServeHTTP serves one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.Init().mux.ServeHTTP(w, r)
}

// target is the Webhook of an authorized request.
type target struct {
	wh   *hooklinev1.Webhook
	uid  string
	user userOf
}

// guard authenticates, limits and authorizes a request and finds its Webhook before next runs. The
// order matters for what a caller can learn: authorization is decided by namespace and name alone,
// before anything about the Webhook is looked up, so a denied caller gets the 404 of a missing
// Webhook on the same path, whatever exists.
func (h *Handler) guard(next func(w http.ResponseWriter, r *http.Request, t target)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		ctx, cancel := context.WithTimeout(r.Context(), h.timeout())
		defer cancel()
		r = r.WithContext(ctx)
		if h.Log == nil {
			writeError(w, http.StatusServiceUnavailable, "LogOff", "this dispatcher keeps no delivery log (--delivery-log=false)")
			return
		}
		token, ok := kubeauth.BearerToken(r)
		if !ok {
			unauthorized(w, "a bearer token is required (Authorization: Bearer <Kubernetes token>)")
			return
		}
		// A token not reviewed lately costs a TokenReview: each client address may bring so many
		// new tokens a second, whoever it claims to be (a random token with every request made
		// the API server review each, and took the read API's slots from everyone).
		if !h.Auth.Known(token) && !h.Limits.allowNewToken(kubeauth.ClientAddress(r)) {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, "TooManyRequests", "too many new tokens from this address; slow down")
			return
		}
		user, err := h.Auth.Authenticate(ctx, token)
		switch {
		case errors.Is(err, ErrUnauthenticated):
			unauthorized(w, "the bearer token is not valid")
			return
		case errors.Is(err, kubeauth.ErrBusy):
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "Busy", "too many new tokens to review at the moment; retry shortly")
			return
		case err != nil:
			h.Logger.Error(err, "Reviewing a token")
			writeError(w, http.StatusServiceUnavailable, "Unavailable", "the token could not be reviewed; retry shortly")
			return
		}
		// A rate per identity, and one per owner: a namespace's ServiceAccounts share the latter, as
		// a tenant may create them at will, and each request may cost an access review (a name
		// never asked before).
		if !h.Limits.allow(user.Username, kubeauth.OwnerOf(user.Username)) {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, "TooManyRequests", "too many requests from "+user.Username+
				" (or from the ServiceAccounts of its namespace together, if it is one); slow down")
			return
		}
		// The shared slots are taken once the caller is known: unauthenticated requests held them
		// before.
		release, ok := h.Limits.enter()
		if !ok {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "Busy", "the read API is serving as many requests as it may at once; retry shortly")
			return
		}
		defer release()
		ns, name := r.PathValue("ns"), r.PathValue("name")
		if len(validation.ValidateNamespaceName(ns, false)) > 0 || len(validation.NameIsDNSSubdomain(name, false)) > 0 {
			// Nothing by such a name can exist: the same answer as for any Webhook not found.
			notFound(w, ns, name)
			return
		}
		allowed, err := h.Auth.Authorize(ctx, user, ns, name)
		if err != nil {
			h.Logger.Error(err, "Reviewing access", "user", user.Username, "namespace", ns, "name", name)
			writeError(w, http.StatusServiceUnavailable, "Unavailable", "access could not be reviewed; retry shortly")
			return
		}
		// Who read what, for the operator's audit trail (never the token).
		h.Logger.V(1).Info("Read API request", "user", user.Username, "namespace", ns, "name", name,
			"path", r.URL.Path, "allowed", allowed)
		if !allowed {
			notFound(w, ns, name)
			return
		}
		// Counted once authorized: nobody spends another namespace's requests.
		leave, busy, ok := h.Limits.enterNamespace(ns)
		switch {
		case busy:
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "Busy", "the read API is serving as many requests for namespace "+ns+" as it may at once; retry shortly")
			return
		case !ok:
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, "TooManyRequests", "too many requests for the Webhooks of namespace "+ns+", from every identity together; slow down")
			return
		}
		defer leave()
		var wh hooklinev1.Webhook
		if err := h.Webhooks.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &wh); err != nil {
			if !apierrors.IsNotFound(err) {
				// The cache does not watch this namespace (or failed): to the caller, not found.
				h.Logger.V(1).Info("Reading a Webhook for the read API", "namespace", ns, "name", name, "error", err.Error())
			}
			notFound(w, ns, name)
			return
		}
		next(w, r, target{wh: &wh, uid: string(wh.UID), user: user})
	})
}

func (h *Handler) timeout() time.Duration {
	if h.Timeout > 0 {
		return h.Timeout
	}
	return 30 * time.Second
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// list answers a page of the Webhook's notifications.
func (h *Handler) list(w http.ResponseWriter, r *http.Request, t target) {
	q, err := ParseQuery(r.URL.Query(), h.now())
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	page, err := h.Log.Notifications(r.Context(), t.uid, q)
	switch {
	case errors.Is(err, deliverylog.ErrBadCursor):
		writeError(w, http.StatusBadRequest, "BadRequest", "cursor: not a cursor this API handed out for these filters; start again without it")
		return
	case err != nil:
		h.internal(w, err, t)
		return
	}
	if page.Items == nil {
		page.Items = []deliveries.Notification{}
	}
	for i := range page.Items {
		page.Items[i].Replay = deliveries.ReplayName(page.Items[i].Replay)
	}
	writeJSON(w, http.StatusOK, page)
}

// attempts answers one notification's records.
func (h *Handler) attempts(w http.ResponseWriter, r *http.Request, t target) {
	al, ok := h.notification(w, r, t)
	if !ok {
		return
	}
	if al.Records == nil {
		al.Records = []deliveries.Record{}
	}
	// Notes and records name a replay with its uid's start (deliveries.ReplayRef): readers see
	// its name, as kubectl shows it.
	al.Notification.Replay = deliveries.ReplayName(al.Notification.Replay)
	for i := range al.Records {
		al.Records[i].Replay = deliveries.ReplayName(al.Records[i].Replay)
	}
	writeJSON(w, http.StatusOK, al)
}

// body answers the notification's body as an attempt builds it now: what was sent, unless the
// Webhook's conditional parameters or the size cap changed since.
func (h *Handler) body(w http.ResponseWriter, r *http.Request, t target) {
	// The notification first: who reads the deliveries may learn whether it exists (404) anyway.
	al, ok := h.notification(w, r, t)
	if !ok {
		return
	}
	if !h.allowedTo(w, r, t, BodyVerb, BodySubresource, "read the notification bodies of") {
		return
	}
	res, id, err := h.Bodies.Body(r.Context(), deliver.PayloadWebhook(t.wh), al.Notification.EventSeq)
	switch {
	case errors.Is(err, deliver.ErrEventGone):
		writeError(w, http.StatusGone, "EventGone", fmt.Sprintf("the event of notification %s is no longer stored (beyond the event retention)", al.Notification.NotificationID))
		return
	case errors.Is(err, deliver.ErrBusy):
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "Busy", "large bodies are being delivered; retry shortly")
		return
	case err != nil:
		h.internal(w, err, t)
		return
	case id != al.Notification.NotificationID:
		// The log names another event than the one stored at its sequence (the store was
		// replaced): there is no body to show for this notification.
		h.Logger.Error(nil, "Event of a notification does not match its id", "uid", t.uid, "notification", al.Notification.NotificationID, "eventSeq", al.Notification.EventSeq)
		writeError(w, http.StatusGone, "EventGone", fmt.Sprintf("the event of notification %s is no longer stored", al.Notification.NotificationID))
		return
	}
	deadline, release, ok := h.Limits.writeBody(len(res.Body))
	if !ok {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "Busy", "large bodies are being read; retry shortly")
		return
	}
	defer release()
	if err := http.NewResponseController(w).SetWriteDeadline(deadline); err != nil {
		h.internal(w, err, t)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if len(res.Trimmed) > 0 {
		w.Header().Set("Hookline-Trimmed", strings.Join(res.Trimmed, ","))
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(res.Body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Body)
}

// stats answers the Webhook's deliveries, failures and latency over ?window=24h (the default) or
// 7d.
func (h *Handler) stats(w http.ResponseWriter, r *http.Request, t target) {
	q := r.URL.Query()
	win := deliveries.Window24h
	for key := range q {
		if key != "window" {
			writeError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("unknown parameter %q: use window", clip(key)))
			return
		}
	}
	if s, err := single(q, "window"); err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	} else if s != "" {
		win = deliveries.Window(s)
	}
	if _, _, ok := win.Span(); !ok {
		writeError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("window: %q is not 24h or 7d", clip(string(win))))
		return
	}
	if h.Stats == nil {
		writeError(w, http.StatusServiceUnavailable, "LogOff", "this dispatcher keeps no delivery statistics")
		return
	}
	st, err := h.Stats.Stats(r.Context(), t.wh.Namespace, t.uid, win)
	if err != nil {
		h.internal(w, err, t)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// allowedTo asks the API server whether the caller, who may read t's deliveries, may also verb its
// subresource, and answers the request when not: 403, not 404, since who reads the deliveries knows
// the Webhook exists. what says the action in the refusal ("send test notifications to").
func (h *Handler) allowedTo(w http.ResponseWriter, r *http.Request, t target, verb, subresource, what string) bool {
	allowed, err := h.Auth.AuthorizeVerb(r.Context(), t.user, verb, subresource, t.wh.Namespace, t.wh.Name)
	if err != nil {
		h.Logger.Error(err, "Reviewing access", "user", t.user.Username, "namespace", t.wh.Namespace, "name", t.wh.Name)
		writeError(w, http.StatusServiceUnavailable, "Unavailable", "access could not be reviewed; retry shortly")
		return false
	}
	if !allowed {
		writeError(w, http.StatusForbidden, "Forbidden", fmt.Sprintf("%s may not %s webhook %s/%s (%s on webhooks/%s)", t.user.Username, what, t.wh.Namespace, t.wh.Name, verb, subresource))
	}
	return allowed
}

// maxTestRequest bounds a test request's body: {"event": "..."}.
const maxTestRequest = 4 << 10

// test queues a test notification of the chosen event for the Webhook alone. Who may read the
// Webhook's deliveries but not send it a test gets 403 (they know it exists); a second test
// within TestInterval, or more than TestsPerNamespace a minute in the namespace, gets 429.
func (h *Handler) test(w http.ResponseWriter, r *http.Request, t target) {
	if !h.allowedTo(w, r, t, TestVerb, TestSubresource, "send test notifications to") {
		return
	}
	var req deliveries.TestRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxTestRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || !deliveries.EventNamePattern.MatchString(req.Event) {
		writeError(w, http.StatusBadRequest, "BadRequest", `the body must be {"event": "<one of the webhook's events>"}`)
		return
	}
	if h.Tester == nil {
		writeError(w, http.StatusServiceUnavailable, "Unavailable", "this dispatcher does not send test notifications")
		return
	}
	done, why, retry := h.takeTestSlot(t.uid, t.wh.Namespace)
	if why != "" {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(time.Second, retry).Seconds())))
		writeError(w, http.StatusTooManyRequests, "TooManyRequests", why)
		return
	}
	receipt, err := h.Tester.SendTest(r.Context(), t.uid, req.Event)
	// Nothing queued: the slot stays free for a corrected request.
	done(err == nil)
	var bad *TestRequestError
	switch {
	case errors.As(err, &bad):
		writeError(w, http.StatusBadRequest, "BadRequest", bad.Message)
		return
	case errors.Is(err, ErrTestNotActive):
		writeError(w, http.StatusConflict, "NotActive", ErrTestNotActive.Error())
		return
	case err != nil:
		h.failed(w, err, t, "queueing the test notification failed")
		return
	}
	h.Logger.Info("Test notification queued", "user", t.user.Username, "namespace", t.wh.Namespace, "name", t.wh.Name, "eventId", receipt.EventID)
	writeJSON(w, http.StatusAccepted, receipt)
}

func (h *Handler) testInterval() time.Duration {
	if h.TestInterval > 0 {
		return h.TestInterval
	}
	return DefaultTestInterval
}

func (h *Handler) testsPerNamespace() int {
	if h.TestsPerNamespace > 0 {
		return h.TestsPerNamespace
	}
	return DefaultTestsPerNamespace
}

// takeTestSlot takes uid's test slot (one per TestInterval) and one of its namespace's tests (so
// many per minute), or says why not and when to retry. done(false) gives both back, for a request
// that queued nothing.
func (h *Handler) takeTestSlot(uid, namespace string) (done func(queued bool), why string, retry time.Duration) {
	h.testMu.Lock()
	defer h.testMu.Unlock()
	if _, ok := h.lastTests.Get(uid); ok {
		return nil, fmt.Sprintf("one test notification per %s per webhook; retry shortly", h.testInterval()), h.testInterval()
	}
	per := float64(h.testsPerNamespace())
	now := h.now()
	b := &testBudget{tokens: per, at: now}
	if v, ok := h.nsTests.Get(namespace); ok {
		b = v.(*testBudget)
	}
	// Refilled evenly over a minute, up to a minute's worth. (Not a rate.Limiter: giving a token
	// back through a Reservation gives nothing back once another reservation came after it.)
	b.tokens, b.at = min(per, b.tokens+now.Sub(b.at).Minutes()*per), now
	if b.tokens < 1 {
		return nil, fmt.Sprintf("namespace %s may send %d test notifications per minute; retry shortly", namespace, h.testsPerNamespace()),
			time.Duration((1 - b.tokens) / per * float64(time.Minute))
	}
	b.tokens--
	// Idle for a minute, a namespace has its whole budget again: forgetting it then changes nothing.
	h.nsTests.Add(namespace, b, time.Minute)
	h.lastTests.Add(uid, true, h.testInterval())
	return func(queued bool) {
		if queued {
			return
		}
		h.testMu.Lock()
		defer h.testMu.Unlock()
		h.lastTests.Remove(uid)
		b.tokens = min(per, b.tokens+1)
	}, "", 0
}

// testBudget is what a namespace has left of its test notifications (guarded by testMu).
type testBudget struct {
	tokens float64
	at     time.Time
}

// notification reads the records of the notification the path names, answering 400 or 404 itself.
func (h *Handler) notification(w http.ResponseWriter, r *http.Request, t target) (deliveries.AttemptList, bool) {
	id := r.PathValue("id")
	if !deliveries.NotificationIDPattern.MatchString(id) {
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("notification %q of webhook %s/%s not found", clip(id), t.wh.Namespace, t.wh.Name))
		return deliveries.AttemptList{}, false
	}
	al, err := h.Log.Attempts(r.Context(), t.uid, id)
	switch {
	case errors.Is(err, deliverylog.ErrNotFound):
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("notification %s of webhook %s/%s not found", id, t.wh.Namespace, t.wh.Name))
		return al, false
	case err != nil:
		h.internal(w, err, t)
		return al, false
	}
	return al, true
}

func (h *Handler) internal(w http.ResponseWriter, err error, t target) {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		writeError(w, http.StatusServiceUnavailable, "Timeout", "reading the delivery log took too long; narrow the query or retry")
		return
	}
	h.failed(w, err, t, "reading the delivery log failed")
}

// failed answers 500 for what failed (logged with its error, which the caller does not see).
func (h *Handler) failed(w http.ResponseWriter, err error, t target, what string) {
	h.Logger.Error(err, what, "uid", t.uid)
	writeError(w, http.StatusInternalServerError, "Internal", what+"; retry, and tell the operator if it persists")
}

// Bounds of a query.
const (
	// DefaultLimit and MaxLimit bound a page.
	DefaultLimit = 50
	MaxLimit     = 500
	// maxValues bounds the values of one list filter.
	maxValues = 100
	maxCursor = 2048
)

// StateFailed is the filter shorthand for every state of a notification that was not delivered
// and will not be tried again: dropped, cancelled and lost.
const StateFailed = "failed"

// ParseQuery reads the filters of a list request; errors name the parameter.
func ParseQuery(v url.Values, now time.Time) (deliveries.Query, error) {
	var q deliveries.Query
	for key := range v {
		switch key {
		case "state", "event", "since", "until", "notificationId", "eventId", "limit", "cursor":
		default:
			return q, fmt.Errorf("unknown parameter %q: use state, event, since, until, notificationId, eventId, limit or cursor", clip(key))
		}
	}
	states, err := list(v, "state")
	if err != nil {
		return q, err
	}
	seen := map[deliveries.State]bool{}
	for _, s := range states {
		var add []deliveries.State
		if s == StateFailed {
			add = []deliveries.State{deliveries.StateDropped, deliveries.StateCancelled, deliveries.StateLost}
		} else if known(deliveries.State(s)) {
			add = []deliveries.State{deliveries.State(s)}
		} else {
			return q, fmt.Errorf("state: unknown state %q (use %s or %s)", clip(s), stateNames(), StateFailed)
		}
		for _, st := range add {
			if !seen[st] {
				seen[st] = true
				q.States = append(q.States, st)
			}
		}
	}
	if q.EventNames, err = list(v, "event"); err != nil {
		return q, err
	}
	for _, e := range q.EventNames {
		if !deliveries.EventNamePattern.MatchString(e) {
			return q, fmt.Errorf("event: %q is not an event name (such as AGREEMENT_ACTION_COMPLETED)", clip(e))
		}
	}
	if q.NotificationIDs, err = list(v, "notificationId"); err != nil {
		return q, err
	}
	for _, id := range q.NotificationIDs {
		if !deliveries.NotificationIDPattern.MatchString(id) {
			return q, fmt.Errorf("notificationId: %q is not a webhookNotificationId", clip(id))
		}
	}
	if q.EventIDs, err = list(v, "eventId"); err != nil {
		return q, err
	}
	for _, id := range q.EventIDs {
		if len(id) > deliveries.MaxEventIDFilter {
			return q, fmt.Errorf("eventId: longer than %d bytes", deliveries.MaxEventIDFilter)
		}
	}
	if q.Since, q.SinceAgo, err = parseTime(v, "since", now); err != nil {
		return q, err
	}
	if q.Until, q.UntilAgo, err = parseTime(v, "until", now); err != nil {
		return q, err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return q, fmt.Errorf("until (%s) is before since (%s)", q.Until.Format(time.RFC3339), q.Since.Format(time.RFC3339))
	}
	q.Limit = DefaultLimit
	if s, err := single(v, "limit"); err != nil {
		return q, err
	} else if s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return q, fmt.Errorf("limit: %q is not a number from 1 to %d", clip(s), MaxLimit)
		}
		q.Limit = n
	}
	if q.Cursor, err = single(v, "cursor"); err != nil {
		return q, err
	}
	if len(q.Cursor) > maxCursor {
		return q, errors.New("cursor: not a cursor this API handed out")
	}
	return q, nil
}

// list reads a filter given as repeated parameters, comma-separated values, or both.
func list(v url.Values, key string) ([]string, error) {
	var out []string
	for _, raw := range v[key] {
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s == "" {
				return nil, fmt.Errorf("%s: empty value", key)
			}
			out = append(out, s)
		}
	}
	if len(out) > maxValues {
		return nil, fmt.Errorf("%s: more than %d values", key, maxValues)
	}
	return out, nil
}

func single(v url.Values, key string) (string, error) {
	switch len(v[key]) {
	case 0:
		return "", nil
	case 1:
		return v[key][0], nil
	}
	return "", fmt.Errorf("%s: given %d times, expected once", key, len(v[key]))
}

// parseTime reads an RFC 3339 time, or a duration meaning that long before now (since=2h), which
// it also returns as ago: later pages of the listing count it from their cursor's time.
func parseTime(v url.Values, key string, now time.Time) (t time.Time, ago *time.Duration, err error) {
	s, err := single(v, key)
	if err != nil || s == "" {
		return time.Time{}, nil, err
	}
	if t, ago, ok := deliveries.ParseTimeFilter(s, now); ok {
		return t, ago, nil
	}
	return time.Time{}, nil, fmt.Errorf("%s: %q is neither an RFC 3339 time (2026-11-25T10:00:00Z) nor a duration before now (2h)", key, clip(s))
}

func known(s deliveries.State) bool {
	for _, k := range deliveries.States {
		if k == s {
			return true
		}
	}
	return false
}

func stateNames() string {
	names := make([]string, len(deliveries.States))
	for i, s := range deliveries.States {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// clip bounds caller-supplied text echoed in an error message; JSON encoding escapes the rest.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", kubeauth.Challenge)
	writeError(w, http.StatusUnauthorized, "Unauthorized", msg)
}

// notFound is the one answer for a Webhook that does not exist and one the caller may not read.
func notFound(w http.ResponseWriter, ns, name string) {
	writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("webhook %s/%s not found", clip(ns), clip(name)))
}

func writeError(w http.ResponseWriter, status int, reason, msg string) {
	writeJSON(w, status, deliveries.Error{Status: status, Reason: reason, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// userOf is the identity a TokenReview established.
type userOf = authenticationv1.UserInfo

// Standby answers every request 503: a dispatcher standing by for the delivery lease has no view of
// the queues (only the lease holder serves the read API). It says nothing about any Webhook.
func Standby() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "Standby",
			"this dispatcher is standing by for the delivery lease; the dispatcher holding it serves the read API")
	})
}
