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
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The share's marks, as parts of Config.MaxBytes.
const (
	// shareHigh: above it, the account holding the most of the log loses its oldest records.
	shareHigh = 0.90
	// shareLow: what a trim brings the stream back to.
	shareLow = 0.80
	// shareStep: a writer asks for a check each time it has written this much since the last one
	// started, and waits for one after twice as much, so that its own writes cannot outrun the
	// trims. Small against the gap between shareHigh and the bound, so that a few replicas
	// writing at once stay under the bound.
	shareStep = 0.02
	// shareCountFrom: the count runs while the stream holds more than this (a log far from its
	// bound needs no trim, and a count read from its start holds JetStream's blocks in memory a
	// while); shareCountUntil: it stops below this.
	shareCountFrom  = 0.50
	shareCountUntil = 0.40
	// shareEpochs is how many epochs the count divides the high mark into: a webhook's bytes are
	// counted per epoch, so that what left the stream by age is forgotten an epoch at a time.
	shareEpochs = 32
)

// Variables, for the tests to wait longer on a busy machine.
var (
	// shareCatchUp bounds how long a check waits for the count to read up to the stream's end; a
	// check whose count is behind does not trim.
	shareCatchUp = 2 * time.Second
	// shareWait bounds how long the writer waits for a check.
	shareWait = 10 * time.Second
)

const (
	// shareEvery is how often the stream's size is checked besides the writer's steps: records
	// leave by age, and other replicas write.
	shareEvery = 10 * time.Second
	// shareRounds bounds the trims of one check.
	shareRounds = 64
	// epochMin is the smallest epoch (a small log's).
	epochMin = 16 << 10
	// shareUnknownGrace is how long records of a webhook that is neither an account's nor known
	// to be deleted are left untrimmed, from the first trim that found it so: long enough for
	// this dispatcher to see a webhook another replica saw first, short enough that a tenant who
	// deletes more webhooks than are remembered (Config.Deleted) cannot keep their records out of
	// every trim.
	shareUnknownGrace = 2 * time.Minute
	// msgOverhead approximates what JetStream's file store keeps per message besides its subject
	// and data (a record header and a hash), so that the count is close to the stream's bytes.
	msgOverhead = 30
)

// share keeps the log's bound fair between accounts.
//
// The stream's own bound (MaxBytes with DiscardOld) takes the oldest records whoever they belong
// to: one account whose events make many records would push every other account's history out
// of the log, and with it what their replays select. The share keeps the stream under its bound
// before JetStream has to: once the stream holds more than shareHigh of MaxBytes, the records of
// deleted webhooks go first (nobody can read them), then the accounts holding the most give up
// their oldest records, each what it holds above one level, so that the stream holds shareLow
// (plan). An account loses nothing while another holds more than it, and a cluster of one account
// keeps using the log between the marks. Records of a webhook that is neither an account's nor
// known to be deleted are not removed for a while (shareUnknownGrace), then count as one more
// account's. MaxBytes stays as the last resort.
//
// What each webhook holds is counted from the stream itself: an ordered consumer reads every
// message's subject and size (headers only) from the log's start, so that the count covers every
// replica's writes and a restarted dispatcher counts what was there. A webhook's bytes are kept
// per epoch (a shareEpochs-th of the high mark, in the order the stream holds them), with the
// first and last stream sequences of each, so that what the stream removed by age or by its bound
// is forgotten an epoch at a time and a trim can cut an account at one sequence across all its
// webhooks. Accounts are asked of Config.AccountOf at each trim (a rebind moves a webhook's
// records to its new account).
//
// Checks run on a goroutine of their own, asked for every shareStep of the bound the count reads
// or the writer writes, and every shareEvery. Only a dispatcher that Config.Trimmer names counts and
// trims (one at a time across replicas: another's purges would not be in this one's count; one
// that becomes the trimmer counts afresh), and only once Config.AccountsKnown
// says every webhook's account is known and the count has read up to the stream's end.
type share struct {
	l                     *Log
	high, low, step       int64
	countFrom, countUntil int64
	epoch                 int64
	trimmer               func() uint64
	accountsOK            func() bool
	// gen is Config.Trimmer's number the count was kept under (the check goroutine's own).
	gen           uint64
	deleted, live func(uid string) bool
	now           func() time.Time

	mu sync.Mutex
	// before is the stream's last sequence when every webhook's account was first known
	// (beforeSet): a webhook not seen then whose records are older was deleted.
	before    uint64
	beforeSet bool
	held      map[string]*held // by webhook uid
	seen      uint64           // the last stream sequence counted
	counted   int64            // bytes counted since the start: the epoch is counted / epoch
	moved     chan struct{}    // closed (and replaced) when seen advances
	checked   chan struct{}    // closed (and replaced) when a check ends

	kick    chan struct{} // asks for a check
	written atomic.Int64  // bytes this writer wrote since the last check started
	waited  chan struct{} // the check the writer last waited for (the writer's own)
}

