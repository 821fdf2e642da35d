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
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// modelStream is a notes stream in memory for the sweep's unit tests: fetch reads it as the
// store's consumer does, and answer is what the store's walk would answer.
type modelStream struct {
	seq     uint64
	notes   []sweptNote
	byUID   map[string][]uint64
	gone    map[uint64]bool
	fetched int // notes handed to the sweep
	fetches int
	// short, when set, cuts a fetch's batch to its answer: a batch ends early without the
	// stream ending.
	short func(n int) int
}

func newModelStream() *modelStream {
	return &modelStream{gone: map[uint64]bool{}, byUID: map[string][]uint64{}}
}

func (m *modelStream) add(uid string) uint64 {
	m.seq++
	m.notes = append(m.notes, sweptNote{uid: uid, note: Note{Seq: m.seq, EventSeq: m.seq}, ok: true})
	m.byUID[uid] = append(m.byUID[uid], m.seq)
	return m.seq
}

func (m *modelStream) fetch(_ context.Context, from uint64, n int) ([]sweptNote, error) {
	m.fetches++
	var out []sweptNote
	if m.short != nil {
		n = m.short(n)
	}
	first, _ := slices.BinarySearchFunc(m.notes, from, func(sn sweptNote, seq uint64) int { return cmp.Compare(sn.note.Seq, seq) })
	for _, sn := range m.notes[first:] {
		if sn.note.Seq >= from && !m.gone[sn.note.Seq] {
			out = append(out, sn)
			if len(out) == n {
				break
			}
		}
	}
	m.fetched += len(out)
	return out, nil
}

// interleaved returns a stream of n notes for each of sweepMinQueues queues, w0, w1…, interleaved.
func interleaved(n int) *modelStream {
	m := newModelStream()
	for range n {
		for q := range sweepMinQueues {
			m.add(fmt.Sprintf("w%d", q))
		}
	}
	return m
}

// stored is the highest sequence stored: every note is known to the engine in these tests.
func (m *modelStream) stored() uint64 { return m.seq }

// answer is the walk's answer: up to limit of uid's notes from sequence from on.
func (m *modelStream) answer(uid string, from uint64, limit int) []uint64 {
	out := []uint64{}
	for _, seq := range m.byUID[uid] {
		if seq >= from && !m.gone[seq] && len(out) < limit {
			out = append(out, seq)
		}
	}
	return out
}

// read is the engine's read of uid's queue (limit notes from sequence from on, asking the sweep for
// ask, or for as many as the walk answers when ask is 0): the sweep's answer, checked against the walk's, or else the walk's, whose end the reader
// then tells the sweep. It returns the walk's answer (empty at the queue's end) and whether the
// sweep gave it.
func (m *modelStream) read(ctx context.Context, g Gomega, s *sweep, uid string, from uint64, limit, ask int) (want []uint64, answered bool) {
	want = m.answer(uid, from, limit)
	if len(want) == 0 {
		return want, false
	}
	if ask == 0 {
		ask = len(want)
	}
	got, ok := s.load(ctx, uid, from, ask)
	if ok {
		g.Expect(seqs(got)).To(Equal(want), "queue %s from %d", uid, from)
	} else {
		s.loaded(uid, want[len(want)-1]+1)
	}
	return want, ok
}

// removeUpTo removes uid's notes up to upTo, as Store.Remove does, and tells the sweep after.
func (m *modelStream) removeUpTo(s *sweep, uid string, upTo uint64) {
	for _, seq := range m.byUID[uid] {
		if seq <= upTo {
			m.gone[seq] = true
		}
	}
	s.removed(uid, upTo)
}

