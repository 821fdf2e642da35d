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

package deliverylog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookline/hookline/dispatcher/payload"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/deliveries"
)

const (
	defaultLimit = 50
	maxLimit     = 500
	// firstWindow is how many stream sequences the first read window spans (of every webhook's
	// records); each next one spans twice as many.
	firstWindow = 1024
	// skew covers the difference between the dispatcher's clock (Created) and JetStream's (the
	// records' stream time), which may be another machine's.
	skew = 250 * time.Millisecond
	// fetchBatch is how many records one pull request asks for.
	fetchBatch = 2048
	// catchUpRecords is the least a request may read of the records stored while it ran (catchUp),
	// whatever its bound left.
	catchUpRecords = 1024
)

// errBudget: the request read as much as Config.MaxRead allows.
var errBudget = errors.New("read bound reached")

// position orders notifications newest first: by time (the newest record's stream time, or
// Created for a queued notification without a record), then record-backed before queued, then
// sequence (the newest record's, or the event's), then the record's place in its message.
type position struct {
	t     int64
	class uint8
	n     uint64
	i     uint32
}

const (
	classQueued uint8 = 0
	classRecord uint8 = 1
)

var top = position{t: math.MaxInt64, class: math.MaxUint8, n: math.MaxUint64}

// newer reports whether a comes before b, newest first.
func (a position) newer(b position) bool {
	if a.t != b.t {
		return a.t > b.t
	}
	if a.class != b.class {
		return a.class > b.class
	}
	if a.n != b.n {
		return a.n > b.n
	}
	return a.i > b.i
}

// agg is what a read learnt about one notification.
type agg struct {
	n            deliveries.Notification
	newest       uint64 // the newest record's message
	newestIndex  uint32 // and its place in it
	newestStream int64
	newestKind   deliveries.Kind
	attemptSeq   uint64 // the newest attempt record read
	lastAttempt  int    // and its number
	reasonSeq    uint64
	minCreated   time.Time
	after        bool // has records written after the snapshot
	afterSeq     uint64
	afterKind    deliveries.Kind
	records      []deliveries.Record // Attempts only
}

// add folds r, record i of the message stored at seq at stream time ts, into a. Records after
// bound only say that the notification existed. The records of one message come in their order,
// so a record at the seq already held is the newer one.
func (a *agg) add(r *deliveries.Record, seq uint64, i uint32, ts time.Time, bound uint64) {
	if a.minCreated.IsZero() || r.Created.Before(a.minCreated) {
		a.minCreated = r.Created
	}
	if seq > bound {
		if !a.after || seq < a.afterSeq {
			a.after, a.afterSeq, a.afterKind = true, seq, r.Kind
			if a.newest == 0 {
				a.identify(r)
			}
		}
		return
	}
	if r.Kind == deliveries.KindAttempt {
		if seq >= a.attemptSeq {
			a.attemptSeq, a.lastAttempt = seq, r.Attempt
		}
	}
	if seq >= a.newest {
		a.newest, a.newestIndex, a.newestStream, a.newestKind = seq, i, ts.UnixNano(), r.Kind
		a.identify(r)
		a.n.State, a.n.Updated, a.n.Replay, a.n.Attempts = r.State, r.At, r.Replay, r.Attempt
	}
	if a.n.Attempts == 0 && a.newestKind != deliveries.KindReplayQueued && a.newestKind != deliveries.KindLost {
		// A dropped or cancelled record written without the count: the newest attempt read.
		a.n.Attempts = a.lastAttempt
	}
	if r.Reason != "" && seq >= a.reasonSeq {
		a.reasonSeq = seq
		a.n.Reason, a.n.HTTPStatus = r.Reason, r.HTTPStatus
	}
}

func (a *agg) identify(r *deliveries.Record) {
	a.n.NotificationID, a.n.EventSeq, a.n.EventID, a.n.EventName, a.n.Created = r.NotificationID, r.EventSeq, r.EventID, r.EventName, r.Created
}

