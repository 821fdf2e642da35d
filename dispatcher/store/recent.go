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
	"math"
	"slices"
	"sync"
	"time"
)

// Bounds of the recent-notes index, so that a backlog costs disk, not memory: a webhook whose notes
// pile up (its endpoint is down) stops being indexed past recentPerQueue, and the whole index starts
// afresh past recentTotal (streamNotes).
//
// recentNotes tells a queue nobody reads from one read as fast as it fills by how long it has grown
// unread: a WebhookReplay queues a webhook's notes 500 at a time, and the engine reads them at once,
// but the index used to drop such a queue past 128 notes (and restart whole past 32 Ki), so that a
// recover read most replayed notes from the stream (a walk, or the sweep). There a queue stops being
// indexed past recentPerQueue only when it has not been read for recentUnread (its last read, or its
// oldest indexed note if none, that much older than the note being added), or past
// recentPerQueueMax; past recentTotal the queues unread that long are dropped (looked for again once
// the index has grown by a quarter of recentTotal); and the whole index starts afresh only past
// recentTotalMax. A queue counts as read when the index answers a read of it or a purge removes
// some of its indexed notes: reads below its indexed notes (a queue far behind) do not count, and
// such a read drops the queue's notes once they have waited unread for recentUnread.
const (
	recentPerQueue    = 128
	recentPerQueueMax = 4 << 10
	recentTotal       = 32 << 10
	recentTotalMax    = 128 << 10
	// recentUnread is how long a queue may grow unread before it counts as one nobody reads. Its
	// notes cost memory until the engine reaches them: a backlog of dead endpoints, queued at 40,000
	// notes a second, held about 10 MB through its drain with 10 seconds here.
	recentUnread = 2 * time.Second
	// recentMaxAhead is how many notes may be recorded above a hole in the sequence before the hole
	// is taken for a note this process will never record (another writer, a publish whose
	// acknowledgement was lost); the process has at most 4096 publishes outstanding.
	recentMaxAhead = 8 << 10
	// recentHoleWait bounds how long a read waits for a hole below its queue's notes to fill.
	recentHoleWait = 2 * time.Millisecond
)

// recentNotes indexes the notes this process queued, by webhook, so that reading a queue's next notes
// rarely needs JetStream: finding "the next message of this subject after sequence n" is a walk
// over every message stored since n, which, with a thousand webhooks' notes interleaved, was a
// quarter of the dispatcher's CPU under load (JetStream's batched direct get walks the same way,
// once per message). It answers a read only when its answer is the store's:
//
//   - every sequence from floor to complete is a note recorded here (acknowledgements reach
//     concurrent callers out of order, so complete trails the highest recorded sequence);
//   - a read is answered only from its queue's floor on, and only when the index holds none of the
//     queue's notes above complete: such a note may already be with the delivery engine while one
//     below it is still unrecorded, and the store answers then;
//   - purges are applied to it, after they are done; whatever it cannot follow (a failed publish, a
//     hole that does not fill, its bounds) makes it start afresh above everything recorded.
//
// Notes are told to the delivery engine only after they are recorded here, so a read it answers never
// misses a note the engine was told about. That holds only while this process is the one writer;
// with several (Config.SharedQueues) the store uses streamNotes instead.
type recentNotes struct {
	mu       sync.Mutex
	floor    uint64
	complete uint64
	// ahead holds recorded sequences above complete+1, until the hole below them fills.
	ahead map[uint64]struct{}
	// progress, when a read waits for a hole to fill, is closed when complete moves.
	progress progress
	holeWait time.Duration
	// now is the clock of the notes' creation times (time.Now; tests replace it).
	now func() time.Time
	// maxSeen is the highest sequence recorded.
	maxSeen uint64
	// queueFloor raises floor for one queue whose notes were dropped from the index (noFloor: not
	// indexed at all until healing says).
	queueFloor map[string]uint64
	queues     map[string][]Note
	// readAt is, for a queue read since it was last dropped, the creation of its newest note at its
	// last read (notes carry the clock staleLocked compares with).
	readAt map[string]time.Time
	total  int
	// pruneAt is the total at which the queues nobody reads are next looked for (0: recentTotal).
	pruneAt int

	// Calls of EnqueueAll under way, by number, so that a queue purged while some were under way
	// is indexed again only once they are over (healing: queue → first call number after the
	// purge), and so that a failure suspends the index until a call begun after it succeeds.
	nextCall    uint64
	open        map[uint64]struct{}
	healing     map[string]uint64
	suspended   bool
	suspendedAt uint64
}

// noFloor marks a queue that is not indexed.
const noFloor = math.MaxUint64

// newRecentNotes returns an index that answers nothing until this process's first call has stored
// its notes: a dispatcher that took over from another (a standby taking the lease) must not take
// the notes the other one queued for missing.
func newRecentNotes() *recentNotes {
	r := &recentNotes{open: map[uint64]struct{}{}, healing: map[string]uint64{}, holeWait: recentHoleWait, now: time.Now}
	r.restartLocked(0)
	r.suspended = true
	return r
}

