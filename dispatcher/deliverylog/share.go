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
	// shareStep: a writer checks the stream's size each time it has stored this much since its
	// last check. Small against the gap between shareHigh and the bound, so that a few
	// replicas writing at once stay under the bound.
	shareStep = 0.02
)

const (
	// shareEvery is how often the stream's size is checked besides the writer's steps: records
	// leave by age, and other replicas write.
	shareEvery = 10 * time.Second
	// shareCatchUp bounds how long a trim waits for the count to read up to the stream's end.
	shareCatchUp = 2 * time.Second
	// spanMin is the smallest span counted apart (the trims' step on a small log).
	spanMin = 16 << 10
	// msgOverhead approximates what JetStream's file store keeps per message besides its subject
	// and data (a record header and a hash), so that the count is close to the stream's bytes.
	msgOverhead = 30
)

// share keeps the log's bound fair between accounts.
//
// The stream's own bound (MaxBytes with DiscardOld) takes the oldest records whoever they belong
// to: one account whose events make many records would push every other account's history out
// of the log, and with it what their replays select. The share keeps the stream under its bound
// before JetStream has to, and takes from the account that holds the most of it: once the stream
// holds more than shareHigh of MaxBytes, the oldest records of the account holding the most bytes
// are purged (a webhook's subject up to a sequence), then again of whichever account holds the
// most, until the stream holds shareLow. An account loses nothing while another holds more than
// it, and a cluster of one account keeps using the whole log. MaxBytes stays as the last resort.
//
// What each webhook holds is counted from the stream itself: an ordered consumer reads every
// message's subject and size (headers only) from the log's start, so every replica counts every
// other's writes, and a restarted dispatcher counts what was there. The count is kept per
// webhook as spans of consecutive messages (about a 256th of the high mark each), oldest first,
// the unit a trim removes. Accounts are asked of Config.AccountOf at each trim (a rebind moves a
// webhook's records to its new account); webhooks it does not know (deleted ones) count as one
// account, "".
type share struct {
	l                     *Log
	high, low, step, span int64

	mu    sync.Mutex
	held  map[string]*held // by webhook uid
	seen  uint64           // the last stream sequence counted
	moved chan struct{}    // closed (and replaced) when seen advances

	written  atomic.Int64 // bytes this writer stored since the last check
	checking sync.Mutex   // one check at a time
}

// held is what one webhook holds in the log.
type held struct {
	spans []span // oldest first
	bytes int64
}

// span is a run of one webhook's messages, up to stream sequence last.
type span struct {
	last  uint64
	bytes int64
}

// newShare returns the share of a log with a bound, or nil.
func newShare(l *Log) *share {
	bound := float64(l.cfg.MaxBytes)
	if bound <= 0 {
		return nil
	}
	high := int64(bound * shareHigh)
	return &share{
		l: l, high: high, low: int64(bound * shareLow),
		step: max(int64(bound*shareStep), 1), span: max(high/256, spanMin),
		held: map[string]*held{}, moved: make(chan struct{}),
	}
}

// run counts the stream's messages and checks its size every shareEvery until ctx ends.
func (s *share) run(ctx context.Context) {
	go s.follow(ctx)
	t := time.NewTicker(shareEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.check(ctx)
		case <-ctx.Done():
			return
		}
	}
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
		s.l.log.V(1).Info("Counting the delivery log's messages; starting again", "error", err.Error(), "after", backoff)
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
	if k := len(h.spans); k > 0 && h.spans[k-1].bytes < s.span {
		h.spans[k-1].last = seq
		h.spans[k-1].bytes += n
	} else {
		h.spans = append(h.spans, span{last: seq, bytes: n})
	}
	h.bytes += n
	s.seen = seq
	close(s.moved)
	s.moved = make(chan struct{})
}

// wrote tells the share that this writer is about to publish a message of n bytes: every
// shareStep of the bound, the writer checks the stream and waits for a trim the check starts, so
// that its own writes cannot outrun the trims. What the stream may still receive unchecked is a
// step and what the writer has in flight (Config.Buffer records): the gap between shareHigh and
// the bound must hold both, as it does for any bound above about 100 MiB.
func (s *share) wrote(ctx context.Context, n int) {
	if s.written.Add(int64(n)) < s.step {
		return
	}
	s.written.Store(0)
	s.check(ctx)
}