// held is what one webhook holds in the log.
type held struct {
	spans []span // oldest first
	bytes int64
	// unknownSince is when a trim first found the webhook of no account and not known to be
	// deleted (zero until then).
	unknownSince time.Time
}

// span is a webhook's messages within one epoch.
type span struct {
	epoch       int64
	first, last uint64
	bytes       int64
}

// newShare returns the share of a log with a bound, or nil.
func newShare(l *Log) *share {
	bound := float64(l.cfg.MaxBytes)
	if bound <= 0 {
		return nil
	}
	always := func() bool { return true }
	high := int64(bound * shareHigh)
	s := &share{
		l: l, high: high, low: int64(bound * shareLow), step: max(int64(bound*shareStep), 1),
		countFrom: int64(bound * shareCountFrom), countUntil: int64(bound * shareCountUntil),
		epoch: max(high/shareEpochs, epochMin), trimmer: func() uint64 { return 1 }, accountsOK: always,
		held: map[string]*held{}, moved: make(chan struct{}), checked: make(chan struct{}),
		kick: make(chan struct{}, 1), now: time.Now,
	}
	if l.cfg.Trimmer != nil {
		s.trimmer = l.cfg.Trimmer
	}
	if l.cfg.AccountsKnown != nil {
		s.accountsOK = l.cfg.AccountsKnown
	}
	s.deleted, s.live = l.cfg.Deleted, l.cfg.Seen
	if s.deleted == nil {
		s.deleted = func(string) bool { return false }
	}
	if s.live == nil {
		s.live = func(string) bool { return false }
	}
	return s
}

// run checks the stream's size when asked and every shareEvery, until ctx ends. It counts the
// stream's messages while this dispatcher is the one that trims and the stream holds more than
// shareCountFrom of the bound: a count kept by another dispatcher would miss the trimmer's purges,
// so a dispatcher that becomes the trimmer counts afresh from the log's start.
func (s *share) run(ctx context.Context) {
	t := time.NewTicker(shareEvery)
	defer t.Stop()
	var stop func() // stops the count
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for {
		s.pass(ctx, &stop)
		select {
		case <-t.C:
		case <-s.kick:
		case <-ctx.Done():
			return
		}
	}
}

