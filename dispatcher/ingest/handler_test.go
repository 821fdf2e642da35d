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

package ingest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/dispatcher/payload"
	"github.com/hookline/hookline/internal/keyrate"
	"github.com/hookline/hookline/internal/testlog"
)

// stubAcceptor records what the handler hands it and answers with a set receipt or error.
type stubAcceptor struct {
	receipt ingest.Receipt
	err     error
	// onAccept, when set, sees each call's context.
	onAccept func(ctx context.Context)

	mu    sync.Mutex
	calls []acceptCall
}

type acceptCall struct {
	ev  *ingest.Event
	raw []byte
}

func (s *stubAcceptor) Accept(ctx context.Context, ev *ingest.Event, raw []byte) (ingest.Receipt, error) {
	if ctx == nil {
		panic("Accept called with a nil context")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.onAccept != nil {
		s.onAccept(ctx)
	}
	s.calls = append(s.calls, acceptCall{ev: ev, raw: bytes.Clone(raw)})
	return s.receipt, s.err
}

func (s *stubAcceptor) recorded() []acceptCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]acceptCall(nil), s.calls...)
}

const (
	tokAcc1   = "producer-acc1-0123456789" // may post for acc-1 and acc-2
	tokOther  = "producer-other-012345678" // may post for acc-9 only
	tokGlobal = "producer-global-01234567" // may post for every account
)

