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
// Layout: stream HOOKLINE_LOG, subject hookline.log.<webhook uid>, one or more JSON records per
// message, one per line (a webhook's records written together; about 500 bytes for a typical
// attempt, BenchmarkAppend measures what is stored), file storage, limits retention (MaxAge,
// MaxBytes). Near MaxBytes the account holding the most of the log loses its oldest records
// first (share.go), so that one account's records cannot push another's out.
//
// Writing: Append hands a record to a bounded buffer (it blocks only while the buffer is full).
// The writer gathers each webhook's records for up to Config.Gather (200 ms; at most Config.Batch
// records and 64 KiB) and publishes them as one message, asynchronously (no per-message wait): at
// high rates most of the log's cost was JetStream's per message (its store, index and
// acknowledgement), not per byte. A second goroutine checks the acknowledgements in publishing
// order, publishing a failed message again until it is stored. Barrier publishes what is
// gathered and waits until every record appended before it is acknowledged; BarrierAtTick waits
// for the next tick instead (the engine's acker, which calls it every flush). Records are encoded
// without reflection (appendRecord: the bytes json.Marshal would write). The dispatcher gives the
// log a NATS connection of its own (store.Store.Connect), so that its publishes and
// acknowledgements do not queue in front of the queues' on the store's.
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
// about 10 µs each on an idle core, JSON decoding most of it); a window whose messages would
// exceed what is left is made shorter, and one whose records do (messages hold up to
// Config.Batch) ends the request where the bound is reached. When the bound stops a request first, the page is
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
	"golang.org/x/sync/semaphore"

	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/deliveries"
)

// Stream is the JetStream stream holding the log.
const Stream = "HOOKLINE_LOG"

// TrimsBucket is the key-value bucket that keeps, for each webhook whose oldest records the share
// removed (a bounded log), the time from which the log still holds its records: a replay
// selecting from before then says that part is gone (KeptSince) instead of finding nothing there.
const TrimsBucket = "HOOKLINE_LOG_TRIMS"

