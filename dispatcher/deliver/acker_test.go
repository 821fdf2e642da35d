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

package deliver

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/dispatcher/store"
)

// Settlements that follow a flush wait for the next one, at most every `every`, so that they are
// purged together; a partition given up (settle) and a stop do not wait.
func TestAckerGathersSettlements(t *testing.T) {
	g := NewWithT(t)
	st := newMemStore()
	for range 4 {
		st.enqueue("w", store.Note{})
	}
	st.enqueue("v", store.Note{})
	a := newAcker(st, nil, logr.Discard())
	a.every = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { a.run(ctx); close(stopped) }()

	a.remove("w", 1)
	g.Eventually(func() int { return st.queued("w") }).Should(Equal(3), "the first settlement is purged at once")
	a.remove("w", 2)
	g.Consistently(func() int { return st.queued("w") }, 50*time.Millisecond).Should(Equal(3),
		"a settlement right after a flush waits for the next one")
	a.remove("v", 5)
	a.settle(ctx, []string{"v"})
	g.Expect(st.queued("v")).To(Equal(0), "a partition given up is purged now")
	g.Expect(st.queued("w")).To(Equal(3))
	a.remove("w", 3)
	cancel()
	g.Eventually(stopped).Should(BeClosed())
	g.Expect(st.queued("w")).To(Equal(1), "a stop purges what was settled")
}

// compactingStore is a memStore that compacts as the JetStream store does: up to the first note of
// any queue not known to be settled.
type compactingStore struct {
	*memStore
	mu       sync.Mutex
	settled  map[uint64]bool
	removes  []string // Remove calls, "uid@upTo"
	compacts int
	// held is what Compact says of how long it has stopped where it did.
	held time.Duration
}

func (c *compactingStore) Compacts() bool { return true }

func (c *compactingStore) Compact(_ context.Context, settled []uint64) (uint64, time.Duration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.compacts++
	for _, seq := range settled {
		c.settled[seq] = true
	}
	c.memStore.mu.Lock()
	defer c.memStore.mu.Unlock()
	to := c.seq + 1
	for _, ns := range c.notes {
		for _, n := range ns {
			if !c.settled[n.Seq] {
				to = min(to, n.Seq)
				break
			}
		}
	}
	for uid, ns := range c.notes {
		for len(ns) > 0 && ns[0].Seq < to {
			ns = ns[1:]
		}
		c.notes[uid] = ns
	}
	return to, c.held, nil
}

func (c *compactingStore) Removed(string, uint64) {}

func (c *compactingStore) Remove(ctx context.Context, uid string, upTo uint64) error {
	c.mu.Lock()
	c.removes = append(c.removes, fmt.Sprintf("%s@%d", uid, upTo))
	c.mu.Unlock()
	return c.memStore.Remove(ctx, uid, upTo)
}

func (c *compactingStore) removeCalls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.removes)
}

// With a compacting store, settlements are removed by the compaction; those it cannot reach (an
// older note of another queue is still queued) wait for it, and are removed queue by queue once
// they waited `wait`, or at a stop.
func TestAckerLeavesSettlementsToTheCompaction(t *testing.T) {
	g := NewWithT(t)
	st := &compactingStore{memStore: newMemStore(), settled: map[uint64]bool{}}
	start := func(wait time.Duration) (*acker, func()) {
		a := newAcker(st, nil, logr.Discard())
		g.Expect(a.compactor).NotTo(BeNil())
		a.every, a.wait = time.Millisecond, wait
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan struct{})
		go func() { a.run(ctx); close(stopped) }()
		return a, func() { cancel(); g.Eventually(stopped).Should(BeClosed()) }
	}
	w1 := st.enqueue("w", store.Note{})
	v1 := st.enqueue("v", store.Note{})
	w2 := st.enqueue("w", store.Note{})
	a, stop := start(time.Hour)
	a.remove("w", w1.Seq)
	g.Eventually(func() int { return st.queued("w") }).Should(Equal(1), "the compaction removes w's first note")
	a.remove("w", w2.Seq)
	g.Consistently(func() int { return st.queued("w") }, 50*time.Millisecond).Should(Equal(1),
		"w's second note waits: v's older note is still queued")
	a.remove("v", v1.Seq)
	g.Eventually(func() int { return st.queued("w") + st.queued("v") }).Should(BeZero(), "the compaction reaches both")
	g.Expect(st.removeCalls()).To(BeEmpty(), "nothing was removed queue by queue")

	// A note queued for long holds the compaction: what is settled after it waits, and a stop
	// removes it queue by queue.
	st.enqueue("dead", store.Note{})
	w3 := st.enqueue("w", store.Note{})
	a.remove("w", w3.Seq)
	g.Consistently(func() int { return st.queued("w") }, 30*time.Millisecond).Should(Equal(1))
	stop()
	g.Expect(st.removeCalls()).To(Equal([]string{fmt.Sprintf("w@%d", w3.Seq)}), "a stop removes what waits")
	g.Expect(st.queued("w")).To(BeZero())

	// Or once it waited.
	a, stop = start(20 * time.Millisecond)
	w4 := st.enqueue("w", store.Note{})
	a.remove("w", w4.Seq)
	g.Eventually(st.removeCalls).Should(HaveLen(2))
	g.Expect(st.removeCalls()[1]).To(Equal(fmt.Sprintf("w@%d", w4.Seq)))
	g.Expect(st.queued("w")).To(BeZero())
	g.Expect(st.queued("dead")).To(Equal(1), "the note holding the compaction stays")
	stop()

	// A compaction held for longer than settlements would wait is not waited for.
	st.mu.Lock()
	st.held = time.Hour
	st.mu.Unlock()
	a, stop = start(time.Hour)
	defer stop()
	w5 := st.enqueue("w", store.Note{})
	a.remove("w", w5.Seq)
	g.Eventually(st.removeCalls).Should(HaveLen(3), "removed queue by queue at once")
	g.Expect(st.removeCalls()[2]).To(Equal(fmt.Sprintf("w@%d", w5.Seq)))
}
