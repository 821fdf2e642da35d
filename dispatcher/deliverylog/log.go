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

// Package deliverylog keeps the delivery log on JetStream: one record per delivery attempt and per
// change of a notification's state (internal/deliveries.Record), per webhook, for a retention the
// operator sets; and it answers the read API's questions from it (a webhook's notifications with
// their state, newest first; one notification's records).
//
// Layout: stream HOOKLINE_LOG, subject hookline.log.<webhook uid>, one JSON record per message
// (about 500 bytes for a typical attempt, 580 stored; BenchmarkAppend measures it), file storage,
// limits retention (MaxAge, MaxBytes; the oldest records go first).
//
// Writing: Append hands a record to a bounded buffer (it blocks only while the buffer is full);
// the writer publishes each record asynchronously (one PublishAsync per record, no per-record
// wait) and a second goroutine checks the acknowledgements in publishing order, publishing a
// failed record again until it is stored. Barrier waits until every record appended before it is
// acknowledged. Records are encoded without reflection (appendRecord: the bytes json.Marshal would
// write). The dispatcher gives the log a NATS connection of its own (store.Store.Connect), so that
// its publishes and acknowledgements do not queue in front of the queues' on the store's.
//
// Reading: JetStream reads a subject forward only. A read walks back from the log's end over
// windows of stream sequences (1,024 of every webhook's records, then twice as many each time),
// reading each window forward with a short-lived pull consumer filtered on the webhook's subject
// and folding the records into one summary per notification (the newest record gives the state).
// Having read back to some point, every notification whose newest record is after it is known
// with its place; the queue's tail is read back the same way (Queue.LoadNotes), for the
// notifications queued and not yet attempted, placed at their Created time. A page is complete
// once it holds Limit notifications within that known part, or the reading reached the start of
// the log (or of Query.Since). A later page reads everything after its cursor again (a
// notification's newest record may be anywhere after it), then further back.
//
// Cost: one request reads at most Config.MaxRead records and queued notes (default 100,000;
// about 10 µs each on an idle core, JSON decoding most of it); a window that would exceed what
// is left is made shorter, never read in part. When the bound stops a request first, the page is
// marked Incomplete (narrow the filters or the time range). The first pages of a webhook cost a
// few milliseconds; a selective filter over a long history costs up to the bound. Attempts reads
// back until the notification's first record; Scan reads forward from its start time without
// bound (replays).
//
// Pagination is consistent while records arrive: the first page fixes a snapshot (the stream's
// last sequence and the time); later pages take a notification's state from its records up to
// the snapshot, list one first recorded after it as pending (as it was), and leave out the ones
// created after it. Cursors are base64url, signed (HMAC-SHA256 with Config.CursorKey) over the
// webhook, the filters, the snapshot and the position; anything else is ErrBadCursor.
package deliverylog

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/deliveries"
)

// Stream is the JetStream stream holding the log.
const Stream = "HOOKLINE_LOG"

const (
	subjectPrefix  = "hookline.log."
	defaultMaxAge  = 7 * 24 * time.Hour
	defaultBuffer  = 4096
	defaultMaxRead = 100_000
)

// MaxPending is how many unacknowledged asynchronous publishes the JetStream context given to New
// should allow (jetstream.WithPublishAsyncMaxPending): the writer keeps at most Config.Buffer
// records in flight, 4096 by default.
const MaxPending = defaultBuffer

// Config tunes the log.
type Config struct {
	// Patiently, when set, runs the stream's creation until it succeeds (store.Store.Patiently): a
	// NATS cluster electing leaders after a node died answers nothing for a few seconds, and a
	// dispatcher taking over the lease then must not exit. Nil tries once.
	Patiently func(ctx context.Context, f func(context.Context) error) error
	// MaxAge is how long records are kept (default 7 days).
	MaxAge time.Duration
	// MaxBytes bounds the stream's size; the oldest records go first (0: no bound besides MaxAge).
	MaxBytes int64
	// Replicas of the stream (as the store's).
	Replicas int
	// CursorKey authenticates the cursors handed out (HMAC), so that a tampered cursor is refused
	// rather than read; replicas sharing a cluster must share it. Empty: a random key, valid
	// until the process ends.
	CursorKey []byte
	// AccountOf returns the account of a webhook, which names its queued notifications (their
	// webhookNotificationId is payload.NotificationID(uid, account, event id)): a queued
	// notification belongs to the webhook's current account, as a rebind cancels the queue.
	// Nil or unknown: queued notifications without a record are listed without an id.
	AccountOf func(uid string) (string, bool)
	// Buffer is how many records Append holds before it blocks (default 4096).
	Buffer int
	// MaxRead bounds the records and queued notifications one read request reads (default
	// 100,000).
	MaxRead int
}