// A drain of many backlogged queues, read as the engine reads them (the next batch from the last
// note read on, the head removed once delivered), is answered by the sweep: each note is fetched
// about once, every answer is the walk's, and the notes held stay within the budget although the
// backlog is larger: each queue's first read-ahead was read before the drain (from the stream, while
// its endpoint was down), and the pass does not hold those.
func TestSweepDrainsManyQueuesInOnePass(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	m := newModelStream()
	const queues, perQueue, batch = 400, 300, 64
	for range perQueue {
		for q := range queues {
			m.add(fmt.Sprintf("w%d", q))
		}
	}
	g.Expect(queues*perQueue).To(BeNumerically(">", sweepShare*queues), "the backlog is larger than the budget")
	s := newSweep(m.fetch, m.stored)
	next := map[string]uint64{}
	for q := range queues {
		uid := fmt.Sprintf("w%d", q)
		ahead := m.answer(uid, 1, batch)
		next[uid] = ahead[len(ahead)-1]
		s.loaded(uid, next[uid]+1)
	}
	answered, walked := 0, 0
	for round := 0; ; round++ {
		progressed := false
		for q := range queues {
			uid := fmt.Sprintf("w%d", q)
			from := next[uid] + 1
			want, ok := m.read(ctx, g, s, uid, from, batch, 0)
			if len(want) == 0 {
				continue
			}
			progressed = true
			if ok {
				answered++
			} else {
				walked++
			}
			next[uid] = want[len(want)-1]
			m.removeUpTo(s, uid, want[len(want)-1])
		}
		if !progressed {
			break
		}
	}
	t.Logf("%d reads answered by the sweep, %d walked; %d notes fetched in %d fetches for %d stored; at most %d held", answered, walked, m.fetched, m.fetches, queues*perQueue, s.peak)
	g.Expect(walked).To(BeNumerically("<=", sweepMinQueues), "only the reads before the pass started walk")
	g.Expect(s.missCounts()).To(Equal(map[string]uint64{MissNoPass: uint64(walked)}))
	g.Expect(m.fetched).To(BeNumerically("<=", queues*perQueue), "no note is fetched twice")
	// Each queue's next read-ahead and part of the one after; holding the notes read before the
	// drain too would take a read-ahead more per queue.
	g.Expect(s.peak).To(BeNumerically("<=", queues*batch*3/2))
}

// The readers of a drain do not move in step: each webhook's deliveries go at their own pace. The
// pass must lead the fastest reader, so the slower ones' lists hold more than a read-ahead each;
// the budget grows with the queues served, so that a thousand queues a third of which go three
// times as fast as another third are answered without dropping a list (a fixed 96k dropped lists
// and left their reads to walks until the next pass).
func TestSweepFollowsReadersAtTheirOwnPace(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	m := newModelStream()
	const queues, perQueue, batch = 1000, 300, 64
	for range perQueue {
		for q := range queues {
			m.add(fmt.Sprintf("w%d", q))
		}
	}
	s := newSweep(m.fetch, m.stored)
	type reader struct {
		uid      string
		speed    int      // notes delivered per tick
		held     []uint64 // read, not delivered yet
		next     uint64   // where the next read starts
		finished bool
	}
	rs := make([]*reader, queues)
	for q := range rs {
		rs[q] = &reader{uid: fmt.Sprintf("w%d", q), speed: 1 + q%3, next: 1}
	}
	answered, walked := 0, 0
	for left := queues; left > 0; {
		for _, r := range rs {
			if r.finished {
				continue
			}
			if len(r.held) == 0 {
				want, ok := m.read(ctx, g, s, r.uid, r.next, batch, batch)
				if len(want) == 0 {
					r.finished = true
					left--
					continue
				}
				if ok {
					answered++
				} else {
					walked++
				}
				r.held, r.next = want, want[len(want)-1]+1
			}
			n := min(r.speed, len(r.held))
			m.removeUpTo(s, r.uid, r.held[n-1])
			r.held = r.held[n:]
		}
	}
	t.Logf("%d reads answered by the sweep, %d walked; at most %d notes held, budget %d; misses %v", answered, walked, s.peak, s.budgetLocked(), s.missCounts())
	g.Expect(s.peak).To(BeNumerically(">", sweepTotalMin), "the readers' spread needs more than the least budget")
	g.Expect(s.missCounts()).To(Equal(map[string]uint64{MissNoPass: uint64(walked)}), "only the reads before the pass started walk")
	g.Expect(walked).To(BeNumerically("<=", sweepMinQueues))
}