// pass is one check: it starts or stops the count as the stream's size and the trimmer's role
// say, and trims above the high mark. The writer waiting for a check is released at its end.
func (s *share) pass(ctx context.Context, stop *func()) {
	defer func() {
		s.mu.Lock()
		close(s.checked)
		s.checked = make(chan struct{})
		s.mu.Unlock()
	}()
	forget := func() {
		if *stop != nil {
			(*stop)()
			*stop = nil
		}
		s.reset()
	}
	gen := s.trimmer()
	if gen == 0 {
		forget()
		s.written.Store(0)
		return
	}
	if gen != s.gen {
		// The trimmer anew: whoever trimmed meanwhile purged what this count holds.
		forget()
		s.gen = gen
	}
	info, ok := s.info(ctx)
	if !ok {
		return
	}
	stored := int64(info.State.Bytes)
	switch {
	case info.State.LastSeq < s.seenSeq() || info.State.LastSeq < s.beforeSeq():
		// The stream was made anew: its sequences start again.
		forget()
		s.mu.Lock()
		s.before, s.beforeSet = 0, false
		s.mu.Unlock()
	case stored < s.countUntil && *stop != nil:
		forget()
	}
	if stored > s.countFrom && *stop == nil {
		*stop = s.startCount(ctx)
	}
	if s.accountsOK() {
		s.mu.Lock()
		if !s.beforeSet {
			s.before, s.beforeSet = info.State.LastSeq, true
		}
		s.mu.Unlock()
	}
	if stored <= s.high {
		s.written.Store(0)
		return
	}
	if *stop != nil && s.trim(ctx, info) {
		s.written.Store(0)
	}
}

// startCount runs follow until the returned func, which waits for it to end.
func (s *share) startCount(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.follow(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// reset forgets the count.
func (s *share) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held, s.seen, s.counted = map[string]*held{}, 0, 0
}

// follow counts every message of the stream, from its first, until ctx ends. The ordered
// consumer starts again by itself where it was when its messages are interrupted.
func (s *share) follow(ctx context.Context) {
	for backoff := 100 * time.Millisecond; ctx.Err() == nil; backoff = min(2*backoff, 5*time.Second) {
		start := s.seenSeq() + 1
		cons, err := s.l.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
			DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start, HeadersOnly: true,
		})
		if err == nil {
			err = s.consume(ctx, cons)
		}
		if ctx.Err() != nil {
			return
		}
		if backoff < 5*time.Second {
			s.l.log.V(1).Info("Counting the delivery log's messages; starting again", "error", err.Error(), "after", backoff)
		} else {
			s.l.log.Error(err, "Counting the delivery log's messages failed; nothing is trimmed until it works", "after", backoff)
		}
		if !sleep(ctx, backoff) {
			return
		}
	}
}

func (s *share) consume(ctx context.Context, cons jetstream.Consumer) error {
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		m, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) && ctx.Err() != nil {
				return nil
			}
			return err
		}
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		size, _ := strconv.Atoi(m.Headers().Get(nats.MsgSize))
		subj := m.Subject()
		s.count(strings.TrimPrefix(subj, subjectPrefix), md.Sequence.Stream, int64(size+len(subj)+msgOverhead))
	}
}

func (s *share) beforeSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.before
}

func (s *share) seenSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen
}

// count adds a message of n bytes at stream sequence seq to uid.
func (s *share) count(uid string, seq uint64, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= s.seen {
		return // counted before the consumer started again
	}
	h := s.held[uid]
	if h == nil {
		h = &held{}
		s.held[uid] = h
	}
	e := s.counted / s.epoch
	if k := len(h.spans); k > 0 && h.spans[k-1].epoch == e {
		h.spans[k-1].last = seq
		h.spans[k-1].bytes += n
	} else {
		h.spans = append(h.spans, span{epoch: e, first: seq, last: seq, bytes: n})
	}
	h.bytes += n
	if (s.counted+n)/s.step != s.counted/s.step {
		// Every replica's writes, not only this one's, ask for checks.
		s.kickCheck()
	}
	s.counted += n
	s.seen = seq
	close(s.moved)
	s.moved = make(chan struct{})
}

