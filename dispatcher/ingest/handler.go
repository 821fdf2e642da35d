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

package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/payload"
	"github.com/hookline/hookline/internal/deliveries"
	"github.com/hookline/hookline/internal/keyrate"
)

// DefaultMaxBody is the default ingest limit: 25 MiB, enough for a signed PDF in base64.
const DefaultMaxBody = 25 << 20

// DefaultMaxInFlight is the default bound on the event bytes being received, parsed and stored at
// once. It is at least MinMaxInFlight(DefaultMaxBody) with room: while one token holds its whole
// share (half the bound), another token's event of the largest size must still fit, or one
// producer stalling a 25 MiB upload for the server's read timeout refused every other account's
// large events (the signed PDFs large bodies are for). It lets two 25 MiB events be stored at once,
// which took the dispatcher near 300 MB (make bench, scenario bigevents; the chart's memory limit
// is 512Mi).
const DefaultMaxInFlight = 64 << 20

// MinMaxInFlight is the least in-flight bound that serves events of up to maxBody bytes: twice what
// one streamed body of that size reserves (maxBody+1, to tell a larger one). A token's share is
// half the bound, so that below it one token holding its share left too little for another's
// largest event.
func MinMaxInFlight(maxBody int64) int64 { return 2 * (maxBody + 1) }

// requestFloor is the least a request reserves in the in-flight bound and its token's share,
// whatever the length of its body.
const requestFloor = 64 << 10

// busyRetryAfter is what a producer refused for lack of memory is told to wait, in seconds.
const busyRetryAfter = "1"

// Receipt describes what Accept did with an event.
type Receipt struct {
	// Duplicate is true when an event with the same id was already accepted within the dedupe window.
	Duplicate bool `json:"duplicate"`
	// Notifications is the number of webhooks the event was queued for.
	Notifications int `json:"notifications"`
	// Stored says, with an error, that the event was stored as new before the error came (its
	// notifications were not all queued): a retry completes it as a duplicate, so its bytes stay
	// counted against its account's quota.
	Stored bool `json:"-"`
}

// Quota bounds the event bytes each account keeps stored (quota.Usage).
type Quota interface {
	// Reserve counts n bytes of an event about to be stored for account, or counts nothing and
	// returns false, with how long until the account has room, when they would pass the limit.
	Reserve(account string, n int64) (ok bool, retryAfter time.Duration)
	// Release gives back what Reserve counted for an event that was not stored.
	Release(account string, n int64)
	// Add counts bytes an accepted event stored besides itself, whatever the limit.
	Add(account string, n int64)
	// Limit is the most event bytes one account may keep stored.
	Limit() int64
}

// What the store keeps besides an event's body, counted against its account's quota: the stored
// message's headers and record (about 190 bytes), and one note per notification queued: about 115
// bytes (its subject hookline.notes.<webhook uid>, sequence, time and JetStream's record of it)
// besides the event's id and name, which it holds too (noteBytes). Without them a producer of
// minimal events stored 2.5 times what was counted, 5 times with three Webhooks.
const (
	StoredEventOverhead = 256
	StoredNoteBytes     = 128
)

// noteBytes is what one note of ev counts against its account's quota: StoredNoteBytes and the
// event id and name it stores. Counted at a fixed 128 bytes, a note of a 256-byte id stored three
// to five times that (417 bytes with a 64-character name, 610 with 256), for every Webhook the
// event fans out to.
func noteBytes(ev *Event) int64 {
	return StoredNoteBytes + int64(len(ev.ID)+len(ev.Event))
}

// AcceptTimeout bounds how long an event may take to be stored. It runs detached from the
// request: a producer that hangs up must not cancel a store half done (whose event, stored after
// all by a retry of the routing, would then have been given back to the quota uncounted).
const AcceptTimeout = 30 * time.Second

// Acceptor stores an event durably and queues its notifications; it returns only once both are
// safe, so that the 202 the handler then sends is a promise.
type Acceptor interface {
	Accept(ctx context.Context, ev *Event, raw []byte) (Receipt, error)
}