// check reads the stream's state, forgets what it no longer holds and, above the high mark, trims.
func (s *share) check(ctx context.Context) {
	s.checking.Lock()
	defer s.checking.Unlock()
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	info, err := s.l.stream.Info(ictx)
	cancel()
	if err != nil {
		s.l.log.V(1).Info("Reading the delivery log's size failed", "error", err.Error())
		return
	}
	s.prune(info.State.FirstSeq)
	if int64(info.State.Bytes) <= s.high {
		return
	}
	s.waitSeen(ctx, info.State.LastSeq)
	s.trim(ctx, int64(info.State.Bytes)-s.low)
}

// waitSeen waits until the count has read up to seq, for at most shareCatchUp.
func (s *share) waitSeen(ctx context.Context, seq uint64) {
	t := time.NewTimer(shareCatchUp)
	defer t.Stop()
	for {
		s.mu.Lock()
		seen, moved := s.seen, s.moved
		s.mu.Unlock()
		if seen >= seq {
			return
		}
		select {
		case <-moved:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// prune forgets the spans the stream no longer holds (age, the stream's own bound).
func (s *share) prune(first uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for uid, h := range s.held {
		for len(h.spans) > 0 && h.spans[0].last < first {
			h.bytes -= h.spans[0].bytes
			h.spans = h.spans[1:]
		}
		if len(h.spans) == 0 {
			delete(s.held, uid)
		}
	}
}

// trim purges the oldest span of the account holding the most, over and over, until over bytes
// are gone or nothing counted is left.
func (s *share) trim(ctx context.Context, over int64) {
	trimmed := map[string]int64{}
	defer func() {
		for account, n := range trimmed {
			s.l.log.Info("Delivery log near its bound: removed the oldest records of the account holding the most of it",
				"account", account, "bytes", n)
		}
	}()
	for over > 0 {
		account, uid, sp, ok := s.oldestOfLargest()
		if !ok {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.l.stream.Purge(pctx, jetstream.WithPurgeSubject(subject(uid)), jetstream.WithPurgeSequence(sp.last+1))
		cancel()
		if err != nil {
			s.l.log.Error(err, "Trimming the delivery log failed", "account", account)
			return
		}
		s.drop(uid, sp)
		over -= sp.bytes
		trimmed[account] += sp.bytes
		s.l.metrics.trimmed.Add(float64(sp.bytes))
	}
}

// oldestOfLargest returns the oldest span of the account that holds the most bytes.
func (s *share) oldestOfLargest() (account, uid string, sp span, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	accounts := make(map[string]string, len(s.held))
	totals := map[string]int64{}
	for u, h := range s.held {
		a, _ := s.l.accountOf(u)
		accounts[u] = a
		totals[a] += h.bytes
	}
	first := true
	for a, n := range totals {
		if first || n > totals[account] || (n == totals[account] && a < account) {
			account, first = a, false
		}
	}
	for u, h := range s.held {
		if accounts[u] != account || len(h.spans) == 0 {
			continue
		}
		if !ok || cmp.Less(h.spans[0].last, sp.last) {
			uid, sp, ok = u, h.spans[0], true
		}
	}
	return account, uid, sp, ok
}

// drop forgets sp, purged from uid. The consumer may have added to the span since it was taken
// (a webhook's only span grows): then only the bytes taken are forgotten.
func (s *share) drop(uid string, sp span) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.held[uid]
	if h == nil || len(h.spans) == 0 {
		return
	}
	h.bytes -= sp.bytes
	if h.spans[0].last == sp.last {
		h.spans = h.spans[1:]
	} else {
		h.spans[0].bytes = max(h.spans[0].bytes-sp.bytes, 0)
	}
	if len(h.spans) == 0 || h.bytes <= 0 {
		delete(s.held, uid)
	}
}