// reader is the state of one read request.
type reader struct {
	l      *Log
	uid    string
	budget int
	end    uint64 // the stream's last sequence when the request began: later records are not read
	bound  uint64 // the snapshot: records after it only witness
	snap   time.Time
	first  uint64    // the stream's first sequence
	since  time.Time // no record older than this (less skew) is needed; zero: all are

	aggs    map[string]*agg
	byEvent map[uint64]*agg

	// Records read: every record stored after recHorizon (unknown until hasHorizon), or all of
	// them once recDone.
	recHorizon time.Time
	hasHorizon bool
	recNext    uint64 // the first sequence read so far: the next window ends before it
	// heldFromNext is how many of the webhook's records the stream held from recNext on (to its
	// end, records written during the request included), when that window was read.
	heldFromNext uint64
	recSpan      uint64
	recDone      bool
	started      bool

	// Queue read backwards from its tail: every note with Created ≥ qLo (qDone: all of them).
	notes      []queued
	qLo        time.Time
	qHi        uint64 // the next chunk ends before it
	qFirst     uint64
	qSpan      uint64
	qDone      bool
	qStarted   bool
	qAnyLoaded bool
	// caughtUp: the records stored since the request began were read, after the queue (catchUp).
	caughtUp bool
}

func (l *Log) newReader(ctx context.Context, uid string) (*reader, error) {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the delivery log: %w", err)
	}
	now := time.Now()
	r := &reader{
		l: l, uid: uid, budget: l.cfg.MaxRead,
		end: info.State.LastSeq, bound: info.State.LastSeq, snap: now,
		first: info.State.FirstSeq, recDone: info.State.Msgs == 0,
		aggs: map[string]*agg{}, byEvent: map[uint64]*agg{},
		recNext: info.State.LastSeq + 1, recSpan: firstWindow,
	}
	return r, nil
}

// errTooMany: a window holds more records than the request may still read.
var errTooMany = errors.New("window too large")

