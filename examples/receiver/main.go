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

// Command receiver is an example webhook receiver for hookline (and Acrobat Sign), written with
// the Go standard library only. docs/receivers.md walks through it. Each choice below follows from
// what hookline does with the answer:
//
//   - Client-id echo, only for expected ids. hookline counts a verification GET or a notification
//     POST as acknowledged only on a 2xx answer that echoes the X-AdobeSign-ClientId request header,
//     in the response header of that name or in a JSON body {"xAdobeSignClientId": "<id>"}; this
//     receiver does both. It echoes only the ids listed in -client-ids (or $RECEIVER_CLIENT_IDS): a
//     receiver that echoed any id would confirm subscriptions it never asked for. Unknown or missing
//     ids get 403 and no echo, so such a Webhook never becomes Active.
//
//   - Answer fast, work later. hookline waits 5 seconds for the whole exchange and treats anything
//     slower as a failure it retries. The handler therefore only reads the body, checks it is JSON,
//     deduplicates and hands it to a bounded in-memory queue served by -workers goroutines; the
//     actual work (here: a log line) happens after the answer.
//
//   - A full queue answers 503 without the echo. hookline then retries the same notification later
//     (1 minute, doubling) instead of the receiver dropping it or buffering without bound. The queue
//     holds at most -queue notifications and at most maxQueuedBytes of bodies, whichever comes first.
//     A 503 is not free: hookline delivers one notification at a time per Webhook, in order, so the
//     Webhook's later notifications wait behind the refused one for at least the first retry delay.
//     Size -workers and -queue so that it stays rare (one account has at most 30 deliveries in
//     flight at once).
//
//   - Deduplicate on webhookNotificationId. hookline (like Acrobat Sign) delivers at least once: a
//     retry after an answer it did not see (a timeout, a dropped connection) or a re-delivery after
//     a dispatcher crash carries the same webhookNotificationId. Duplicates are acknowledged (so
//     hookline moves on) but not processed again. The ids live in a bounded in-memory set that
//     forgets them after dedupeTTL: hookline drops a notification 72 hours after it was created, so
//     no retry comes later than that; the margin covers clock skew and slow answers. A real service
//     keeps these ids in its database, in the same transaction as the work they stand for, so that
//     deduplication survives restarts and is shared by every replica behind the URL.
//
//   - Envelope dialect. Envelope-family notifications ({"event": "envelopeExpired", "data": {...}})
//     are delivered byte for byte as the platform sent them and carry no webhookNotificationId.
//     They are deduplicated on the webhook-id request header, which holds it; from a hookline that
//     does not send it, on a SHA-256 of the request path and body (a retry is byte-identical; point
//     Webhooks at different paths if their copies of one event must be told apart).
//
//   - Bounded bodies. hookline trims Acrobat-dialect bodies to 10 MiB (dropping optional sections
//     and listing them in conditionalParametersTrimmed), so maxBodyBytes allows 10 MiB plus a
//     margin; larger bodies get 413. Envelope-dialect bodies are not trimmed: raise the limit if
//     your platform sends larger ones, because hookline retries a 413 like any other failure.
//
//   - Acknowledged means queued in memory. A crash loses what the queue holds although hookline
//     was told it arrived. A real service writes the notification to durable storage (its database,
//     a durable queue) before answering 2xx; on shutdown this example stops accepting and drains
//     its queue first.
//
//   - Plain HTTP. hookline delivers only to https:// URLs unless the operator runs it with
//     --allow-http (in-cluster receivers); put this receiver behind a TLS-terminating Ingress or
//     Gateway (which may also verify hookline's client certificate, see clientCertificateSecretRef)
//     and make sure nothing on the way answers with a redirect: hookline does not follow them.
//
// Usage:
//
//	receiver -listen :8080 -client-ids UB7E5BXCXY,hookline -workers 4 -queue 100
//
// GET /healthz answers 200 for probes; every other path is a webhook endpoint.
package main

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// clientIDHeader carries the client id to the receiver and, echoed, back to hookline.
	clientIDHeader = "X-AdobeSign-ClientId"
	// clientIDBodyKey is the JSON body key of the echo.
	clientIDBodyKey = "xAdobeSignClientId"

	// maxBodyBytes is hookline's 10 MiB notification cap plus a margin.
	maxBodyBytes = 10<<20 + 1<<20
	// maxQueuedBytes bounds the memory held by queued bodies.
	maxQueuedBytes = 256 << 20
	// dedupeTTL is how long a notification id is remembered: hookline's 72-hour drop age plus a
	// margin.
	dedupeTTL = 72*time.Hour + 4*time.Hour
	// dedupeMaxEntries bounds the dedupe set (roughly 50 MB). When it is full the oldest ids are
	// forgotten early, which is logged: a sign that this in-memory set is too small for the traffic.
	dedupeMaxEntries = 250_000
)

