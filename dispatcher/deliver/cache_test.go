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
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/dispatcher/store"
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

// A just-accepted event is cached only for a queue about to send it. While a backlog of a million
// notifications built up behind failing receivers, the cache held its budget's worth of events
// (and as much again parsed) that no queue would send for minutes: 20 MB of the dispatcher's peak
// while queueing (docs/performance.md, "Cached only when sent soon").
func TestAcceptedEventsAreCachedOnlyForQueuesAboutToSendThem(t *testing.T) {
	r := newRig(t, Config{MemQueue: 4}, nil)
	r.rx.hold = true
	r.rx.setFailing("retrying", true)
	paused := r.webhook("paused", "acc")
	paused.Deliverable = false
	for _, wh := range []Webhook{r.webhook("idle", "acc"), paused, r.webhook("retrying", "acc"), r.webhook("behind", "acc")} {
		r.e.Upsert(wh)
	}
	// retrying's head failed once and waits for its retry; behind has a read-ahead's worth
	// pending, its head in flight.
	r.queue("retrying", "acc", 1, r.t0)
	r.rx.release()
	r.g.Eventually(func() time.Time { return r.next("retrying") }).Should(BeTemporally(">", r.clk.Now()))
	r.queue("behind", "acc", 4, r.t0)
	r.g.Eventually(func() int { return r.rx.inFlightOf("acc") }).Should(Equal(1))

	seq := uint64(1000)
	cachedFor := func(uids ...string) bool {
		seq++
		ev, err := ingest.Parse(fmt.Appendf(nil, `{"id":"e%d","event":"AGREEMENT_CREATED","accountId":"acc","resource":{"type":"AGREEMENT","id":"a"},"notification":{"agreement":{"id":"a"}}}`, seq))
		r.g.Expect(err).NotTo(HaveOccurred())
		r.e.CacheEvent(seq, ev, r.clk.Now(), 256, uids...)
		_, ok := r.e.events.get(seq)
		return ok
	}
	r.g.Expect(cachedFor("idle")).To(BeTrue(), "a queue with nothing pending sends it at once")
	r.g.Expect(cachedFor("paused")).To(BeFalse(), "a paused queue sends nothing")
	r.g.Expect(cachedFor("retrying")).To(BeFalse(), "a head waiting for its retry holds the queue")
	r.g.Expect(cachedFor("behind")).To(BeFalse(), "behind a read-ahead's worth of notes, it is read again when its turn comes")
	r.g.Expect(cachedFor("gone")).To(BeFalse(), "a queue the engine does not know")
	r.g.Expect(cachedFor()).To(BeFalse(), "an event routed to no one")
	r.g.Expect(cachedFor("behind", "retrying", "idle")).To(BeTrue(), "one queue about to send it is enough")
}

// The cache's budget bounds the memory its events hold, not their raw size. A 1 KB event held about
// 2.8 times its size once decoded and prepared (its fields, and a dozen members of 80 bytes each),
// so the 16 MiB cache held 45 MB at the 1,000,000 drain's peak. Events are charged their overhead
// and, once prepared, their members.
func TestEventCacheHoldsItsBudget(t *testing.T) {
	g := NewWithT(t)
	const budget = 8 << 20
	raw := func(i int) []byte {
		return fmt.Appendf(nil, `{"id":"ev-%d","event":"AGREEMENT_ACTION_COMPLETED","accountId":"acc-1","groupId":"grp-1",`+
			`"initiator":{"userId":"user-1","email":"alice@example.com"},"resource":{"type":"AGREEMENT","id":"agr-%d"},`+
			`"notification":{"event":"AGREEMENT_ACTION_COMPLETED","eventDate":"2026-11-25T10:00:00Z","eventResourceType":"agreement",`+
			`"participantRole":"SIGNER","actionType":"ESIGNED","participantUserEmail":"bob@example.com","benchSentAt":%d,"benchSeq":%d,`+
			`"benchPadding":"%s","agreement":{"id":"agr-%d","name":"Master services agreement","status":"OUT_FOR_SIGNATURE"}}}`,
			i, i, time.Now().UnixNano(), i, strings.Repeat("x", 400), i)
	}
	c := newEventCache(budget)
	for i := range 3 * budget / 1024 {
		e, err := c.load(uint64(i), func() (*cachedEvent, error) { return decodeEvent(uint64(i), raw(i), time.Now()) })
		g.Expect(err).NotTo(HaveOccurred())
		_, err = e.prepared()
		g.Expect(err).NotTo(HaveOccurred())
	}
	// What the cache holds is what its release frees: measured across two collections back to
	// back, not from before the cache was filled, when what earlier tests of the package left
	// (engines stopping) was still on the heap and freed meanwhile.
	cached := len(c.m)
	var with, without runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&with)
	runtime.KeepAlive(c)
	runtime.GC()
	runtime.ReadMemStats(&without)
	held := int64(with.HeapAlloc) - int64(without.HeapAlloc)
	t.Logf("%d events cached, %d bytes held for a budget of %d", cached, held, budget)
	g.Expect(held).To(BeNumerically("<=", budget*11/10), "the cache holds no more than its budget")
	g.Expect(held).To(BeNumerically(">=", budget/2), "and it does hold events")
}

// hookline_event_cache_reads_total says how often a delivery found its event in memory: the figure
// for sizing --event-cache-bytes. An event queued for two webhooks is read from the store once
// (miss) and found by the other's attempt (hit); the cache's bytes are what its events hold.
func TestEventCacheReadsAreCounted(t *testing.T) {
	r := newRig(t, Config{}, nil)
	for _, uid := range []string{"a", "b"} {
		r.e.Upsert(r.webhook(uid, "acc"))
	}
	seq := r.st.putEvent([]byte(`{"id":"e1","event":"AGREEMENT_CREATED","accountId":"acc","resource":{"type":"AGREEMENT","id":"x"},"notification":{"agreement":{"id":"x"}}}`), r.t0)
	for _, uid := range []string{"a", "b"} {
		r.e.Enqueue(uid, r.st.enqueue(uid, store.Note{EventSeq: seq, Created: r.t0}))
	}
	r.g.Eventually(func() int { return len(r.rx.sends()) }).Should(Equal(2))

	reg := prometheus.NewRegistry()
	reg.MustRegister(r.e.Collector())
	families, err := reg.Gather()
	r.g.Expect(err).NotTo(HaveOccurred())
	reads, cached := map[string]float64{}, -1.0
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "hookline_event_cache_reads_total":
				reads[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			case "hookline_event_cache_bytes":
				cached = m.GetGauge().GetValue()
			}
		}
	}
	r.g.Expect(reads).To(Equal(map[string]float64{"hit": 1, "miss": 1}))
	r.g.Expect(cached).To(BeNumerically(">", eventOverhead), "the event, its overhead and its members")
}