// readRecords reads the records of the webhooks in uids with stream time ≥ start (all when start is zero) or sequence ≥
// startSeq, up to sequence end (exclusive), oldest first. It returns the first sequence read (0:
// none) and how many records the consumer held from the start on (to the stream's end, not only
// to end): uid's when uids holds one, every webhook's otherwise. Each message read spends one unit
// of *budget (nil: unbounded; fn spends more for a message of several records), and reading stops
// with errBudget once it is spent. When limit is set and the stream holds more than limit messages
// from the start on, it reads none and returns errTooMany.
func (l *Log) readRecords(ctx context.Context, uids []string, start time.Time, startSeq, end uint64, budget *int, limit uint64, fn func(seq uint64, ts time.Time, data []byte) error) (first, held uint64, err error) {
	cfg := jetstream.ConsumerConfig{
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: time.Minute, // removed by the server should the delete below fail
		DeliverPolicy:     jetstream.DeliverAllPolicy,
	}
	// One webhook: the server finds its records through its per-subject index. Several: the
	// server would intersect every message block's subjects with the filter for each record it
	// hands over (a fifth of the dispatcher's CPU while a hundred replays read together), so
	// every record is read and the others are skipped here, by subject, before decoding.
	var only map[string]bool
	switch {
	case len(uids) == 1:
		cfg.FilterSubject = subject(uids[0])
	case len(uids) > 1:
		only = make(map[string]bool, len(uids))
		for _, uid := range uids {
			only[subject(uid)] = true
		}
	}
	switch {
	case startSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, startSeq
	case !start.IsZero():
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	cons, err := l.stream.CreateConsumer(ctx, cfg)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the delivery log: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = l.stream.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	// pending is how many of the webhooks' records the consumer has left to deliver, up to the stream's
	// end: each fetch asks for no more, so that it is answered without waiting for records to
	// come.
	pending := cons.CachedInfo().NumPending
	held = pending
	if limit > 0 && held > limit {
		return 0, held, errTooMany
	}
	for pending > 0 {
		n := int(min(pending, fetchBatch))
		if budget != nil {
			if *budget <= 0 {
				return first, held, errBudget
			}
			n = min(n, *budget)
		}
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return first, held, fmt.Errorf("reading the delivery log: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return first, held, err
			}
			seq := md.Sequence.Stream
			if seq >= end {
				return first, held, nil
			}
			if first == 0 {
				first = seq
			}
			if budget != nil {
				// Checked per message too: fn spends a unit for each further record a message
				// holds, so that the bound counts records.
				if *budget <= 0 {
					return first, held, errBudget
				}
				*budget--
			}
			if only != nil && !only[m.Subject()] {
				pending = md.NumPending
				if pending == 0 {
					return first, held, nil
				}
				continue
			}
			if err := fn(seq, md.Timestamp, m.Data()); err != nil {
				return first, held, err
			}
			pending = md.NumPending
			if pending == 0 {
				return first, held, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return first, held, fmt.Errorf("reading the delivery log: %w", err)
		}
		if got == 0 {
			// Removed by retention meanwhile.
			return first, held, nil
		}
		if err := ctx.Err(); err != nil {
			return first, held, err
		}
	}
	return first, held, nil
}

// extendRecords reads the next window back: on a later page first every record stored from the
// cursor's time on (all of them are needed to know which record of a notification is its newest),
// then windows of stream sequences, each twice as long as the one before, ending where the
// previous one began.
func (r *reader) extendRecords(ctx context.Context, from time.Time, fn func(rec *deliveries.Record, seq uint64, i uint32, ts time.Time)) error {
	if r.recDone {
		return nil
	}
	decode := r.decoder(fn)
	if r.budget <= 0 {
		return errBudget
	}
	if !r.started && !from.IsZero() {
		r.started = true
		first, held, err := r.l.readRecords(ctx, []string{r.uid}, from, 0, r.recNext, &r.budget, uint64(r.budget), decode)
		if errors.Is(err, errTooMany) {
			return errBudget
		}
		if err != nil {
			return err
		}
		if first != 0 {
			r.recNext = first
		}
		r.heldFromNext = held
		r.setHorizon(from.Add(-1))
		return nil
	}
	r.started = true
	var (
		lo, held, first uint64
		firstTS         time.Time
		err             error
	)
	for {
		lo = r.first
		if r.recNext > r.recSpan && r.recNext-r.recSpan > lo {
			lo = r.recNext - r.recSpan
		}
		// A window is read whole or not at all: one read in part would leave a gap between
		// what it read and the newer windows. One that holds more records than the request may
		// still read is made shorter instead.
		first, held, err = r.l.readRecords(ctx, []string{r.uid}, time.Time{}, lo, r.recNext, &r.budget, r.heldFromNext+uint64(r.budget), func(seq uint64, ts time.Time, data []byte) error {
			if firstTS.IsZero() {
				firstTS = ts
			}
			return decode(seq, ts, data)
		})
		if !errors.Is(err, errTooMany) {
			break
		}
		span := r.recNext - lo
		if span <= 1 {
			return errBudget
		}
		inWindow := max(held-min(held, r.heldFromNext), 1)
		r.recSpan = max(1, min(span/2, span*uint64(r.budget)/inWindow))
	}
	if err != nil {
		return err
	}
	r.recSpan *= 2
	r.heldFromNext = held
	r.recNext = lo
	if lo <= r.first {
		r.recDone = true
		return nil
	}
	// Every record from lo on is read; those before it are older than the first one read, or
	// than the first message from lo on, whichever webhook's it is (lo itself may have been
	// removed: the share trims from the middle of the log). A horizon known already stays when
	// it is earlier (a window emptied by trims finds a message past it).
	t := firstTS
	if first == 0 {
		m, err := r.l.stream.GetMsg(ctx, lo, jetstream.WithGetMsgSubject(subjectPrefix+"*"))
		if err != nil {
			return nil
		}
		t = m.Time
	}
	if !r.hasHorizon || t.Before(r.recHorizon) {
		r.setHorizon(t)
	}
	return nil
}

// decoder returns readRecords' callback handing each record of a message to fn. An unreadable
// record is skipped, not an error: readRecords' callback may fail, this one never does.
func (r *reader) decoder(fn func(rec *deliveries.Record, seq uint64, i uint32, ts time.Time)) func(seq uint64, ts time.Time, data []byte) error {
	return func(seq uint64, ts time.Time, data []byte) error {
		n := eachRecord(data, func(i int, line []byte) {
			var rec deliveries.Record
			if err := unmarshalRecord(line, &rec); err != nil {
				r.l.log.Error(err, "Unreadable delivery record skipped", "uid", r.uid, "seq", seq)
				return
			}
			fn(&rec, seq, uint32(i), ts)
		})
		r.budget -= n - 1 // readRecords spent one for the message
		return nil
	}
}

// catchUp hands fn the records stored since the request began (after end), once the queue has
// been read. A notification delivered while the request read its queue is then in one or the
// other: the engine removes a note from its queue only once the log has stored its record
// (BarrierAtTick), so a note gone from the queue when it was read has its record stored before
// this read. Without it, such a notification was in neither the records read (stored after the
// request's end) nor the queue, and missing from the page.
func (r *reader) catchUp(ctx context.Context, fn func(rec *deliveries.Record, seq uint64, i uint32, ts time.Time)) (read bool, err error) {
	r.caughtUp = true
	// What was stored during the request, usually none or a message or two: read with direct
	// gets (each walks only the messages stored since the request began; a consumer costs
	// more than the whole read), and not refused for a spent bound.
	r.budget = max(r.budget, catchUpRecords)
	// Up to the end now: records keep coming, and those stored from here on are not needed.
	info, err := r.l.stream.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("reading the delivery log: %w", err)
	}
	decode := r.decoder(fn)
	for seq := r.end + 1; seq <= info.State.LastSeq; {
		if r.budget <= 0 {
			return read, errBudget
		}
		m, err := r.l.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject(r.uid)))
		if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && m.Sequence > info.State.LastSeq {
			return read, nil
		}
		if err != nil {
			return read, fmt.Errorf("reading the delivery log: %w", err)
		}
		r.budget--
		_ = decode(m.Sequence, m.Time, m.Data)
		read, seq = true, m.Sequence+1
	}
	return read, nil
}

