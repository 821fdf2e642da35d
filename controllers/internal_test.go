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

package controllers

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestBackoffDoublesAndCaps(t *testing.T) {
	b := newBackoff(time.Second, 10*time.Second)
	key := types.NamespacedName{Namespace: "ns", Name: "wh"}
	want := []time.Duration{1, 2, 4, 8, 10, 10}
	for i, w := range want {
		if got := b.next(key); got != w*time.Second {
			t.Fatalf("failure %d: delay %s, want %s", i+1, got, w*time.Second)
		}
	}
	b.forget(key)
	if got := b.next(key); got != time.Second {
		t.Fatalf("after forget: %s, want 1s", got)
	}
}

func TestAccountSlots(t *testing.T) {
	s := newAccountSlots(2, time.Second, time.Now)
	first, second := s.tryAcquire("a", "ns", "1"), s.tryAcquire("a", "ns", "2")
	if !first || !second {
		t.Fatal("first two slots of account a refused")
	}
	if s.tryAcquire("a", "ns", "3") {
		t.Fatal("third slot of account a granted beyond the limit")
	}
	if !s.tryAcquire("b", "ns", "4") {
		t.Fatal("account b refused while a is full")
	}
	s.release("a", "ns")
	if !s.tryAcquire("a", "ns", "3") {
		t.Fatal("slot not returned by release")
	}
}

// The namespaces of one account take turns for its slots: while a webhook of another namespace
// waits, one at its share (the limit divided among the namespaces verifying or waiting) is refused
// a freed slot, which the waiting one then takes; a namespace waits while any of its webhooks
// does; a namespace alone uses every slot, and a wait not asked again lapses.
func TestAccountSlotsTakeTurnsByNamespace(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(1_700_000_000, 0))
	s := newAccountSlots(4, time.Second, clk.Now)
	acquire := func(ns, uid string) bool { return s.tryAcquire("acc", ns, uid) }
	for i := range 4 {
		if !acquire("many", fmt.Sprint("m", i)) {
			t.Fatalf("slot %d refused to a namespace alone", i+1)
		}
	}
	if acquire("one", "o1") || acquire("one", "o2") {
		t.Fatal("a slot beyond the limit")
	}
	// "many" finishes one; its next webhook asks first, but "one" waits and "many" holds more than
	// its share (two of four).
	s.release("acc", "many")
	if acquire("many", "m4") {
		t.Fatal("a freed slot went to the namespace holding the others while another waits")
	}
	if !acquire("one", "o1") {
		t.Fatal("the waiting namespace did not get the freed slot")
	}
	// o2 still waits: "one" keeps its turn.
	s.release("acc", "many")
	if acquire("many", "m4") {
		t.Fatal("a freed slot went to the namespace over its share while another's webhook still waits")
	}
	if !acquire("one", "o2") {
		t.Fatal("the waiting namespace's second webhook did not get the freed slot")
	}
	// Two each, nobody else waiting: "many" may have what frees.
	s.release("acc", "one")
	if !acquire("many", "m4") {
		t.Fatal("nobody else waits: a free slot refused")
	}
	// "one" asks again and is refused (full); it stops asking, and once its wait lapses "many"
	// has what frees.
	if acquire("one", "o3") {
		t.Fatal("a slot beyond the limit")
	}
	clk.SetTime(clk.Now().Add(11 * time.Second)) // past 10 × the throttled retry
	s.release("acc", "one")
	if !acquire("many", "m5") {
		t.Fatal("a free slot refused after the other namespace's wait lapsed")
	}
	// "many" holds all four; a third namespace waits, and "many" is refused down to its share
	// (four between the two).
	if acquire("third", "t1") {
		t.Fatal("a slot beyond the limit")
	}
	s.release("acc", "many")
	s.release("acc", "many")
	if acquire("many", "m6") {
		t.Fatal("over its share, a freed slot taken while another namespace waits")
	}
	if !acquire("third", "t1") {
		t.Fatal("the third namespace did not get the freed slot")
	}
}

// Shares reserve only what waiting namespaces are still owed: a namespace at its share takes a
// free slot nobody waiting is owed. Counting the namespaces that hold a slot without waiting in
// the shares left slots idle while two namespaces waited (four holding one each, two waiting: each
// stopped at its share, and a slot freed by one of the four went to neither).
func TestAccountSlotsLeaveNoSlotIdle(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(1_700_000_000, 0))
	s := newAccountSlots(10, time.Second, clk.Now)
	for _, ns := range []string{"l1", "l2", "l3", "l4"} {
		if !s.tryAcquire("acc", ns, ns) {
			t.Fatalf("%s refused", ns)
		}
	}
	held, n := 4, 0
	ask := func(ns string) bool {
		n++
		ok := s.tryAcquire("acc", ns, fmt.Sprint(ns, n))
		if ok {
			held++
		}
		return ok
	}
	for a, b := true, true; a || b; {
		a, b = ask("a"), ask("b")
	}
	if held != 10 {
		t.Fatalf("%d of 10 slots in use while two namespaces wait", held)
	}
	s.release("acc", "l1")
	held--
	if !ask("a") && !ask("b") {
		t.Fatal("a slot freed by a namespace that holds one stays idle while two wait")
	}
}

// A webhook refused and then deleted is forgotten, and so is its account once nothing is in use
// or waiting: churned webhooks do not grow the manager's memory.
func TestAccountSlotsForgetDeletedWebhooks(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(1_700_000_000, 0))
	s := newAccountSlots(1, time.Second, clk.Now)
	if !s.tryAcquire("acc", "ns", "holder") {
		t.Fatal("refused")
	}
	for i := range 1000 {
		uid := fmt.Sprint("churn-", i)
		if s.tryAcquire("acc", "ns", uid) {
			t.Fatal("a slot beyond the limit")
		}
		s.forget(uid)
	}
	if n := len(s.accounts["acc"].waiting["ns"]); n != 0 {
		t.Errorf("%d deleted webhooks still waiting", n)
	}
	// Refused, never deleted, and not asking again: forgotten once lapsed, when the slot frees.
	if s.tryAcquire("acc", "ns", "stopped") {
		t.Fatal("a slot beyond the limit")
	}
	clk.SetTime(clk.Now().Add(11 * time.Second))
	s.release("acc", "ns")
	if len(s.accounts) != 0 || len(s.waiter) != 0 {
		t.Errorf("an idle account kept: %d accounts, %d waiting", len(s.accounts), len(s.waiter))
	}
	// A webhook waiting when its namespace is bound to another account waits there only, and is
	// forgotten there when deleted.
	for _, acc := range []string{"old", "new"} {
		if !s.tryAcquire(acc, "holders", "holder-"+acc) || s.tryAcquire(acc, "ns", "moved") {
			t.Fatal("the slot is not the holder's")
		}
	}
	if n := len(s.accounts["old"].waiting); n != 0 {
		t.Errorf("still waiting under the old account: %d namespaces", n)
	}
	s.forget("moved")
	if n := len(s.accounts["new"].waiting); n != 0 || len(s.waiter) != 0 {
		t.Errorf("a deleted webhook still waits: %d namespaces, %d recorded", n, len(s.waiter))
	}
}
