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
	"cmp"
	"context"
	"maps"
	"math"
	"slices"
	"sync"
	"time"
)

// Bounds of the sweep.
const (
	// sweepBatch is how many notes one fetch reads.
	sweepBatch = 4096
	// sweepPerQueue caps the notes held for one queue: past it the queue is cut (its later notes
	// are not held, its reads go to the stream once the held ones are read).
	sweepPerQueue = 512
	// The notes held for every queue together are capped at sweepShare per queue reading from the
	// pass (queues nobody reads do not raise it), within sweepTotalMin and sweepTotalMax; past
	// the cap the lists of the queues read least recently are dropped, and those queues' reads
	// walk until the next pass. Readers of a drain do not move in step (each webhook's
	// deliveries go at their own pace), so the pass, which must lead the fastest, holds more than
	// one read-ahead for most: a fixed 96k for the bench's 1,000 backlogged queues dropped lists
	// again and again and left 28 % of the reads to walks (a third of the drain's garbage); 192
	// per queue answered them all.
	sweepShare    = 256
	sweepTotalMin = 96 << 10
	sweepTotalMax = 512 << 10
	// sweepMinQueues is how many queues' reads must miss before a new pass starts: one queue's
	// backlog is read as cheaply by the stream's walk, which visits only what is still queued.
	sweepMinQueues = 8
	// sweepMinGap is the least time between the starts of two passes; a pass that fetched for a
	// while (a large backlog, perhaps of queues nobody reads) waits sweepGapPerFetch times as long.
	sweepMinGap      = time.Second
	sweepGapPerFetch = 5
	// sweepMaxFetches bounds the fetches one read may wait for.
	sweepMaxFetches = 32
	// sweepDeep is how far behind the last stored note a read must start to count towards a
	// pass: reads near the stream's end (queues keeping up, under load) walk little, and must not
	// start passes whose fetches they would then wait for.
	sweepDeep = 4 * sweepBatch
)

// sweptNote is a note as a sweep's fetch reads it: its queue, the note, and whether it decoded.
type sweptNote struct {
	uid  string
	note Note
	ok   bool
}

// sweep answers the reads of many backlogged queues by reading the notes stream once, in sequence
// order, instead of one walk per read. JetStream finds "the next note of this queue after n" by
// visiting every message stored since n; in a drain of a thousand backlogged webhooks whose notes
// interleave, that walk was a third of the dispatcher's CPU and most of its garbage (a copy of each
// visited message's subject). A pass fetches the stream from its first note on in batches and
// hands each note to its queue's list; a read is answered from its queue's list when that proves
// to be the store's answer:
//
//   - every note of the queue stored from the list's floor up to the pass's position is in the
//     list (the pass read them all, in order; a removal raises the floor; a queue purged while the
//     pass runs is not answered until the next pass);
//   - the read starts at or above the floor, and the list holds as many notes from there as the
//     read asks for, or the pass is past every note stored when the read began (the engine takes
//     a short answer for the queue's end, so it must be the whole queue).
//
// Anything else goes to the stream, as before. Passes start when reads of several queues missed
// far behind the stream's end (sweepMinQueues, sweepDeep), at most once per sweepMinGap; they
// advance only while reads need them to, and memory is bounded by sweepPerQueue and the cap
// (budgetLocked). Used with a single writer only: with shared queues another process's purges
// could leave a list holding removed notes.
type sweep struct {
	mu sync.Mutex
	// fetch reads up to n notes from sequence from on, in order, without gaps but removed notes;
	// it may return fewer than n before the stream's end.
	fetch  func(ctx context.Context, from uint64, n int) (notes []sweptNote, err error)
	stored func() uint64
	now    func() time.Time
	deep   uint64 // sweepDeep

	// pass numbers the passes (0: none started); pos is the next sequence the pass reads; ended
	// says that a fetch failed, and the pass will not advance.
	pass      uint64
	pos       uint64
	ended     bool
	startedAt time.Time
	// fetchTime is how long the pass's fetches took.
	fetchTime time.Duration
	queues    map[string]*sweptQueue
	// readers counts the queues read since the pass started (budgetLocked).
	readers int
	total   int
	peak    int // the most notes held at once
	// fetching is closed when the fetch under way ends; nil when none is.
	fetching chan struct{}
	// misses holds the queues whose reads the sweep could not answer since the pass started.
	misses map[string]struct{}
	// purgingNow holds the queues being purged whole.
	purgingNow map[string]int
	// loadedTo holds, per queue, the sequence above the last note its reader loaded (whoever
	// answered): notes below it are with the reader, and a pass does not hold them. In a drain
	// every queue's reader is a read-ahead past the pass's start, and holding those notes until
	// each queue's next read filled the budget.
	loadedTo map[string]uint64
	reads    uint64 // clock of the queues' last reads, for dropping the least recent
	// missed counts the reads left to the stream, by reason (SweepMisses).
	missed map[string]uint64
	// shared is the strings of the note recorded last: the next note shares them when it is of
	// the same event (an event's notes are stored together).
	shared *noteStrings
}