// setHorizon records that every record stored after t is read, and ends the reading once the
// records needed are read.
func (r *reader) setHorizon(t time.Time) {
	r.recHorizon, r.hasHorizon = t, true
	if !r.since.IsZero() && t.Before(r.since.Add(-skew)) {
		r.recDone = true
	}
}

// readBefore reports whether every record stored at or after t is read.
func (r *reader) readBefore(t time.Time) bool {
	return r.recDone || r.hasHorizon && r.recHorizon.Before(t)
}

// fold is extendRecords' fn for listing: one aggregate per notification.
func (r *reader) fold(rec *deliveries.Record, seq uint64, i uint32, ts time.Time) {
	a := r.aggs[rec.NotificationID]
	if a == nil {
		a = &agg{}
		r.aggs[rec.NotificationID] = a
	}
	r.byEvent[rec.EventSeq] = a
	a.add(rec, seq, i, ts, r.bound)
}

// extendQueue reads the next chunk of the queue back from its tail.
func (r *reader) extendQueue(ctx context.Context) error {
	if r.qDone {
		return nil
	}
	if !r.qStarted {
		r.qStarted = true
		if r.l.q == nil {
			r.qDone = true
			return nil
		}
		st, err := r.l.js.Stream(ctx, store.NotesStream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			r.qDone = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the queue: %w", err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			return fmt.Errorf("reading the queue: %w", err)
		}
		r.qHi, r.qFirst, r.qSpan = info.State.LastSeq+1, info.State.FirstSeq, 1024
	}
	lo := r.qFirst
	if r.qHi > r.qSpan && r.qHi-r.qSpan > lo {
		lo = r.qHi - r.qSpan
	}
	r.qSpan *= 2
	var chunk []store.Note
	for from, n := lo, 1; from < r.qHi; n = min(2*n, 64) {
		if r.budget <= 0 {
			return errBudget // the chunk is not read whole: left out
		}
		want := min(n, r.budget)
		ns, err := r.l.q.LoadNotes(ctx, r.uid, from, want)
		if err != nil {
			return fmt.Errorf("reading the queue: %w", err)
		}
		r.budget -= len(ns)
		for _, n := range ns {
			if n.Seq < r.qHi {
				chunk = append(chunk, n)
			}
		}
		if len(ns) < want || ns[len(ns)-1].Seq >= r.qHi {
			break // the queue's end, or the newer chunks' start
		}
		from = ns[len(ns)-1].Seq + 1
	}
	if len(chunk) > 0 {
		// The queue is in Created order (bar concurrent accepts a few milliseconds apart): every
		// note not read yet is older than the oldest read.
		r.qLo = chunk[0].Created
		r.qAnyLoaded = true
		account, haveAccount := r.l.accountOf(r.uid)
		for _, n := range chunk {
			r.notes = append(r.notes, queued{n.EventSeq, pendingOf(r.uid, n, account, haveAccount)})
		}
	}
	r.qHi = lo
	if lo <= r.qFirst {
		r.qDone = true
	}
	return nil
}

