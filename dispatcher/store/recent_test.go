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
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/gomega"
)

// seqs returns the sequences of notes.
func seqs(notes []Note) []uint64 {
	out := make([]uint64, len(notes))
	for i, n := range notes {
		out[i] = n.Seq
	}
	return out
}

// indexAbove returns an index serving reads of notes above after.
func indexAbove(after uint64) *recentNotes {
	r := newRecentNotes()
	r.suspended = false
	r.restartLocked(after)
	return r
}

// A fresh index answers nothing until this process has queued notes: another dispatcher (the one a
// standby took over from) may have queued some it never saw.
func TestRecentNotesStartSuspended(t *testing.T) {
	g := NewWithT(t)
	r := newRecentNotes()
	_, ok := r.load("w", 1, 10)
	g.Expect(ok).To(BeFalse(), "notes 1 to 7 were queued by another dispatcher")
	recordOne(r, r.begin(), "w", 8)
	_, ok = r.load("w", 1, 10)
	g.Expect(ok).To(BeFalse())
	recordOne(r, r.begin(), "w", 9)
	notes, ok := r.load("w", 9, 10)
	g.Expect(ok).To(BeTrue())
	g.Expect(seqs(notes)).To(Equal([]uint64{9}))
}

// recordOne ends call n, which stored one note of uid at seq.
func recordOne(r *recentNotes, n uint64, uid string, seq uint64) {
	r.add(uid, Note{EventSeq: seq}, seq)
	r.done(n)
}

// A note recorded above a hole is not served until the hole fills: the hole may be a note of the same
// queue whose acknowledgement has not reached its caller yet, and serving the later one first would
// deliver out of order (and lose the earlier one, read past).
func TestRecentNotesWaitForHoles(t *testing.T) {
	g := NewWithT(t)
	r := indexAbove(10)
	a, b := r.begin(), r.begin()
	recordOne(r, b, "w", 12)
	_, ok := r.load("w", 11, 10)
	g.Expect(ok).To(BeFalse(), "note 11 may be w's and is not recorded yet")
	_, ok = r.load("x", 11, 10)
	g.Expect(ok).To(BeTrue(), "x has nothing above the hole: its answer is known")

	recordOne(r, a, "w", 11)
	notes, ok := r.load("w", 11, 10)
	g.Expect(ok).To(BeTrue())
	g.Expect(seqs(notes)).To(Equal([]uint64{11, 12}))
	notes, _ = r.load("w", 12, 10)
	g.Expect(seqs(notes)).To(Equal([]uint64{12}))
	notes, _ = r.load("w", 11, 1)
	g.Expect(seqs(notes)).To(Equal([]uint64{11}))
	_, ok = r.load("w", 10, 10)
	g.Expect(ok).To(BeFalse(), "below the floor only the store knows")

	r.removed("w", 11)
	notes, _ = r.load("w", 11, 10)
	g.Expect(seqs(notes)).To(Equal([]uint64{12}))
}

// A note is recorded twice, by the acknowledgement handler and by its caller: the second time
// changes nothing, whether the note is above a hole or not.
func TestRecentNotesRecordOnce(t *testing.T) {
	g := NewWithT(t)
	r := indexAbove(10)
	a, b := r.begin(), r.begin()
	r.add("w", Note{EventSeq: 12}, 12)
	r.add("w", Note{EventSeq: 12}, 12)
	recordOne(r, b, "w", 12)
	recordOne(r, a, "w", 11)
	r.add("w", Note{EventSeq: 11}, 11)
	notes, ok := r.load("w", 11, 10)
	g.Expect(ok).To(BeTrue())
	g.Expect(seqs(notes)).To(Equal([]uint64{11, 12}))
	g.Expect(r.total).To(Equal(2))
}