// Errors of the read side.
var (
	// ErrNotFound: no such notification in the log or the queue.
	ErrNotFound = errors.New("not found")
	// ErrBadCursor: the cursor was not handed out by this log, or belongs to other filters.
	ErrBadCursor = errors.New("invalid cursor")
)

// Queue reads a webhook's queued notifications (store.Store), for the ones not on record yet.
type Queue interface {
	LoadNotes(ctx context.Context, uid string, from uint64, max int) ([]store.Note, error)
}

// Log is the delivery log.
type Log struct {
	js      jetstream.JetStream
	stream  jetstream.Stream
	q       Queue
	cfg     Config
	log     logr.Logger
	metrics *metrics

	ch       chan deliveries.Record
	started  atomic.Bool
	stopped  chan struct{} // closed when the writer has stopped
	appended atomic.Uint64 // records handed to Append

	mu    sync.Mutex
	acked uint64        // records stored, in Append order
	wake  chan struct{} // closed when acked moves, made by a waiting Barrier
}

// New creates or updates the stream and returns the log; Start runs its writer.
func New(ctx context.Context, js jetstream.JetStream, q Queue, cfg Config, reg prometheus.Registerer) (*Log, error) {
	log := logr.FromContextOrDiscard(ctx) // kept for the log's lifetime
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = defaultMaxAge
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = defaultBuffer
	}
	if cfg.MaxRead <= 0 {
		cfg.MaxRead = defaultMaxRead
	}
	if len(cfg.CursorKey) == 0 {
		cfg.CursorKey = make([]byte, 32)
		if _, err := rand.Read(cfg.CursorKey); err != nil {
			return nil, err
		}
	}
	maxBytes := cfg.MaxBytes
	if maxBytes <= 0 {
		maxBytes = -1
	}
	var st jetstream.Stream
	create := func(ctx context.Context) (err error) {
		st, err = js.CreateOrUpdateStream(ctx, streamConfig(cfg, maxBytes))
		return err
	}
	var err error
	if cfg.Patiently != nil {
		err = cfg.Patiently(ctx, create)
	} else {
		err = create(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", Stream, err)
	}
	l := &Log{
		js: js, stream: st, q: q, cfg: cfg, log: log,
		ch:      make(chan deliveries.Record, cfg.Buffer),
		stopped: make(chan struct{}),
	}
	l.metrics = newMetrics(l)
	if reg != nil {
		if err := l.metrics.register(reg); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// streamConfig is the delivery log's stream.
func streamConfig(cfg Config, maxBytes int64) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        Stream,
		Description: "hookline: delivery log (one record per attempt and state change)",
		Subjects:    []string{subjectPrefix + "*"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    maxBytes,
		// Records carry no message ids: keep the smallest window JetStream allows.
		Duplicates:  min(time.Second, cfg.MaxAge),
		Replicas:    cfg.Replicas,
		AllowDirect: cfg.Replicas == 1, // as the store's streams: no lagging follower answers
	}
}

// validUID reports whether uid can name a subject: a webhook uid never holds the separators or
// wildcards that would make a read reach other webhooks' records.
func validUID(uid string) bool {
	return uid != "" && !strings.ContainsAny(uid, ".*> \t\r\n")
}

func subject(uid string) string { return subjectPrefix + uid }

// inflight is one published record waiting for its acknowledgement.
type inflight struct {
	f    jetstream.PubAckFuture
	subj string
	data []byte
}

// Start runs the writer until ctx ends; it returns at once. Records appended after ctx ended are
// not written (each is logged).
func (l *Log) Start(ctx context.Context) {
	if !l.started.CompareAndSwap(false, true) {
		return
	}
	pending := make(chan inflight, l.cfg.Buffer)
	go l.publish(ctx, pending)
	go func() {
		defer close(l.stopped)
		l.confirm(ctx, pending)
	}()
}

// Append hands r to the writer. It does not wait for JetStream; it blocks only while the writer's
// buffer is full (back-pressure rather than a lost record).
func (l *Log) Append(r deliveries.Record) {
	l.appended.Add(1)
	select {
	case <-l.stopped:
		// Checked first: a free buffer slot must not swallow a record nobody will write.
	default:
		select {
		case l.ch <- r:
			return
		case <-l.stopped:
		}
	}
	l.metrics.writeErrors.Inc()
	l.log.Error(errStopped, "Delivery record not written", "uid", r.WebhookUID, "notification", r.NotificationID, "state", r.State)
}

var errStopped = errors.New("delivery log stopped")

// publish marshals and publishes records in Append order, without waiting for acknowledgements.
func (l *Log) publish(ctx context.Context, out chan<- inflight) {
	defer close(out)
	var buf []byte // encoding scratch, reused: each record keeps a copy of its exact size
	for {
		var r deliveries.Record
		select {
		case r = <-l.ch:
		case <-ctx.Done():
			return
		}
		p := inflight{subj: subject(r.WebhookUID)}
		if !validUID(r.WebhookUID) {
			// Cannot be stored under its webhook; counted as written so that Barrier moves on.
			l.metrics.writeErrors.Inc()
			l.log.Error(errors.New("invalid webhook uid"), "Delivery record not written", "uid", r.WebhookUID, "notification", r.NotificationID)
			p.subj = ""
		} else {
			var err error
			buf, err = appendRecord(buf[:0], &r)
			if err != nil { // a time JSON cannot hold; never silent
				l.metrics.writeErrors.Inc()
				l.log.Error(err, "Delivery record not written", "uid", r.WebhookUID, "notification", r.NotificationID)
				p.subj = ""
			}
			p.data = bytes.Clone(buf)
		}
		if p.subj != "" {
			for backoff := 10 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
				f, err := l.js.PublishAsync(p.subj, p.data)
				if err == nil {
					p.f = f
					break
				}
				// Too many unacknowledged publishes (JetStream is slow: back-pressure, not an
				// error) or a lost connection: wait and publish again.
				if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
					l.metrics.writeErrors.Inc()
					l.log.Error(err, "Publishing delivery record; retrying", "uid", r.WebhookUID)
				}
				if !sleep(ctx, backoff) {
					return
				}
			}
		}
		select {
		case out <- p:
		case <-ctx.Done():
			return
		}
	}
}

