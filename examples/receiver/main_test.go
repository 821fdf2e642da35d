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

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const testClientID = "UB7E5BXCXY"

// recorder collects the notifications a receiver processes.
type recorder struct {
	mu   sync.Mutex
	keys []string
}

func (rec *recorder) process(n notification) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.keys = append(rec.keys, n.Key)
}

func (rec *recorder) processed() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.keys...)
}

// harness is a receiver behind an httptest server. Workers are started by the test, so that it
// controls when the queue drains.
type harness struct {
	t   *testing.T
	rcv *receiver
	srv *httptest.Server
	rec *recorder
}

func newHarness(t *testing.T, cfg config) *harness {
	t.Helper()
	rec := &recorder{}
	if len(cfg.ClientIDs) == 0 {
		cfg.ClientIDs = []string{testClientID, "other-app"}
	}
	cfg.Process = rec.process
	h := &harness{t: t, rcv: newReceiver(cfg), rec: rec}
	h.srv = httptest.NewServer(h.rcv.mux())
	t.Cleanup(func() { h.srv.Close(); _ = h.drain() })
	return h
}

// drain closes the server (waiting for handlers), then lets the workers finish the queue.
func (h *harness) drain() error {
	h.srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return h.rcv.stop(ctx)
}

func (h *harness) do(method, path, clientID string, body []byte) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if clientID != "" {
		req.Header.Set(clientIDHeader, clientID)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// wantEcho checks that resp acknowledges clientID the way hookline's check reads it.
func wantEcho(t *testing.T, resp *http.Response, clientID string) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if got := resp.Header.Get(clientIDHeader); got != clientID {
		t.Fatalf("echo header %q, want %q", got, clientID)
	}
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("body: %v", err)
	}
	if body[clientIDBodyKey] != clientID {
		t.Fatalf("echo body %v, want %s=%q", body, clientIDBodyKey, clientID)
	}
}

// wantRefused checks that resp has status and no echo anywhere.
func wantRefused(t *testing.T, resp *http.Response, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d", resp.StatusCode, status)
	}
	if got := resp.Header.Values(clientIDHeader); len(got) > 0 {
		t.Fatalf("refusal echoed the client id in the header: %q", got)
	}
	body, _ := io.ReadAll(resp.Body)
	if bytes.Contains(body, []byte(clientIDBodyKey)) {
		t.Fatalf("refusal echoed the client id in the body: %s", body)
	}
}

func acrobatBody(notificationID string) []byte {
	return []byte(`{"webhookId":"3f1c","webhookName":"account-agreements","webhookNotificationId":"` + notificationID +
		`","webhookUrlInfo":{"url":"https://receiver.example.com/hooks"},"webhookScope":"ACCOUNT","accountId":"acc-1",` +
		`"event":"AGREEMENT_ACTION_COMPLETED","eventDate":"2026-11-25T10:00:00Z",` +
		`"agreement":{"id":"agr-9","name":"NDA","status":"OUT_FOR_SIGNATURE"}}`)
}

func envelopeBody(envelopeID string) []byte {
	return []byte(`{"event":"envelopeExpired","data":{"basicInfo":{"envelopeId":"` + envelopeID + `","status":1}}}`)
}

func TestVerificationEchoesKnownClientID(t *testing.T) {
	h := newHarness(t, config{})
	wantEcho(t, h.do(http.MethodGet, "/hooks/agreements", testClientID, nil), testClientID)
	wantEcho(t, h.do(http.MethodGet, "/hooks/agreements", "other-app", nil), "other-app")
}

func TestVerificationRefusesUnknownClientID(t *testing.T) {
	h := newHarness(t, config{})
	wantRefused(t, h.do(http.MethodGet, "/hooks/agreements", "SOMEONE-ELSE", nil), http.StatusForbidden)
	wantRefused(t, h.do(http.MethodGet, "/hooks/agreements", "", nil), http.StatusForbidden)
}

func TestNotificationEchoedAndProcessed(t *testing.T) {
	h := newHarness(t, config{})
	h.rcv.start()
	wantEcho(t, h.do(http.MethodPost, "/hooks/agreements", testClientID, acrobatBody("n-1")), testClientID)
	if err := h.drain(); err != nil {
		t.Fatal(err)
	}
	if got := h.rec.processed(); len(got) != 1 || got[0] != "id:n-1" {
		t.Fatalf("processed %q, want [id:n-1]", got)
	}
}