// Why the sweep left a read to the stream (Store.SweepMisses, the metric
// hookline_store_sweep_misses_total): every such read walks the notes stream.
const (
	// MissNearEnd: no pass runs, and the read starts near the stream's end (a short walk).
	MissNearEnd = "near-end"
	// MissNoPass: no pass runs yet (fewer than sweepMinQueues queues missed far behind, or the
	// last pass started less than sweepMinGap ago).
	MissNoPass = "no-pass"
	// MissFloor: the read starts below what the pass holds for the queue: its list was dropped
	// for the budget, or the queue was purged, or its reader read past the pass from the stream.
	MissFloor = "floor"
	// MissCut: the queue's list was cut at sweepPerQueue notes (or at a note that did not decode)
	// and the read goes past what it holds.
	MissCut = "cut"
	// MissBudget: the lists held as many notes as the cap allows, so the pass could not read on.
	MissBudget = "budget"
	// MissFar: the answer was more than sweepMaxFetches fetches ahead of the pass.
	MissFar = "far"
	// MissEnded: the pass ended (a fetch failed), or the read was cancelled.
	MissEnded = "ended"
)

// MissReasons lists the reasons of SweepMisses.
var MissReasons = []string{MissNearEnd, MissNoPass, MissFloor, MissCut, MissBudget, MissFar, MissEnded}

// sweptQueue is one queue's part of a pass. A queue without one is covered from the pass's start
// (sequence 1) and has no notes yet.
type sweptQueue struct {
	// floor: every note of the queue from floor up to the pass's position is in notes (noFloor:
	// none is, until the next pass).
	floor uint64
	notes []heldNote
	// cut: notes above the last one held were not kept (sweepPerQueue, or one that did not decode).
	cut      bool
	lastRead uint64
	// reading: the queue's reader read since the pass started.
	reading bool
}

// newSweep returns a sweep reading with fetch; stored returns a sequence at or above every note
// stored so far that the delivery engine may know of.
func newSweep(fetch func(ctx context.Context, from uint64, n int) ([]sweptNote, error), stored func() uint64) *sweep {
	return &sweep{fetch: fetch, stored: stored, now: time.Now, deep: sweepDeep, queues: map[string]*sweptQueue{}, misses: map[string]struct{}{},
		purgingNow: map[string]int{}, loadedTo: map[string]uint64{}, missed: map[string]uint64{}}
}

// load answers a read of uid's queue (limit notes from sequence from on) when it can prove the
// answer; ok false sends the read to the stream.
func (s *sweep) load(ctx context.Context, uid string, from uint64, limit int) (notes []Note, ok bool) {
	// Every note the reader may know of is at or below known: once the pass is past it, the list
	// holds the whole queue from the floor on, and a shorter answer is the store's answer too.
	known := s.stored()
	// Only reads far behind the stream's end are worth starting a pass for: the walk visits at
	// most what is stored between from and the end. Once a pass runs, every read may use it.
	deep := known >= from+s.deep
	s.mu.Lock()
	defer s.mu.Unlock()
	for fetches := 0; ; {
		if s.pass == 0 {
			if !deep {
				return s.missLocked(uid, deep, MissNearEnd)
			}
			return s.missLocked(uid, deep, MissNoPass)
		}
		q := s.queueLocked(uid)
		if !q.reading {
			q.reading = true
			s.readers++
		}
		if from < q.floor {
			return s.missLocked(uid, deep, MissFloor)
		}
		// Notes below from are with the reader already (it reads on from its last one).
		i := heldIndex(q.notes, from)
		q.notes = q.notes[i:]
		s.total -= i
		q.floor = from
		if len(q.notes) >= limit || (!q.cut && s.pos > known) {
			n := min(limit, len(q.notes))
			s.reads++
			q.lastRead = s.reads
			if n > 0 {
				s.loadedTo[uid] = q.notes[n-1].seq + 1
			}
			return unheld(q.notes[:n]), true
		}
		switch {
		case q.cut:
			return s.missLocked(uid, deep, MissCut)
		case s.ended || ctx.Err() != nil:
			return s.missLocked(uid, deep, MissEnded)
		case s.total >= s.budgetLocked():
			return s.missLocked(uid, deep, MissBudget)
		case fetches >= sweepMaxFetches:
			return s.missLocked(uid, deep, MissFar)
		}
		if s.fetching != nil {
			ch := s.fetching
			s.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
			}
			s.mu.Lock()
			continue
		}
		fetches++
		s.fetchLocked(ctx)
	}
}