// restartLocked forgets the index and records the notes above after from now on.
func (r *recentNotes) restartLocked(after uint64) {
	r.floor, r.complete, r.maxSeen = after+1, after, max(after, r.maxSeen)
	r.ahead = map[uint64]struct{}{}
	r.queueFloor = map[string]uint64{}
	for uid := range r.healing {
		r.queueFloor[uid] = noFloor
	}
	r.queues = map[string][]Note{}
	r.readAt = map[string]time.Time{}
	r.total, r.pruneAt = 0, 0
	r.progress.moved()
}

// begin returns the number of a call about to publish notes, for add, then done or fail.
func (r *recentNotes) begin() uint64 {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.nextCall
	r.nextCall++
	r.open[n] = struct{}{}
	return n
}

// fail ends call n, which failed: notes may be stored that will never be recorded. The index
// answers nothing until a call begun after the failure has recorded its notes.
func (r *recentNotes) fail(n uint64, _ []Enqueue) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.open, n)
	r.suspended, r.suspendedAt = true, r.nextCall
	r.healLocked()
}

// add records that a note of uid is stored at seq, as soon as its acknowledgement arrives: a hole
// in the sequence keeps the queues with notes above it from being served, so holes must be short.
// Recording a note twice is a no-op.
func (r *recentNotes) add(uid string, n Note, seq uint64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maxSeen = max(r.maxSeen, seq)
	if r.suspended {
		return
	}
	r.addLocked(uid, n, seq)
	switch {
	case len(r.ahead) > recentMaxAhead || r.total > recentTotalMax:
		r.restartLocked(r.maxSeen)
	case r.total <= recentTotal:
		r.pruneAt = 0
	case r.total > r.pruneAt:
		r.dropStaleLocked(n.Created)
		r.pruneAt = r.total + recentTotal/4
	}
}

// staleLocked reports whether uid's queue has grown unread for too long by now (the creation of the
// note being added).
func (r *recentNotes) staleLocked(uid string, now time.Time) bool {
	q := r.queues[uid]
	if len(q) == 0 || q[0].Created.IsZero() {
		return false // a note without a creation time cannot be judged
	}
	since := q[0].Created
	if at, ok := r.readAt[uid]; ok && at.After(since) {
		since = at
	}
	return now.Sub(since) > recentUnread
}

// readLocked notes that uid's queue was read now.
func (r *recentNotes) readLocked(uid string) {
	if q := r.queues[uid]; len(q) > 0 {
		r.readAt[uid] = q[len(q)-1].Created
	}
}

// dropStaleLocked stops indexing the queues nobody reads (stale) until what comes next.
func (r *recentNotes) dropStaleLocked(now time.Time) {
	for uid := range r.queues {
		if r.staleLocked(uid, now) {
			r.dropLocked(uid)
		}
	}
}

// dropLocked stops indexing uid's queue until what comes next.
func (r *recentNotes) dropLocked(uid string) {
	r.total -= len(r.queues[uid])
	delete(r.queues, uid)
	delete(r.readAt, uid)
	r.queueFloor[uid] = r.maxSeen + 1
}

// done ends call n, whose notes are all stored and added.
func (r *recentNotes) done(n uint64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.open, n)
	if r.suspended && n >= r.suspendedAt {
		// The failed calls' notes were sent on this connection before this call's, so they
		// are stored below them.
		r.suspended = false
		r.restartLocked(r.maxSeen)
	}
	r.healLocked()
}

func (r *recentNotes) addLocked(uid string, n Note, seq uint64) {
	if seq < r.floor || seq <= r.complete {
		return
	}
	if _, ok := r.ahead[seq]; ok {
		return // recorded already (Store.noteStored, then EnqueueAll)
	}
	if seq == r.complete+1 {
		r.complete = seq
		for {
			if _, ok := r.ahead[r.complete+1]; !ok {
				break
			}
			delete(r.ahead, r.complete+1)
			r.complete++
		}
		r.progress.reached(r.complete)
	} else {
		r.ahead[seq] = struct{}{}
	}
	if seq < r.queueFloor[uid] {
		return
	}
	q := r.queues[uid]
	if len(q) >= recentPerQueue && (len(q) >= recentPerQueueMax || r.staleLocked(uid, n.Created)) {
		// Nobody reads this queue (its endpoint is down): index only what comes next.
		r.dropLocked(uid)
		return
	}
	n.Seq = seq
	// Recorded nearly in order: insert from the back.
	i := len(q)
	for i > 0 && q[i-1].Seq > seq {
		i--
	}
	r.queues[uid] = slices.Insert(q, i, n)
	r.total++
}

