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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
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

// feedLog answers each read with its webhooks' records.
type feedLog struct {
	countingLog
	recs map[string][]deliveries.Record
}

func (l *feedLog) ScanMany(ctx context.Context, uids []string, since time.Time, fn func(deliveries.Record) error) error {
	_ = l.countingLog.ScanMany(ctx, uids, since, fn)
	for _, uid := range uids {
		for _, rec := range l.recs[uid] {
			if err := fn(rec); err != nil {
				return err
			}
		}
	}
	return nil
}

// lostRecords are n lost notifications of webhook uid.
func lostRecords(uid string, n int) []deliveries.Record {
	out := make([]deliveries.Record, n)
	for i := range out {
		out[i] = deliveries.Record{Kind: deliveries.KindDropped, WebhookUID: uid, NotificationID: fmt.Sprintf("%s-n%d", uid, i),
			EventSeq: uint64(i + 1), EventID: fmt.Sprintf("e%d", i), EventName: "AGREEMENT_CREATED", State: deliveries.StateLost,
			Created: time.Unix(1_700_000_000, 0), At: time.Unix(1_700_000_100, 0)}
	}
	return out
}

// Every answered selection shares one room (MaxSelection by default): a tenant could otherwise have
// its replays' selections answered and never taken (a replay made to wait for its Webhook), each
// of up to MaxSelection notifications, until the shared dispatcher ran out of memory. A selection
// that finds no room is read again, at no new charge, once the ones before it are released
// (queued, dropped, or not taken within answeredFor).
func TestReplaySelectionsShareOneRoom(t *testing.T) {
	log := &feedLog{recs: map[string][]deliveries.Record{"uid-a": lostRecords("uid-a", 4), "uid-b": lostRecords("uid-b", 4)}}
	woken := make(chan types.NamespacedName, 10)
	b := newReplayReads(log, clock.RealClock{}, 10*time.Millisecond, func(k types.NamespacedName) { woken <- k }, nil, newReadBudget(60, 1000))
	b.room = 5
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	ask := func(name, uid string) types.NamespacedName {
		rp := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(name)}}
		sel := newSelector(rp, time.Unix(1_700_000_200, 0), nil, true, 1000)
		key := types.NamespacedName{Namespace: "ns", Name: name}
		b.ask(key, &logRead{uid: uid, fold: sel.add, sel: sel})
		return key
	}
	inRoom := func() int { b.mu.Lock(); defer b.mu.Unlock(); return b.inRoom }
	next := func() types.NamespacedName {
		t.Helper()
		select {
		case k := <-woken:
			return k
		case <-time.After(10 * time.Second):
			t.Fatal("no read answered")
			return types.NamespacedName{}
		}
	}
	keyA, keyB := ask("a", "uid-a"), ask("b", "uid-b")
	first := next()
	second := keyB
	if first == keyB {
		second = keyA
	}
	rd, ok, _ := b.take(first)
	if !ok || len(rd.sel.newest) != 4 {
		t.Fatalf("first answer: %v, %d selected", ok, len(rd.sel.newest))
	}
	if _, ok, asked := b.take(second); ok || !asked {
		t.Fatalf("the second selection found no room: it waits (answered %v, asked %v)", ok, asked)
	}
	if got := inRoom(); got != 4 {
		t.Fatalf("%d notifications in the room, want 4", got)
	}
	// Asked meanwhile: a selection waits behind the deferred one; a count (no room) does not.
	keyE := ask("e", "uid-b")
	rpCount := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "count", UID: "count"}}
	count := newSelector(rpCount, time.Unix(1_700_000_200, 0), nil, false, 0)
	keyCount := types.NamespacedName{Namespace: "ns", Name: "count"}
	b.ask(keyCount, &logRead{uid: "uid-a", fold: count.add, sel: count})
	if k := next(); k != keyCount {
		t.Fatalf("woken %v, want the count", k)
	}
	if _, ok, asked := b.take(keyE); ok || !asked {
		t.Fatalf("a selection asked meanwhile went before the deferred one (answered %v)", ok)
	}

	b.release(rd) // queued
	if k := next(); k != second {
		t.Fatalf("woken %v, want %v", k, second)
	}
	rd2, ok, _ := b.take(second)
	if !ok || len(rd2.sel.newest) != 4 || inRoom() != 4 {
		t.Fatalf("second answer: %v, %d selected, %d in the room", ok, len(rd2.sel.newest), inRoom())
	}
	if reads := len(log.read()); reads < 2 {
		t.Fatalf("%d reads of the log: the deferred selection was not read again", reads)
	}
	b.release(rd2) // the one asked meanwhile goes now, with nothing else asked
	if k := next(); k != keyE {
		t.Fatalf("woken %v, want %v", k, keyE)
	}
	rdE, ok, _ := b.take(keyE)
	if !ok || len(rdE.sel.newest) != 4 {
		t.Fatalf("the selection asked meanwhile: %v", ok)
	}
	b.release(rdE)

	// Answered and never taken: given back after answeredFor.
	keyC := ask("c", "uid-a")
	if k := next(); k != keyC {
		t.Fatalf("woken %v", k)
	}
	b.expire(time.Now().Add(answeredFor / 2))
	if inRoom() != 4 {
		t.Fatalf("expired too soon: %d in the room", inRoom())
	}
	b.expire(time.Now().Add(answeredFor + time.Second))
	if _, ok, asked := b.take(keyC); ok || asked || inRoom() != 0 {
		t.Fatalf("not expired: answered %v, asked %v, %d in the room", ok, asked, inRoom())
	}
	// Dropped (its replay waits for its Webhook, or was deleted): given back at once.
	keyD := ask("d", "uid-b")
	if k := next(); k != keyD || inRoom() != 4 {
		t.Fatalf("woken %v, %d in the room", k, inRoom())
	}
	b.drop(keyD)
	if inRoom() != 0 {
		t.Fatalf("%d in the room after the drop", inRoom())
	}

	// On a quiet dispatcher: a selection asked alone while another holds the room is deferred, and
	// read again once that one is released, with nothing else asked.
	keyX := ask("x", "uid-a")
	if k := next(); k != keyX {
		t.Fatalf("woken %v", k)
	}
	rdX, _, _ := b.take(keyX)
	keyY := ask("y", "uid-b")
	deferred := func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.reads[keyY] != nil && b.reads[keyY].deferred }
	for end := time.Now().Add(10 * time.Second); !deferred(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("not deferred")
		}
	}
	b.release(rdX)
	if k := next(); k != keyY {
		t.Fatalf("woken %v, want %v", k, keyY)
	}
}
