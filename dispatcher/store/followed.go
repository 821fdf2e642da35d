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

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// noteIndex answers reads of the queues without JetStream's walk when it can prove its answer (see
// recentNotes and streamNotes): begin, add, then done or fail frame each EnqueueAll; removed,
// purging and purged follow the removals.
type noteIndex interface {
	begin() uint64
	add(uid string, n Note, seq uint64)
	done(call uint64)
	fail(call uint64, items []Enqueue)
	load(uid string, from uint64, limit int) ([]Note, bool)
	// mark, before the store reads a queue load did not answer, and readAll, after it read the
	// queue to its end, let the index learn from the store's answer.
	mark(uid string) uint64
	readAll(uid string, from uint64, notes []Note, mark uint64)
	removed(uid string, upTo uint64)
	purging(uid string)
	// purged ends a purge of uid's whole queue; after is the notes stream's last sequence once the
	// purge was done (0 when unknown).
	purged(uid string, after uint64)
}

// streamHoleWait bounds how long a read waits for the stream's consumer to reach the notes the
// engine knows of: they are stored already and on their way to it.
const streamHoleWait = 25 * time.Millisecond

// knownSweep is how many queues streamNotes.known holds before it drops the entries it passed.
const knownSweep = 4096

// streamNotes is the index for dispatchers that queue into the same streams at once
// (Config.SharedQueues, active-active): every process queues notes, so only the stream sees them
// all. An ordered consumer on the notes stream feeds it, in sequence order, with no gaps but
// removed notes, so complete — the consumer's position — is exact. It indexes only the queues
// this process reads ("followed": from its first read on), because only the queue's reader removes
// its notes and no other process's purge can invalidate what it holds.
//
// A read of a followed queue is answered when:
//
//   - it starts at or above the queue's floor (the consumer's position when the queue was
//     followed, raised by removals);
//   - the consumer has passed every note of the queue the engine may know of: the ones queued
//     here, the ones announced by the dispatcher that queued them (Store.Announced), and the
//     ones below from (read from the stream before). It waits up to streamHoleWait for that.
//
// A note whose announcement was lost may be missed by a read; the engine's recount finds it, as it
// would find a note never announced.
type streamNotes struct {
	mu       sync.Mutex
	complete uint64
	// known holds, per queue, the highest sequence the engine may have been told about, while
	// the consumer has not reached it.
	known   map[string]uint64
	sweepAt int
	// floors holds the followed queues: every note of the queue from its floor on is in queues.
	floors map[string]uint64
	queues map[string][]Note
	total  int
	// purging holds the queues being purged: not followed until the purge is over.
	purgingNow map[string]int
	// stale holds queues whose notes may be stored without the engine knowing their sequence (a
	// failed EnqueueAll): their next read goes to the stream.
	stale    map[string]struct{}
	progress progress
	holeWait time.Duration
}

func newStreamNotes(after uint64) *streamNotes {
	return &streamNotes{complete: after, known: map[string]uint64{}, floors: map[string]uint64{}, queues: map[string][]Note{},
		purgingNow: map[string]int{}, stale: map[string]struct{}{}, holeWait: streamHoleWait, sweepAt: knownSweep}
}

func (r *streamNotes) begin() uint64 { return 0 }
func (r *streamNotes) done(uint64)   {}

// add records that this process stored seq in uid's queue: the engine is told next.
func (r *streamNotes) add(uid string, _ Note, seq uint64) { r.announced(uid, seq) }

// fail marks the queues of a failed EnqueueAll stale.
func (r *streamNotes) fail(_ uint64, items []Enqueue) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, it := range items {
		r.stale[it.UID] = struct{}{}
	}
}

// announced records that the engine is about to learn of note seq of uid.
func (r *streamNotes) announced(uid string, seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq > r.complete && seq > r.known[uid] {
		r.known[uid] = seq
	}
	if len(r.known) > r.sweepAt {
		// Entries of notes removed before the consumer reached them are never met again.
		for uid, k := range r.known {
			if k <= r.complete {
				delete(r.known, uid)
			}
		}
		r.sweepAt = max(knownSweep, 2*len(r.known))
	}
}

