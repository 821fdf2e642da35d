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
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// openShared opens a store of an active-active dispatcher on at.
func openShared(t *testing.T, at natsAt) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{URL: at.URL, Auth: at.Auth, SharedQueues: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Two dispatchers queue into the same queues at once; one of them reads every queue as its owner
// does: it learns of the other's notes by announcement (Announced), settles each head and reads on.
// Every read the index answers is the stream's answer cut short at most, and never short of a note
// the reader knows of; once the writers are done, reads are answered by the index.
func TestSharedQueuesIndexAgreesWithTheStream(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	at := natsURL(t)
	owner, other := openShared(t, at), openShared(t, at)
	idx := owner.recent.(*streamNotes)

	const uids, callers, calls = 12, 4, 40
	var mu sync.Mutex
	known := map[string]uint64{} // the highest sequence the owner's engine was told of
	tell := func(uid string, seq uint64) {
		mu.Lock()
		known[uid] = max(known[uid], seq)
		mu.Unlock()
	}
	// The writers take turns the reader hands out once a round, so that writes and reads interleave.
	turns := make(chan struct{}, callers)
	var wg sync.WaitGroup
	for c := range callers {
		s := []*Store{owner, other}[c%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 2))
			for range calls {
				<-turns
				items := make([]Enqueue, 1+rng.IntN(8))
				for i := range items {
					items[i] = Enqueue{UID: fmt.Sprintf("w%d", rng.IntN(uids)), Note: Note{EventSeq: 1, Created: time.Now()}}
				}
				res, err := s.EnqueueAll(ctx, items)
				if err != nil {
					t.Error(err)
					return
				}
				for i, r := range res {
					if s == other {
						owner.Announced(items[i].UID, r.Seq) // as partitioned.arrived does
					}
					tell(items[i].UID, r.Seq)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	heads := map[string]uint64{}
	served := 0
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
	handOut:
		for range callers {
			select {
			case turns <- struct{}{}:
			default:
				break handOut
			}
		}
		for u := range uids {
			uid := fmt.Sprintf("w%d", u)
			mu.Lock()
			told := known[uid]
			mu.Unlock()
			from := heads[uid] + 1
			cached, ok, err := owner.loadNotes(ctx, uid, from, 1000)
			g.Expect(err).NotTo(HaveOccurred())
			stream, err := owner.readNotes(ctx, uid, from, 1000)
			g.Expect(err).NotTo(HaveOccurred())
			if ok {
				served++
				g.Expect(len(cached)).To(BeNumerically("<=", len(stream)))
				g.Expect(seqs(stream)[:len(cached)]).To(Equal(seqs(cached)), "queue %s from %d", uid, from)
				for _, n := range stream[len(cached):] {
					g.Expect(n.Seq).To(BeNumerically(">", told), "queue %s from %d: the index missed a note the engine knew of", uid, from)
				}
			}
			if len(stream) > 0 {
				// Settle what was read, as delivery does.
				heads[uid] = stream[len(stream)-1].Seq
				g.Expect(owner.Remove(ctx, uid, heads[uid])).To(Succeed())
			}
		}
	}
	t.Logf("the index answered %d reads while the writers ran", served)
	g.Expect(served).To(BeNumerically(">", 0))

	// Quiet: the other dispatcher queues one note and announces it; the owner's read of the queue
	// comes from the index and includes the note.
	for u := range uids {
		uid := fmt.Sprintf("w%d", u)
		_, _, err := owner.loadNotes(ctx, uid, heads[uid]+1, 1000) // followed again if it was dropped
		g.Expect(err).NotTo(HaveOccurred())
		res, err := other.EnqueueAll(ctx, []Enqueue{{UID: uid, Note: Note{EventSeq: 2, Created: time.Now()}}})
		g.Expect(err).NotTo(HaveOccurred())
		owner.Announced(uid, res[0].Seq)
		all, err := owner.readNotes(ctx, uid, heads[uid]+1, 1000)
		g.Expect(err).NotTo(HaveOccurred())
		got, ok := idx.load(uid, heads[uid]+1, 1000)
		g.Expect(ok).To(BeTrue(), "queue %s is followed and the consumer reaches the announced note", uid)
		g.Expect(seqs(got)).To(Equal(seqs(all)), "queue %s", uid)
		g.Expect(seqs(got)).To(ContainElement(res[0].Seq))
	}
}

// A removal or a purge the consumer has not reached yet does not bring the removed notes back.
func TestStreamNotesFollowRemovalsAheadOfTheConsumer(t *testing.T) {
	g := NewWithT(t)
	r := newStreamNotes(10)
	note := Note{EventSeq: 1}
	_, ok := r.load("w", 11, 10)
	g.Expect(ok).To(BeFalse(), "the first read follows the queue")
	r.announced("w", 12)
	r.announced("w", 13)
	// The engine read 11 to 13 from the stream and delivered them before the consumer got there.
	r.removed("w", 13)
	for seq := uint64(11); seq <= 13; seq++ {
		r.record("w", note, seq, true)
	}
	r.record("w", note, 14, true)
	got, ok := r.load("w", 14, 10)
	g.Expect(ok).To(BeTrue())
	g.Expect(seqs(got)).To(Equal([]uint64{14}))
	g.Expect(r.total).To(Equal(1), "the removed notes are not kept")

	// A purge whose notes the consumer brings only afterwards.
	r.purging("w")
	_, ok = r.load("w", 15, 10)
	g.Expect(ok).To(BeFalse(), "not followed while purging")
	r.purged("w", 16)
	r.record("w", note, 15, true) // purged
	r.record("w", note, 16, true) // purged
	r.record("w", note, 17, true)
	if got, ok = r.load("w", 15, 10); ok {
		g.Expect(seqs(got)).To(Equal([]uint64{17}), "15 and 16 are purged")
	}
	got, ok = r.load("w", 17, 10)
	g.Expect(ok).To(BeTrue())
	g.Expect(seqs(got)).To(Equal([]uint64{17}))

	// A purge whose end is unknown: the queue is read from the stream from then on.
	r.purging("w")
	r.purged("w", 0)
	r.record("w", note, 18, true)
	_, ok = r.load("w", 18, 10)
	g.Expect(ok).To(BeFalse())
}

// A read waits for the consumer to reach the notes the engine knows of, and goes to the stream
// when it does not in time; a failed EnqueueAll sends the queue's next read to the stream.
func TestStreamNotesWaitForTheConsumer(t *testing.T) {
	g := NewWithT(t)
	r := newStreamNotes(0)
	r.holeWait = time.Minute
	note := Note{EventSeq: 1}
	r.load("w", 1, 10) // follow
	r.announced("w", 3)
	r.record("w", note, 1, true)
	answered := make(chan []Note)
	go func() {
		got, ok := r.load("w", 2, 10)
		if !ok {
			got = nil
		}
		answered <- got
	}()
	r.record("x", note, 2, true)
	g.Consistently(answered, 50*time.Millisecond).ShouldNot(Receive(), "3 is not recorded yet")
	r.record("w", note, 3, true)
	var got []Note
	g.Eventually(answered).Should(Receive(&got))
	g.Expect(seqs(got)).To(Equal([]uint64{3}))

	r.holeWait = time.Millisecond
	r.announced("w", 5)
	_, ok := r.load("w", 4, 10)
	g.Expect(ok).To(BeFalse(), "the consumer did not reach 5 in time")

	r.record("w", note, 4, true)
	r.record("w", note, 5, true)
	r.fail(0, []Enqueue{{UID: "w"}})
	_, ok = r.load("w", 4, 10)
	g.Expect(ok).To(BeFalse(), "a failed call may have stored a note nobody knows the sequence of")
	got, ok = r.load("w", 4, 10)
	g.Expect(ok).To(BeTrue())
	g.Expect(seqs(got)).To(Equal([]uint64{4, 5}))
}

// A queue nobody reads (its endpoint is down, or another dispatcher delivers it now) stops being
// indexed past recentPerQueue notes, and is followed again at its next read.
func TestStreamNotesBoundPerQueue(t *testing.T) {
	g := NewWithT(t)
	r := newStreamNotes(0)
	r.load("w", 1, 10)
	for seq := uint64(1); seq <= recentPerQueue+1; seq++ {
		r.record("w", Note{}, seq, true)
	}
	g.Expect(r.total).To(Equal(0))
	_, ok := r.load("w", 1, 10)
	g.Expect(ok).To(BeFalse())
	r.record("w", Note{}, recentPerQueue+2, true)
	got, ok := r.load("w", recentPerQueue+2, 10)
	g.Expect(ok).To(BeTrue())
	g.Expect(seqs(got)).To(Equal([]uint64{recentPerQueue + 2}))
}