// confirm waits for the acknowledgements in publishing order, publishes a failed record again
// until it is stored, and moves Barrier's mark.
func (l *Log) confirm(ctx context.Context, in <-chan inflight) {
	var acked uint64
	for p := range in {
		if p.f != nil && !l.await(ctx, p) {
			return
		}
		acked++
		if len(in) == 0 || acked%256 == 0 {
			l.mu.Lock()
			l.acked = acked
			if l.wake != nil {
				close(l.wake)
				l.wake = nil
			}
			l.mu.Unlock()
		}
	}
}

// await waits for p's acknowledgement, publishing it again (synchronously, so that nothing
// behind it is confirmed first) until JetStream stores it. False when ctx ended first.
func (l *Log) await(ctx context.Context, p inflight) bool {
	var err error
	select {
	case ack := <-p.f.Ok():
		l.stored(ack, len(p.data))
		return true
	case err = <-p.f.Err():
	case <-ctx.Done():
		return false
	}
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		l.metrics.writeErrors.Inc()
		l.log.Error(err, "Storing delivery record; retrying", "subject", p.subj)
		if !sleep(ctx, backoff) {
			return false
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var ack *jetstream.PubAck
		ack, err = l.js.Publish(pctx, p.subj, p.data)
		cancel()
		if err == nil {
			l.stored(ack, len(p.data))
			return true
		}
	}
}

func (l *Log) stored(_ *jetstream.PubAck, n int) {
	l.metrics.records.Inc()
	l.metrics.bytes.Add(float64(n))
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Barrier returns once every record appended before the call is stored (or ctx ends). The engine
// calls it before removing settled notifications from their queues, so that a notification never
// leaves its queue without its record.
func (l *Log) Barrier(ctx context.Context) error {
	target := l.appended.Load()
	for {
		l.mu.Lock()
		if l.acked >= target {
			l.mu.Unlock()
			return nil
		}
		if l.wake == nil {
			l.wake = make(chan struct{})
		}
		w := l.wake
		l.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.stopped:
			return errStopped
		}
	}
}