// Queues nobody reads (endpoints down, Webhooks inactive) do not raise the budget: a thousand of
// them with 200 notes each among a few queues being drained are held to the least budget, not to
// 256 notes each.
func TestSweepBudgetCountsOnlyQueuesThatRead(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	m := newModelStream()
	const idle, active, perIdle, perActive, batch = 1000, 16, 200, 600, 64
	for i := range perActive {
		for q := range active {
			m.add(fmt.Sprintf("a%d", q))
		}
		if i < perIdle {
			for q := range idle {
				m.add(fmt.Sprintf("i%d", q))
			}
		}
	}
	s := newSweep(m.fetch, m.stored)
	next := map[string]uint64{}
	answered := 0
	for progressed := true; progressed; {
		progressed = false
		for q := range active {
			uid := fmt.Sprintf("a%d", q)
			want, ok := m.read(ctx, g, s, uid, next[uid]+1, batch, 0)
			if len(want) == 0 {
				continue
			}
			progressed = true
			if ok {
				answered++
			}
			next[uid] = want[len(want)-1]
			m.removeUpTo(s, uid, want[len(want)-1])
		}
	}
	t.Logf("%d reads answered; at most %d notes held, budget %d", answered, s.peak, s.budgetLocked())
	g.Expect(s.budgetLocked()).To(Equal(sweepTotalMin))
	g.Expect(s.peak).To(BeNumerically("<=", sweepTotalMin+sweepBatch), "the idle queues' notes are dropped at the least budget")
	g.Expect(answered).To(BeNumerically(">", 0))
}

// One queue's backlog does not start a pass: the walk visits only what is still queued, which is
// then mostly that queue's own notes.
func TestSweepLeavesASingleBacklogToTheStream(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	m := newModelStream()
	for range 1000 {
		m.add("only")
	}
	s := newSweep(m.fetch, m.stored)
	for from := uint64(1); from <= 1000; from += 64 {
		_, ok := s.load(ctx, "only", from, 64)
		g.Expect(ok).To(BeFalse())
	}
	g.Expect(m.fetches).To(BeZero())
	g.Expect(s.missCounts()).To(Equal(map[string]uint64{MissNearEnd: 16}))
}

// Reads near the stream's end (queues keeping up under load, whose walks are short) neither start a
// pass nor wait for a fetch, however many of them miss the index.
func TestSweepLeavesReadsNearTheEndToTheStream(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	m := newModelStream()
	for range sweepDeep {
		m.add("far")
	}
	for q := range 4 * sweepMinQueues {
		m.add(fmt.Sprintf("w%d", q))
	}
	s := newSweep(m.fetch, m.stored)
	for q := range 4 * sweepMinQueues {
		uid := fmt.Sprintf("w%d", q)
		_, ok := s.load(ctx, uid, m.byUID[uid][0], 1)
		g.Expect(ok).To(BeFalse())
	}
	g.Expect(m.fetches).To(BeZero())
	g.Expect(s.pass).To(BeZero())
	g.Expect(s.missCounts()).To(Equal(map[string]uint64{MissNearEnd: 4 * sweepMinQueues}))
}

// Whatever is queued, removed and purged while a pass runs, every answer the sweep gives is the
// walk's answer at that moment. The reads are the engine's (from the last note read on) and, now
// and then, another reader's from a random point.
func TestSweepAnswersAgreeWithTheStream(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(seed, 7))
			m := newModelStream()
			if seed%2 == 1 {
				// Batches that end early, as a fetch may: the pass must not take them for
				// the stream's end.
				m.short = func(n int) int { return 1 + rng.IntN(n) }
			}
			s := newSweep(m.fetch, m.stored)
			s.deep = 1 // a small stream: every read counts
			clock := time.Unix(0, 0)
			s.now = func() time.Time { return clock }
			const queues = 24
			uid := func() string { return fmt.Sprintf("w%d", rng.IntN(queues)) }
			next := map[string]uint64{}
			answered := 0
			for range 4000 {
				clock = clock.Add(time.Duration(rng.IntN(50)) * time.Millisecond)
				switch op := rng.IntN(100); {
				case op < 45:
					for range 1 + rng.IntN(30) {
						m.add(uid())
					}
				case op < 85:
					u := uid()
					from := next[u] + 1
					if rng.IntN(10) == 0 {
						from = uint64(rng.IntN(int(m.seq) + 2))
					}
					limit := 1 + rng.IntN(70)
					want := m.answer(u, from, limit)
					got, ok := s.load(ctx, u, from, limit)
					if ok {
						answered++
						g.Expect(seqs(got)).To(Equal(want), "queue %s from %d limit %d", u, from, limit)
					} else if len(want) > 0 {
						// The stream answered; the store tells the sweep how far the reader is.
						s.loaded(u, want[len(want)-1]+1)
					}
					if len(want) > 0 && from == next[u]+1 {
						// Deliver some of what was read; the engine reads on after the rest.
						k := rng.IntN(len(want))
						m.removeUpTo(s, u, want[k])
						next[u] = want[len(want)-1]
					}
				case op < 88:
					// A whole queue purged (INACTIVE, disabled), while a fetch may be under way.
					u := uid()
					s.purging(u)
					for _, sn := range m.notes {
						if sn.uid == u {
							m.gone[sn.note.Seq] = true
						}
					}
					s.purged(u)
				default:
					// Notes the engine never read removed (the 72-hour drop of a failing head).
					u := uid()
					if w := m.answer(u, next[u]+1, 1); len(w) > 0 {
						m.removeUpTo(s, u, w[0])
						next[u] = max(next[u], w[0])
					}
				}
			}
			t.Logf("%d reads answered by the sweep, %d passes", answered, s.pass)
			g.Expect(answered).To(BeNumerically(">", 0), "the sweep answered reads")
		})
	}
}