func main() {
	listen := flag.String("listen", ":8080", "Address to serve on.")
	clientIDs := flag.String("client-ids", os.Getenv("RECEIVER_CLIENT_IDS"),
		"Comma-separated client ids (X-AdobeSign-ClientId) this receiver acknowledges (default $RECEIVER_CLIENT_IDS).")
	workers := flag.Int("workers", 4, "Goroutines processing notifications.")
	queue := flag.Int("queue", 100, "Notifications waiting for a worker; when full, POSTs get 503 and hookline retries later.")
	flag.Parse()

	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(*listen, *clientIDs, *workers, *queue, log); err != nil {
		log.Error("receiver failed", "error", err.Error())
		os.Exit(1)
	}
}

func run(listen, clientIDs string, workers, queue int, log *slog.Logger) error {
	ids := splitList(clientIDs)
	if len(ids) == 0 {
		return errors.New("no client ids: set -client-ids or RECEIVER_CLIENT_IDS (a receiver that acknowledges every id confirms subscriptions it never asked for)")
	}
	if workers < 1 || queue < 1 {
		return errors.New("-workers and -queue must be at least 1")
	}
	rcv := newReceiver(config{ClientIDs: ids, Workers: workers, Queue: queue, Log: log})
	rcv.start()

	srv := &http.Server{
		Addr:    listen,
		Handler: rcv.mux(),
		// hookline gives up after 5 s; these bound what a slow or hostile client can hold.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		// Longer than hookline's 90 s idle timeout, so that hookline closes idle connections first
		// and never writes into one this side is closing.
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("receiver listening", "address", listen, "clientIds", len(ids), "workers", workers, "queue", queue)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: no new notifications, draining the queue")
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		log.Error("stopping the server", "error", err.Error())
	}
	return rcv.stop(shutdown)
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// notification is one accepted POST, waiting for a worker.
type notification struct {
	// Key is the dedupe key: "id:<webhookNotificationId>" or "sha256:<hash of path and body>".
	Key      string
	Path     string
	Body     []byte
	Received time.Time
}

// config tunes a receiver; zero values take the defaults above.
type config struct {
	ClientIDs      []string
	Workers        int
	Queue          int
	MaxBodyBytes   int64
	MaxQueuedBytes int64
	DedupeTTL      time.Duration
	DedupeMax      int
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
	// Process handles one notification; nil logs a summary of it.
	Process func(notification)
	Log     *slog.Logger
}

// receiver is the webhook endpoint: http handlers in front of a bounded queue and its workers.
type receiver struct {
	cfg       config
	clientIDs map[string]bool
	log       *slog.Logger
	process   func(notification)
	queue     chan notification
	wg        sync.WaitGroup

	// mu guards the dedupe set, the queued byte count and closed, so that "not seen yet" and
	// "queued" are decided together: a duplicate is never acknowledged while its original might
	// still be refused.
	mu          sync.Mutex
	seen        *seenSet
	queuedBytes int64
	closed      bool
}

func newReceiver(cfg config) *receiver {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 100
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = maxBodyBytes
	}
	if cfg.MaxQueuedBytes <= 0 {
		cfg.MaxQueuedBytes = maxQueuedBytes
	}
	if cfg.DedupeTTL <= 0 {
		cfg.DedupeTTL = dedupeTTL
	}
	if cfg.DedupeMax <= 0 {
		cfg.DedupeMax = dedupeMaxEntries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	r := &receiver{
		cfg:       cfg,
		clientIDs: map[string]bool{},
		log:       cfg.Log,
		queue:     make(chan notification, cfg.Queue),
		seen:      newSeenSet(cfg.DedupeTTL, cfg.DedupeMax),
	}
	for _, id := range cfg.ClientIDs {
		r.clientIDs[id] = true
	}
	r.process = cfg.Process
	if r.process == nil {
		r.process = r.logNotification
	}
	return r
}

// mux routes /healthz to a probe and every other path to the webhook handler.
func (r *receiver) mux() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	m.Handle("/", r)
	return m
}