// The acknowledgements record the notes in the index on the goroutine that receives them, in the
// stream's order, without waiting for the callers of EnqueueAll to be scheduled.
func TestAcknowledgementsFeedTheIndex(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	// The index answers once a call of this process has stored its notes.
	_, err := s.EnqueueAll(ctx, []Enqueue{{UID: "v", Note: Note{EventSeq: 1, Created: time.Now()}}})
	g.Expect(err).NotTo(HaveOccurred())

	// Published as EnqueueAll does, but nobody records it but the acknowledgement handler.
	f, err := s.js.PublishAsync(notesSubject("w"), encodeNote(Note{EventSeq: 2, Created: time.Now()}))
	g.Expect(err).NotTo(HaveOccurred())
	var ack *jetstream.PubAck
	g.Eventually(f.Ok()).Should(Receive(&ack))
	g.Eventually(func() []uint64 {
		notes, _ := s.recent.load("w", ack.Sequence, 10)
		return seqs(notes)
	}).Should(Equal([]uint64{ack.Sequence}))
}

// A read stopped by a hole waits for it to fill rather than walk the store: the acknowledgement is
// usually on its way.
func TestRecentNotesReadWaitsForAHole(t *testing.T) {
	g := NewWithT(t)
	r := indexAbove(10)
	r.holeWait = time.Minute
	a, b := r.begin(), r.begin()
	recordOne(r, b, "w", 12)
	type answer struct {
		notes []Note
		ok    bool
	}
	got := make(chan answer, 1)
	go func() {
		notes, ok := r.load("w", 11, 10)
		got <- answer{notes, ok}
	}()
	g.Eventually(func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.progress.waiters) > 0
	}).Should(BeTrue(), "the read waits")
	recordOne(r, a, "w", 11)
	var ans answer
	g.Eventually(got).Should(Receive(&ans))
	g.Expect(ans.ok).To(BeTrue())
	g.Expect(seqs(ans.notes)).To(Equal([]uint64{11, 12}))
}

// After a failed publish the index answers nothing until a call begun after the failure succeeds, and
// then only above that call's notes: the failed call may have stored notes it never learnt the
// sequences of.
func TestRecentNotesSuspendAfterAFailure(t *testing.T) {
	g := NewWithT(t)
	r := indexAbove(0)
	before := r.begin()
	failed := r.begin()
	r.fail(failed, nil) // stored 1 for w, say, without an acknowledgement
	_, ok := r.load("w", 1, 10)
	g.Expect(ok).To(BeFalse())
	recordOne(r, before, "w", 2)
	_, ok = r.load("w", 1, 10)
	g.Expect(ok).To(BeFalse(), "a call begun before the failure does not end the suspension")

	after := r.begin()
	recordOne(r, after, "w", 3)
	_, ok = r.load("w", 1, 10)
	g.Expect(ok).To(BeFalse(), "notes 1 and 2 are only in the store")
	next := r.begin()
	recordOne(r, next, "w", 4)
	notes, ok := r.load("w", 4, 10)
	g.Expect(ok).To(BeTrue())
	g.Expect(seqs(notes)).To(Equal([]uint64{4}))
}

// A queue purged while a call was under way is not indexed again before that call is over: the call
// may have stored a note before the purge (gone now) and record it after.
func TestRecentNotesPurgeWhileQueueing(t *testing.T) {
	g := NewWithT(t)
	r := indexAbove(0)
	inFlight := r.begin()
	r.purging("w")
	r.purged("w", 0)
	recordOne(r, r.begin(), "x", 2)
	recordOne(r, inFlight, "w", 1) // stored before the purge: gone from the store
	_, ok := r.load("w", 1, 10)
	g.Expect(ok).To(BeFalse())

	recordOne(r, r.begin(), "w", 3)
	notes, ok := r.load("w", 3, 10)
	g.Expect(ok).To(BeTrue())
	g.Expect(seqs(notes)).To(Equal([]uint64{3}))
}

// recordAt records note seq of uid, created at t.
func recordAt(r *recentNotes, uid string, seq uint64, t time.Time) {
	n := r.begin()
	r.add(uid, Note{EventSeq: seq, Created: t}, seq)
	r.done(n)
}

// A queue nobody reads (its notes a second apart and none read) stops being indexed past its bound,
// and is indexed again from what comes next.
func TestRecentNotesBoundPerQueue(t *testing.T) {
	g := NewWithT(t)
	r := indexAbove(0)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for seq := uint64(1); seq <= recentPerQueue+1; seq++ {
		recordAt(r, "w", seq, t0.Add(time.Duration(seq)*time.Second))
	}
	g.Expect(r.total).To(BeZero())
	_, ok := r.load("w", 1, 10)
	g.Expect(ok).To(BeFalse())
	recordAt(r, "w", recentPerQueue+2, t0.Add(time.Hour))
	notes, ok := r.load("w", recentPerQueue+2, 10)
	g.Expect(ok).To(BeTrue())
	g.Expect(seqs(notes)).To(Equal([]uint64{recentPerQueue + 2}))
}