type fixture struct {
	h   *ingest.Handler
	acc *stubAcceptor
	reg *prometheus.Registry
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	toks, err := ingest.StaticTokens(
		ingest.TokenEntry{Name: "acc1", Token: tokAcc1, Accounts: []string{"acc-1", "acc-2"}},
		ingest.TokenEntry{Name: "other", Token: tokOther, Accounts: []string{"acc-9"}},
		ingest.TokenEntry{Name: "global", Token: tokGlobal, Accounts: []string{"*"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	acc := &stubAcceptor{receipt: ingest.Receipt{Notifications: 2}}
	reg := prometheus.NewRegistry()
	m := ingest.NewMetrics(reg)
	return &fixture{h: &ingest.Handler{Tokens: toks, Acceptor: acc, Metrics: m}, acc: acc, reg: reg}
}

type request struct {
	method string // "" means POST
	auth   string // Authorization header; "" leaves it out
	ctype  string // Content-Type; "-" leaves it out, "" means application/json
	body   []byte
}

func (f *fixture) serve(r request) *httptest.ResponseRecorder {
	method := r.method
	if method == "" {
		method = http.MethodPost
	}
	req := httptest.NewRequest(method, "/v1/events", bytes.NewReader(r.body))
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	switch r.ctype {
	case "-":
	case "":
		req.Header.Set("Content-Type", "application/json")
	default:
		req.Header.Set("Content-Type", r.ctype)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func bearer(tok string) string { return "Bearer " + tok }

// errorBody checks the shape every error response must have and returns its code and message.
func errorBody(t *testing.T, rec *httptest.ResponseRecorder) (code, message string) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error body %q is not {code, message}: %v", rec.Body.String(), err)
	}
	if e.Code == "" || strings.TrimSpace(e.Message) == "" {
		t.Errorf("error body %q lacks a code or a message", rec.Body.String())
	}
	return e.Code, e.Message
}

// The metric names NewMetrics registers.
const (
	acceptedMetric = "hookline_ingest_events_accepted_total"
	rejectedMetric = "hookline_ingest_events_rejected_total"
)

// counters gathers the counter family name from the fixture's registry, by the value of its one
// label. (prometheus/testutil would do, but it pulls in github.com/kylelemons/godebug, which go.mod
// does not require.)
func (f *fixture) counters(t *testing.T, name string) map[string]float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != 1 || m.GetCounter() == nil {
				t.Fatalf("%s series %v is not a counter with one label", name, m)
			}
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

// assertCounters checks that the counter family name holds exactly the series in want.
func (f *fixture) assertCounters(t *testing.T, name string, want map[string]float64) {
	t.Helper()
	got := f.counters(t, name)
	if len(got) != len(want) {
		t.Errorf("%s = %v, want %v", name, got, want)
		return
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v, want %v", name, got, want)
			return
		}
	}
}

// assertRejectedOnly checks that the metrics counted exactly one rejection, with code, and no acceptance.
func (f *fixture) assertRejectedOnly(t *testing.T, code string) {
	t.Helper()
	f.assertCounters(t, acceptedMetric, map[string]float64{})
	f.assertCounters(t, rejectedMetric, map[string]float64{code: 1})
}

// paddedEvent returns a valid acc-1 widget event padded with trailing spaces to exactly size bytes.
func paddedEvent(t *testing.T, size int) []byte {
	t.Helper()
	b := []byte(`{"id":"evt-padded","event":"WIDGET_CREATED","accountId":"acc-1",` +
		`"resource":{"type":"WIDGET","id":"w-1"},"notification":{"event":"WIDGET_CREATED","widget":{"id":"w-1"}}}`)
	if len(b) > size {
		t.Fatalf("padded event base is %d bytes, more than %d", len(b), size)
	}
	return append(b, bytes.Repeat([]byte(" "), size-len(b))...)
}

func TestHandlerRejects(t *testing.T) {
	agr := sample(t, "agreement_action_completed")
	for _, tc := range []struct {
		name        string
		req         request
		maxBody     int64
		acceptorErr error
		status      int
		code        string
		msg         string // substring of the message, optional
		header      map[string]string
		called      bool // whether the acceptor is reached
	}{
		{name: "GET", req: request{method: http.MethodGet, auth: bearer(tokAcc1)},
			status: 405, code: "METHOD_NOT_ALLOWED", header: map[string]string{"Allow": "POST"}},
		{name: "PUT without a token", req: request{method: http.MethodPut, body: agr},
			status: 405, code: "METHOD_NOT_ALLOWED", header: map[string]string{"Allow": "POST"}},
		{name: "no Authorization header", req: request{body: agr},
			status: 401, code: "NO_AUTHORIZATION_HEADER", header: map[string]string{"WWW-Authenticate": `Bearer realm="hookline"`}},
		{name: "Basic scheme", req: request{auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+tokAcc1)), body: agr},
			status: 401, code: "INVALID_ACCESS_TOKEN", header: map[string]string{"WWW-Authenticate": `Bearer realm="hookline"`}},
		{name: "token without scheme", req: request{auth: tokAcc1, body: agr},
			status: 401, code: "INVALID_ACCESS_TOKEN", header: map[string]string{"WWW-Authenticate": `Bearer realm="hookline"`}},
		{name: "Bearer without token", req: request{auth: "Bearer ", body: agr},
			status: 401, code: "INVALID_ACCESS_TOKEN", header: map[string]string{"WWW-Authenticate": `Bearer realm="hookline"`}},
		{name: "unknown token", req: request{auth: bearer("unknown-token-0123456789"), body: agr},
			status: 401, code: "INVALID_ACCESS_TOKEN", header: map[string]string{"WWW-Authenticate": `Bearer realm="hookline"`}},
		{name: "Content-Type text/plain", req: request{auth: bearer(tokAcc1), ctype: "text/plain", body: agr},
			status: 415, code: "UNSUPPORTED_MEDIA_TYPE", msg: "application/json"},
		{name: "body over MaxBody", maxBody: 1 << 10, req: request{auth: bearer(tokAcc1), body: paddedEvent(t, 2<<10)},
			status: 413, code: "PAYLOAD_TOO_LARGE", msg: "1 KiB"},
		{name: "body one byte over MaxBody", maxBody: 1 << 10, req: request{auth: bearer(tokAcc1), body: paddedEvent(t, 1<<10+1)},
			status: 413, code: "PAYLOAD_TOO_LARGE", msg: "1 KiB"},
		{name: "not JSON", req: request{auth: bearer(tokAcc1), body: []byte("{not json")},
			status: 400, code: "INVALID_JSON"},
		{name: "unknown event", req: request{auth: bearer(tokAcc1), body: mutated(t, "agreement_action_completed", func(ev map[string]any) { ev["event"] = "AGREEMENT_TELEPORTED" })},
			status: 400, code: "INVALID_EVENT", msg: "AGREEMENT_TELEPORTED"},
		{name: "missing accountId", req: request{auth: bearer(tokAcc1), body: mutated(t, "agreement_action_completed", func(ev map[string]any) { delete(ev, "accountId") })},
			status: 400, code: "MISSING_REQUIRED_PARAM", msg: "accountId"},
		{name: "token not allowed for accountId", req: request{auth: bearer(tokOther), body: agr},
			status: 403, code: "PERMISSION_DENIED", msg: `"acc-1"`},
		{name: "token not allowed for another account", req: request{auth: bearer(tokAcc1), body: mutated(t, "agreement_action_completed", func(ev map[string]any) { ev["accountId"] = "acc-3" })},
			status: 403, code: "PERMISSION_DENIED", msg: `"acc-3"`},
		{name: "invalid UTF-8 in the notification", req: request{auth: bearer(tokAcc1), body: bytes.Replace(agr, []byte(`"OUT_FOR_SIGNATURE"`), []byte("\"OUT_FOR\xffSIGNATURE\""), 1)},
			status: 400, code: "INVALID_ENCODING", msg: "UTF-8"},
		{name: "id with a trailing space", req: request{auth: bearer(tokAcc1), body: mutated(t, "agreement_action_completed", func(ev map[string]any) { ev["id"] = "dup-7 " })},
			status: 400, code: "INVALID_ARGUMENTS", msg: "id must not begin or end with white space"},
		{name: "id with a newline", req: request{auth: bearer(tokAcc1), body: mutated(t, "agreement_action_completed", func(ev map[string]any) { ev["id"] = "dup-7\n" })},
			status: 400, code: "INVALID_ARGUMENTS", msg: "id must not contain control characters"},
		{name: "storage failure", acceptorErr: errors.New("jetstream: no responders"), req: request{auth: bearer(tokAcc1), body: agr},
			status: 503, code: "STORAGE_UNAVAILABLE", called: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.h.MaxBody = tc.maxBody
			f.acc.err = tc.acceptorErr
			rec := f.serve(tc.req)
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			code, msg := errorBody(t, rec)
			if code != tc.code {
				t.Errorf("code = %q, want %q (message %q)", code, tc.code, msg)
			}
			if tc.msg != "" && !strings.Contains(msg, tc.msg) {
				t.Errorf("message %q does not contain %q", msg, tc.msg)
			}
			for k, v := range tc.header {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if tc.status == 503 && rec.Header().Get("Retry-After") != "" {
				t.Errorf("Retry-After = %q on a storage failure", rec.Header().Get("Retry-After"))
			}
			if tc.status != 401 {
				if got := rec.Header().Get("WWW-Authenticate"); got != "" {
					t.Errorf("WWW-Authenticate = %q on a %d", got, tc.status)
				}
			}
			calls := f.acc.recorded()
			if tc.called && len(calls) != 1 {
				t.Errorf("acceptor called %d times, want once", len(calls))
			}
			if !tc.called && len(calls) != 0 {
				t.Errorf("acceptor called %d times, want never (first event %+v)", len(calls), calls[0].ev)
			}
			f.assertRejectedOnly(t, tc.code)
		})
	}
}

// acceptedBody decodes a 202 body strictly: exactly id, duplicate and notifications.
func acceptedBody(t *testing.T, rec *httptest.ResponseRecorder) (id string, duplicate bool, notifications int) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var b struct {
		ID            *string `json:"id"`
		Duplicate     *bool   `json:"duplicate"`
		Notifications *int    `json:"notifications"`
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("202 body %q: %v", rec.Body.String(), err)
	}
	if b.ID == nil || b.Duplicate == nil || b.Notifications == nil {
		t.Fatalf("202 body %q lacks id, duplicate or notifications", rec.Body.String())
	}
	return *b.ID, *b.Duplicate, *b.Notifications
}