// healLocked indexes again the queues purged while calls were under way, once those calls are over:
// a note they stored before the purge is gone from the store, and is recorded at most as maxSeen.
func (r *recentNotes) healLocked() {
	if len(r.healing) == 0 {
		return
	}
	oldest := r.nextCall
	for n := range r.open {
		oldest = min(oldest, n)
	}
	for uid, after := range r.healing {
		if oldest >= after {
			delete(r.healing, uid)
			r.queueFloor[uid] = r.maxSeen + 1
		}
	}
}

// load answers LoadNotes from the index; ok is false when the store must answer. When a hole below
// the queue's newest note is what stops it, it waits up to recentHoleWait for the hole to fill:
// the acknowledgement is usually on its way, and the store's answer costs a walk.
func (r *recentNotes) load(uid string, from uint64, limit int) (notes []Note, ok bool) {
	if r == nil {
		return nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var deadline *time.Timer
	for {
		if r.suspended || from < r.floor || from < r.queueFloor[uid] {
			if !r.suspended && r.staleLocked(uid, r.now()) {
				// Read far below its indexed notes, which waited unread: the engine reaches them
				// only after what lies between (a backlog's drain), and the store answers then.
				r.dropLocked(uid)
			}
			return nil, false
		}
		q := r.queues[uid]
		if len(q) == 0 || q[len(q)-1].Seq <= r.complete {
			break
		}
		if deadline == nil {
			deadline = time.NewTimer(r.holeWait)
			defer deadline.Stop()
		}
		if !r.progress.wait(&r.mu, q[len(q)-1].Seq, deadline.C) {
			return nil, false
		}
	}
	r.readLocked(uid)
	return notesFrom(r.queues[uid], from, limit), true
}

func (r *recentNotes) mark(string) uint64                     { return 0 }
func (r *recentNotes) readAll(string, uint64, []Note, uint64) {}

// removed applies a purge of uid's notes up to upTo, once it is done.
func (r *recentNotes) removed(uid string, upTo uint64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.queues[uid]
	i := indexOf(q, upTo+1)
	if i == 0 {
		return
	}
	r.total -= i
	if i == len(q) {
		delete(r.queues, uid)
		delete(r.readAt, uid)
		return
	}
	r.readLocked(uid)
	r.queues[uid] = slices.Delete(q, 0, i)
}

// purging stops indexing uid before its whole queue is purged, and purged (after the purge, done or
// not) says when to index it again.
func (r *recentNotes) purging(uid string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total -= len(r.queues[uid])
	delete(r.queues, uid)
	delete(r.readAt, uid)
	r.queueFloor[uid] = noFloor
	r.healing[uid] = noFloor
}

func (r *recentNotes) purged(uid string, _ uint64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Calls under way may have stored notes before the purge that they have not recorded yet.
	r.healing[uid] = r.nextCall
	r.healLocked()
}

// progress lets a reader holding an index's lock wait until the index's complete sequence reaches
// the one the reader needs. Only the readers whose sequence is reached are woken: under load the
// index moves at every note, and waking every waiting reader each time kept the index's lock busy
// with readers that went back to sleep.
type progress struct{ waiters []progressWaiter }

type progressWaiter struct {
	until uint64
	ch    chan struct{}
}

// reached wakes the readers waiting for complete ≤ c; the index's lock is held.
func (p *progress) reached(c uint64) {
	if len(p.waiters) == 0 {
		return
	}
	kept := p.waiters[:0]
	for _, w := range p.waiters {
		if w.until <= c {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	clear(p.waiters[len(kept):])
	p.waiters = kept
}

// moved wakes every waiting reader (the index started afresh); the index's lock is held.
func (p *progress) moved() {
	for _, w := range p.waiters {
		close(w.ch)
	}
	clear(p.waiters)
	p.waiters = p.waiters[:0]
}

// wait releases mu until complete reaches until (reached), the index starts afresh (moved) or
// deadline fires, and takes it again; false when the deadline fired.
func (p *progress) wait(mu *sync.Mutex, until uint64, deadline <-chan time.Time) bool {
	ch := make(chan struct{})
	p.waiters = append(p.waiters, progressWaiter{until: until, ch: ch})
	mu.Unlock()
	select {
	case <-ch:
		mu.Lock()
		return true
	case <-deadline:
		mu.Lock()
		// Still listed unless woken meanwhile: a reader that gave up leaves nothing behind.
		if i := slices.IndexFunc(p.waiters, func(w progressWaiter) bool { return w.ch == ch }); i >= 0 {
			p.waiters = slices.Delete(p.waiters, i, i+1)
		}
		return false
	}
}

// indexOf is the position in q, sorted by sequence, of its first note at or above seq.
func indexOf(q []Note, seq uint64) int {
	i, _ := slices.BinarySearchFunc(q, seq, func(n Note, seq uint64) int { return cmp.Compare(n.Seq, seq) })
	return i
}

// notesFrom returns a copy of up to limit of q's notes from sequence from on.
func notesFrom(q []Note, from uint64, limit int) []Note {
	q = q[indexOf(q, from):]
	return slices.Clone(q[:min(len(q), limit)])
}
