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
	// shareEpochs is how many epochs the count divides the high mark into: a webhook's bytes are
	// counted per epoch, so that what left the stream by age is forgotten an epoch at a time.
	shareEpochs = 32
)

const (
	// shareEvery is how often the stream's size is checked besides the writer's steps: records
	// leave by age, and other replicas write.
	shareEvery = 10 * time.Second
	// shareCatchUp bounds how long a check waits for the count to read up to the stream's end; a
	// check whose count is behind does not trim.
	shareCatchUp = 2 * time.Second
	// shareWait bounds how long the writer waits for a check.
	shareWait = 10 * time.Second
	// shareRounds bounds the trims of one check.
	shareRounds = 64
	// epochMin is the smallest epoch (a small log's).
	epochMin = 16 << 10
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
// deleted webhooks go first (nobody can read them), then the oldest records of the account that
// holds the most of the log, down to what the next largest holds, over and over, until the stream
// holds shareLow. An account loses nothing while another holds more than it, and a cluster of one
// account keeps using the whole log. MaxBytes stays as the last resort.
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
// Checks run on a goroutine of their own, asked for by the writer every shareStep of the bound
// it writes and every shareEvery. Only a dispatcher that Config.Trims names trims (one at a time
// across replicas: another's purges are not in this one's count), and only once Config.AccountsKnown
// says every webhook's account is known and the count has read up to the stream's end.
type share struct {
	l                 *Log
	high, low, step   int64
	epoch             int64
	trims, accountsOK func() bool

	mu      sync.Mutex
	held    map[string]*held // by webhook uid
	seen    uint64           // the last stream sequence counted
	counted int64            // bytes counted since the start: the epoch is counted / epoch
	moved   chan struct{}    // closed (and replaced) when seen advances
	checked chan struct{}    // closed (and replaced) when a check ends

	kick    chan struct{} // asks for a check
	written atomic.Int64  // bytes this writer wrote since the last check started
}

// held is what one webhook holds in the log.
type held struct {
	spans []span // oldest first
	bytes int64
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
		epoch: max(high/shareEpochs, epochMin), trims: always, accountsOK: always,
		held: map[string]*held{}, moved: make(chan struct{}), checked: make(chan struct{}),
		kick: make(chan struct{}, 1),
	}
	if l.cfg.Trims != nil {
		s.trims = l.cfg.Trims
	}
	if l.cfg.AccountsKnown != nil {
		s.accountsOK = l.cfg.AccountsKnown
	}
	return s
}

// run counts the stream's messages and checks its size when asked and every shareEvery, until
// ctx ends.
func (s *share) run(ctx context.Context) {
	go s.follow(ctx)
	t := time.NewTicker(shareEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.kick:
		case <-ctx.Done():
			return
		}
		s.check(ctx)
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
	e := s.counted / s.epoch
	if k := len(h.spans); k > 0 && h.spans[k-1].epoch == e {
		h.spans[k-1].last = seq
		h.spans[k-1].bytes += n
	} else {
		h.spans = append(h.spans, span{epoch: e, first: seq, last: seq, bytes: n})
	}
	h.bytes += n
	s.counted += n
	s.seen = seq
	close(s.moved)
	s.moved = make(chan struct{})
}

// wrote tells the share that this writer is about to publish a message of n bytes. Every
// shareStep of the bound it asks for a check; after two steps without one having started, it
// waits (at most shareWait) for the next to end. What the stream may receive unchecked is
// therefore two steps and what the writer has in flight (Config.Buffer records): the gap between
// shareHigh and the bound must hold both, as it does for any bound above about 100 MiB.
func (s *share) wrote(ctx context.Context, n int) {
	w := s.written.Add(int64(n))
	if w < s.step {
		return
	}
	s.mu.Lock()
	checked := s.checked
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	if w < 2*s.step {
		return
	}
	t := time.NewTimer(shareWait)
	defer t.Stop()
	select {
	case <-checked:
	case <-t.C:
	case <-ctx.Done():
	}
}