// A queue filled faster than its bound (a WebhookReplay queues 500 at once) stays indexed while its
// oldest note is recent, up to recentPerQueueMax.
func TestRecentNotesKeepAQueueFilledAtOnce(t *testing.T) {
	g := NewWithT(t)
	r := indexAbove(0)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	const n = 4 * recentPerQueue
	for seq := uint64(1); seq <= n; seq++ {
		recordAt(r, "w", seq, t0.Add(time.Duration(seq)*time.Millisecond))
	}
	notes, ok := r.load("w", 1, n)
	g.Expect(ok).To(BeTrue())
	g.Expect(notes).To(HaveLen(n))
	g.Expect(notes[n-1].Seq).To(BeEquivalentTo(n))

	for seq := uint64(n + 1); seq <= recentPerQueueMax+1; seq++ {
		recordAt(r, "w", seq, t0.Add(time.Second))
	}
	_, ok = r.load("w", 1, 10)
	g.Expect(ok).To(BeFalse(), "indexed past recentPerQueueMax")
}

// A queue that grows for longer than recentUnread stays indexed while the engine reads it (a replay
// delivered as it is queued), or while purges take its delivered notes; one that is not read, or
// read only below its indexed notes (a queue far behind, a dead endpoint's), is dropped once past
// its bound and unread for recentUnread.
func TestRecentNotesKeepQueuesThatAreRead(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	const n = 1000 // 10 ms apart: 10 s in all, five times recentUnread
	at := func(seq uint64) time.Time { return t0.Add(time.Duration(seq) * 10 * time.Millisecond) }

	read, purged, unread, below := indexAbove(0), indexAbove(0), indexAbove(0), indexAbove(0)
	for seq := uint64(1); seq <= n; seq++ {
		for _, r := range []*recentNotes{read, purged, unread, below} {
			recordAt(r, "w", seq, at(seq))
		}
		if seq%50 == 0 {
			notes, ok := read.load("w", seq-49, 50)
			g.Expect(ok).To(BeTrue(), "read at %d", seq)
			g.Expect(notes).To(HaveLen(50))
			purged.removed("w", seq-40)
			_, ok = below.load("w", 0, 50)
			g.Expect(ok).To(BeFalse())
		}
	}
	notes, ok := read.load("w", 1, n)
	g.Expect(ok).To(BeTrue())
	g.Expect(notes).To(HaveLen(n), "a queue read as it fills keeps every note indexed")
	notes, ok = purged.load("w", n-39, n)
	g.Expect(ok).To(BeTrue())
	g.Expect(notes).To(HaveLen(40), "a queue purged as it is delivered keeps its notes indexed")

	for _, r := range []*recentNotes{unread, below} {
		g.Expect(r.total).To(BeNumerically("<=", max(recentPerQueue, int(recentUnread/(10*time.Millisecond))+1)),
			"an unread queue holds at most its bound, or recentUnread's notes")
		_, ok := r.load("w", 1, n)
		g.Expect(ok).To(BeFalse())
	}
}

// A queue read far below its indexed notes (a backlog's drain reaching a dead endpoint's queue)
// drops them once they have waited unread for recentUnread; while they are fresh (a replay's notes,
// read first from where the engine stood before) it keeps them.
func TestRecentNotesReadBelowDropsNotesThatWaited(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	r := indexAbove(100)
	for seq := uint64(101); seq <= 150; seq++ {
		recordAt(r, "w", seq, t0)
	}
	r.now = func() time.Time { return t0.Add(recentUnread / 2) }
	_, ok := r.load("w", 1, 64)
	g.Expect(ok).To(BeFalse(), "below the index's floor")
	notes, ok := r.load("w", 101, 64)
	g.Expect(ok).To(BeTrue(), "fresh notes are kept")
	g.Expect(notes).To(HaveLen(50))

	for seq := uint64(151); seq <= 200; seq++ {
		recordAt(r, "v", seq, t0)
	}
	r.now = func() time.Time { return t0.Add(2 * recentUnread) }
	_, ok = r.load("v", 1, 64)
	g.Expect(ok).To(BeFalse())
	g.Expect(r.total).To(Equal(50), "v's notes, unread for twice recentUnread, dropped; w's, read, kept")
	_, ok = r.load("v", 151, 64)
	g.Expect(ok).To(BeFalse())
	recordAt(r, "v", 201, t0.Add(2*recentUnread))
	notes, ok = r.load("v", 201, 64)
	g.Expect(ok).To(BeTrue(), "indexed again from what comes next")
	g.Expect(seqs(notes)).To(Equal([]uint64{201}))
}