const (
	subjectPrefix  = "hookline.log."
	defaultMaxAge  = 7 * 24 * time.Hour
	defaultBuffer  = 4096
	defaultMaxRead = 100_000
	defaultGather  = 200 * time.Millisecond
	defaultBatch   = 32
	// maxMessage bounds a message of several records, well under NATS's default payload limit
	// (1 MiB); one record larger than this goes alone.
	maxMessage = 64 << 10
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
	// MaxBytes bounds the stream's size (0: no bound besides MaxAge). From shareHigh of it,
	// deleted webhooks' records and then the oldest of the accounts holding the most of the log
	// are removed (share.go); the stream's own bound, the oldest records whoever they belong to,
	// stays as the last resort.
	MaxBytes int64
	// Replicas of the stream (as the store's).
	Replicas int
	// CursorKey authenticates the cursors handed out (HMAC), so that a tampered cursor is refused
	// rather than read; replicas sharing a cluster must share it. Empty: a random key, valid
	// until the process ends.
	CursorKey []byte
	// AccountOf returns the account of a webhook, which names its queued notifications (their
	// webhookNotificationId is payload.NotificationID(uid, account, event id)): a queued
	// notification belongs to the webhook's current account, as a rebind cancels the queue. The
	// share of the bound counts records by it too. Nil or unknown: queued notifications without
	// a record are listed without an id, and the share does not remove the webhook's records
	// (unless Deleted says it was deleted) for a while, then counts them as one more account's.
	AccountOf func(uid string) (string, bool)
	// Deleted reports whether a webhook that AccountOf does not know was deleted (nil: never).
	// Deleted webhooks' records are the first the share of the bound removes (nobody can read
	// them); the records of a webhook neither knows are spared for a while (in case it was
	// created since and not seen yet), then cut as one more account's.
	Deleted func(uid string) bool
	// Seen reports whether a webhook is one the dispatcher knows to exist (nil: none besides those
	// AccountOf knows). A webhook seen without an account counts in the share as one of an
	// account of its own, the unbound namespaces'; once AccountsKnown, a webhook not seen whose
	// newest record is older than that was deleted (before this process started): its records go
	// first, as Deleted's.
	Seen func(uid string) bool
	// AccountsKnown reports whether AccountOf knows every webhook's account yet (nil: always):
	// until then the share of the bound does not trim, since it cannot tell which account holds
	// the most.
	AccountsKnown func() bool
	// Trimmer returns 0 unless this dispatcher is the one that trims the log near its bound, and
	// then a number that changes each time it becomes the trimmer anew (nil: always the trimmer):
	// one at a time, since another's purges are not in this one's count, which it therefore
	// starts afresh when the number changes.
	Trimmer func() uint64
	// Buffer is how many records Append holds before it blocks, and how many the writer gathers
	// before it publishes them all (default 4096).
	Buffer int
	// Gather is how long the writer gathers a webhook's records into one message (default 200 ms):
	// JetStream's cost is mostly per message, so one message per webhook and tick instead of one
	// per record is most of the log's cost saved at high rates. BarrierAtTick waits for the next
	// tick. Negative: no gathering, each record goes out at once in a message of its own.
	Gather time.Duration
	// Batch is the most records one message holds (default 32): a read of the log's windows
	// handles whole messages.
	Batch int
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
	share   *share             // nil: no bound
	trims   jetstream.KeyValue // nil: no bound

	ch      chan entry
	flying  *semaphore.Weighted // records published and not yet acknowledged: at most Buffer
	started atomic.Bool
	stopped chan struct{} // closed when the writer has stopped
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
	switch {
	case cfg.Gather == 0:
		cfg.Gather = defaultGather
	case cfg.Gather < 0:
		cfg.Gather, cfg.Batch = time.Hour, 1 // a batch of one goes out at once: no tick needed
	}
	if cfg.Batch <= 0 {
		cfg.Batch = defaultBatch
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
	var trims jetstream.KeyValue
	create := func(ctx context.Context) (err error) {
		if st, err = js.CreateOrUpdateStream(ctx, streamConfig(cfg, maxBytes)); err != nil {
			return err
		}
		if cfg.MaxBytes <= 0 {
			// No bound now: what an earlier one removed is still said (for the log's age).
			trims, err = js.KeyValue(ctx, TrimsBucket)
			if errors.Is(err, jetstream.ErrBucketNotFound) {
				trims, err = nil, nil
			}
			return err
		}
		trims, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      TrimsBucket,
			Description: "hookline: from when the delivery log holds each trimmed webhook's records",
			History:     1,
			TTL:         cfg.MaxAge,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
		})
		return err
	}
	var err error
	if cfg.Patiently != nil {
		err = cfg.Patiently(ctx, create)
	} else {
		err = create(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s and bucket %s: %w", Stream, TrimsBucket, err)
	}
	l := &Log{
		js: js, stream: st, trims: trims, q: q, cfg: cfg, log: log,
		ch:      make(chan entry, cfg.Buffer),
		flying:  semaphore.NewWeighted(int64(cfg.Buffer)),
		stopped: make(chan struct{}),
	}
	l.metrics = newMetrics(l)
	l.share = newShare(l)
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

// inflight is one published message of records waiting for its acknowledgement, or a fence:
// the Barriers to release once everything published before it is stored.
type inflight struct {
	f     jetstream.PubAckFuture
	subj  string
	data  []byte
	n     int // records in data
	fence []chan struct{}
}

// entry is what Append and Barrier hand to the writer, in their order.
type entry struct {
	r       deliveries.Record
	barrier chan struct{} // a Barrier's: closed once every record before it is stored
	now     bool          // the Barrier publishes what is gathered at once
	// uids, when set, narrows a Barrier to the records of these webhooks (BarrierFor): only
	// their gathered records are published at once, the others keep gathering.
	uids []string
}

// Start runs the writer until ctx ends; it returns at once. Records appended after ctx ended are
// not written (each is logged).
func (l *Log) Start(ctx context.Context) {
	if !l.started.CompareAndSwap(false, true) {
		return
	}
	pending := make(chan inflight, l.cfg.Buffer)
	go l.publish(ctx, pending)
	if l.share != nil {
		go l.share.run(ctx)
	}
	go func() {
		defer close(l.stopped)
		l.confirm(ctx, pending)
	}()
}

// Append hands r to the writer. It does not wait for JetStream; it blocks only while the writer's
// buffer is full (back-pressure rather than a lost record).
func (l *Log) Append(r deliveries.Record) {
	if l.put(entry{r: r}) {
		return
	}
	l.metrics.writeErrors.Inc()
	l.log.Error(errStopped, "Delivery record not written", "uid", r.WebhookUID, "notification", r.NotificationID, "state", r.State)
}

// put hands e to the writer; false once the writer has stopped.
func (l *Log) put(e entry) bool {
	select {
	case <-l.stopped:
		// Checked first: a free buffer slot must not swallow an entry nobody will write.
		return false
	default:
	}
	select {
	case l.ch <- e:
		return true
	case <-l.stopped:
		return false
	}
}

var errStopped = errors.New("delivery log stopped")

// batch is the records of one webhook gathered for one message, one JSON record per line.
type batch struct {
	subj string
	data []byte
	n    int
}

// add encodes r at the end of the batch: straight into it, since a scratch copy was a third of the
// writer's time. A record that would take a batch of others past maxMessage is not added but
// returned in a buffer of its own (next), to open the next message once the caller has published
// this one; one that cannot be encoded leaves the batch as it was.
func (b *batch) add(r *deliveries.Record) (next []byte, err error) {
	if b.n == 0 {
		b.data = getBuffer()
	}
	end := len(b.data)
	if b.n > 0 {
		b.data = append(b.data, '\n')
	}
	if b.data, err = appendRecord(b.data, r); err != nil {
		b.data = b.data[:end]
		return nil, err
	}
	if b.n > 0 && len(b.data) > maxMessage {
		next = append(getBuffer(), b.data[end+1:]...)
		b.data = b.data[:end]
		return next, nil
	}
	b.n++
	return nil, nil
}

// publish encodes the records in Append order, gathers them into one batch per webhook and
// publishes the batches (in the order of their first records) without waiting for
// acknowledgements: a batch when it holds Config.Batch
// records or would exceed maxMessage bytes, every batch at each tick of Config.Gather and when
// Config.Buffer records are held. A Barrier's entry goes out behind the batches at once (at the
// next tick for BarrierAtTick, unless nothing is held), so that it follows every record appended
// before it; BarrierFor's goes out behind its webhooks' batches only.
func (l *Log) publish(ctx context.Context, out chan<- inflight) {
	defer close(out)
	var (
		batches = map[string]*batch{} // by webhook uid
		order   []*batch              // batches, in the order of their first records since the last tick
		held    int                   // records in batches
		fence   []chan struct{}
	)
	send := func(p inflight) bool { return sendInflight(ctx, out, p) }
	flush := func(b *batch) bool {
		held -= b.n
		data, n := b.data, b.n
		b.data, b.n = nil, 0
		// Bounds the memory of what is in flight by records, as the buffer does, not by
		// messages (which hold up to 64 KiB each).
		if l.flying.Acquire(ctx, int64(n)) != nil {
			return false
		}
		if l.share != nil {
			// Before the publish: a trim the check starts holds this writer's next messages.
			l.share.wrote(ctx, len(data))
		}
		f, ok := l.publishAsync(ctx, b.subj, data)
		return ok && send(inflight{f: f, subj: b.subj, data: data, n: n})
	}
	flushAll := func() bool {
		for _, b := range order {
			if b.n > 0 && !flush(b) {
				return false
			}
		}
		clear(batches)
		clear(order)
		order = order[:0]
		if len(fence) > 0 && !send(inflight{fence: fence}) {
			return false
		}
		fence = nil
		return true
	}
	tick := time.NewTicker(l.cfg.Gather)
	defer tick.Stop()
	for {
		var e entry
		select {
		case e = <-l.ch:
		case <-tick.C:
			if !flushAll() {
				return
			}
			continue
		case <-ctx.Done():
			return
		}
		if e.uids != nil { // BarrierFor's
			if !fenceWebhooks(batches, e, flush, send) {
				return
			}
			continue
		}
		if e.barrier != nil {
			fence = append(fence, e.barrier)
			if (e.now || held == 0) && !flushAll() {
				return
			}
			continue
		}
		r := &e.r
		if !validUID(r.WebhookUID) {
			// Cannot be stored under its webhook.
			l.metrics.writeErrors.Inc()
			l.log.Error(errors.New("invalid webhook uid"), "Delivery record not written", "uid", r.WebhookUID, "notification", r.NotificationID)
			continue
		}
		b := batches[r.WebhookUID]
		if b == nil { // the subject is built once per batch, not per record
			b = &batch{subj: subject(r.WebhookUID)}
			batches[r.WebhookUID] = b
			order = append(order, b)
		}
		next, err := b.add(r)
		if err != nil { // a time JSON cannot hold; never silent
			l.metrics.writeErrors.Inc()
			l.log.Error(err, "Delivery record not written", "uid", r.WebhookUID, "notification", r.NotificationID)
			continue
		}
		if next != nil {
			// The record opens the next message.
			if !flush(b) {
				return
			}
			b.data, b.n = next, 1
		}
		held++
		switch {
		case b.n >= l.cfg.Batch:
			if !flush(b) {
				return
			}
		case held >= l.cfg.Buffer:
			if !flushAll() {
				return
			}
		}
	}
}

// buffers holds batch buffers whose messages JetStream acknowledged, for the next batches: reusing
// a buffer already grown to a batch's size saves growing one from nothing for every batch. A new
// one holds about three typical records.
var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func getBuffer() []byte { return (*buffers.Get().(*[]byte))[:0] }

func putBuffer(b []byte) {
	if cap(b) > 2*maxMessage {
		return
	}
	b = b[:0]
	buffers.Put(&b)
}

// publishAsync publishes data until JetStream takes it; false when ctx ended first.
func (l *Log) publishAsync(ctx context.Context, subj string, data []byte) (jetstream.PubAckFuture, bool) {
	for backoff := 10 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
		f, err := l.js.PublishAsync(subj, data)
		if err == nil {
			return f, true
		}
		// Too many unacknowledged publishes (JetStream is slow: back-pressure, not an error) or a
		// lost connection: wait and publish again.
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			l.metrics.writeErrors.Inc()
			l.log.Error(err, "Publishing delivery records; retrying", "subject", subj)
		}
		if !sleep(ctx, backoff) {
			return nil, false
		}
	}
}