// A note a removal took while a fetch held it is not answered: a fetch that read notes before
// their removal hands them over after it.
func TestSweepForgetsNotesRemovedDuringAFetch(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	m := interleaved(20)
	var s *sweep
	removeDuring := true
	s = newSweep(func(ctx context.Context, from uint64, n int) ([]sweptNote, error) {
		out, err := m.fetch(ctx, from, n)
		if removeDuring {
			// Delivered and removed while this fetch was on its way, then the purge of w1.
			removeDuring = false
			m.removeUpTo(s, "w0", 5*uint64(sweepMinQueues))
			s.purging("w1")
			for _, sn := range m.notes {
				if sn.uid == "w1" {
					m.gone[sn.note.Seq] = true
				}
			}
			s.purged("w1")
		}
		return out, err
	}, m.stored)
	s.deep = 1
	for q := range sweepMinQueues {
		_, ok := s.load(ctx, fmt.Sprintf("w%d", q), 1, 1)
		g.Expect(ok).To(BeFalse(), "no pass yet")
	}
	got, ok := s.load(ctx, "w2", 1, 3)
	g.Expect(ok).To(BeTrue())
	g.Expect(seqs(got)).To(Equal(m.answer("w2", 1, 3)))
	_, ok = s.load(ctx, "w0", 1, 3)
	g.Expect(ok).To(BeFalse(), "below the removal")
	got, ok = s.load(ctx, "w0", 5*uint64(sweepMinQueues)+1, 3)
	g.Expect(ok).To(BeTrue())
	g.Expect(seqs(got)).To(Equal(m.answer("w0", 5*uint64(sweepMinQueues)+1, 3)))
	_, ok = s.load(ctx, "w1", 1, 1)
	g.Expect(ok).To(BeFalse(), "a queue purged during the pass is left to the stream")
}

