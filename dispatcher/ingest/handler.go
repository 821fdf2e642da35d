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
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxBody is the default ingest limit: 25 MiB, enough for a signed PDF in base64.
const DefaultMaxBody = 25 << 20

// Receipt describes what Accept did with an event.
type Receipt struct {
	// Duplicate is true when an event with the same id was already accepted within the dedupe window.
	Duplicate bool `json:"duplicate"`
	// Notifications is the number of webhooks the event was queued for.
	Notifications int `json:"notifications"`
}

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
	// Metrics, when set, counts accepted and rejected events.
	Metrics *Metrics
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
		h.fail(w, &Error{Status: http.StatusMethodNotAllowed, Code: "METHOD_NOT_ALLOWED", Message: "use POST"})
		return
	}
	principal, authErr := h.authenticate(r)
	if authErr != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hookline"`)
		h.fail(w, authErr)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		h.fail(w, &Error{Status: http.StatusUnsupportedMediaType, Code: "UNSUPPORTED_MEDIA_TYPE", Message: "Content-Type must be application/json"})
		return
	}
	limit := h.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.fail(w, &Error{Status: http.StatusRequestEntityTooLarge, Code: "PAYLOAD_TOO_LARGE",
				Message: "body is larger than the ingest limit of " + humanBytes(limit)})
			return
		}
		h.fail(w, &Error{Status: http.StatusBadRequest, Code: "INVALID_BODY", Message: "reading body: " + err.Error()})
		return
	}
	ev, err := Parse(body)
	if err != nil {
		h.fail(w, err)
		return
	}
	if !principal.MayPost(ev.AccountID) {
		h.fail(w, &Error{Status: http.StatusForbidden, Code: "PERMISSION_DENIED",
			Message: "this token may not post events for accountId " + quote(ev.AccountID)})
		return
	}
	receipt, err := h.Acceptor.Accept(r.Context(), ev, body)
	if err != nil {
		h.fail(w, &Error{Status: http.StatusServiceUnavailable, Code: "STORAGE_UNAVAILABLE",
			Message: "the event could not be stored; retry later"})
		return
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

func (h *Handler) authenticate(r *http.Request) (*Principal, *Error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return nil, &Error{Status: http.StatusUnauthorized, Code: "NO_AUTHORIZATION_HEADER", Message: "Authorization: Bearer <token> is required"}
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, &Error{Status: http.StatusUnauthorized, Code: "INVALID_ACCESS_TOKEN", Message: "Authorization must be a Bearer token"}
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
	writeJSON(w, e.Status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
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