func TestHandlerAccepts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sample  string
		req     request // body is filled from sample when nil
		receipt ingest.Receipt
		maxBody int64
	}{
		{name: "new event", sample: "agreement_action_completed", req: request{auth: bearer(tokAcc1)}, receipt: ingest.Receipt{Notifications: 3}},
		{name: "duplicate event", sample: "agreement_action_completed", req: request{auth: bearer(tokAcc1)}, receipt: ingest.Receipt{Duplicate: true}},
		{name: "envelope event", sample: "envelope_expired", req: request{auth: bearer(tokAcc1)}, receipt: ingest.Receipt{Notifications: 1}},
		{name: "wildcard token", sample: "widget_created", req: request{auth: bearer(tokGlobal)}, receipt: ingest.Receipt{Notifications: 1}},
		{name: "wildcard token, any account", req: request{auth: bearer(tokGlobal), body: mutated(t, "megasign_created", func(ev map[string]any) { ev["accountId"] = "acc-4711" })}},
		{name: "lower-case bearer scheme", sample: "library_document_created", req: request{auth: "bearer " + tokAcc1}},
		{name: "charset parameter", sample: "widget_created", req: request{auth: bearer(tokAcc1), ctype: "application/json; charset=utf-8"}},
		{name: "no Content-Type", sample: "widget_created", req: request{auth: bearer(tokAcc1), ctype: "-"}},
		{name: "body of exactly MaxBody", maxBody: 1 << 10, req: request{auth: bearer(tokAcc1), body: paddedEvent(t, 1<<10)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.h.MaxBody = tc.maxBody
			f.acc.receipt = tc.receipt
			req := tc.req
			if req.body == nil {
				req.body = sample(t, tc.sample)
			}
			wantEv, err := ingest.Parse(req.body)
			if err != nil {
				t.Fatalf("test body does not parse: %v", err)
			}

			rec := f.serve(req)
			if rec.Code != http.StatusAccepted {
				t.Fatalf("status = %d, want 202; body %s", rec.Code, rec.Body)
			}
			id, dup, n := acceptedBody(t, rec)
			if id != wantEv.ID || dup != tc.receipt.Duplicate || n != tc.receipt.Notifications {
				t.Errorf("202 body = {id %q, duplicate %v, notifications %d}, want {%q, %v, %d}",
					id, dup, n, wantEv.ID, tc.receipt.Duplicate, tc.receipt.Notifications)
			}

			calls := f.acc.recorded()
			if len(calls) != 1 {
				t.Fatalf("acceptor called %d times, want once", len(calls))
			}
			if !bytes.Equal(calls[0].raw, req.body) {
				t.Errorf("acceptor got a raw body of %d bytes, want the %d posted", len(calls[0].raw), len(req.body))
			}
			got := calls[0].ev
			if got == nil || got.ID != wantEv.ID || got.Event != wantEv.Event || got.AccountID != wantEv.AccountID ||
				got.Resource != wantEv.Resource || !bytes.Equal(got.Notification, wantEv.Notification) {
				t.Errorf("acceptor got event %+v, want %+v", got, wantEv)
			}

			outcome := "new"
			if tc.receipt.Duplicate {
				outcome = "duplicate"
			}
			f.assertCounters(t, acceptedMetric, map[string]float64{outcome: 1})
			f.assertCounters(t, rejectedMetric, map[string]float64{})
		})
	}
}

func TestHandlerCountsAcrossRequests(t *testing.T) {
	f := newFixture(t)
	agr := sample(t, "agreement_action_completed")
	f.acc.receipt = ingest.Receipt{Notifications: 1}
	for range 3 {
		if rec := f.serve(request{auth: bearer(tokAcc1), body: agr}); rec.Code != 202 {
			t.Fatalf("status = %d, want 202", rec.Code)
		}
	}
	f.acc.receipt = ingest.Receipt{Duplicate: true}
	for range 2 {
		if rec := f.serve(request{auth: bearer(tokAcc1), body: agr}); rec.Code != 202 {
			t.Fatalf("status = %d, want 202", rec.Code)
		}
	}
	for range 2 {
		if rec := f.serve(request{auth: bearer(tokOther), body: agr}); rec.Code != 403 {
			t.Fatalf("status = %d, want 403", rec.Code)
		}
	}
	if rec := f.serve(request{body: agr}); rec.Code != 401 {
		t.Fatalf("status = %d, want 401", rec.Code)
	}
	f.assertCounters(t, acceptedMetric, map[string]float64{"new": 3, "duplicate": 2})
	f.assertCounters(t, rejectedMetric, map[string]float64{"PERMISSION_DENIED": 2, "NO_AUTHORIZATION_HEADER": 1})
	if n := len(f.acc.recorded()); n != 5 {
		t.Errorf("acceptor called %d times, want 5", n)
	}
}

func TestHandlerWithoutMetrics(t *testing.T) {
	f := newFixture(t)
	f.h.Metrics = nil
	if rec := f.serve(request{auth: bearer(tokAcc1), body: sample(t, "widget_created")}); rec.Code != 202 {
		t.Errorf("status = %d, want 202", rec.Code)
	}
	rec := f.serve(request{auth: bearer(tokOther), body: sample(t, "widget_created")})
	if rec.Code != 403 {
		t.Fatalf("status = %d, want 403", rec.Code)
	}
	errorBody(t, rec)
}

// TestHandlerDefaultLimit posts a signed agreement whose base64 document makes the body about 24 MiB:
// the default limit (25 MiB) must take it whole, and refuse one byte more than 25 MiB.
func TestHandlerDefaultLimit(t *testing.T) {
	if DefaultMaxBody := ingest.DefaultMaxBody; DefaultMaxBody != 25<<20 {
		t.Fatalf("DefaultMaxBody = %d, want 25 MiB", DefaultMaxBody)
	}
	doc := make([]byte, 18<<20) // 24 MiB in base64
	for i := range doc {
		doc[i] = byte(i % 251)
	}
	body := mutated(t, "agreement_workflow_completed", func(ev map[string]any) {
		obj(t, obj(t, ev, "notification"), "agreement")["signedDocumentInfo"] = map[string]any{
			"document": base64.StdEncoding.EncodeToString(doc),
		}
	})
	if len(body) < 24<<20 || len(body) >= ingest.DefaultMaxBody {
		t.Fatalf("test body is %d bytes, want between 24 and 25 MiB", len(body))
	}

	t.Run("24 MiB accepted", func(t *testing.T) {
		f := newFixture(t)
		rec := f.serve(request{auth: bearer(tokAcc1), body: body})
		if rec.Code != http.StatusAccepted {
			t.Fatalf("status = %d, want 202; body %.300s", rec.Code, rec.Body)
		}
		calls := f.acc.recorded()
		if len(calls) != 1 {
			t.Fatalf("acceptor called %d times, want once", len(calls))
		}
		if !bytes.Equal(calls[0].raw, body) {
			t.Errorf("acceptor got %d raw bytes, want the %d posted, unchanged", len(calls[0].raw), len(body))
		}
		if !bytes.Contains(calls[0].ev.Notification, []byte(`"signedDocumentInfo"`)) {
			t.Error("the event's notification lost signedDocumentInfo")
		}
	})

	t.Run("over 25 MiB refused", func(t *testing.T) {
		f := newFixture(t)
		rec := f.serve(request{auth: bearer(tokAcc1), body: paddedEvent(t, ingest.DefaultMaxBody+1)})
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status = %d, want 413", rec.Code)
		}
		if code, msg := errorBody(t, rec); code != "PAYLOAD_TOO_LARGE" || !strings.Contains(msg, "25 MiB") {
			t.Errorf("error = %s %q, want PAYLOAD_TOO_LARGE naming 25 MiB", code, msg)
		}
		if n := len(f.acc.recorded()); n != 0 {
			t.Errorf("acceptor called %d times, want never", n)
		}
	})
}