// missLocked counts a read the sweep did not answer (deep: far behind the stream's end) and starts
// a new pass when enough queues missed so.
func (s *sweep) missLocked(uid string, deep bool, reason string) ([]Note, bool) {
	s.missed[reason]++
	if !deep {
		return nil, false
	}
	s.misses[uid] = struct{}{}
	if len(s.misses) >= sweepMinQueues && s.fetching == nil && (s.pass == 0 || s.now().Sub(s.startedAt) >= max(sweepMinGap, sweepGapPerFetch*s.fetchTime)) {
		s.startLocked()
	}
	return nil, false
}

// startLocked starts a new pass from the stream's first note, forgetting the last one's lists.
func (s *sweep) startLocked() {
	s.pass++
	s.pos, s.ended, s.startedAt, s.fetchTime = 1, false, s.now(), 0
	s.queues = make(map[string]*sweptQueue, len(s.queues))
	for uid := range s.purgingNow {
		s.queues[uid] = &sweptQueue{floor: noFloor}
	}
	s.total, s.readers = 0, 0
	clear(s.misses)
}

// fetchLocked advances the pass by one batch; the lock is released while the store reads.
func (s *sweep) fetchLocked(ctx context.Context) {
	done := make(chan struct{})
	s.fetching = done
	pass, from := s.pass, s.pos
	s.mu.Unlock()
	began := s.now()
	// The position moves only past notes the fetch handed over: a batch shorter than asked
	// for is not taken for the stream's end (the pass stays short of a last note since removed,
	// and such reads walk).
	notes, err := s.fetch(ctx, from, sweepBatch)
	took := s.now().Sub(began)
	s.mu.Lock()
	s.fetching = nil
	s.fetchTime += took
	close(done)
	if s.pass != pass {
		return // a pass starts only when no fetch is under way; kept as a guard
	}
	for _, n := range notes {
		if n.note.Seq < from {
			continue // passed already (a fetch may read on from below where the pass is)
		}
		s.recordLocked(n)
		s.pos = max(s.pos, n.note.Seq+1)
	}
	if err != nil {
		s.ended = true
	}
	s.peak = max(s.peak, s.total)
	if s.total > s.budgetLocked() {
		s.dropLocked()
	}
}

// budgetLocked is the most notes the lists may hold together: sweepShare for each queue read
// since the pass started, within sweepTotalMin and sweepTotalMax. Queues nobody reads (their
// endpoints down, or the Webhooks inactive) would otherwise raise the budget only to fill it.
func (s *sweep) budgetLocked() int {
	return min(max(sweepShare*s.readers, sweepTotalMin), sweepTotalMax)
}

// queueLocked returns uid's part of the pass. A queue the pass has no part for yet had no note
// among those it read: it is covered from where its reader is on.
func (s *sweep) queueLocked(uid string) *sweptQueue {
	q := s.queues[uid]
	if q == nil {
		q = &sweptQueue{floor: max(1, s.loadedTo[uid])}
		s.queues[uid] = q
	}
	return q
}

// recordLocked hands one fetched note to its queue's list.
func (s *sweep) recordLocked(n sweptNote) {
	q := s.queueLocked(n.uid)
	if q.cut || n.note.Seq < q.floor {
		return
	}
	if !n.ok || len(q.notes) >= sweepPerQueue {
		// A note that does not decode is left for the stream's read, which reports it.
		q.cut = true
		return
	}
	s.shared = hold(n.note, s.shared)
	q.notes = append(q.notes, heldNote{seq: n.note.Seq, eventSeq: n.note.EventSeq, created: heldTime(n.note.Created), strs: s.shared})
	s.total++
}