// Past recentTotal the queues nobody reads are dropped and the ones read as fast as they fill stay;
// past recentTotalMax the whole index starts afresh.
func TestRecentNotesDropStaleQueuesPastTheTotal(t *testing.T) {
	g := NewWithT(t)
	r := indexAbove(0)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	seq := uint64(0)
	// Stale: 300 queues of 100 notes each, queued at t0.
	for q := range 300 {
		for range 100 {
			seq++
			recordAt(r, fmt.Sprintf("dead%d", q), seq, t0)
		}
	}
	g.Expect(r.total).To(Equal(30000))
	// Fresh: one queue filled a minute later, past recentTotal in all.
	firstFresh := seq + 1
	for range 4000 {
		seq++
		recordAt(r, "live", seq, t0.Add(time.Minute))
	}
	g.Expect(r.total).To(Equal(4000), "the stale queues dropped, the fresh one kept")
	_, ok := r.load("dead0", 1, 10)
	g.Expect(ok).To(BeFalse())
	notes, ok := r.load("live", firstFresh, 10)
	g.Expect(ok).To(BeTrue())
	g.Expect(notes[0].Seq).To(Equal(firstFresh))

	// Fresh queues only, past recentTotalMax: the index starts afresh.
	for i := 0; r.total == 4000+i; i++ {
		seq++
		recordAt(r, fmt.Sprintf("burst%d", i/(recentPerQueueMax-1)), seq, t0.Add(time.Minute))
	}
	g.Expect(seq-firstFresh+1).To(BeEquivalentTo(recentTotalMax+1), "indexed until past recentTotalMax")
	g.Expect(r.total).To(BeZero())
	_, ok = r.load("live", firstFresh, 10)
	g.Expect(ok).To(BeFalse())
}

// Whatever concurrent callers queue, purge and read, every read the index answers equals what
// JetStream answers at that moment, and reading a queue's head in a loop, as the delivery engine does,
// never skips a note.
func TestLoadNotesAgreesWithTheStream(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()

	const uids, callers, calls = 20, 8, 60
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			for range calls {
				items := make([]Enqueue, 1+rng.IntN(12))
				for i := range items {
					items[i] = Enqueue{UID: fmt.Sprintf("w%d", rng.IntN(uids)), Note: Note{EventSeq: 1, Created: time.Now()}}
				}
				if _, err := s.EnqueueAll(ctx, items); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	served := 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	heads := map[string]uint64{}
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		for u := range uids {
			uid := fmt.Sprintf("w%d", u)
			// From the index's floor at least, where it can answer (it restarts above everything
			// recorded when a hole does not fill in time, which concurrent callers cause).
			idx := s.recent.(*recentNotes)
			idx.mu.Lock()
			from := max(heads[uid]+1, idx.floor)
			idx.mu.Unlock()
			cached, ok := s.recent.load(uid, from, 5)
			stream, err := s.readNotes(ctx, uid, from, 5)
			g.Expect(err).NotTo(HaveOccurred())
			if ok {
				served++
				// The stream may have stored notes since the index answered: the index's answer
				// is a prefix of the stream's.
				g.Expect(seqs(stream)[:len(cached)]).To(Equal(seqs(cached)), "queue %s from %d", uid, from)
			}
			if len(stream) > 0 {
				// Settle the first note, as delivery does.
				heads[uid] = stream[0].Seq
				g.Expect(s.Remove(ctx, uid, stream[0].Seq)).To(Succeed())
			}
		}
	}
	// How many reads it answered while the writers ran depends on the machine's timing; once they
	// are done, a queue written to by one caller is answered from the index.
	t.Logf("the index answered %d reads while the writers ran", served)
	res, err := s.EnqueueAll(ctx, []Enqueue{{UID: "quiet", Note: Note{EventSeq: 1, Created: time.Now()}}})
	g.Expect(err).NotTo(HaveOccurred())
	cached, ok := s.recent.load("quiet", res[0].Seq, 5)
	g.Expect(ok).To(BeTrue(), "the index answers a read of a queue no call is writing to")
	g.Expect(seqs(cached)).To(Equal([]uint64{res[0].Seq}))
	// Drained: the index and the stream both know every remaining note.
	for u := range uids {
		uid := fmt.Sprintf("w%d", u)
		want, err := s.readNotes(ctx, uid, heads[uid]+1, 1<<20)
		g.Expect(err).NotTo(HaveOccurred())
		got, err := s.LoadNotes(ctx, uid, heads[uid]+1, 1<<20)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(seqs(got)).To(Equal(seqs(want)), "queue %s", uid)
	}
	// Read from below the index's floor (heads+1): the stream answers.
	index, sweep, stream := s.QueueReads()
	g.Expect(index+sweep+stream).To(Equal(uint64(uids)), "every LoadNotes is counted once")
}

