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
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/gomega"
)

// compactModel is what the stream must hold: each queue's notes, and which of them are settled.
type compactModel struct {
	queues  map[string][]uint64
	settled map[uint64]bool
}

// firstUnsettled is the lowest sequence of a note still queued and not settled, or above when none.
func (m *compactModel) firstUnsettled(above uint64) uint64 {
	first := above
	for _, q := range m.queues {
		for _, seq := range q {
			if !m.settled[seq] {
				first = min(first, seq)
				break
			}
		}
	}
	return first
}

// Compaction against a real JetStream, under random queueing, in-order settlements, queue-by-queue
// removals and whole-queue purges (which leave gaps the store learns of only by asking): a note
// not settled is never removed, everything below the returned sequence is gone, and once every
// note is settled the compaction empties the stream.
func TestCompactionRemovesOnlySettledNotes(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			s := open(t, t.TempDir())
			defer s.Close()
			g.Expect(s.Compacts()).To(BeTrue())
			// Probes at every held compaction here; the gaps' other paths are the same.
			s.settled.probeEvery = 0
			rng := rand.New(rand.NewPCG(seed, 99))
			m := &compactModel{queues: map[string][]uint64{}, settled: map[uint64]bool{}}
			var pending []uint64
			var last uint64
			check := func(to uint64) {
				t.Helper()
				g.Expect(to).To(BeNumerically("<=", m.firstUnsettled(last+1)), "compacted past a note not settled")
				for uid, q := range m.queues {
					notes, err := s.readNotes(ctx, uid, 1, len(q)+1)
					g.Expect(err).NotTo(HaveOccurred())
					var unsettled []uint64
					for _, seq := range q {
						if !m.settled[seq] {
							unsettled = append(unsettled, seq)
						}
					}
					got := seqs(notes)
					for _, seq := range unsettled {
						g.Expect(got).To(ContainElement(seq), "queue %s lost note %d, not settled", uid, seq)
					}
					for _, seq := range got {
						g.Expect(seq).To(BeNumerically(">=", to), "queue %s: note %d is below the compaction's %d", uid, seq, to)
					}
				}
			}
			for op := range 400 {
				uid := fmt.Sprintf("w%d", rng.IntN(12))
				switch r := rng.IntN(100); {
				case r < 40:
					items := make([]Enqueue, 1+rng.IntN(20))
					for i := range items {
						items[i] = Enqueue{UID: fmt.Sprintf("w%d", rng.IntN(12)), Note: Note{EventSeq: uint64(op), Created: time.Now()}}
					}
					res, err := s.EnqueueAll(ctx, items)
					g.Expect(err).NotTo(HaveOccurred())
					for i, r := range res {
						m.queues[items[i].UID] = append(m.queues[items[i].UID], r.Seq)
						last = max(last, r.Seq)
					}
				case r < 80:
					// The engine settles a queue's notes in order.
					q := m.queues[uid]
					n := 0
					for _, seq := range q {
						if n == 1+rng.IntN(4) {
							break
						}
						if !m.settled[seq] {
							m.settled[seq] = true
							pending = append(pending, seq)
							n++
						}
					}
				case r < 92:
					to, _, err := s.Compact(ctx, pending)
					g.Expect(err).NotTo(HaveOccurred())
					pending = nil
					check(to)
					m.forget(to)
				case r < 97:
					// The acker's removal of a queue's settled head, when the compaction was held.
					q := m.queues[uid]
					i := 0
					for i < len(q) && m.settled[q[i]] && !slices.Contains(pending, q[i]) {
						i++
					}
					if i > 0 {
						g.Expect(s.Remove(ctx, uid, q[i-1])).To(Succeed())
						m.queues[uid] = q[i:]
					}
				default:
					g.Expect(s.RemoveQueue(ctx, uid)).To(Succeed())
					delete(m.queues, uid)
				}
			}
			// Everything settled: the compaction reaches the end (probing the gaps as it goes).
			for _, q := range m.queues {
				for _, seq := range q {
					if !m.settled[seq] {
						m.settled[seq] = true
						pending = append(pending, seq)
					}
				}
			}
			to := uint64(0)
			for range 1000 {
				var err error
				to, _, err = s.Compact(ctx, pending)
				g.Expect(err).NotTo(HaveOccurred())
				pending = nil
				if to == last+1 {
					break
				}
			}
			g.Expect(to).To(Equal(last+1), "the compaction did not reach the end")
			info, err := s.notes.Info(ctx)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(info.State.Msgs).To(BeZero(), "notes left after every one was settled")
		})
	}
}