// Handler serves POST /v1/events.
type Handler struct {
	Tokens   *Tokens
	Acceptor Acceptor
	// MaxBody is the largest accepted body in bytes; 0 means DefaultMaxBody.
	MaxBody int64
	// MaxNotification is the notification size cap in bytes (the dispatcher's
	// --max-payload-bytes); 0 means payload.DefaultMaxBytes, Acrobat Sign's 10 MB. An
	// envelope-dialect notification is delivered byte for byte, so it cannot be trimmed to fit:
	// one larger is refused with 413 NOTIFICATION_TOO_LARGE, before anything is stored. (An
	// Acrobat-dialect one is trimmed per webhook as it is delivered.)
	MaxNotification int64
	// MaxInFlight bounds the bytes of the bodies being received, parsed and stored at once, so that
	// concurrent large events cannot exhaust the dispatcher's memory; a request that would pass it
	// is answered 503 with Retry-After, before anything is acknowledged. 0 means
	// DefaultMaxInFlight, raised to MinMaxInFlight(MaxBody) for a larger MaxBody; it is never below
	// MaxBody, so that an event of the largest size fits, and should be at least
	// MinMaxInFlight(MaxBody) (cmd/dispatcher refuses less), so that it fits beside another
	// token's full share.
	MaxInFlight int64
	// Metrics, when set, counts accepted and rejected events.
	Metrics *Metrics
	// Log receives the cause of every answer in the 5xx range, at most once per ServerErrorLogInterval and
	// code (with the count of those not logged), so that an outage is visible without a line per
	// request.
	Log logr.Logger
	// Now is the clock of that rate limit; nil means time.Now.
	Now func() time.Time
	// Quota, when set, bounds the event bytes each account keeps stored: an event that would take
	// its account above it is answered 429 ACCOUNT_QUOTA_EXCEEDED, with Retry-After, and not stored.
	Quota Quota
	// EventRate, when set, bounds the events each account may post: the limiter of the event's
	// accountId (per dispatcher replica) must have a token, or the post is answered 429
	// ACCOUNT_RATE_EXCEEDED with Retry-After. Every event id JetStream keeps for its dedupe window
	// (10 minutes) costs about 190 bytes of the process holding the stream, whatever the event's
	// size: within its byte quota, one producer posting small events as fast as it could held
	// hundreds of MB there.
	EventRate *keyrate.Limiters

	inFlight atomic.Int64 // bytes reserved by requests being handled
	byToken  sync.Map     // token digest → *atomic.Int64: the part of inFlight each token's requests hold
	logged   serverErrorLog
}

// tokenHeld is the counter of the bytes that the requests of p's token hold. It is keyed by the
// token, not its name: keyed by name, a producer stalling uploads held the share of every other
// producer whose token had the same name (or none), whatever accounts it was for.
func (h *Handler) tokenHeld(p *Principal) *atomic.Int64 {
	if c, ok := h.byToken.Load(p.digest); ok {
		return c.(*atomic.Int64)
	}
	c, _ := h.byToken.LoadOrStore(p.digest, new(atomic.Int64))
	return c.(*atomic.Int64)
}

// ServerErrorLogInterval is the least time between two log lines about 5xx answers of one code.
const ServerErrorLogInterval = 10 * time.Second

// serverErrorLog rate-limits the log lines about 5xx answers, per error code.
type serverErrorLog struct {
	mu    sync.Mutex
	codes map[string]*serverErrorCount
}

type serverErrorCount struct {
	last       time.Time
	suppressed int
}