// TestHandlerOverHTTP runs the handler behind a real server once, so headers and status survive the wire.
func TestHandlerOverHTTP(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.h)
	defer srv.Close()

	post := func(auth string, body []byte) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/events", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	resp := post(bearer(tokAcc1), sample(t, "envelope_expired"))
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("POST = %d %q, want 202 application/json", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp = post(bearer("unknown-token-0123456789"), sample(t, "envelope_expired"))
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("POST with an unknown token = %d, WWW-Authenticate %q; want 401 with a challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	var e ingest.Error
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Code != "INVALID_ACCESS_TOKEN" || e.Message == "" {
		t.Errorf("401 body = %+v (%v), want INVALID_ACCESS_TOKEN with a message", e, err)
	}
}

// blockingAcceptor holds every Accept until release is closed, as a slow store would.
type blockingAcceptor struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingAcceptor) Accept(ctx context.Context, ev *ingest.Event, raw []byte) (ingest.Receipt, error) {
	b.entered <- struct{}{}
	<-b.release
	return ingest.Receipt{Notifications: 1}, nil
}

// TestHandlerBoundsBytesInFlight performs the memory attack on the handler: more event bytes at
// once than MaxInFlight. The request over the bound is refused before it is read or acknowledged,
// with 503, Retry-After and a JSON error, and succeeds when retried after the others are done.
func TestHandlerBoundsBytesInFlight(t *testing.T) {
	f := newFixture(t)
	acc := &blockingAcceptor{entered: make(chan struct{}, 4), release: make(chan struct{})}
	f.h.Acceptor = acc
	f.h.MaxBody = 2 << 10
	f.h.MaxInFlight = 4 << 10
	body := paddedEvent(t, 2<<10)

	// Two 2 KiB events of two producers fill the 4 KiB bound while their storage is slow.
	done := make(chan *httptest.ResponseRecorder, 2)
	for _, tok := range []string{tokAcc1, tokGlobal} {
		go func() { done <- f.serve(request{auth: bearer(tok), body: body}) }()
	}
	<-acc.entered
	<-acc.entered

	// A third producer's event waits (its token may not post for acc-1: the bound is taken before
	// the body is read).
	for _, streamed := range []bool{false, true} {
		req := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
		req.Header.Set("Authorization", bearer(tokOther))
		if streamed {
			req.ContentLength = -1 // chunked: the bound is taken as the body arrives
		}
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("streamed=%v: status = %d, want 503; body %s", streamed, rec.Code, rec.Body)
		}
		if ra := rec.Header().Get("Retry-After"); ra != "1" {
			t.Errorf("streamed=%v: Retry-After = %q, want 1", streamed, ra)
		}
		if code, msg := errorBody(t, rec); code != "INGEST_BUSY" || !strings.Contains(msg, "4 KiB") {
			t.Errorf("streamed=%v: error = %s %q, want INGEST_BUSY naming the 4 KiB bound", streamed, code, msg)
		}
	}

	close(acc.release)
	for range 2 {
		if rec := <-done; rec.Code != http.StatusAccepted {
			t.Errorf("held request: status = %d, want 202; body %s", rec.Code, rec.Body)
		}
	}
	// The producer retries: the bytes of the finished requests were released.
	acc.entered = make(chan struct{}, 4)
	if rec := f.serve(request{auth: bearer(tokAcc1), body: body}); rec.Code != http.StatusAccepted {
		t.Fatalf("retry: status = %d, want 202; body %s", rec.Code, rec.Body)
	}
	f.assertCounters(t, rejectedMetric, map[string]float64{"INGEST_BUSY": 2})
}