func (s *share) kickCheck() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// wrote tells the share that this writer is about to publish a message of n bytes. Every
// shareStep of the bound it asks for a check; after two steps without one having started, it
// waits (at most shareWait, once per check) for the next to end. What the stream may receive
// unchecked from this writer is therefore two steps and what it has in flight (Config.Buffer
// records): the gap between shareHigh and the bound must hold both, as it does for any bound above
// about 100 MiB. A dispatcher that does not trim does not wait: the trimmer counts its writes.
func (s *share) wrote(ctx context.Context, n int) {
	w := s.written.Add(int64(n))
	if w < s.step || s.trimmer() == 0 {
		return
	}
	s.kickCheck()
	s.mu.Lock()
	checked := s.checked
	s.mu.Unlock()
	if w < 2*s.step || checked == s.waited {
		return
	}
	s.waited = checked
	// Once per two steps, whatever the check finds: one that cannot trim (the count still reading
	// the log, the accounts not known yet) must not hold every message after it.
	s.written.Add(-2 * s.step)
	t := time.NewTimer(shareWait)
	defer t.Stop()
	select {
	case <-checked:
	case <-t.C:
	case <-ctx.Done():
	}
}

// trim removes records until the stream holds shareLow of the bound (at most shareRounds
// rounds), once every webhook's account is known and the count has read up to the stream's end.
// It reports whether it trimmed what it could.
func (s *share) trim(ctx context.Context, info *jetstream.StreamInfo) bool {
	if !s.accountsOK() {
		return false
	}
	if !s.waitSeen(ctx, info.State.LastSeq) {
		s.l.log.V(1).Info("Delivery log near its bound; not trimming yet: its messages are still being counted", "stored", info.State.Bytes)
		return false
	}
	trimmed := map[string]int64{}
	defer func() {
		for account, n := range trimmed {
			s.l.log.Info("Delivery log near its bound: removed the oldest records of the accounts holding the most of it",
				"account", account, "bytes", n)
		}
	}()
	for range shareRounds {
		if s.trimmer() != s.gen {
			return false
		}
		cuts := s.plan(int64(info.State.Bytes) - s.low)
		if len(cuts) == 0 {
			return true
		}
		for _, c := range cuts {
			n, err := s.purge(ctx, c)
			trimmed[c.name()] += n
			s.l.metrics.trimmed.Add(float64(n))
			if err != nil {
				s.l.log.Error(err, "Trimming the delivery log failed", "account", c.name())
				return false
			}
		}
		var ok bool
		if info, ok = s.info(ctx); !ok {
			return false
		}
		if int64(info.State.Bytes) <= s.low {
			return true
		}
	}
	return true
}

// info reads the stream's state and forgets what it no longer holds.
func (s *share) info(ctx context.Context) (*jetstream.StreamInfo, bool) {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := s.l.stream.Info(ictx)
	if err != nil {
		s.l.log.V(1).Info("Reading the delivery log's size failed", "error", err.Error())
		return nil, false
	}
	s.prune(info.State.FirstSeq)
	return info, true
}