// check reads the stream's state, forgets what it no longer holds and, above the high mark, trims.
func (s *share) check(ctx context.Context) {
	s.written.Store(0)
	defer func() {
		s.mu.Lock()
		close(s.checked)
		s.checked = make(chan struct{})
		s.mu.Unlock()
	}()
	info, ok := s.info(ctx)
	if !ok || int64(info.State.Bytes) <= s.high || !s.trims() || !s.accountsOK() {
		return
	}
	if !s.waitSeen(ctx, info.State.LastSeq) {
		s.l.log.V(1).Info("Delivery log near its bound; not trimming yet: its messages are still being counted", "stored", info.State.Bytes)
		return
	}
	trimmed := map[string]int64{}
	defer func() {
		for account, n := range trimmed {
			s.l.log.Info("Delivery log near its bound: removed the oldest records of the account holding the most of it",
				"account", account, "bytes", n)
		}
	}()
	for range shareRounds {
		account, cut, ok := s.cut(int64(info.State.Bytes) - s.low)
		if !ok {
			return
		}
		n, err := s.purge(ctx, account, cut)
		trimmed[account] += n
		s.l.metrics.trimmed.Add(float64(n))
		if err != nil {
			s.l.log.Error(err, "Trimming the delivery log failed", "account", account)
			return
		}
		if info, ok = s.info(ctx); !ok || int64(info.State.Bytes) <= s.low {
			return
		}
	}
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

// cut chooses what to trim of over bytes: the account whose records go (deleted webhooks' first,
// then the one holding the most) and the stream sequence before which they go: as many of its
// oldest epochs as over needs, but for the largest account no more than takes it down to the
// next largest (then that one's turn comes), and at least one epoch.
func (s *share) cut(over int64) (account string, cut uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	totals := map[string]int64{}
	for uid, h := range s.held {
		totals[s.accountOf(uid)] += h.bytes
	}
	var largest, next int64
	for a, n := range totals {
		switch {
		case a == "":
		case n > largest || (n == largest && a < account):
			largest, next, account = n, largest, a
		case n > next:
			next = n
		}
	}
	take := min(over, max(largest-next, s.epoch))
	if totals[""] > 0 {
		account, take = "", over
	}
	// The account's bytes per epoch, oldest first.
	var epochs []span
	for uid, h := range s.held {
		if s.accountOf(uid) != account {
			continue
		}
		for _, sp := range h.spans {
			epochs = append(epochs, sp)
		}
	}
	if len(epochs) == 0 {
		return "", 0, false
	}
	slices.SortFunc(epochs, func(a, b span) int { return cmp.Compare(a.epoch, b.epoch) })
	var got int64
	for i, sp := range epochs {
		got += sp.bytes
		cut = max(cut, sp.last+1)
		if got >= take && (i+1 == len(epochs) || epochs[i+1].epoch != sp.epoch) {
			break
		}
	}
	return account, cut, true
}

// accountOf is uid's account; "" for a webhook Config.AccountOf does not know (deleted). Called
// with mu held.
func (s *share) accountOf(uid string) string {
	a, _ := s.l.accountOf(uid)
	return a
}

// purge removes account's records before stream sequence cut, a webhook at a time, and forgets
// them; it returns the bytes forgotten.
func (s *share) purge(ctx context.Context, account string, cut uint64) (int64, error) {
	s.mu.Lock()
	var uids []string
	for uid, h := range s.held {
		if len(h.spans) > 0 && h.spans[0].first < cut && s.accountOf(uid) == account {
			uids = append(uids, uid)
		}
	}
	s.mu.Unlock()
	var n int64
	for _, uid := range uids {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.l.stream.Purge(pctx, jetstream.WithPurgeSubject(subject(uid)), jetstream.WithPurgeSequence(cut))
		cancel()
		if err != nil {
			return n, err
		}
		n += s.forget(uid, cut)
	}
	return n, nil
}

// forget drops uid's spans before cut (a span cut through counts as gone: the next check's
// stream size corrects the estimate) and returns their bytes.
func (s *share) forget(uid string, cut uint64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.held[uid]
	if h == nil {
		return 0
	}
	var n int64
	k := 0
	for k < len(h.spans) && h.spans[k].first < cut {
		n += h.spans[k].bytes
		k++
	}
	h.spans = h.spans[k:]
	h.bytes -= n
	if len(h.spans) == 0 {
		delete(s.held, uid)
	}
	return n
}