// ServeHTTP answers the verification GET and notification POSTs.
func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch req.Method {
	case http.MethodGet:
		r.verify(w, req)
	case http.MethodPost:
		r.notify(w, req)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// clientID returns the request's client id and whether this receiver expects it.
func (r *receiver) clientID(req *http.Request) (string, bool) {
	id := req.Header.Get(clientIDHeader)
	return id, id != "" && r.clientIDs[id]
}

// verify answers intent verification: the echo confirms that this endpoint wants the Webhook.
func (r *receiver) verify(w http.ResponseWriter, req *http.Request) {
	id, ok := r.clientID(req)
	if !ok {
		r.refuseClientID(w, req, id)
		return
	}
	r.log.Info("verification acknowledged", "path", req.URL.Path)
	acknowledge(w, id)
}

// notify takes one notification: checks, dedupes, queues, and acknowledges.
func (r *receiver) notify(w http.ResponseWriter, req *http.Request) {
	id, ok := r.clientID(req)
	if !ok {
		r.refuseClientID(w, req, id)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.cfg.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			r.log.Warn("notification too large; refused (hookline will retry it)", "path", req.URL.Path, "limit", r.cfg.MaxBodyBytes)
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		r.log.Warn("reading notification body", "path", req.URL.Path, "error", err.Error())
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	key, err := dedupeKey(req.URL.Path, req.Header.Get("webhook-id"), body)
	if err != nil {
		r.log.Warn("notification is not a JSON object; refused", "path", req.URL.Path, "error", err.Error())
		http.Error(w, "body must be a JSON object", http.StatusBadRequest)
		return
	}
	n := notification{Key: key, Path: req.URL.Path, Body: body, Received: r.cfg.Now()}
	switch r.admit(n) {
	case admitted:
		acknowledge(w, id)
	case duplicate:
		// Acknowledged, so that hookline moves on; processed once already (or queued to be).
		r.log.Info("duplicate notification acknowledged, not processed again", "key", key, "path", req.URL.Path)
		acknowledge(w, id)
	case full:
		// No echo: hookline counts this as a failure and retries the same notification later.
		r.log.Warn("queue full; answered 503 so that hookline retries", "key", key, "queued", len(r.queue))
		w.Header().Set("Retry-After", "60")
		http.Error(w, "busy, retry later", http.StatusServiceUnavailable)
	case closed:
		w.Header().Set("Retry-After", "60")
		http.Error(w, "shutting down, retry later", http.StatusServiceUnavailable)
	}
}

func (r *receiver) refuseClientID(w http.ResponseWriter, req *http.Request, id string) {
	r.log.Warn("unknown client id; refused without echo", "method", req.Method, "path", req.URL.Path,
		"clientId", truncate(id, 64), "remote", req.RemoteAddr)
	http.Error(w, "unknown client id", http.StatusForbidden)
}

// acknowledge answers 200 with the client id echoed in the header and in the JSON body; either one
// alone would do.
func acknowledge(w http.ResponseWriter, id string) {
	w.Header().Set(clientIDHeader, id)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(map[string]string{clientIDBodyKey: id})
}

// dedupeKey returns the key a notification is deduplicated on: its webhookNotificationId (Acrobat
// dialect) or, without one (envelope dialect), the webhook-id header that carries it (hookline
// sends it with every notification since session 42), or without that either (an older hookline)
// a SHA-256 of the path and the body.
func dedupeKey(path, headerID string, body []byte) (string, error) {
	var head struct {
		WebhookNotificationID string `json:"webhookNotificationId"`
	}
	// Unmarshal validates the whole body as well: a body that is not a JSON object is refused.
	if err := json.Unmarshal(body, &head); err != nil {
		return "", err
	}
	if head.WebhookNotificationID != "" {
		return "id:" + head.WebhookNotificationID, nil
	}
	if headerID != "" {
		return "id:" + headerID, nil
	}
	h := sha256.New()
	h.Write([]byte(path))
	h.Write([]byte{0})
	h.Write(body)
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

type admission int

const (
	admitted admission = iota
	duplicate
	full
	closed
)

// admit queues n unless its key was seen, the queue is full, or the receiver is stopping.
func (r *receiver) admit(n notification) admission {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return closed
	}
	now := r.cfg.Now()
	if r.seen.contains(n.Key, now) {
		return duplicate
	}
	size := int64(len(n.Body))
	if r.queuedBytes+size > r.cfg.MaxQueuedBytes {
		return full
	}
	select {
	case r.queue <- n:
	default:
		return full
	}
	r.queuedBytes += size
	if evicted := r.seen.add(n.Key, now); evicted > 0 {
		r.log.Warn("dedupe set full: forgot ids before their time; use durable storage for dedupe", "evicted", evicted)
	}
	return admitted
}

// start launches the workers.
func (r *receiver) start() {
	for range r.cfg.Workers {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for n := range r.queue {
				r.mu.Lock()
				r.queuedBytes -= int64(len(n.Body))
				r.mu.Unlock()
				r.safeProcess(n)
			}
		}()
	}
}

// safeProcess keeps one bad notification from taking a worker down.
func (r *receiver) safeProcess(n notification) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("processing notification panicked", "key", n.Key, "panic", fmt.Sprint(p))
		}
	}()
	r.process(n)
}