// The sweep against JetStream: many queues' backlogs, interleaved and beyond the index's reach,
// read and removed as the engine does. Every read answers what the stream's walk answers, and
// after the first few the sweep answers them.
func TestSweepAnswersABacklogFromJetStream(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	s.sweep.deep = 1 // a small backlog: every read counts
	const queues, perQueue = 40, 2 * recentPerQueue
	start := time.Now()
	for round := range perQueue {
		items := make([]Enqueue, queues)
		for q := range items {
			// One event per round (its notes share their strings in the sweep's lists), some of
			// them replays; a minute apart, as a backlog's are, so that the index drops them.
			n := Note{EventSeq: uint64(round + 1), Created: start.Add(time.Duration(round) * time.Minute), EventID: fmt.Sprintf("e%d", round), EventName: "AGREEMENT_ACTION_COMPLETED"}
			if q%3 == 0 {
				n.Replay = fmt.Sprintf("r%d", q)
			}
			items[q] = Enqueue{UID: fmt.Sprintf("w%d", q), Note: n}
		}
		_, err := s.EnqueueAll(ctx, items)
		g.Expect(err).NotTo(HaveOccurred())
	}
	next := map[string]uint64{}
	for progressed := true; progressed; {
		progressed = false
		for q := range queues {
			uid := fmt.Sprintf("w%d", q)
			want, err := s.readNotes(ctx, uid, next[uid]+1, 64)
			g.Expect(err).NotTo(HaveOccurred())
			if len(want) == 0 {
				continue
			}
			progressed = true
			got, err := s.LoadNotes(ctx, uid, next[uid]+1, len(want))
			g.Expect(err).NotTo(HaveOccurred())
			// Seqs: the index holds the notes as queued (Created with a monotonic reading).
			g.Expect(seqs(got)).To(Equal(seqs(want)), "queue %s from %d", uid, next[uid]+1)
			for i := range got {
				g.Expect(got[i].Created.Equal(want[i].Created)).To(BeTrue(), "note %d: created %v, want %v", got[i].Seq, got[i].Created, want[i].Created)
				got[i].Created = want[i].Created
				g.Expect(got[i]).To(Equal(want[i]))
			}
			next[uid] = want[len(want)-1].Seq
			g.Expect(s.Remove(ctx, uid, next[uid])).To(Succeed())
		}
	}
	index, sweep, stream := s.QueueReads()
	t.Logf("queue reads: index %d, sweep %d, stream %d", index, sweep, stream)
	g.Expect(sweep).To(BeNumerically(">", stream), "the sweep answered most reads")
	g.Expect(stream).To(BeNumerically("<=", 2*sweepMinQueues))
	// And no consumer is left on the notes stream: one left there makes every purge of several
	// notes recount its pending messages.
	info, err := s.notes.Info(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info.State.Consumers).To(BeZero(), "consumers left on the notes stream after the sweep's fetches")
}

// A note that does not decode is left to the stream's read, which reports it: the sweep answers
// the queue's notes before it, and nothing that would skip it.
func TestSweepLeavesACorruptNoteToTheStream(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	m := interleaved(10)
	corrupt := m.byUID["w0"][5]
	m.notes[corrupt-1].ok = false
	s := newSweep(m.fetch, m.stored)
	s.deep = 1
	for q := range sweepMinQueues {
		_, ok := s.load(ctx, fmt.Sprintf("w%d", q), 1, 100)
		g.Expect(ok).To(BeFalse(), "no pass yet")
	}
	got, ok := s.load(ctx, "w1", 1, 100)
	g.Expect(ok).To(BeTrue(), "the whole queue, past the stream's end")
	g.Expect(seqs(got)).To(Equal(m.answer("w1", 1, 100)))
	got, ok = s.load(ctx, "w0", 1, 5)
	g.Expect(ok).To(BeTrue())
	g.Expect(seqs(got)).To(Equal(m.answer("w0", 1, 5)))
	_, ok = s.load(ctx, "w0", m.byUID["w0"][4]+1, 100)
	g.Expect(ok).To(BeFalse(), "the corrupt note is the stream's to report")
	g.Expect(s.missCounts()).To(Equal(map[string]uint64{MissNoPass: sweepMinQueues, MissCut: 1}))
}

// Each read the sweep leaves to the stream is counted under its reason (the metric
// hookline_store_sweep_misses_total): here no pass yet, a read below what the pass holds, and a
// queue cut at its cap.
func TestSweepCountsWhyItLeavesReads(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	m := interleaved(sweepPerQueue + 88)
	s := newSweep(m.fetch, m.stored)
	s.deep = 1
	for q := range sweepMinQueues {
		_, ok := s.load(ctx, fmt.Sprintf("w%d", q), 1, 10)
		g.Expect(ok).To(BeFalse(), "no pass yet")
	}
	w1 := m.byUID["w1"]
	_, ok := s.load(ctx, "w1", 1, 10)
	g.Expect(ok).To(BeTrue())
	_, ok = s.load(ctx, "w1", w1[10], 10)
	g.Expect(ok).To(BeTrue())
	_, ok = s.load(ctx, "w1", 1, 10)
	g.Expect(ok).To(BeFalse(), "below the floor: the pass no longer holds the queue's first notes")
	_, ok = s.load(ctx, "w0", 1, sweepPerQueue+88)
	g.Expect(ok).To(BeFalse(), "more than a queue's list holds")
	g.Expect(s.missCounts()).To(Equal(map[string]uint64{MissNoPass: sweepMinQueues, MissFloor: 1, MissCut: 1}))
}