// horizon is the time after which every notification and its place are known: every record after
// it is read, every note after it is read, and each queued notification after it is known to
// have no record. Among items, those at or before the horizon may still move or be missing.
func (r *reader) horizon(items []item) int64 {
	h := int64(math.MinInt64)
	if !r.recDone {
		if !r.hasHorizon {
			return math.MaxInt64
		}
		h = r.recHorizon.UnixNano()
	}
	if !r.qDone {
		if !r.qAnyLoaded {
			return math.MaxInt64
		}
		h = max(h, r.qLo.UnixNano())
	}
	if !r.recDone {
		// A queued notification created shortly before the horizon may have a record stored
		// before it (another clock): where it goes is not known yet, so neither is what follows.
		uncertain := r.recHorizon.Add(skew).UnixNano()
		for _, it := range items {
			if it.pos.class == classQueued && it.pos.t > h && it.pos.t <= uncertain {
				h = it.pos.t
			}
		}
	}
	return h
}

type item struct {
	pos position
	n   deliveries.Notification
}

// items returns every notification known, with its position, in no order.
func (r *reader) items() []item {
	out := make([]item, 0, len(r.aggs)+len(r.notes))
	for _, a := range r.aggs {
		switch {
		case a.newest > 0:
			out = append(out, item{pos: position{t: a.newestStream, class: classRecord, n: a.newest, i: a.newestIndex}, n: a.n})
		case a.after && a.afterKind != deliveries.KindLost && !a.n.Created.After(r.snap):
			// First recorded after the snapshot: it was queued, not attempted, then.
			n := a.n
			n.State, n.Updated, n.Attempts, n.Reason, n.HTTPStatus, n.Replay = deliveries.StatePending, n.Created, 0, "", 0, ""
			out = append(out, item{pos: position{t: n.Created.UnixNano(), class: classQueued, n: n.EventSeq}, n: n})
		}
	}
	seen := map[uint64]bool{}
	for _, note := range r.notes {
		if r.byEvent[note.eventSeq] != nil || seen[note.eventSeq] || note.n.Created.After(r.snap) {
			continue
		}
		seen[note.eventSeq] = true
		out = append(out, item{pos: position{t: note.n.Created.UnixNano(), class: classQueued, n: note.eventSeq}, n: note.n})
	}
	return out
}

// queued is a queued notification read, as it is listed when it has no record.
type queued struct {
	eventSeq uint64
	n        deliveries.Notification
}

func pendingOf(uid string, note store.Note, accountID string, haveAccount bool) deliveries.Notification {
	n := deliveries.Notification{
		EventSeq: note.EventSeq, EventID: note.EventID, EventName: note.EventName,
		Created: note.Created, Updated: note.Created, State: deliveries.StatePending, Replay: note.Replay,
	}
	if haveAccount && note.EventID != "" {
		n.NotificationID = payload.NotificationID(uid, accountID, note.EventID)
	}
	return n
}

func (l *Log) accountOf(uid string) (string, bool) {
	if l.cfg.AccountOf == nil {
		return "", false
	}
	return l.cfg.AccountOf(uid)
}

// Notifications returns a page of uid's notifications, newest first (by their newest record;
// pending ones from the queue), filtered by q.
func (l *Log) Notifications(ctx context.Context, uid string, q deliveries.Query) (deliveries.NotificationList, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)
	digest := filterDigest(uid, q)
	out := deliveries.NotificationList{Items: []deliveries.Notification{}}
	var cur cursor
	if q.Cursor != "" {
		var err error
		if cur, err = l.decodeCursor(q.Cursor, digest); err != nil {
			return out, err
		}
	}
	if !validUID(uid) {
		return out, nil
	}
	r, err := l.newReader(ctx, uid)
	if err != nil {
		return out, err
	}
	if q.Cursor == "" {
		cur = cursor{bound: r.end, snap: r.snap.UnixNano(), pos: top}
	} else {
		r.bound, r.snap = cur.bound, time.Unix(0, cur.snap)
	}
	if q.SinceAgo != nil {
		q.Since = r.snap.Add(-*q.SinceAgo)
	}
	if q.UntilAgo != nil {
		q.Until = r.snap.Add(-*q.UntilAgo)
	}
	r.since = q.Since
	var from time.Time // where the first window starts: the whole log after the cursor
	if cur.pos != top {
		from = time.Unix(0, cur.pos.t)
	}
	f := newFilter(q)
	for {
		page, full := r.page(cur.pos, f, limit)
		done := full || (r.recDone && r.qDone)
		if !done {
			if err := r.extend(ctx, from); errors.Is(err, errBudget) {
				out.Incomplete = true
				done = true
			} else if err != nil {
				return out, err
			}
		}
		if !done {
			continue
		}
		if !r.caughtUp && r.qStarted && l.q != nil {
			// Once more with the notifications delivered while the queue was read.
			read, err := r.catchUp(ctx, r.fold)
			switch {
			case errors.Is(err, errBudget):
				out.Incomplete = true
			case err != nil:
				return out, err
			case read:
				continue
			}
		}
		for _, it := range page {
			out.Items = append(out.Items, it.n)
		}
		if full {
			next := cur
			next.pos = page[len(page)-1].pos
			out.Next = l.encodeCursor(next, digest)
		}
		return out, nil
	}
}