// waitSeen waits until the count has read up to seq, for at most shareCatchUp.
func (s *share) waitSeen(ctx context.Context, seq uint64) bool {
	t := time.NewTimer(shareCatchUp)
	defer t.Stop()
	for {
		s.mu.Lock()
		seen, moved := s.seen, s.moved
		s.mu.Unlock()
		if seen >= seq {
			return true
		}
		select {
		case <-moved:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// prune forgets the spans the stream no longer holds (age, the stream's own bound).
func (s *share) prune(first uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for uid, h := range s.held {
		k := 0
		for k < len(h.spans) && h.spans[k].last < first {
			h.bytes -= h.spans[k].bytes
			k++
		}
		h.spans = h.spans[k:]
		if len(h.spans) == 0 {
			delete(s.held, uid)
		}
	}
}

// cutAt is what one trim removes: the records of one bucket (an account's webhooks, or the
// deleted ones') before one stream sequence.
type cutAt struct {
	account string
	deleted bool
	seq     uint64
}

func (c cutAt) name() string {
	if c.deleted {
		return "(deleted webhooks)"
	}
	return c.account
}

// unbound is the bucket of webhooks that exist in namespaces bound to no account since this
// dispatcher started: one more account in the level.
const unbound = "(namespaces bound to no account)"

// unknown is the bucket of webhooks of no known account that are not known to be deleted either,
// past shareUnknownGrace: one more account in the level.
const unknown = "(webhooks of no known account)"

// bucket is the bucket of uid's records (h): its account's; the unbound namespaces' for a webhook
// that exists without one; the deleted webhooks' for one seen deleted, or one not seen once every
// webhook was whose newest record is older than that; the unknown webhooks' for the rest, once
// shareUnknownGrace has passed since a trim first found them so. False before (a webhook created
// since and not seen yet): those are not trimmed. Called with mu held.
func (s *share) bucket(uid string, h *held) (b cutAt, ok bool) {
	if a, ok := s.l.accountOf(uid); ok {
		return cutAt{account: a}, true
	}
	if s.live(uid) {
		return cutAt{account: unbound}, true
	}
	if s.deleted(uid) || s.beforeSet && len(h.spans) > 0 && h.spans[len(h.spans)-1].last <= s.before {
		return cutAt{deleted: true}, true
	}
	// Unknown for longer than a grace: most likely deleted and no longer remembered as such, but
	// perhaps a live webhook this dispatcher has not managed to sync, whose records must not go
	// first. Cut by the level, as one account of their own.
	now := s.now()
	if h.unknownSince.IsZero() {
		h.unknownSince = now
	}
	if now.Sub(h.unknownSince) >= shareUnknownGrace {
		return cutAt{account: unknown}, true
	}
	return cutAt{}, false
}

// epochBytes is a bucket's records of one epoch.
type epochBytes struct {
	epoch       int64
	first, last uint64
	bytes       int64
}

// plan chooses what to trim of over bytes: deleted webhooks' records first, oldest first; then,
// from the accounts holding the most, what is above the level L at which they give up the rest
// of over together (each gives up what it holds above L, so that none is left holding less than
// another that gave up nothing), each its oldest. The cut of an account within an epoch is placed
// by its share of the epoch's sequences: the next check's stream size corrects the estimate.
func (s *share) plan(over int64) []cutAt {
	s.mu.Lock()
	defer s.mu.Unlock()
	byBucket := map[cutAt]map[int64]*epochBytes{}
	totals := map[cutAt]int64{}
	var untrimmable int64
	for uid, h := range s.held {
		b, ok := s.bucket(uid, h)
		if !ok {
			untrimmable += h.bytes
			continue
		}
		eps := byBucket[b]
		if eps == nil {
			eps = map[int64]*epochBytes{}
			byBucket[b] = eps
		}
		for _, sp := range h.spans {
			e := eps[sp.epoch]
			if e == nil {
				e = &epochBytes{epoch: sp.epoch, first: sp.first, last: sp.last}
				eps[sp.epoch] = e
			}
			e.first, e.last, e.bytes = min(e.first, sp.first), max(e.last, sp.last), e.bytes+sp.bytes
		}
		totals[b] += h.bytes
	}
	var cuts []cutAt
	del := cutAt{deleted: true}
	if n := min(totals[del], over); n > 0 {
		cuts = append(cuts, cutFor(del, byBucket[del], n))
		over -= n
	}
	delete(totals, del)
	type held struct {
		b cutAt
		n int64
	}
	var accounts []held
	for b, n := range totals {
		if n > 0 {
			accounts = append(accounts, held{b, n})
		}
	}
	// Records of webhooks of no known account not yet past shareUnknownGrace (created since and
	// not seen yet, or deleted and no longer remembered) take part in the level as one bucket
	// that is not cut: the accounts give up only what they would if those records were an
	// account's, and the stream's own bound takes the rest.
	const never = "\x00untrimmable"
	if untrimmable > 0 {
		accounts = append(accounts, held{cutAt{account: never}, untrimmable})
	}
	slices.SortFunc(accounts, func(x, y held) int {
		return cmp.Or(cmp.Compare(y.n, x.n), cmp.Compare(x.b.account, y.b.account))
	})
	// The level: with the k largest above it, sum(T_i - L) = over.
	var sum, level int64
	for k, a := range accounts {
		sum += a.n
		level = max((sum-over)/int64(k+1), 0)
		if k+1 == len(accounts) || level >= accounts[k+1].n {
			break
		}
	}
	for _, a := range accounts {
		if over <= 0 || a.n <= level {
			break
		}
		if a.b.account != never {
			cuts = append(cuts, cutFor(a.b, byBucket[a.b], a.n-level))
		}
	}
	return cuts
}

// cutFor places b's cut so that about need bytes of its oldest records are before it.
func cutFor(b cutAt, eps map[int64]*epochBytes, need int64) cutAt {
	list := make([]*epochBytes, 0, len(eps))
	for _, e := range eps {
		list = append(list, e)
	}
	slices.SortFunc(list, func(x, y *epochBytes) int { return cmp.Compare(x.epoch, y.epoch) })
	for _, e := range list {
		if need >= e.bytes || e.bytes == 0 {
			need -= e.bytes
			b.seq = e.last + 1
			if need <= 0 {
				break
			}
			continue
		}
		// Rounded down (the next round takes what is left), but at least the epoch's first message.
		b.seq = max(e.first+uint64(float64(e.last-e.first+1)*float64(need)/float64(e.bytes)), e.first+1)
		break
	}
	return b
}

// purge removes c's records before c.seq, a webhook at a time, and forgets them; it returns the
// bytes forgotten.
func (s *share) purge(ctx context.Context, c cutAt) (int64, error) {
	s.mu.Lock()
	var uids []string
	for uid, h := range s.held {
		if b, ok := s.bucket(uid, h); ok && b == (cutAt{account: c.account, deleted: c.deleted}) && len(h.spans) > 0 && h.spans[0].first < c.seq {
			uids = append(uids, uid)
		}
	}
	s.mu.Unlock()
	// What the cut leaves of each webhook starts at the stream's time at c.seq: recorded for the
	// replays (KeptSince) before anything is removed, so that no selection misses a removal.
	var kept []byte
	if !c.deleted && s.l.trims != nil && len(uids) > 0 {
		gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := s.l.stream.GetMsg(gctx, c.seq, jetstream.WithGetMsgSubject(subjectPrefix+"*"))
		cancel()
		at := s.now()
		if err == nil {
			at = m.Time
		} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, err
		}
		kept = []byte(at.UTC().Format(time.RFC3339Nano))
	}
	var n int64
	for _, uid := range uids {
		if kept != nil {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := s.l.trims.Put(pctx, uid, kept)
			cancel()
			if err != nil {
				return n, err
			}
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.l.stream.Purge(pctx, jetstream.WithPurgeSubject(subject(uid)), jetstream.WithPurgeSequence(c.seq))
		cancel()
		if err != nil {
			return n, err
		}
		n += s.forget(uid, c.seq)
	}
	return n, nil
}

// forget drops uid's records before cut from the count and returns their bytes; of a span the
// cut goes through, the part before it by its share of the span's sequences.
func (s *share) forget(uid string, cut uint64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.held[uid]
	if h == nil {
		return 0
	}
	var n int64
	k := 0
	for k < len(h.spans) && h.spans[k].last < cut {
		n += h.spans[k].bytes
		k++
	}
	h.spans = h.spans[k:]
	if len(h.spans) > 0 && h.spans[0].first < cut {
		sp := &h.spans[0]
		part := int64(float64(sp.bytes) * float64(cut-sp.first) / float64(sp.last-sp.first+1))
		sp.bytes -= part
		sp.first = cut
		n += part
	}
	h.bytes -= n
	if len(h.spans) == 0 {
		delete(s.held, uid)
	}
	return n
}