// forget drops the notes below to from the model: they are gone.
func (m *compactModel) forget(to uint64) {
	for uid, q := range m.queues {
		i := 0
		for i < len(q) && q[i] < to {
			i++
		}
		m.queues[uid] = q[i:]
	}
}

// A note queued before the store opened is not known to be settled: the compaction stops at it
// until it is settled, and then goes on.
func TestCompactionStopsAtANoteQueuedBeforeTheStart(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	old, err := s.EnqueueAll(ctx, []Enqueue{{UID: "dead", Note: Note{EventSeq: 1}}})
	g.Expect(err).NotTo(HaveOccurred())
	s.Close()

	s = open(t, dir)
	defer s.Close()
	res, err := s.EnqueueAll(ctx, []Enqueue{{UID: "w", Note: Note{EventSeq: 2}}, {UID: "w", Note: Note{EventSeq: 3}}})
	g.Expect(err).NotTo(HaveOccurred())
	to, _, err := s.Compact(ctx, []uint64{res[0].Seq, res[1].Seq})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(to).To(Equal(old[0].Seq), "compacted past a note queued before the start")
	_, err = s.notes.GetMsg(ctx, old[0].Seq)
	g.Expect(err).NotTo(HaveOccurred(), "the old note is still queued")
	// And the compaction says for how long it has been held there.
	g.Eventually(func() time.Duration {
		_, held, err := s.Compact(ctx, nil)
		g.Expect(err).NotTo(HaveOccurred())
		return held
	}).Should(BeNumerically(">", 0))

	to, _, err = s.Compact(ctx, []uint64{old[0].Seq})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(to).To(Equal(res[1].Seq + 1))
	for _, seq := range []uint64{old[0].Seq, res[0].Seq, res[1].Seq} {
		_, err = s.notes.GetMsg(ctx, seq)
		g.Expect(errors.Is(err, jetstream.ErrMsgNotFound)).To(BeTrue(), "note %d is still stored: %v", seq, err)
	}
}

// The settled-notes bitmap against a set: marks in any order, advances to any point, bases not
// aligned to its words, and the span past which it keeps nothing.
func TestSettledNotesAgreeWithASet(t *testing.T) {
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 7))
		first := uint64(1 + rng.IntN(200))
		c := newSettledNotes(first)
		set := map[uint64]bool{}
		base := first
		want := func(limit uint64) uint64 {
			seq := base
			for seq < limit && (set[seq] && seq-base < compactSpan) {
				seq++
			}
			return seq
		}
		for range 3000 {
			limit := base + uint64(rng.IntN(700))
			switch r := rng.IntN(10); {
			case r < 6:
				seq := base + uint64(rng.IntN(600))
				if rng.IntN(50) == 0 {
					seq = base + compactSpan + uint64(rng.IntN(10)) // beyond the span: not kept
				} else {
					set[seq] = true
				}
				c.markLocked(seq)
			case r < 8:
				to := want(limit)
				c.advanceLocked(to)
				base = max(base, to)
			default:
				if got, w := c.firstUnsettledLocked(limit), want(limit); got != w {
					t.Fatalf("seed %d: first unsettled below %d from %d: got %d, want %d", seed, limit, base, got, w)
				}
			}
		}
		if uint64(len(c.words)) > 700/64+3 {
			t.Errorf("seed %d: %d words kept for a window of about 700 sequences", seed, len(c.words))
		}
	}
}
