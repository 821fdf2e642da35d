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

package dispatcher

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/hookline/hookline/internal/deliveries"
)

// countingLog counts the reads replayReads makes and the webhooks each asked for.
type countingLog struct {
	mu    sync.Mutex
	reads [][]string
}

func (l *countingLog) Append(deliveries.Record)      {}
func (l *countingLog) Barrier(context.Context) error { return nil }
func (l *countingLog) read() [][]string              { l.mu.Lock(); defer l.mu.Unlock(); return l.reads }
func (l *countingLog) ScanMany(_ context.Context, uids []string, _ time.Time, _ func(deliveries.Record) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads = append(l.reads, uids)
	return nil
}

// startReads runs replayReads on log with the gathering interval gather; woken receives every
// replay whose read was answered.
func startReads(t *testing.T, log *countingLog, gather time.Duration) (*replayReads, chan types.NamespacedName) {
	t.Helper()
	woken := make(chan types.NamespacedName, 1000)
	b := newReplayReads(log, clock.RealClock{}, gather, func(k types.NamespacedName) { woken <- k }, nil, newReadBudget(60, 1000))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return b, woken
}

// askEvery asks a read for n replays, one every step: as a hundred replays created together
// start, a few at a time, each after an API write.
func askEvery(b *replayReads, n int, step time.Duration) {
	tick := time.NewTicker(step)
	defer tick.Stop()
	for i := range n {
		key := types.NamespacedName{Namespace: "ns", Name: fmt.Sprintf("r-%d", i)}
		b.ask(key, &logRead{uid: fmt.Sprintf("uid-%d", i), fold: func(deliveries.Record) {}})
		<-tick.C
	}
}

// Asks that keep coming past the first gathering interval still share one read, as long as none
// is a quarter interval after the one before.
func TestReplayReadsGatherAsksThatKeepComing(t *testing.T) {
	log := &countingLog{}
	const gather = 400 * time.Millisecond
	b, woken := startReads(t, log, gather)
	const n = 40
	askEvery(b, n, 20*time.Millisecond) // 800 ms: twice the interval, within gatherMax
	for range n {
		select {
		case <-woken:
		case <-time.After(10 * time.Second):
			t.Fatalf("reads %v: not every replay was answered", log.read())
		}
	}
	if reads := log.read(); len(reads) != 1 || len(reads[0]) != n {
		t.Fatalf("%d reads (%v), want one for all %d webhooks", len(reads), reads, n)
	}
}

// Asks that never stop do not hold the read back for longer than gatherMax intervals.
func TestReplayReadsDoNotWaitForeverForAsks(t *testing.T) {
	log := &countingLog{}
	const gather = 100 * time.Millisecond
	b, _ := startReads(t, log, gather)
	askEvery(b, 150, 10*time.Millisecond) // 1.5 s of asks: three times gatherMax intervals
	if reads := log.read(); len(reads) == 0 {
		t.Fatalf("no read while asks came for 1.5 s, want the first within %d intervals of 100 ms", gatherMax)
	}
}

// A namespace that spent its budget of log reads has its replays wait for its next read, while
// another namespace's replays are answered without it (and their read does not walk from its
// replays' start).
func TestReplayReadsKeepANamespaceToItsBudget(t *testing.T) {
	log := &countingLog{}
	woken := make(chan types.NamespacedName, 100)
	b := newReplayReads(log, clock.RealClock{}, 20*time.Millisecond, func(k types.NamespacedName) { woken <- k }, nil, newReadBudget(12, 2))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	ask := func(ns, name string) types.NamespacedName {
		key := types.NamespacedName{Namespace: ns, Name: name}
		b.ask(key, &logRead{uid: ns + "-" + name, fold: func(deliveries.Record) {}})
		return key
	}
	answered := func(want types.NamespacedName, within time.Duration) {
		t.Helper()
		select {
		case got := <-woken:
			if got != want {
				t.Fatalf("answered %v, want %v", got, want)
			}
		case <-time.After(within):
			t.Fatalf("%v not answered within %s", want, within)
		}
	}
	// Two reads, one after the other: the burst.
	answered(ask("greedy", "r1"), 5*time.Second)
	answered(ask("greedy", "r2"), 5*time.Second)
	// The third waits; a victim's replay asked at the same time does not.
	held := ask("greedy", "r3")
	victim := ask("victim", "v1")
	answered(victim, 500*time.Millisecond)
	if reads := log.read(); len(reads) != 3 || len(reads[2]) != 1 || reads[2][0] != "victim-v1" {
		t.Fatalf("reads %v: want the third for the victim alone", reads)
	}
	// The greedy namespace's read comes once its budget has one again (one per 5 s here).
	answered(held, 15*time.Second)
}

// A replay's scan of its queue is paid before it runs (prepay), and the read it then asks rides on
// that: past the budget the scan waits, saying until when. A scan that failed gives its read
// back, so that a failing store does not spend the namespace's budget.
func TestPrepaidReadsAreChargedOnceAndRefunded(t *testing.T) {
	log := &countingLog{}
	woken := make(chan types.NamespacedName, 100)
	b := newReplayReads(log, clock.RealClock{}, 20*time.Millisecond, func(k types.NamespacedName) { woken <- k }, nil, newReadBudget(0.01, 2))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	// A failed scan: paid, then refunded.
	ok, _, refund := b.prepay("team")
	if !ok {
		t.Fatal("the budget's first read was refused")
	}
	refund()
	// Two scans paid, their reads asked as paid: both answered, the budget spent by the scans.
	for _, name := range []string{"r1", "r2"} {
		ok, held, _ := b.prepay("team")
		if !ok {
			t.Fatalf("%s: refused (held until %s): the refunded read was not given back", name, held)
		}
		key := types.NamespacedName{Namespace: "team", Name: name}
		b.ask(key, &logRead{uid: name, fold: func(deliveries.Record) {}, paid: true})
		select {
		case <-woken:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s's paid read not answered", name)
		}
	}
	ok, held, _ := b.prepay("team")
	if ok || held.IsZero() {
		t.Fatalf("a third scan was paid (ok %v, held until %v): the reads charged again, or the scans not at all", ok, held)
	}
}