// stop refuses new notifications, lets the workers finish what is queued and waits for them (or
// for ctx).
func (r *receiver) stop(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.queue)
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("workers did not drain the queue: %w", ctx.Err())
	}
}

// logNotification is the example's "work": one log line naming what arrived. It never logs the
// body, which may hold personal data and signed documents.
func (r *receiver) logNotification(n notification) {
	var top map[string]json.RawMessage
	_ = json.Unmarshal(n.Body, &top)
	attrs := []any{
		"key", n.Key,
		"path", n.Path,
		"bytes", len(n.Body),
		"event", jsonString(top["event"]),
		"queuedFor", r.cfg.Now().Sub(n.Received).String(),
	}
	if _, ok := top["webhookNotificationId"]; ok {
		attrs = append(attrs,
			"webhookName", jsonString(top["webhookName"]),
			"webhookNotificationId", jsonString(top["webhookNotificationId"]),
			"accountId", jsonString(top["accountId"]))
		for _, res := range []string{"agreement", "widget", "megaSign", "libraryDocument"} {
			var obj struct {
				ID      string   `json:"id"`
				Trimmed []string `json:"conditionalParametersTrimmed"`
			}
			if raw, ok := top[res]; !ok || json.Unmarshal(raw, &obj) != nil {
				continue
			}
			attrs = append(attrs, "resource", res, "resourceId", obj.ID)
			if len(obj.Trimmed) > 0 {
				// Over 10 MiB: hookline dropped these sections; fetch them from the platform's API.
				attrs = append(attrs, "trimmed", obj.Trimmed)
			}
		}
	} else {
		attrs = append(attrs, "dialect", "envelope")
	}
	r.log.Info("processed notification", attrs...)
}

func jsonString(raw json.RawMessage) string {
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// seenSet remembers keys for a fixed time, with a bound on their number. Keys expire in the order
// they were added (the TTL is fixed), so a FIFO list finds the expired ones. Not safe for concurrent
// use: receiver.mu guards it.
type seenSet struct {
	ttl   time.Duration
	max   int
	order *list.List // of seenEntry, oldest first
	byKey map[string]*list.Element
}

type seenEntry struct {
	key     string
	expires time.Time
}

func newSeenSet(ttl time.Duration, max int) *seenSet {
	return &seenSet{ttl: ttl, max: max, order: list.New(), byKey: map[string]*list.Element{}}
}

// contains reports whether key was added and has not expired at now.
func (s *seenSet) contains(key string, now time.Time) bool {
	s.expire(now)
	_, ok := s.byKey[key]
	return ok
}

// add remembers key until now+ttl and returns how many unexpired keys it had to forget to stay
// within its bound.
func (s *seenSet) add(key string, now time.Time) (evicted int) {
	s.expire(now)
	if _, ok := s.byKey[key]; ok {
		return 0
	}
	for s.order.Len() >= s.max {
		s.removeFront()
		evicted++
	}
	s.byKey[key] = s.order.PushBack(seenEntry{key: key, expires: now.Add(s.ttl)})
	return evicted
}

func (s *seenSet) len() int { return s.order.Len() }

func (s *seenSet) expire(now time.Time) {
	for e := s.order.Front(); e != nil && !now.Before(e.Value.(seenEntry).expires); e = s.order.Front() {
		s.removeFront()
	}
}

func (s *seenSet) removeFront() {
	e := s.order.Front()
	s.order.Remove(e)
	delete(s.byKey, e.Value.(seenEntry).key)
}