// TestOneTokenCannotHoldTheWholeIngestBound performs the slow-upload attack of a producer (P): it
// declares two bodies of the largest size and sends almost nothing, over a real connection. Their
// bytes are reserved before they arrive, so without a share per token the two held the whole
// in-flight bound for as long as the server waited for them, and every other producer got
// INGEST_BUSY. Now its own second upload is refused at once, naming the share, and another
// producer's event is accepted meanwhile.
func TestOneTokenCannotHoldTheWholeIngestBound(t *testing.T) {
	// Token names are labels for people: two producers' tokens may carry one (or none), and their
	// shares are still their own.
	sameName, err := ingest.StaticTokens(
		ingest.TokenEntry{Name: "esign-platform", Token: tokAcc1, Accounts: []string{"acc-1"}},
		ingest.TokenEntry{Name: "esign-platform", Token: tokOther, Accounts: []string{"acc-9"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		tokens *ingest.Tokens // nil: the fixture's, each named apart
		victim string         // the other producer's token
		body   []byte
	}{
		{name: "tokens named apart", victim: tokGlobal, body: paddedEvent(t, 2<<10)},
		{name: "two producers' tokens of one name", tokens: sameName, victim: tokOther,
			body: bytes.Replace(paddedEvent(t, 2<<10), []byte(`"acc-1"`), []byte(`"acc-9"`), 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newFixture(t)
			if tc.tokens != nil {
				f.h.Tokens = tc.tokens
			}
			f.h.MaxBody = 2 << 10
			f.h.MaxInFlight = 4 << 10
			srv := httptest.NewServer(f.h)
			t.Cleanup(srv.Close)
			post := func(tok string, body []byte) (int, string, string) { return postTo(g, srv, tok, body) }

			// Two uploads that declare the largest body, send its first byte and stop.
			for range 2 {
				c, err := net.Dial("tcp", srv.Listener.Addr().String())
				g.Expect(err).NotTo(HaveOccurred())
				t.Cleanup(func() { _ = c.Close() })
				_, err = fmt.Fprintf(c, "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{",
					bearer(tokAcc1), 2<<10)
				g.Expect(err).NotTo(HaveOccurred())
			}
			// Once the handler holds them (posting before could take the share first and have the
			// stalled uploads refused: CI saw it), the same token's next event is refused, naming
			// the token's share (not the whole bound: the second stalled upload got no more than
			// the first's share).
			g.Eventually(f.h.BytesInFlight).WithTimeout(10 * time.Second).Should(BeNumerically(">=", 2<<10))
			g.Eventually(func(g Gomega) {
				status, code, msg := post(tokAcc1, paddedEvent(t, 2<<10))
				g.Expect(status).To(Equal(http.StatusServiceUnavailable))
				g.Expect(code).To(Equal("INGEST_BUSY"))
				g.Expect(msg).To(ContainSubstring("the most one token may at once"))
			}).WithTimeout(10 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
			// Another producer is not held up by them.
			status, code, msg := post(tc.victim, tc.body)
			g.Expect(status).To(Equal(http.StatusAccepted), "%s %s", code, msg)
		})
	}
}

// TestAnotherTokensLargestEventFitsBesideAFullShare performs the slow-upload attack with the
// default limits: a producer (P) declares a 25 MiB body and sends nothing, then declares what is
// left of its share, and holds the whole share for the server's read timeout. With the bound at
// 48 MiB its share was 25 MiB+1, and every other account's events above 23 MiB (the signed PDFs
// large bodies are for) were answered INGEST_BUSY meanwhile; now another producer's event of the
// largest size is accepted beside it.
func TestAnotherTokensLargestEventFitsBesideAFullShare(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t) // MaxBody and MaxInFlight at their defaults
	srv := httptest.NewServer(f.h)
	t.Cleanup(srv.Close)
	stall := func(declared int64) {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(func() { _ = c.Close() })
		_, err = fmt.Fprintf(c, "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{",
			bearer(tokAcc1), declared)
		g.Expect(err).NotTo(HaveOccurred())
	}
	held := int64(ingest.DefaultMaxBody)
	stall(held)
	if rest := int64(ingest.DefaultMaxInFlight/2) - held; rest > 0 {
		stall(rest) // the rest of P's share: half the bound
		held += rest
	}
	g.Eventually(f.h.BytesInFlight).WithTimeout(10 * time.Second).Should(BeNumerically(">=", held))
	// P's share is full: its next event, however small, is refused naming the share.
	status, code, msg := postTo(g, srv, tokAcc1, paddedEvent(t, 2<<10))
	g.Expect(status).To(Equal(http.StatusServiceUnavailable))
	g.Expect(code).To(Equal("INGEST_BUSY"))
	g.Expect(msg).To(ContainSubstring("the most one token may at once"))
	// Another producer's event of the largest size is accepted all the same.
	status, code, msg = postTo(g, srv, tokGlobal, paddedEvent(t, ingest.DefaultMaxBody))
	g.Expect(status).To(Equal(http.StatusAccepted), "%s %s", code, msg)
}

// A producer (P) opens uploads that declare a one-byte body and send nothing. Each reserved one
// byte of the in-flight bound, so that a token held thousands of them at once, each a goroutine,
// a connection and its buffers, for the server's read timeout: tens of megabytes the bound never
// saw. Now a request reserves at least 64 KiB (what a streamed body reserves first): the token's
// share holds eight here, its next request is refused naming the share, and another producer's
// event is accepted.
func TestStalledOneByteUploadsCountAgainstTheBound(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	f.h.MaxBody = 256 << 10
	f.h.MaxInFlight = 1 << 20 // a token's share: 512 KiB, eight requests
	srv := httptest.NewServer(f.h)
	t.Cleanup(srv.Close)
	for range 8 {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(func() { _ = c.Close() })
		_, err = fmt.Fprintf(c, "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n", bearer(tokAcc1))
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Eventually(f.h.BytesInFlight).WithTimeout(10 * time.Second).Should(BeNumerically(">=", 8*(64<<10)))
	post := func(tok string, body []byte) (int, string, string) { return postTo(g, srv, tok, body) }
	status, code, msg := post(tokAcc1, paddedEvent(t, 2<<10))
	g.Expect(status).To(Equal(http.StatusServiceUnavailable))
	g.Expect(code).To(Equal("INGEST_BUSY"))
	g.Expect(msg).To(ContainSubstring("the most one token may at once"))
	status, code, msg = post(tokGlobal, paddedEvent(t, 2<<10))
	g.Expect(status).To(Equal(http.StatusAccepted), "%s %s", code, msg)
}

// The floor a request reserves while its body arrives goes back once the body is read: a small
// event held by slow storing holds its own bytes, so that many small posts in flight are not
// refused for room they do not use.
func TestTheFloorGoesBackOnceTheBodyIsRead(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	acc := &blockingAcceptor{entered: make(chan struct{}, 1), release: make(chan struct{})}
	f.h.Acceptor = acc
	f.h.MaxBody = 256 << 10
	body := paddedEvent(t, 2<<10)
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- f.serve(request{auth: bearer(tokAcc1), body: body}) }()
	<-acc.entered
	g.Expect(f.h.BytesInFlight()).To(BeEquivalentTo(len(body)), "held while stored: the body's bytes, not the floor")
	close(acc.release)
	g.Expect((<-done).Code).To(Equal(http.StatusAccepted))
	g.Expect(f.h.BytesInFlight()).To(BeZero())
}

// postTo posts body to srv's ingest API with tok, and returns the status and the error's code and
// message.
func postTo(g Gomega, srv *httptest.Server, tok string, body []byte) (int, string, string) {
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/events", bytes.NewReader(body))
	g.Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", bearer(tok))
	resp, err := srv.Client().Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	var e struct{ Code, Message string }
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Code, e.Message
}

// TestHandlerRefusesEveryTokenWhileTheFileIsInvalid performs the revocation attack: the operator
// removes a leaked token but the new file does not parse. The leaked token must not keep working:
// every token is refused with 503 (retry later: nothing is lost), the metrics and the readiness
// check say why, and a valid file puts the remaining tokens back in force.
func TestHandlerRefusesEveryTokenWhileTheFileIsInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	writeTokens(t, path, "tokens:\n- {name: leaked, token: "+tokAcc1+", accounts: [acc-1]}\n- {name: kept, token: "+tokGlobal+", accounts: ['*']}\n", t0)
	toks, err := ingest.LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	f.h.Tokens = toks
	if err := toks.Register(f.reg); err != nil {
		t.Fatal(err)
	}
	agr := sample(t, "agreement_action_completed")
	if rec := f.serve(request{auth: bearer(tokAcc1), body: agr}); rec.Code != http.StatusAccepted {
		t.Fatalf("before the revocation: status = %d, want 202", rec.Code)
	}

	// The revocation goes wrong: a YAML error.
	writeTokens(t, path, "tokens:\n- {name: kept, token: "+tokGlobal+", accounts: ['*']\n", t0.Add(time.Minute))
	if err := toks.Reload(); err == nil {
		t.Fatal("Reload of the broken file succeeded")
	}
	for _, tok := range []string{tokAcc1, tokGlobal} {
		rec := f.serve(request{auth: bearer(tok), body: agr})
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("token %.14s... with the file invalid: status = %d, Retry-After %q; want 503 with Retry-After", tok, rec.Code, rec.Header().Get("Retry-After"))
		}
		if code, _ := errorBody(t, rec); code != "TOKENS_UNAVAILABLE" {
			t.Errorf("code = %s, want TOKENS_UNAVAILABLE", code)
		}
	}
	if err := toks.Check(nil); err == nil {
		t.Error("readiness check passes while the tokens file is invalid")
	}
	if got := f.gauge(t, "hookline_ingest_tokens_file_valid"); got != 0 {
		t.Errorf("hookline_ingest_tokens_file_valid = %v, want 0", got)
	}
	if got := f.gauge(t, "hookline_ingest_tokens_reload_errors_total"); got != 1 {
		t.Errorf("hookline_ingest_tokens_reload_errors_total = %v, want 1", got)
	}

	// Fixed: the kept token works again, the leaked one never does.
	writeTokens(t, path, "tokens:\n- {name: kept, token: "+tokGlobal+", accounts: ['*']}\n", t0.Add(2*time.Minute))
	if err := toks.Reload(); err != nil {
		t.Fatal(err)
	}
	if rec := f.serve(request{auth: bearer(tokGlobal), body: agr}); rec.Code != http.StatusAccepted {
		t.Errorf("kept token after the fix: status = %d, want 202", rec.Code)
	}
	if rec := f.serve(request{auth: bearer(tokAcc1), body: agr}); rec.Code != http.StatusUnauthorized {
		t.Errorf("leaked token after the fix: status = %d, want 401", rec.Code)
	}
	if toks.Check(nil) != nil || f.gauge(t, "hookline_ingest_tokens_file_valid") != 1 {
		t.Error("readiness or hookline_ingest_tokens_file_valid still report the fixed file invalid")
	}
}

