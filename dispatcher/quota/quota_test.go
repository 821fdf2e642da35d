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

package quota

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/internal/testsupport/natstest"
)

// clock is a settable time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time)     { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }
func (c *clock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

const retention = 73 * time.Hour

func open(t *testing.T, js jetstream.JetStream, limit int64, clk *clock) *Usage {
	t.Helper()
	u, err := Open(context.Background(), js, Config{Limit: limit, Retention: retention, FlushEvery: 20 * time.Millisecond, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// twoIntakes opens two intakes on one JetStream, each with a limit of 10,000 bytes, at 10:20 on
// one settable clock; the first runs (until stopFirst or the test's end), the second is only open.
func twoIntakes(t *testing.T) (js jetstream.JetStream, clk *clock, first *Usage, stopFirst func(), second *Usage) {
	t.Helper()
	js = natstest.JetStream(t)
	clk = &clock{now: time.Date(2026, 12, 6, 10, 20, 0, 0, time.UTC)}
	first = open(t, js, 10_000, clk)
	stopFirst = run(t, first)
	return js, clk, first, stopFirst, open(t, js, 10_000, clk)
}

// run starts u's writes and watch until the returned stop is called (or the test ends).
func run(t *testing.T, u *Usage) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Start: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// An account at its limit is refused, told when the oldest of its bytes leave the store; another
// account is not affected, and bytes given back make room again.
func TestAnAccountIsRefusedAtItsLimitAndNoOtherIs(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Date(2026, 12, 6, 10, 20, 0, 0, time.UTC)
	clk := &clock{now: t0}
	u := open(t, natstest.JetStream(t), 10_000, clk)

	ok, _ := u.Reserve("acc-a", 6_000)
	g.Expect(ok).To(BeTrue())
	clk.Add(time.Hour) // 11:20, the next hour
	ok, _ = u.Reserve("acc-a", 4_000)
	g.Expect(ok).To(BeTrue())
	g.Expect(u.Stored("acc-a")).To(Equal(int64(10_000)))

	ok, wait := u.Reserve("acc-a", 1)
	g.Expect(ok).To(BeFalse())
	// The 10:00 hour's 6,000 bytes are all stored before 11:00, so gone by 11:00 + retention.
	g.Expect(wait).To(Equal(time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC).Add(retention).Sub(clk.Now())))
	ok, wait = u.Reserve("acc-a", 6_001)
	g.Expect(ok).To(BeFalse())
	g.Expect(wait).To(Equal(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC).Add(retention).Sub(clk.Now())), "both hours must leave")
	g.Expect(u.Stored("acc-a")).To(Equal(int64(10_000)), "a refusal counts nothing")

	ok, _ = u.Reserve("acc-b", 10_000)
	g.Expect(ok).To(BeTrue(), "another account has its own quota")

	u.Release("acc-a", 500)
	g.Expect(u.Stored("acc-a")).To(Equal(int64(9_500)))
	ok, _ = u.Reserve("acc-a", 500)
	g.Expect(ok).To(BeTrue())
}

// An hour's bytes count until every event of it is past the retention, and not after.
func TestBytesStopCountingAfterTheRetention(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Date(2026, 12, 6, 10, 59, 59, 0, time.UTC)
	clk := &clock{now: t0}
	u := open(t, natstest.JetStream(t), 1_000, clk)
	ok, _ := u.Reserve("acc-a", 1_000)
	g.Expect(ok).To(BeTrue())

	clk.Set(time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC).Add(retention - time.Second))
	ok, wait := u.Reserve("acc-a", 1)
	g.Expect(ok).To(BeFalse(), "an event stored at 10:59:59 is kept until 11:00:59 + retention")
	g.Expect(wait).To(Equal(time.Second))

	clk.Add(time.Second)
	g.Expect(u.Stored("acc-a")).To(BeZero())
	ok, _ = u.Reserve("acc-a", 1_000)
	g.Expect(ok).To(BeTrue())
}

// The quota holds across dispatchers that ingest at once (active-active) and across restarts: each
// intake writes what it counted, and the others count it too.
func TestUsageIsSharedAcrossIntakesAndRestarts(t *testing.T) {
	g := NewWithT(t)
	js, clk, first, stopFirst, second := twoIntakes(t)
	run(t, second)

	ok, _ := first.Reserve("acc-a", 8_000)
	g.Expect(ok).To(BeTrue())
	g.Eventually(func() int64 { return second.Stored("acc-a") }).WithTimeout(10 * time.Second).Should(Equal(int64(8_000)))
	ok, _ = second.Reserve("acc-a", 3_000)
	g.Expect(ok).To(BeFalse(), "the other dispatcher's 8,000 bytes count")
	ok, _ = second.Reserve("acc-a", 2_000)
	g.Expect(ok).To(BeTrue())
	g.Eventually(func() int64 { return first.Stored("acc-a") }).WithTimeout(10 * time.Second).Should(Equal(int64(10_000)))

	// The first stops (its last counts are written as it does) and starts again as a new intake:
	// what it stored still counts.
	stopFirst()
	again := open(t, js, 10_000, clk)
	g.Expect(again.Stored("acc-a")).To(Equal(int64(10_000)), "known when Open returns, before any event is counted")
	run(t, again)
	ok, _ = again.Reserve("acc-a", 1)
	g.Expect(ok).To(BeFalse())

	// Past the retention nobody's bytes count, and an intake forgets what ended intakes wrote.
	clk.Add(retention + time.Hour)
	g.Expect(again.Stored("acc-a")).To(BeZero())
	g.Eventually(func() int {
		again.mu.Lock()
		defer again.mu.Unlock()
		return len(again.others)
	}).WithTimeout(10 * time.Second).Should(BeZero())
}

func TestEncodeDecode(t *testing.T) {
	g := NewWithT(t)
	hs := hours{{hour: 493_000, bytes: 1}, {hour: 493_001, bytes: 0}, {hour: 493_002, bytes: 1 << 40}}
	got, err := decode(encode(hs))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(hours{{hour: 493_000, bytes: 1}, {hour: 493_002, bytes: 1 << 40}}), "empty hours are left out")
	_, err = decode([]byte{0x80})
	g.Expect(err).To(HaveOccurred())
}

// A watch that ends (NATS lost a node, or the connection) does not stop the dispatcher: the counts
// known are kept, and the watch is made again at the next write, with every intake's counts.
func TestAnEndedWatchIsMadeAgain(t *testing.T) {
	g := NewWithT(t)
	_, _, first, _, second := twoIntakes(t)
	watch := second.watch
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	})
	go func() { done <- second.Start(ctx) }()

	g.Expect(watch.Stop()).To(Succeed())
	ok, _ := first.Reserve("acc-a", 4_000)
	g.Expect(ok).To(BeTrue())
	g.Eventually(func() int64 { return second.Stored("acc-a") }).WithTimeout(10 * time.Second).Should(Equal(int64(4_000)))
	g.Consistently(done).WithTimeout(100*time.Millisecond).ShouldNot(Receive(), "Start goes on")
}