func TestNotificationWithUnknownClientIDRefused(t *testing.T) {
	h := newHarness(t, config{})
	h.rcv.start()
	wantRefused(t, h.do(http.MethodPost, "/hooks/agreements", "SOMEONE-ELSE", acrobatBody("n-1")), http.StatusForbidden)
	if err := h.drain(); err != nil {
		t.Fatal(err)
	}
	if got := h.rec.processed(); len(got) != 0 {
		t.Fatalf("processed %q, want nothing", got)
	}
}

func TestDuplicateNotificationAcknowledgedProcessedOnce(t *testing.T) {
	h := newHarness(t, config{})
	h.rcv.start()
	for range 3 {
		wantEcho(t, h.do(http.MethodPost, "/hooks/agreements", testClientID, acrobatBody("n-1")), testClientID)
	}
	wantEcho(t, h.do(http.MethodPost, "/hooks/agreements", testClientID, acrobatBody("n-2")), testClientID)
	if err := h.drain(); err != nil {
		t.Fatal(err)
	}
	got := h.rec.processed()
	if len(got) != 2 || !contains(got, "id:n-1") || !contains(got, "id:n-2") {
		t.Fatalf("processed %q, want id:n-1 and id:n-2 once each", got)
	}
}

func TestQueueFullAnswers503WithoutEcho(t *testing.T) {
	h := newHarness(t, config{Queue: 1})
	// No workers yet: the first notification fills the queue.
	wantEcho(t, h.do(http.MethodPost, "/hooks/agreements", testClientID, acrobatBody("n-1")), testClientID)
	resp := h.do(http.MethodPost, "/hooks/agreements", testClientID, acrobatBody("n-2"))
	wantRefused(t, resp, http.StatusServiceUnavailable)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}

	// The refused notification was not remembered: hookline's retry is processed.
	h.rcv.start()
	deadline := time.Now().Add(10 * time.Second)
	for len(h.rec.processed()) < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	wantEcho(t, h.do(http.MethodPost, "/hooks/agreements", testClientID, acrobatBody("n-2")), testClientID)
	if err := h.drain(); err != nil {
		t.Fatal(err)
	}
	if got := h.rec.processed(); len(got) != 2 || got[0] != "id:n-1" || got[1] != "id:n-2" {
		t.Fatalf("processed %q, want [id:n-1 id:n-2]", got)
	}
}

func TestQueueByteBudgetAnswers503(t *testing.T) {
	body := acrobatBody("n-1")
	h := newHarness(t, config{Queue: 10, MaxQueuedBytes: int64(len(body)) + 10})
	wantEcho(t, h.do(http.MethodPost, "/hooks/agreements", testClientID, body), testClientID)
	wantRefused(t, h.do(http.MethodPost, "/hooks/agreements", testClientID, acrobatBody("n-2")), http.StatusServiceUnavailable)
}

func TestOversizedBodyRejected(t *testing.T) {
	h := newHarness(t, config{})
	h.rcv.start()
	pad := func(n int) []byte {
		prefix := `{"webhookNotificationId":"big","pad":"`
		return []byte(prefix + strings.Repeat("a", n-len(prefix)-2) + `"}`)
	}
	// 10 MiB, hookline's cap, is accepted; above the margin is refused without echo.
	wantEcho(t, h.do(http.MethodPost, "/hooks/agreements", testClientID, pad(10<<20)), testClientID)
	wantRefused(t, h.do(http.MethodPost, "/hooks/agreements", testClientID, pad(maxBodyBytes+1)), http.StatusRequestEntityTooLarge)
	if err := h.drain(); err != nil {
		t.Fatal(err)
	}
	if got := h.rec.processed(); len(got) != 1 {
		t.Fatalf("processed %q, want only the 10 MiB notification", got)
	}
}

func TestInvalidJSONRefused(t *testing.T) {
	h := newHarness(t, config{})
	wantRefused(t, h.do(http.MethodPost, "/hooks/agreements", testClientID, []byte(`{"webhookNotificationId":`)), http.StatusBadRequest)
	wantRefused(t, h.do(http.MethodPost, "/hooks/agreements", testClientID, []byte(`["not", "an", "object"]`)), http.StatusBadRequest)
}

