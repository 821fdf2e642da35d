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

package store

// Compaction: a single writer's settled notes leave the notes stream in bulk. Removing a queue's
// settled head costs JetStream a request and a walk over every message stored between the queue's
// first note and the purge point (a thousand queues interleave, so a thousand messages per note):
// about a quarter of the dispatcher's CPU per delivery under load. A purge of the whole stream up to
// a sequence ("compact") walks only what it removes. It is safe up to the first note that is still
// queued: the store knows which notes were settled (the engine tells it, after their records are
// stored), so it compacts up to the first note not known to be settled or gone. A note queued for
// long (a dead receiver's) stops the compaction there; the notes settled after it are then removed
// queue by queue, as before (the engine's acker decides when).

import (
	"context"
	"errors"
	"math/bits"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

const (
	// compactSpan bounds the notes the store keeps track of past the first one still queued (a
	// bit each: 1 MiB); a note settled beyond it is left to the queue-by-queue removal.
	compactSpan = 1 << 23
	// compactProbeEvery is how often a compaction held at the same note asks JetStream whether
	// that note is still there: a queue purged whole, a note expired, or a queue-by-queue removal
	// leaves gaps that nothing else reports.
	compactProbeEvery = time.Second
)

// settledNotes knows which notes from base on are settled or gone: bit i of words stands for
// sequence off+i, and every sequence below base is gone from the stream.
type settledNotes struct {
	mu    sync.Mutex
	off   uint64
	base  uint64
	words []uint64
	// held and heldSince: where the compaction stopped, and since when; probedAt: when JetStream
	// was last asked what is gone there (every probeEvery).
	held       uint64
	heldSince  time.Time
	probedAt   time.Time
	probeEvery time.Duration
}

func newSettledNotes(first uint64) *settledNotes {
	first = max(first, 1)
	return &settledNotes{off: first &^ 63, base: first, probeEvery: compactProbeEvery}
}

// markLocked records seq as settled or gone.
func (c *settledNotes) markLocked(seq uint64) {
	if seq < c.base || seq-c.base >= compactSpan {
		return
	}
	i := seq - c.off
	for uint64(len(c.words)) <= i/64 {
		c.words = append(c.words, 0)
	}
	c.words[i/64] |= 1 << (i % 64)
}

// firstUnsettledLocked returns the first sequence from base on that is not known to be settled or
// gone, at most limit.
func (c *settledNotes) firstUnsettledLocked(limit uint64) uint64 {
	seq := c.base
	for seq < limit {
		i := seq - c.off
		if i/64 >= uint64(len(c.words)) {
			return seq
		}
		w := ^c.words[i/64] >> (i % 64)
		if w != 0 {
			return min(seq+uint64(bits.TrailingZeros64(w)), limit)
		}
		seq += 64 - i%64
	}
	return min(seq, limit)
}

// advanceLocked moves base to seq (everything below it is gone) and forgets the words below it.
func (c *settledNotes) advanceLocked(seq uint64) {
	if seq <= c.base {
		return
	}
	c.base = seq
	if drop := (seq - c.off) / 64; drop > 0 {
		drop = min(drop, uint64(len(c.words)))
		c.words = c.words[drop:]
		c.off += drop * 64
	}
}

// Compacts reports whether the store removes settled notes in bulk (Compact): only a single
// writer's store knows every note of the stream.
func (s *Store) Compacts() bool { return s.settled != nil }

// Compact records that the notes with the sequences settled are settled (the caller has stored
// their records) and removes every note of the stream below the first one that is not known to be
// settled or gone. It returns that sequence (every note below it is gone), and for how long the
// compaction has stopped there: a note queued for long holds it. Without compaction (Compacts
// false) it returns 0.
func (s *Store) Compact(ctx context.Context, settled []uint64) (below uint64, held time.Duration, err error) {
	c := s.settled
	if c == nil {
		return 0, 0, nil
	}
	limit := s.storedUpTo.Load() + 1
	now := time.Now()
	c.mu.Lock()
	for _, seq := range settled {
		c.markLocked(seq)
	}
	base, to := c.base, c.firstUnsettledLocked(limit)
	probe := false
	if to < limit {
		if to != c.held {
			c.held, c.heldSince, c.probedAt = to, now, now
		}
		probe = now.Sub(c.probedAt) >= c.probeEvery
	}
	c.mu.Unlock()

	if probe {
		if to, err = s.probeGone(ctx, to, limit); err != nil {
			return base, 0, err
		}
	}
	if to > base {
		if err := s.notes.Purge(ctx, jetstream.WithPurgeSequence(to)); err != nil {
			return base, 0, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advanceLocked(to)
	if to < limit && to == c.held {
		held = now.Sub(c.heldSince)
	}
	return c.base, held, nil
}

// probeGone asks JetStream for the first note at or after from: the sequences before it are gone,
// and are recorded so. It returns the first sequence not known to be settled or gone afterwards.
func (s *Store) probeGone(ctx context.Context, from, limit uint64) (uint64, error) {
	c := s.settled
	next := limit
	m, err := s.notes.GetMsg(ctx, from, jetstream.WithGetMsgSubject(notesPrefix+"*"))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return from, err
	default:
		next = min(m.Sequence, limit)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for seq := from; seq < min(next, c.base+compactSpan); seq++ {
		c.markLocked(seq)
	}
	c.probedAt = time.Now()
	return c.firstUnsettledLocked(limit), nil
}

// Removed tells the store that uid's notes up to upTo are gone (a compaction removed them).
func (s *Store) Removed(uid string, upTo uint64) {
	s.compactedRemovals.Add(1)
	s.removed(uid, upTo)
}

// removed applies a removal of uid's notes up to upTo to the index and the sweep.
func (s *Store) removed(uid string, upTo uint64) {
	s.recent.removed(uid, upTo)
	if s.sweep != nil {
		s.sweep.removed(uid, upTo)
	}
}

// Removals returns how many removals of a queue's settled notes a compaction did (Removed) and how
// many a purge of the queue did (Remove), since the store opened.
func (s *Store) Removals() (compacted, queue uint64) {
	return s.compactedRemovals.Load(), s.queueRemovals.Load()
}