// confirm waits for the acknowledgements in publishing order, publishes a failed message again
// until it is stored, and releases the Barriers of each fence once everything before it is.
func (l *Log) confirm(ctx context.Context, in <-chan inflight) {
	for p := range in {
		if p.f != nil && !l.await(ctx, p) {
			return
		}
		l.flying.Release(int64(p.n))
		if p.data != nil {
			putBuffer(p.data)
		}
		for _, b := range p.fence {
			close(b)
		}
	}
}

// await waits for p's acknowledgement, publishing it again (synchronously, so that nothing
// behind it is confirmed first) until JetStream stores it. False when ctx ended first.
func (l *Log) await(ctx context.Context, p inflight) bool {
	var err error
	select {
	case ack := <-p.f.Ok():
		l.stored(ack, p)
		return true
	case err = <-p.f.Err():
	case <-ctx.Done():
		return false
	}
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		l.metrics.writeErrors.Inc()
		l.log.Error(err, "Storing delivery records; retrying", "subject", p.subj)
		if !sleep(ctx, backoff) {
			return false
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var ack *jetstream.PubAck
		ack, err = l.js.Publish(pctx, p.subj, p.data)
		cancel()
		if err == nil {
			l.stored(ack, p)
			return true
		}
	}
}

func (l *Log) stored(_ *jetstream.PubAck, p inflight) {
	l.metrics.records.Add(float64(p.n))
	l.metrics.messages.Inc()
	l.metrics.bytes.Add(float64(len(p.data) - (p.n - 1))) // the records, not the lines' ends
}