// record takes in the consumer's next message, stream sequence seq of uid's queue (ok false: a
// message that is not a note; it still moves the consumer's position).
func (r *streamNotes) record(uid string, n Note, seq uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq <= r.complete {
		return
	}
	r.complete = seq
	r.progress.reached(seq)
	if k, found := r.known[uid]; found && k <= seq {
		delete(r.known, uid)
	}
	floor, followed := r.floors[uid]
	if !ok || !followed || seq < floor {
		return
	}
	q := r.queues[uid]
	if len(q) >= recentPerQueue {
		// Its reader is behind (its endpoint is down): follow it again at its next read.
		r.unfollowLocked(uid)
		return
	}
	n.Seq = seq
	r.queues[uid] = append(q, n)
	r.total++
	if r.total > recentTotal {
		for uid, floor := range r.floors {
			if floor != noFloor {
				r.unfollowLocked(uid)
			}
		}
	}
}

func (r *streamNotes) unfollowLocked(uid string) {
	r.total -= len(r.queues[uid])
	delete(r.queues, uid)
	delete(r.floors, uid)
}

func (r *streamNotes) load(uid string, from uint64, limit int) ([]Note, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.stale[uid]; ok {
		// The stream's answer holds whatever the failed call stored; from then on from says.
		delete(r.stale, uid)
		return nil, false
	}
	floor, followed := r.floors[uid]
	if !followed {
		if r.purgingNow[uid] == 0 {
			r.floors[uid] = r.complete + 1
		}
		return nil, false
	}
	if from < floor {
		return nil, false
	}
	var deadline *time.Timer
	// from ≥ floor > 0: the engine has read the queue up to from-1.
	for {
		until := max(r.known[uid], from-1)
		if r.complete >= until {
			break
		}
		if deadline == nil {
			deadline = time.NewTimer(r.holeWait)
			defer deadline.Stop()
		}
		if !r.progress.wait(&r.mu, until, deadline.C) || r.floors[uid] != floor {
			return nil, false // too late, or unfollowed meanwhile
		}
	}
	return notesFrom(r.queues[uid], from, limit), true
}

// mark returns uid's floor before the store reads the queue (0: not followed).
func (r *streamNotes) mark(uid string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.floors[uid]
}

// readAll learns from the store's answer to a read of uid's queue from from to its end: every note
// below the floor that mark returned was stored before the read (the consumer had passed it), so
// the answer holds all of them, and the queue holds no other note from from on below the floor.
// The floor comes down to the last of them: a followed queue's first read, which starts below
// the floor, does not send its next reads to the stream too.
func (r *streamNotes) readAll(uid string, from uint64, notes []Note, mark uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if mark == 0 || mark == noFloor || r.floors[uid] != mark {
		return // not followed, or followed again, removed or purged meanwhile
	}
	lowest := from
	for _, n := range notes {
		if n.Seq < mark {
			lowest = n.Seq + 1
		}
	}
	r.floors[uid] = min(mark, lowest)
}

// removed applies a removal of uid's notes up to upTo: the consumer may still bring some of them,
// so the floor rises above them.
func (r *streamNotes) removed(uid string, upTo uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	floor, followed := r.floors[uid]
	if !followed {
		return
	}
	q := r.queues[uid]
	i := indexOf(q, upTo+1)
	r.total -= i
	r.queues[uid] = slices.Delete(q, 0, i)
	r.floors[uid] = max(floor, upTo+1)
}

func (r *streamNotes) purging(uid string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unfollowLocked(uid)
	r.purgingNow[uid]++
}

// purged follows uid again above every note the purge may have removed: the consumer may still
// bring some of them.
func (r *streamNotes) purged(uid string, after uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.purgingNow[uid]--; r.purgingNow[uid] <= 0 {
		delete(r.purgingNow, uid)
	}
	r.unfollowLocked(uid)
	if after == 0 {
		// Where the purge ended is unknown: never follow this queue again (reads go to the
		// stream), which is correct and, as purges are rare and need NATS, rare.
		r.floors[uid] = noFloor
		return
	}
	r.floors[uid] = max(r.complete, after) + 1
	r.queues[uid] = nil
}

// followStream starts the consumer feeding idx from the notes stream's next message on; the
// returned function stops it.
func followStream(ctx context.Context, nc *nats.Conn, idx *streamNotes) (stop func(), err error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	s, err := js.Stream(ctx, NotesStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", NotesStream, err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{notesPrefix + "*"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    idx.complete + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("following stream %s: %w", NotesStream, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if err != nil {
			return
		}
		n, err := decodeNote(m.Data())
		idx.record(strings.TrimPrefix(m.Subject(), notesPrefix), n, meta.Sequence.Stream, err == nil)
	})
	if err != nil {
		return nil, fmt.Errorf("following stream %s: %w", NotesStream, err)
	}
	return cc.Stop, nil
}