// gauge returns the value of an unlabelled gauge or counter.
func (f *fixture) gauge(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestServerErrorsAreLoggedWithTheirCauseRateLimited: a storage outage answers every producer 503,
// and the operator's log says why — once per interval, not once per request, and the next line
// counts the answers that went unlogged.
func TestServerErrorsAreLoggedWithTheirCauseRateLimited(t *testing.T) {
	f := newFixture(t)
	logs := &testlog.Buffer{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.h.Log, f.h.Now = logs.Logger(), func() time.Time { return now }
	f.acc.err = errors.New("jetstream: no responders available")
	agr := sample(t, "agreement_action_completed")
	post := func() {
		t.Helper()
		if rec := f.serve(request{auth: bearer(tokAcc1), body: agr}); rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", rec.Code)
		}
	}
	for range 5 {
		post()
	}
	if n := strings.Count(logs.String(), "no responders available"); n != 1 {
		t.Fatalf("cause logged %d times for 5 failures within the interval, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `"code"="STORAGE_UNAVAILABLE"`) {
		t.Fatalf("log line does not name the code:\n%s", logs.String())
	}
	now = now.Add(ingest.ServerErrorLogInterval)
	post()
	if n := strings.Count(logs.String(), "no responders available"); n != 2 {
		t.Fatalf("cause logged %d times after the interval, want twice:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `"unloggedSinceLast"=4`) {
		t.Fatalf("second line does not count the 4 unlogged answers:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), tokAcc1) {
		t.Fatal("a producer's token reached the log")
	}
}

// countingQuota is a Quota that counts in memory (quota.Usage is tested against JetStream).
type countingQuota struct {
	mu     sync.Mutex
	limit  int64
	stored map[string]int64
}

func (q *countingQuota) Reserve(account string, n int64) (bool, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stored[account]+n > q.limit {
		return false, 90*time.Minute + time.Millisecond
	}
	q.stored[account] += n
	return true, 0
}

func (q *countingQuota) Release(account string, n int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stored[account] -= n
}

func (q *countingQuota) Add(account string, n int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stored[account] += n
}

func (q *countingQuota) Limit() int64 { return q.limit }

func (q *countingQuota) of(account string) int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stored[account]
}

// quotaSample returns a sample event and its account.
func quotaSample(t *testing.T) ([]byte, string) {
	t.Helper()
	agr := sample(t, "agreement_action_completed")
	var ev struct {
		AccountID string `json:"accountId"`
	}
	if err := json.Unmarshal(agr, &ev); err != nil {
		t.Fatal(err)
	}
	return agr, ev.AccountID
}

// Only a stored event keeps its bytes counted, with what the store keeps besides its body (its
// record, a note per notification): a re-post and an event that could not be stored give them
// back, and a refused event is not handed to the acceptor.
func TestQuotaCountsOnlyStoredEvents(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	agr, account := quotaSample(t)
	event := int64(len(agr) + ingest.StoredEventOverhead)
	notes := 2 * noteCharge(t, agr) // the stub queues two notifications
	q := &countingQuota{limit: 2*event + 2*notes, stored: map[string]int64{}}
	f.h.Quota = q
	post := func() *httptest.ResponseRecorder { return f.serve(request{auth: bearer(tokGlobal), body: agr}) }

	g.Expect(post().Code).To(Equal(http.StatusAccepted))
	g.Expect(q.of(account)).To(Equal(event + notes))

	f.acc.mu.Lock()
	f.acc.receipt = ingest.Receipt{Duplicate: true}
	f.acc.mu.Unlock()
	g.Expect(post().Code).To(Equal(http.StatusAccepted))
	g.Expect(q.of(account)).To(Equal(event+notes), "a re-post stores nothing")

	f.acc.mu.Lock()
	f.acc.receipt, f.acc.err = ingest.Receipt{}, errors.New("JetStream is away")
	f.acc.mu.Unlock()
	g.Expect(post().Code).To(Equal(http.StatusServiceUnavailable))
	g.Expect(q.of(account)).To(Equal(event+notes), "an event not stored is not counted")

	f.acc.mu.Lock()
	f.acc.receipt, f.acc.err = ingest.Receipt{Notifications: 2}, nil
	f.acc.mu.Unlock()
	g.Expect(post().Code).To(Equal(http.StatusAccepted))
	calls := len(f.acc.recorded())
	rec := post()
	g.Expect(rec.Code).To(Equal(http.StatusTooManyRequests))
	g.Expect(rec.Header().Get("Retry-After")).To(Equal("5401"), "rounded up to whole seconds")
	var e struct{ Code, Message string }
	g.Expect(json.Unmarshal(rec.Body.Bytes(), &e)).To(Succeed())
	g.Expect(e.Code).To(Equal("ACCOUNT_QUOTA_EXCEEDED"))
	g.Expect(e.Message).To(ContainSubstring("retry after 5401 s"))
	g.Expect(f.acc.recorded()).To(HaveLen(calls), "a refused event is not stored")
	g.Expect(q.of(account)).To(Equal(2 * (event + notes)))
}

// A producer that hangs up does not cancel the store of its event half way: the store runs on,
// and its event is counted (before, a cancelled store was given back to the quota, while the
// routing's retry stored the event after all).
func TestAcceptOutlivesTheRequest(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	seen := errors.New("not called")
	f.acc.onAccept = func(ctx context.Context) { seen = ctx.Err() }
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the producer is gone
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/events", bytes.NewReader(sample(t, "agreement_action_completed")))
	req.Header.Set("Authorization", bearer(tokGlobal))
	req.Header.Set("Content-Type", "application/json")
	f.h.ServeHTTP(httptest.NewRecorder(), req)
	g.Expect(seen).NotTo(HaveOccurred(), "Accept ran with the request's cancellation")
}

// An event stored before its notifications failed to queue stays counted: the producer's retry
// completes it as a re-post, which counts nothing (before, both gave the bytes back, and the event
// was never counted).
func TestQuotaKeepsAnEventStoredBeforeAnError(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	agr, account := quotaSample(t)
	q := &countingQuota{limit: 1 << 20, stored: map[string]int64{}}
	f.h.Quota = q
	f.acc.mu.Lock()
	f.acc.receipt, f.acc.err = ingest.Receipt{Stored: true}, errors.New("queueing notifications: timeout")
	f.acc.mu.Unlock()
	g.Expect(f.serve(request{auth: bearer(tokGlobal), body: agr}).Code).To(Equal(http.StatusServiceUnavailable))
	event := int64(len(agr) + ingest.StoredEventOverhead)
	g.Expect(q.of(account)).To(Equal(event))

	f.acc.mu.Lock()
	f.acc.receipt, f.acc.err = ingest.Receipt{Duplicate: true, Notifications: 2}, nil
	f.acc.mu.Unlock()
	g.Expect(f.serve(request{auth: bearer(tokGlobal), body: agr}).Code).To(Equal(http.StatusAccepted))
	g.Expect(q.of(account)).To(Equal(event+2*noteCharge(t, agr)), "the retry counts only the notes it queued")
}

// noteCharge is what one note of the event in body stores besides the fixed part: its id and name.
func noteCharge(t *testing.T, body []byte) int64 {
	t.Helper()
	var ev struct{ ID, Event string }
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatal(err)
	}
	return int64(ingest.StoredNoteBytes + len(ev.ID) + len(ev.Event))
}

// A note stores its event's id and name: counted at a fixed 128 bytes, an event of a 256-byte id
// and a 64-character envelope name queued notes of about 450 bytes each that the quota never saw.
// Each note now counts with them, so that the longer event costs its account more per Webhook.
func TestQuotaCountsTheIdAndNameEachNoteStores(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t) // the stub queues two notifications
	q := &countingQuota{limit: 1 << 20, stored: map[string]int64{}}
	f.h.Quota = q
	longName := envelopeName(ingest.MaxEnvelopeEventLength)
	for _, tc := range []struct {
		name, id, event string
		account         string
	}{
		{name: "short id and name", id: "e-1", event: "envelopeExpired", account: "acc-short"},
		{name: "256-byte id, 64-character name", id: strings.Repeat("i", 256), event: longName, account: "acc-long"},
	} {
		body := mutated(t, "envelope_expired", func(ev map[string]any) {
			ev["id"], ev["event"], ev["accountId"] = tc.id, tc.event, tc.account
			obj(t, ev, "notification")["event"] = tc.event
		})
		rec := f.serve(request{auth: bearer(tokGlobal), body: body})
		g.Expect(rec.Code).To(Equal(http.StatusAccepted), "%s: %s", tc.name, rec.Body)
		perNote := int64(ingest.StoredNoteBytes + len(tc.id) + len(tc.event))
		g.Expect(q.of(tc.account)).To(Equal(int64(len(body)+ingest.StoredEventOverhead)+2*perNote), tc.name)
	}
}

// Each account posts at most its rate of events (ten seconds' worth at once): every event id
// JetStream keeps for its dedupe window costs the process about 190 bytes whatever the event's
// size, and a producer posting small events as fast as it could held hundreds of MB within its
// byte quota. Past the rate it is answered 429 with Retry-After and nothing is stored; another
// account, even through the same token, still posts.
func TestEachAccountPostsAtMostItsRate(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	f.h.Now = func() time.Time { return now }
	f.h.EventRate = keyrate.New(rate.Limit(1), 3, time.Minute, 16)
	post := func(account, id string) *httptest.ResponseRecorder {
		return f.serve(request{auth: bearer(tokAcc1), body: mutated(t, "agreement_action_completed", func(ev map[string]any) {
			ev["accountId"], ev["id"] = account, id
		})})
	}
	for i := range 3 {
		g.Expect(post("acc-1", fmt.Sprintf("e-%d", i)).Code).To(Equal(http.StatusAccepted))
	}
	calls := len(f.acc.recorded())
	rec := post("acc-1", "e-3")
	g.Expect(rec.Code).To(Equal(http.StatusTooManyRequests))
	g.Expect(rec.Header().Get("Retry-After")).To(Equal("1"))
	var e struct{ Code, Message string }
	g.Expect(json.Unmarshal(rec.Body.Bytes(), &e)).To(Succeed())
	g.Expect(e.Code).To(Equal("ACCOUNT_RATE_EXCEEDED"))
	g.Expect(f.acc.recorded()).To(HaveLen(calls), "a refused event is not stored")
	g.Expect(post("acc-2", "e-3").Code).To(Equal(http.StatusAccepted), "another account has its own rate")
	now = now.Add(time.Second)
	g.Expect(post("acc-1", "e-3").Code).To(Equal(http.StatusAccepted), "a second later, one more")
}

// Retry-After says when the account's next event is taken, also for a rate below one a second.
func TestTheRateSaysWhenToRetry(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	f.h.Now = func() time.Time { return now }
	f.h.EventRate = keyrate.New(rate.Limit(0.1), 1, time.Minute, 16)
	post := func(id string) *httptest.ResponseRecorder {
		return f.serve(request{auth: bearer(tokAcc1), body: mutated(t, "agreement_action_completed", func(ev map[string]any) { ev["id"] = id })})
	}
	g.Expect(post("a").Code).To(Equal(http.StatusAccepted))
	rec := post("b")
	g.Expect(rec.Code).To(Equal(http.StatusTooManyRequests))
	g.Expect(rec.Header().Get("Retry-After")).To(Equal("10"))
	now = now.Add(10 * time.Second)
	g.Expect(post("b").Code).To(Equal(http.StatusAccepted), "the refused post was not charged")
}

// envelopeEvent returns a valid acc-1 envelopeExpired event whose notification is exactly size bytes.
func envelopeEvent(t *testing.T, size int) []byte {
	t.Helper()
	head := `{"event":"envelopeExpired","data":{"basicInfo":{"envelopeId":"env-1"},"pad":"`
	tail := `"}}`
	if size < len(head)+len(tail) {
		t.Fatalf("an envelope notification has at least %d bytes, not %d", len(head)+len(tail), size)
	}
	n := head + strings.Repeat("x", size-len(head)-len(tail)) + tail
	return []byte(`{"id":"evt-env-big","event":"envelopeExpired","accountId":"acc-1",` +
		`"resource":{"type":"ENVELOPE","id":"env-1"},"notification":` + n + `}`)
}

// An envelope-dialect notification is delivered byte for byte and cannot be trimmed, so one over
// the 10 MB payload limit (seeds: "JSON 裝載的大小限制為 10 MB") is refused at ingest, before
// anything is stored, although the body is within the 25 MiB ingest limit. Acrobat-dialect events
// are not: delivery trims their sections to fit.
func TestHandlerRefusesEnvelopeNotificationsOverTheCap(t *testing.T) {
	if payload.DefaultMaxBytes != 10<<20 {
		t.Fatalf("payload.DefaultMaxBytes = %d, want 10 MiB", payload.DefaultMaxBytes)
	}
	for _, tc := range []struct {
		name   string
		cap    int64 // Handler.MaxNotification
		body   []byte
		status int
		msg    string // in the 413's message
	}{
		{name: "exactly 10 MiB", body: envelopeEvent(t, payload.DefaultMaxBytes), status: http.StatusAccepted},
		{name: "one byte over 10 MiB", body: envelopeEvent(t, payload.DefaultMaxBytes+1), status: http.StatusRequestEntityTooLarge, msg: "10 MiB"},
		{name: "15 MiB", body: envelopeEvent(t, 15<<20), status: http.StatusRequestEntityTooLarge, msg: "10 MiB"},
		{name: "exactly a configured 4 KiB", cap: 4 << 10, body: envelopeEvent(t, 4<<10), status: http.StatusAccepted},
		{name: "over a configured 4 KiB", cap: 4 << 10, body: envelopeEvent(t, 4<<10+1), status: http.StatusRequestEntityTooLarge, msg: "4 KiB"},
		{name: "over a configured 12 MiB", cap: 12 << 20, body: envelopeEvent(t, 12<<20+1), status: http.StatusRequestEntityTooLarge, msg: "12 MiB"},
		{name: "11 MiB within a configured 12 MiB", cap: 12 << 20, body: envelopeEvent(t, 11<<20), status: http.StatusAccepted},
		{name: "Acrobat notification over the cap", cap: 4 << 10, body: mutated(t, "agreement_workflow_completed", func(ev map[string]any) {
			obj(t, obj(t, ev, "notification"), "agreement")["signedDocumentInfo"] = map[string]any{"document": strings.Repeat("A", 8<<10)}
		}), status: http.StatusAccepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.h.MaxNotification = tc.cap
			rec := f.serve(request{auth: bearer(tokAcc1), body: tc.body})
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %.300s", rec.Code, tc.status, rec.Body)
			}
			calls := f.acc.recorded()
			if tc.status == http.StatusAccepted {
				if len(calls) != 1 {
					t.Fatalf("acceptor called %d times, want once", len(calls))
				}
				return
			}
			code, msg := errorBody(t, rec)
			if code != "NOTIFICATION_TOO_LARGE" || !strings.Contains(msg, tc.msg) || !strings.Contains(msg, "notification") {
				t.Errorf("error = %s %q, want NOTIFICATION_TOO_LARGE naming the notification and %s", code, msg, tc.msg)
			}
			if len(calls) != 0 {
				t.Errorf("acceptor called %d times, want never: nothing is stored", len(calls))
			}
			f.assertRejectedOnly(t, "NOTIFICATION_TOO_LARGE")
		})
	}
}