// sendInflight hands p to the confirming loop; false once ctx ended.
func sendInflight(ctx context.Context, out chan<- inflight, p inflight) bool {
	select {
	case out <- p:
		return true
	case <-ctx.Done():
		return false
	}
}

// fenceWebhooks publishes the gathered records of the webhooks of BarrierFor's entry e, then its
// fence: every message published before the fence is stored when it is released (confirm keeps
// the publishing order). False: the writer stops.
func fenceWebhooks(batches map[string]*batch, e entry, flush func(*batch) bool, send func(inflight) bool) bool {
	for _, uid := range e.uids {
		if b := batches[uid]; b != nil && b.n > 0 && !flush(b) {
			return false
		}
	}
	return send(inflight{fence: []chan struct{}{e.barrier}})
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

// Barrier returns once every record appended before the call is stored (or ctx ends); what the
// writer gathered is published at once.
func (l *Log) Barrier(ctx context.Context) error { return l.awaitBarrier(ctx, entry{now: true}) }

// BarrierAtTick is Barrier at the writer's next tick (Config.Gather; at once when it holds no
// record): for a caller that can wait that long, so that the records keep gathering. The engine
// calls it before removing settled notifications from their queues, so that a notification never
// leaves its queue without its record.
func (l *Log) BarrierAtTick(ctx context.Context) error { return l.awaitBarrier(ctx, entry{}) }

// BarrierFor is Barrier for the records of the webhooks uids only: what the writer gathered for
// other webhooks goes on gathering. The intake calls it before acknowledging an event whose
// notifications were lost to auto-disabled webhooks (their records are all that is kept of them):
// with Barrier, every such event published every webhook's gathered records, one message each,
// so that a busy cluster with one disabled webhook lost the gathering for all.
func (l *Log) BarrierFor(ctx context.Context, uids ...string) error {
	if len(uids) == 0 {
		return nil
	}
	return l.awaitBarrier(ctx, entry{now: true, uids: uids})
}

// awaitBarrier hands the barrier e to the writer and waits until it is released.
func (l *Log) awaitBarrier(ctx context.Context, e entry) error {
	done := make(chan struct{})
	e.barrier = done
	select {
	case l.ch <- e:
	case <-ctx.Done():
		return ctx.Err()
	case <-l.stopped:
		return errStopped
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-l.stopped:
		return errStopped
	}
}