// dropLocked drops the lists of the queues read least recently until a quarter of the budget is
// free: their reads go to the stream until the next pass.
func (s *sweep) dropLocked() {
	held := make([]*sweptQueue, 0, len(s.queues))
	for _, q := range s.queues {
		if len(q.notes) > 0 {
			held = append(held, q)
		}
	}
	slices.SortFunc(held, func(a, b *sweptQueue) int { return cmpUint(a.lastRead, b.lastRead) })
	target := s.budgetLocked() * 3 / 4
	for _, q := range held {
		if s.total <= target {
			return
		}
		s.total -= len(q.notes)
		q.notes, q.floor = nil, noFloor
	}
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// missCounts returns how many reads the sweep left to the stream, by reason.
func (s *sweep) missCounts() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.missed)
}

// loaded tells the sweep that uid's reader loaded the queue's notes below next (a read the sweep
// did not answer).
func (s *sweep) loaded(uid string, next uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, purging := s.purgingNow[uid]; !purging {
		s.loadedTo[uid] = max(s.loadedTo[uid], next)
	}
}

// removed applies a removal of uid's notes up to upTo (after it was done).
func (s *sweep) removed(uid string, upTo uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queueLocked(uid)
	i := heldIndex(q.notes, upTo+1)
	q.notes = q.notes[i:]
	s.total -= i
	q.floor = max(q.floor, upTo+1)
}

// purging starts a purge of uid's whole queue: it is not answered until the next pass, since a
// fetch under way may still hand over notes the purge removes.
func (s *sweep) purging(uid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purgingNow[uid]++
	delete(s.loadedTo, uid)
	q := s.queues[uid]
	if q != nil {
		s.total -= len(q.notes)
	}
	s.queues[uid] = &sweptQueue{floor: noFloor, reading: q != nil && q.reading}
}

// purged ends a purge begun by purging.
func (s *sweep) purged(uid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.purgingNow[uid]--; s.purgingNow[uid] <= 0 {
		delete(s.purgingNow, uid)
	}
}

// heldNote is a Note as a sweep's list holds it: 32 bytes instead of 88. A drain's lists hold a
// few hundred thousand notes (19 MB of the 1,000,000 backlog's heap at the drain's peak), and the
// notes of one event share their strings.
type heldNote struct {
	seq, eventSeq uint64
	// created is Created in Unix nanoseconds; zeroTime for the zero time.
	created int64
	strs    *noteStrings // nil when every string is empty
}

// noteStrings are the strings of a note.
type noteStrings struct{ eventID, eventName, replay string }

// zeroTime stands for the zero time.Time, whose Unix nanoseconds are out of range.
const zeroTime = math.MinInt64

func heldTime(t time.Time) int64 {
	if t.IsZero() {
		return zeroTime
	}
	return t.UnixNano()
}

// hold returns n's strings, last when they are the same.
func hold(n Note, last *noteStrings) *noteStrings {
	if n.EventID == "" && n.EventName == "" && n.Replay == "" {
		return nil
	}
	if last != nil && last.eventID == n.EventID && last.eventName == n.EventName && last.replay == n.Replay {
		return last
	}
	return &noteStrings{eventID: n.EventID, eventName: n.EventName, replay: n.Replay}
}

// note returns the Note h holds; decodeNote's times are in the local zone, as here.
func (h heldNote) note() Note {
	n := Note{Seq: h.seq, EventSeq: h.eventSeq}
	if h.created != zeroTime {
		n.Created = time.Unix(0, h.created)
	}
	if h.strs != nil {
		n.EventID, n.EventName, n.Replay = h.strs.eventID, h.strs.eventName, h.strs.replay
	}
	return n
}

// unheld returns the Notes of hs.
func unheld(hs []heldNote) []Note {
	out := make([]Note, len(hs))
	for i, h := range hs {
		out[i] = h.note()
	}
	return out
}

// heldIndex returns the index of the first note of q at or above seq.
func heldIndex(q []heldNote, seq uint64) int {
	i, _ := slices.BinarySearchFunc(q, seq, func(h heldNote, seq uint64) int { return cmp.Compare(h.seq, seq) })
	return i
}