func TestEnvelopeDedupedOnBodyHash(t *testing.T) {
	h := newHarness(t, config{})
	h.rcv.start()
	for range 2 {
		wantEcho(t, h.do(http.MethodPost, "/hooks/envelopes", testClientID, envelopeBody("env-1")), testClientID)
	}
	wantEcho(t, h.do(http.MethodPost, "/hooks/envelopes", testClientID, envelopeBody("env-2")), testClientID)
	// The same body on another path is another Webhook's copy.
	wantEcho(t, h.do(http.MethodPost, "/hooks/other", testClientID, envelopeBody("env-1")), testClientID)
	if err := h.drain(); err != nil {
		t.Fatal(err)
	}
	got := h.rec.processed()
	if len(got) != 3 {
		t.Fatalf("processed %q, want 3 distinct notifications", got)
	}
	for _, k := range got {
		if !strings.HasPrefix(k, "sha256:") {
			t.Fatalf("envelope key %q is not a body hash", k)
		}
	}
}

// Envelope bodies are deduplicated on the webhook-id header when it comes: two Webhooks' copies of
// one event on one path are two notifications, a retry of one is a duplicate.
func TestEnvelopeDedupedOnWebhookID(t *testing.T) {
	h := newHarness(t, config{})
	h.rcv.start()
	post := func(id string) *http.Response {
		req, err := http.NewRequest(http.MethodPost, h.srv.URL+"/hooks/envelopes", bytes.NewReader(envelopeBody("env-1")))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(clientIDHeader, testClientID)
		req.Header.Set("webhook-id", id)
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = resp.Body.Close() })
		return resp
	}
	wantEcho(t, post("3b0c2b5e-0000-4000-8000-00000000000a"), testClientID)
	wantEcho(t, post("3b0c2b5e-0000-4000-8000-00000000000a"), testClientID) // a retry
	wantEcho(t, post("3b0c2b5e-0000-4000-8000-00000000000b"), testClientID) // another Webhook's copy
	if err := h.drain(); err != nil {
		t.Fatal(err)
	}
	got := h.rec.processed()
	want := []string{"id:3b0c2b5e-0000-4000-8000-00000000000a", "id:3b0c2b5e-0000-4000-8000-00000000000b"}
	if !slices.Equal(got, want) {
		t.Fatalf("processed %q, want %q", got, want)
	}
}

func TestDedupeExpires(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := newHarness(t, config{Now: clock})
	h.rcv.start()
	wantEcho(t, h.do(http.MethodPost, "/hooks/agreements", testClientID, acrobatBody("n-1")), testClientID)
	mu.Lock()
	now = now.Add(72 * time.Hour) // hookline's last retry: still a duplicate
	mu.Unlock()
	wantEcho(t, h.do(http.MethodPost, "/hooks/agreements", testClientID, acrobatBody("n-1")), testClientID)
	mu.Lock()
	now = now.Add(dedupeTTL) // long forgotten
	mu.Unlock()
	wantEcho(t, h.do(http.MethodPost, "/hooks/agreements", testClientID, acrobatBody("n-1")), testClientID)
	if err := h.drain(); err != nil {
		t.Fatal(err)
	}
	if got := h.rec.processed(); len(got) != 2 {
		t.Fatalf("processed %q, want the first and the one after expiry", got)
	}
}

func TestSeenSetBounded(t *testing.T) {
	s := newSeenSet(time.Hour, 2)
	now := time.Now()
	if s.add("a", now) != 0 || s.add("b", now) != 0 {
		t.Fatal("evicted below the bound")
	}
	if s.add("c", now) != 1 {
		t.Fatal("want the oldest key evicted at the bound")
	}
	if s.contains("a", now) || !s.contains("b", now) || !s.contains("c", now) || s.len() != 2 {
		t.Fatal("want b and c kept, a forgotten")
	}
	if s.contains("b", now.Add(time.Hour)) || s.len() != 0 {
		t.Fatal("want every key expired after the TTL")
	}
}

func TestMethodsAndHealth(t *testing.T) {
	h := newHarness(t, config{})
	if resp := h.do(http.MethodGet, "/healthz", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %d", resp.StatusCode)
	}
	resp := h.do(http.MethodPut, "/hooks/agreements", testClientID, []byte(`{}`))
	wantRefused(t, resp, http.StatusMethodNotAllowed)
}

func TestRunNeedsClientIDs(t *testing.T) {
	if err := run("127.0.0.1:0", " , ", 1, 1, nil); err == nil {
		t.Fatal("run started without client ids")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