// now is h.Now's time, or the clock's.
func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// logServerError logs e's cause unless a line about its code was written within the interval;
// the next line says how many answers went unlogged meanwhile.
func (h *Handler) logServerError(e *Error) {
	t := h.now()
	l := &h.logged
	l.mu.Lock()
	if l.codes == nil {
		l.codes = map[string]*serverErrorCount{}
	}
	c := l.codes[e.Code]
	if c == nil {
		c = &serverErrorCount{}
		l.codes[e.Code] = c
	}
	if !c.last.IsZero() && t.Sub(c.last) < ServerErrorLogInterval {
		c.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := c.suppressed
	c.last, c.suppressed = t, 0
	l.mu.Unlock()
	cause := e.Cause
	if cause == nil {
		cause = errors.New(e.Message)
	}
	h.Log.Error(cause, "Answering an ingest request with a server error", "status", e.Status, "code", e.Code,
		"unloggedSinceLast", suppressed)
}

// Metrics are the ingest counters.
type Metrics struct {
	Accepted *prometheus.CounterVec // by outcome: new, duplicate
	Rejected *prometheus.CounterVec // by code
}

// NewMetrics creates the ingest metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookline_ingest_events_accepted_total", Help: "Events acknowledged with 202, by outcome (new or duplicate).",
		}, []string{"outcome"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookline_ingest_events_rejected_total", Help: "Events refused, by error code.",
		}, []string{"code"}),
	}
	reg.MustRegister(m.Accepted, m.Rejected)
	return m
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		w.Header().Set("Connection", "close") // see below
		h.fail(w, &Error{Status: http.StatusMethodNotAllowed, Code: "METHOD_NOT_ALLOWED", Message: "use POST"})
		return
	}
	principal, authErr := h.authenticate(r)
	if authErr != nil {
		// Answered without reading the body: the connection is closed rather than kept, since
		// net/http would read a body of up to 256 KiB (for up to ReadTimeout) before the answer
		// to keep it, and a client without a token held its connection busy that way, out of
		// reach of the listener's bounds (listenlimit closes only connections without a request).
		w.Header().Set("Connection", "close")
		if authErr.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", busyRetryAfter)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hookline"`)
		}
		h.fail(w, authErr)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		w.Header().Set("Connection", "close") // unread, as below
		h.fail(w, &Error{Status: http.StatusUnsupportedMediaType, Code: "UNSUPPORTED_MEDIA_TYPE", Message: "Content-Type must be application/json"})
		return
	}
	limit := h.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	var held int64
	tokenHeld := h.tokenHeld(principal)
	defer func() { h.inFlight.Add(-held); tokenHeld.Add(-held) }()
	body, rerr := h.readBody(w, r, limit, tokenHeld, &held)
	if rerr != nil {
		// The body was not read to its end (refused before it was, too large, or cut short):
		// closed, as for a request without a token, or a producer that announced a body and sent
		// none held its connection busy for the five-minute read timeout, out of reach of the
		// listener's bounds, without keeping a byte of its share reserved.
		w.Header().Set("Connection", "close")
		if rerr.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", busyRetryAfter)
		}
		h.fail(w, rerr)
		return
	}
	ev, err := Parse(body)
	if err != nil {
		h.fail(w, err)
		return
	}
	if err := h.checkNotificationSize(ev); err != nil {
		h.fail(w, err)
		return
	}
	if deliveries.IsTest(ev.ID) {
		// Reserved: a producer's event must never pass for, or collide with, a test notification
		// (whose event the read API stores for one webhook only).
		h.fail(w, badRequest("INVALID_ARGUMENTS", "id must not begin with %q (reserved for test notifications)", deliveries.TestEventPrefix))
		return
	}
	if !principal.MayPost(ev.AccountID) {
		h.fail(w, &Error{Status: http.StatusForbidden, Code: "PERMISSION_DENIED",
			Message: "this token may not post events for accountId " + quote(ev.AccountID)})
		return
	}
	if h.EventRate != nil {
		now := h.now()
		// Allow, not a reservation cancelled: concurrent cancellations give back less than they
		// took, and refused posts ran the account into debt.
		if lim := h.EventRate.Get(ev.AccountID); !lim.AllowN(now, 1) {
			wait := time.Duration((1 - lim.TokensAt(now)) / float64(lim.Limit()) * float64(time.Second))
			secs := strconv.FormatInt(max(1, int64((wait+time.Second-1)/time.Second)), 10)
			w.Header().Set("Retry-After", secs)
			h.fail(w, &Error{Status: http.StatusTooManyRequests, Code: "ACCOUNT_RATE_EXCEEDED",
				Message: "accountId " + quote(ev.AccountID) + " posted more events than this dispatcher takes per second for one account; retry after " + secs + " s"})
			return
		}
	}
	release := func() {}
	if h.Quota != nil {
		n := int64(len(body)) + StoredEventOverhead
		ok, wait := h.Quota.Reserve(ev.AccountID, n)
		if !ok {
			secs := strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10)
			w.Header().Set("Retry-After", secs)
			h.fail(w, &Error{Status: http.StatusTooManyRequests, Code: "ACCOUNT_QUOTA_EXCEEDED",
				Message: "the events of accountId " + quote(ev.AccountID) + " stored within the retention would pass the quota of " +
					humanBytes(h.Quota.Limit()) + " per account with this one; retry after " + secs + " s, when older events have expired"})
			return
		}
		release = func() { h.Quota.Release(ev.AccountID, n) }
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), AcceptTimeout)
	defer cancel()
	receipt, err := h.Acceptor.Accept(ctx, ev, body)
	if err != nil {
		if !receipt.Stored {
			// Not stored: the retry stores it, and counts it then.
			release()
		}
		if e := (*Error)(nil); errors.As(err, &e) {
			// The acceptor's own answer: an earlier post of the event is still in progress.
			w.Header().Set("Retry-After", busyRetryAfter)
			h.fail(w, e)
			return
		}
		h.fail(w, &Error{Status: http.StatusServiceUnavailable, Code: "STORAGE_UNAVAILABLE",
			Message: "the event could not be stored; retry later", Cause: err})
		return
	}
	if receipt.Duplicate {
		release() // the first post's bytes are the ones stored
	}
	if h.Quota != nil {
		// The notes queued, by this post (a re-post queues only what a crash left unqueued).
		h.Quota.Add(ev.AccountID, int64(receipt.Notifications)*noteBytes(ev))
	}
	if h.Metrics != nil {
		outcome := "new"
		if receipt.Duplicate {
			outcome = "duplicate"
		}
		h.Metrics.Accepted.WithLabelValues(outcome).Inc()
	}
	writeJSON(w, http.StatusAccepted, struct {
		ID string `json:"id"`
		Receipt
	}{ev.ID, receipt})
}

// checkNotificationSize refuses an envelope-dialect event whose notification is larger than the
// notification size cap: it is delivered as it came (the Acrobat dialect's trimming does not apply
// to it), so every attempt would send a body above the limit that receivers are promised (Acrobat
// Sign's "JSON payload size limit is 10 MB").
func (h *Handler) checkNotificationSize(ev *Event) *Error {
	if ev.Family() != hooklinev1.FamilyEnvelope {
		return nil
	}
	limit := h.MaxNotification
	if limit <= 0 {
		limit = payload.DefaultMaxBytes
	}
	if n := int64(len(ev.Notification)); n > limit {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "NOTIFICATION_TOO_LARGE",
			Message: fmt.Sprintf("notification is %d bytes, more than the notification size limit of %s (%d bytes): "+
				"an envelope-dialect notification (%s) is delivered as it is and cannot be trimmed to fit", n, humanBytes(limit), limit, quote(clip(ev.Event, maxEchoedValue)))}
	}
	return nil
}

// readBody reads the request body within limit, reserving its bytes in the in-flight bound first
// (*held says how many, to be released when the request is done), and in the share of it that one
// token's requests may hold (tokenHeld counts theirs): the larger of the largest body and half the
// bound. The bytes are reserved before they arrive, so that without the share a producer that
// declared two large bodies and sent them slowly (or not at all) held the whole bound, and every
// other producer got INGEST_BUSY, for as long as the server waits for a body. A declared length is
// read into a buffer of exactly that size; a streamed body reserves each growth of its buffer
// before making it.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, limit int64, tokenHeld *atomic.Int64, held *int64) ([]byte, *Error) {
	tooBig := &Error{Status: http.StatusRequestEntityTooLarge, Code: "PAYLOAD_TOO_LARGE",
		Message: "body is larger than the ingest limit of " + humanBytes(limit)}
	bound := max(h.MaxInFlight, limit)
	if h.MaxInFlight <= 0 {
		bound = max(DefaultMaxInFlight, MinMaxInFlight(limit))
	}
	share := max(limit+1, bound/2) // a streamed body reserves limit+1 bytes, to tell a larger one
	reserve := func(n int64) *Error {
		if tokenHeld.Add(n) > share {
			tokenHeld.Add(-n)
			return &Error{Status: http.StatusServiceUnavailable, Code: "INGEST_BUSY",
				Message: "this token's requests are sending " + humanBytes(share) + " of events already, the most one token may at once; retry after " + busyRetryAfter + " s"}
		}
		if h.inFlight.Add(n) > bound {
			h.inFlight.Add(-n)
			tokenHeld.Add(-n)
			return &Error{Status: http.StatusServiceUnavailable, Code: "INGEST_BUSY",
				Message: "the dispatcher is receiving " + humanBytes(bound) + " of events already; retry after " + busyRetryAfter + " s"}
		}
		*held += n
		return nil
	}
	readErr := func(err error) *Error {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooBig
		}
		return &Error{Status: http.StatusBadRequest, Code: "INVALID_BODY", Message: "reading body: " + err.Error()}
	}
	if n := r.ContentLength; n >= 0 {
		if n > limit {
			return nil, tooBig
		}
		// At least what a streamed body reserves first: a request costs its goroutine, its
		// connection's buffers and TLS state whatever it declares, and requests declaring one byte
		// and sending nothing cost the bound nothing, so that one token held thousands at once.
		floor := max(n, min(requestFloor, limit))
		if e := reserve(floor); e != nil {
			return nil, e
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return nil, readErr(err)
		}
		// Read: the floor's excess goes back, so that slow storing holds only the bytes read.
		if extra := floor - n; extra > 0 {
			h.inFlight.Add(-extra)
			tokenHeld.Add(-extra)
			*held -= extra
		}
		return buf, nil
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			size := min(max(2*int64(cap(buf)), requestFloor), limit+1)
			if e := reserve(size - int64(cap(buf))); e != nil {
				return nil, e
			}
			buf = append(make([]byte, 0, size), buf...)
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, readErr(err)
		}
	}
}

func (h *Handler) authenticate(r *http.Request) (*Principal, *Error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return nil, &Error{Status: http.StatusUnauthorized, Code: "NO_AUTHORIZATION_HEADER", Message: "Authorization: Bearer <token> is required"}
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, &Error{Status: http.StatusUnauthorized, Code: "INVALID_ACCESS_TOKEN", Message: "Authorization must be a Bearer token"}
	}
	if err := h.Tokens.Invalid(); err != nil {
		// Fail closed, and say so: the producer's token may be fine, and its event is not lost if
		// it retries once the operator has fixed the file.
		return nil, &Error{Status: http.StatusServiceUnavailable, Code: "TOKENS_UNAVAILABLE",
			Message: "the dispatcher's tokens file is invalid, so no token is accepted; retry later", Cause: err}
	}
	p := h.Tokens.Authenticate(strings.TrimSpace(token))
	if p == nil {
		return nil, &Error{Status: http.StatusUnauthorized, Code: "INVALID_ACCESS_TOKEN", Message: "the bearer token is not valid"}
	}
	return p, nil
}

func (h *Handler) fail(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Code: "MISC_SERVER_ERROR", Message: "internal error"}
	}
	if h.Metrics != nil {
		h.Metrics.Rejected.WithLabelValues(e.Code).Inc()
	}
	if e.Status >= 500 {
		if e.Code == "MISC_SERVER_ERROR" && e.Cause == nil {
			e.Cause = err
		}
		h.logServerError(e)
	}
	writeJSON(w, e.Status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// quote quotes s for an error message as a JSON string, with every control character escaped:
// JSON leaves DEL and the C1 controls (U+0080–U+009F) as they are, and a message must show exactly
// what it says in a response and a log line.
func quote(s string) string {
	b, _ := json.Marshal(s)
	q := string(b)
	if !strings.ContainsFunc(q, unicode.IsControl) {
		return q
	}
	var out strings.Builder
	for _, r := range q {
		if unicode.IsControl(r) {
			fmt.Fprintf(&out, `\u%04x`, r)
			continue
		}
		out.WriteRune(r)
	}
	return out.String()
}

func humanBytes(n int64) string {
	switch {
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	default:
		return strconv.FormatInt(n, 10) + " bytes"
	}
}

// isJSON reports whether a Content-Type names JSON (application/json, any case, any parameters).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}