// page returns the notifications known to follow after (newest first) that f selects, up to
// limit, and whether there are that many.
func (r *reader) page(after position, f filter, limit int) (page []item, full bool) {
	items := r.items()
	h := r.horizon(items)
	for _, it := range items {
		if it.pos.t > h && after.newer(it.pos) && f.match(it.n) {
			page = append(page, it)
		}
	}
	slices.SortFunc(page, func(a, b item) int {
		switch {
		case a.pos == b.pos:
			return 0
		case a.pos.newer(b.pos):
			return -1
		}
		return 1
	})
	if len(page) >= limit {
		return page[:limit], true
	}
	return page, false
}

// extend reads on: the queue's next chunk while it is behind the records read, else the next
// window of records (from: where the first window starts).
func (r *reader) extend(ctx context.Context, from time.Time) error {
	if !r.qDone && (r.recDone || !r.qAnyLoaded || r.hasHorizon && r.qLo.After(r.recHorizon)) {
		return r.extendQueue(ctx)
	}
	return r.extendRecords(ctx, from, r.fold)
}

// filter is a Query's selection, as sets.
type filter struct {
	states, events, ids, eventIDs map[string]bool
	since, until                  time.Time
}

func newFilter(q deliveries.Query) filter {
	set := func(ss []string) map[string]bool {
		if len(ss) == 0 {
			return nil
		}
		m := make(map[string]bool, len(ss))
		for _, s := range ss {
			m[s] = true
		}
		return m
	}
	states := make([]string, len(q.States))
	for i, s := range q.States {
		states[i] = string(s)
	}
	return filter{states: set(states), events: set(q.EventNames), ids: set(q.NotificationIDs), eventIDs: set(q.EventIDs), since: q.Since, until: q.Until}
}

func (f filter) match(n deliveries.Notification) bool {
	switch {
	case f.states != nil && !f.states[string(n.State)],
		f.events != nil && !f.events[n.EventName],
		f.ids != nil && !f.ids[n.NotificationID],
		f.eventIDs != nil && !f.eventIDs[n.EventID],
		!f.since.IsZero() && n.Created.Before(f.since),
		!f.until.IsZero() && n.Created.After(f.until):
		return false
	}
	return true
}