// Dispatchers that queue into the same streams at once (SharedQueues) read every queue from
// JetStream: a note another one queued lies between this one's notes, where the index, which
// knows only its own, would answer that the queue ends (seen as a notification delivered only at
// the next recount in the active-active test).
func TestSharedQueuesReadNotesOthersQueued(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	at := natsURL(t)
	open := func() *Store {
		s, err := Open(ctx, Config{URL: at.URL, Auth: at.Auth, SharedQueues: true})
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(s.Close)
		return s
	}
	one, two := open(), open()
	note := Note{EventSeq: 1, Created: time.Now()}
	mine, err := one.EnqueueAll(ctx, []Enqueue{{UID: "w", Note: note}})
	g.Expect(err).NotTo(HaveOccurred())
	theirs, err := two.EnqueueAll(ctx, []Enqueue{{UID: "w", Note: note}})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = one.EnqueueAll(ctx, []Enqueue{{UID: "other", Note: note}})
	g.Expect(err).NotTo(HaveOccurred())

	got, err := one.LoadNotes(ctx, "w", mine[0].Seq+1, 10)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(seqs(got)).To(Equal([]uint64{theirs[0].Seq}), "the note the other dispatcher queued")
}

// A reader waiting for the index to reach a sequence is woken when it is reached, not by every
// step below it; one that gives up leaves nothing behind; a fresh start wakes every reader.
func TestProgressWakesReadersWhoseSequenceIsReached(t *testing.T) {
	g := NewWithT(t)
	var mu sync.Mutex
	var p progress
	wait := func(until uint64, deadline <-chan time.Time) chan bool {
		woken := make(chan bool, 1)
		go func() {
			mu.Lock()
			defer mu.Unlock()
			woken <- p.wait(&mu, until, deadline)
		}()
		g.Eventually(func() bool {
			mu.Lock()
			defer mu.Unlock()
			return slices.ContainsFunc(p.waiters, func(w progressWaiter) bool { return w.until == until })
		}).Should(BeTrue())
		return woken
	}
	at10, at20 := wait(10, nil), wait(20, nil)
	mu.Lock()
	p.reached(9)
	mu.Unlock()
	g.Consistently(at10, 20*time.Millisecond).ShouldNot(Receive(), "9 is below what it waits for")
	mu.Lock()
	p.reached(10)
	mu.Unlock()
	g.Eventually(at10).Should(Receive(BeTrue()))
	g.Consistently(at20, 20*time.Millisecond).ShouldNot(Receive())

	expired := make(chan time.Time, 1)
	at30 := wait(30, expired)
	expired <- time.Now()
	g.Eventually(at30).Should(Receive(BeFalse()))
	mu.Lock()
	g.Expect(p.waiters).To(HaveLen(1), "the reader that gave up is no longer listed")
	p.moved()
	mu.Unlock()
	g.Eventually(at20).Should(Receive(BeTrue()), "a fresh start wakes every reader")
}
