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
	"sync"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/dispatcher/ingest"
)

// A fan-out of an event larger than the whole cache budget used to read and parse it from the store
// once per attempt of every webhook. Now concurrent attempts share one read, and the most recent
// such event stays in memory for the attempts that follow.
func TestEventCacheReadsALargeEventOnce(t *testing.T) {
	g := NewWithT(t)
	c := newEventCache(1 << 10)
	var reads atomic.Int32
	release := make(chan struct{})
	read := func(seq uint64, size int) func() (*cachedEvent, error) {
		return func() (*cachedEvent, error) {
			reads.Add(1)
			<-release // a slow store: every other caller arrives meanwhile
			return &cachedEvent{seq: seq, ev: &ingest.Event{ID: "big"}, size: size}, nil
		}
	}

	const webhooks = 32
	var wg sync.WaitGroup
	got := make([]*cachedEvent, webhooks)
	for i := range webhooks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = c.load(7, read(7, 24<<20))
		}()
	}
	g.Eventually(func() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.loading) }).Should(Equal(1))
	close(release)
	wg.Wait()
	g.Expect(reads.Load()).To(BeEquivalentTo(1), "one read for every concurrent attempt")
	for _, e := range got {
		g.Expect(e).To(BeIdenticalTo(got[0]))
	}

	// Later attempts find it without reading.
	e, err := c.load(7, read(7, 24<<20))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e).To(BeIdenticalTo(got[0]))
	g.Expect(reads.Load()).To(BeEquivalentTo(1))

	// Only the most recent large event is kept: memory holds one of them besides the budget.
	_, _ = c.load(8, read(8, 24<<20))
	g.Expect(reads.Load()).To(BeEquivalentTo(2))
	_, ok := c.get(7)
	g.Expect(ok).To(BeFalse(), "the older large event was let go")
	_, ok = c.get(8)
	g.Expect(ok).To(BeTrue())
	g.Expect(c.used).To(BeZero(), "large events are not counted in the budget of small ones")
}