// Attempts returns one notification of uid with every record about it, oldest first; ErrNotFound
// when there is none. It reads the log back from its end until the notification's first record
// (or its creation); when Config.MaxRead stops it first, the list is marked Incomplete, and a
// notification none of whose records was reached is not found. A notification without a record
// is looked for in the queue, from its head (within the same bound), with state pending.
func (l *Log) Attempts(ctx context.Context, uid, notificationID string) (deliveries.AttemptList, error) {
	if !validUID(uid) || notificationID == "" {
		return deliveries.AttemptList{}, ErrNotFound
	}
	r, err := l.newReader(ctx, uid)
	if err != nil {
		return deliveries.AttemptList{}, err
	}
	var a agg
	found, incomplete := false, false
	for !r.recDone {
		var window []deliveries.Record
		err := r.extendRecords(ctx, time.Time{}, func(rec *deliveries.Record, seq uint64, i uint32, ts time.Time) {
			if rec.NotificationID == notificationID {
				found = true
				a.add(rec, seq, i, ts, r.bound)
				window = append(window, *rec)
			}
		})
		a.records = append(window, a.records...)
		if errors.Is(err, errBudget) {
			incomplete = true
			break
		}
		if err != nil {
			return deliveries.AttemptList{}, err
		}
		if found && (r.readBefore(a.minCreated.Add(-skew)) || first(a.records[0])) {
			break
		}
	}
	if found {
		return deliveries.AttemptList{Notification: a.n, Records: a.records, Incomplete: incomplete}, nil
	}
	// Not on record: maybe queued and not attempted yet.
	account, ok := l.accountOf(uid)
	if l.q == nil || !ok {
		return deliveries.AttemptList{}, ErrNotFound
	}
	for from := uint64(0); r.budget > 0; {
		ns, err := l.q.LoadNotes(ctx, uid, from, min(256, r.budget))
		if err != nil {
			return deliveries.AttemptList{}, fmt.Errorf("reading the queue: %w", err)
		}
		r.budget -= len(ns)
		for _, n := range ns {
			if n.EventID != "" && payload.NotificationID(uid, account, n.EventID) == notificationID {
				return deliveries.AttemptList{Notification: pendingOf(uid, n, account, true), Records: []deliveries.Record{}}, nil
			}
		}
		if len(ns) == 0 {
			break
		}
		from = ns[len(ns)-1].Seq + 1
	}
	// Delivered while the queue was read: its records were stored after the request's end.
	_, err = r.catchUp(ctx, func(rec *deliveries.Record, seq uint64, i uint32, ts time.Time) {
		if rec.NotificationID == notificationID {
			found = true
			a.add(rec, seq, i, ts, math.MaxUint64)
			a.records = append(a.records, *rec)
		}
	})
	if err != nil && !errors.Is(err, errBudget) {
		return deliveries.AttemptList{}, err
	}
	if found {
		return deliveries.AttemptList{Notification: a.n, Records: a.records, Incomplete: err != nil}, nil
	}
	return deliveries.AttemptList{}, ErrNotFound
}

// first reports whether r is the first record of its notification: its original delivery's first
// attempt, or its loss (nothing is recorded of a notification before either).
func first(r deliveries.Record) bool {
	return r.Replay == "" && (r.Kind == deliveries.KindLost || r.Kind == deliveries.KindAttempt && r.Attempt == 1)
}

// KeptSince returns the time from which the log still holds uid's records after its bound made
// it remove older ones (zero when it removed none): what happened to uid's notifications before
// then may be gone from the log.
func (l *Log) KeptSince(ctx context.Context, uid string) (time.Time, error) {
	if l.trims == nil || !validUID(uid) {
		return time.Time{}, nil
	}
	e, err := l.trims.Get(ctx, uid)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("reading where the delivery log of %s starts: %w", uid, err)
	}
	return time.Parse(time.RFC3339Nano, string(e.Value()))
}

// Starts returns the time of the log's oldest record (zero when it holds none): nothing older is
// left, whatever removed it (its age bound, its byte bound's last resort, which removes the oldest
// records of any webhook, or the log being younger).
func (l *Log) Starts(ctx context.Context) (time.Time, error) {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading where the delivery log starts: %w", err)
	}
	if info.State.Msgs == 0 {
		return time.Time{}, nil
	}
	return info.State.FirstTime, nil
}

// Scan calls fn for each of uid's records written at or after since, oldest first, until fn
// returns an error (which Scan returns) or the log ends (its end when Scan began).
func (l *Log) Scan(ctx context.Context, uid string, since time.Time, fn func(deliveries.Record) error) error {
	return l.ScanMany(ctx, []string{uid}, since, fn)
}

// ScanMany is Scan for every webhook in uids together, in one pass over the log (records of all of
// them in stream order: each webhook's in their order, the webhooks' interleaved as their
// messages were written): the log interleaves all webhooks, so reading several together
// costs about what reading one does (the server walks the same records either way).
func (l *Log) ScanMany(ctx context.Context, uids []string, since time.Time, fn func(deliveries.Record) error) error {
	_, err := l.scan(ctx, uids, since, 0, func(_ uint64, rec deliveries.Record) error { return fn(rec) })
	return err
}

// ScanFrom calls fn for each of uid's records, oldest first, from stream sequence from on (0: from
// the first record stored at or after since), up to the log's end when ScanFrom began. It returns
// the sequence to continue from: calling ScanFrom again with it reads only the records written
// since. The records are read with one consumer filtered on uid's subject, so a later call costs
// what was written meanwhile, not the log again (the statistics' cache extends itself this way).
func (l *Log) ScanFrom(ctx context.Context, uid string, since time.Time, from uint64, fn func(seq uint64, rec deliveries.Record) error) (next uint64, err error) {
	return l.scan(ctx, []string{uid}, since, from, fn)
}

// scan reads the records of uids as ScanFrom describes.
func (l *Log) scan(ctx context.Context, uids []string, since time.Time, from uint64, fn func(seq uint64, rec deliveries.Record) error) (next uint64, err error) {
	uids = slices.DeleteFunc(slices.Clone(uids), func(uid string) bool { return !validUID(uid) })
	if len(uids) == 0 {
		return from, nil
	}
	info, err := l.stream.Info(ctx)
	if err != nil {
		return from, fmt.Errorf("reading the delivery log: %w", err)
	}
	end := info.State.LastSeq + 1
	if from >= end || info.State.Msgs == 0 {
		return max(from, end), nil
	}
	start := since
	if from > 0 {
		start = time.Time{}
	}
	_, _, err = l.readRecords(ctx, uids, start, from, end, nil, 0, func(seq uint64, _ time.Time, data []byte) error {
		var err error
		eachRecord(data, func(_ int, line []byte) {
			if err != nil {
				return // fn refused an earlier record: the rest is not decoded
			}
			if rec, ok := l.decode(seq, line); ok {
				err = fn(seq, rec)
			}
		})
		return err
	})
	if err != nil {
		return from, err
	}
	return end, nil
}

// Tail calls fn for the log's newest records, oldest first (in stream order, as ScanMany): those
// stored within `within` before the newest one, at most limit of them (the newest). The engine reads it once as it starts, to know
// what the previous process settled but had not yet removed from its queues.
func (l *Log) Tail(ctx context.Context, within time.Duration, limit int, fn func(deliveries.Record)) error {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("reading the delivery log: %w", err)
	}
	st := info.State
	if st.Msgs == 0 || limit <= 0 {
		return nil
	}
	oldest := st.LastTime.Add(-within)
	// Windows of messages read back from the end (each forward) until they hold limit records or
	// reach before oldest. A message holds up to Config.Batch records, so the first window decodes
	// at most limit of them; the next ones are sized from the records per message read so far.
	var (
		windows       [][]deliveries.Record // newest first
		have, decoded int
		end           = st.LastSeq + 1
		perMsg        = float64(l.cfg.Batch)
		reachedOldest bool
	)
	for end > st.FirstSeq && have < limit && !reachedOldest {
		from := st.FirstSeq
		if w := uint64(math.Ceil(float64(limit-have) / perMsg)); end-st.FirstSeq > w {
			from = end - w
		}
		var window []deliveries.Record
		_, _, err = l.readRecords(ctx, nil, time.Time{}, from, end, nil, 0, func(seq uint64, ts time.Time, data []byte) error {
			if ts.Before(oldest) {
				reachedOldest = true
				return nil
			}
			decoded++
			eachRecord(data, func(_ int, line []byte) {
				if rec, ok := l.decode(seq, line); ok {
					window = append(window, rec)
				}
			})
			return nil
		})
		if err != nil {
			return err
		}
		windows = append(windows, window)
		have += len(window)
		if decoded > 0 {
			perMsg = max(1, float64(have)/float64(decoded))
		}
		end = from
	}
	// Oldest first; the newest limit records.
	skip := max(0, have-limit)
	for i := len(windows) - 1; i >= 0; i-- {
		for _, rec := range windows[i] {
			if skip > 0 {
				skip--
				continue
			}
			fn(rec)
		}
	}
	return nil
}

// eachRecord calls fn with each record of a message, one JSON record per line (the writer gathers
// a webhook's records into one message; a message holds one or more), and returns how many
// there were.
func eachRecord(data []byte, fn func(i int, line []byte)) int {
	n := 0
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		fn(n, line)
		n++
	}
	return n
}

// decode decodes a record of the message stored at seq; false (logged) when it cannot be read.
func (l *Log) decode(seq uint64, data []byte) (deliveries.Record, bool) {
	var rec deliveries.Record
	if err := unmarshalRecord(data, &rec); err != nil {
		l.log.Error(err, "Unreadable delivery record skipped", "seq", seq)
		return rec, false
	}
	return rec, true
}
