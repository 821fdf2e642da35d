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

// The engine's riskiest rules, each as a table, on a fake clock with the store and the receiver in
// memory (fakes_test.go): they run in milliseconds, and the hours and days they span are the fake
// clock's. The same rules are exercised end to end, with JetStream and a kube-apiserver, by the
// dispatcher package's suites.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/testlog"
)

// TestRulePerWebhookOrder: each webhook's notifications arrive in the order they were queued, and a
// failing head holds back only its own queue — never another webhook's, of the same account or not.
func TestRulePerWebhookOrder(t *testing.T) {
	for _, tc := range []struct {
		name        string
		otherAcct   string
		memQueue    int
		accountSlot int
	}{
		{name: "same account", otherAcct: "acc"},
		{name: "other account", otherAcct: "other"},
		{name: "queues read from the store in batches of 2", otherAcct: "acc", memQueue: 2},
		{name: "one slot for the account", otherAcct: "acc", accountSlot: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, Config{MemQueue: tc.memQueue, AccountConcurrency: tc.accountSlot}, nil)
			r.rx.setFailing("bad", true)
			r.e.Upsert(r.webhook("bad", "acc"))
			r.e.Upsert(r.webhook("good", tc.otherAcct))
			r.queue("bad", "acc", 3, r.t0)
			r.queue("good", tc.otherAcct, 5, r.t0)

			r.g.Eventually(func() int64 { return r.status("good").Delivered }).Should(BeEquivalentTo(5))
			r.idle()
			r.g.Expect(r.rx.notes("good")).To(Equal([]string{"good-1", "good-2", "good-3", "good-4", "good-5"}))
			r.g.Expect(r.rx.notes("bad")).To(Equal([]string{"bad-1"}), "the failing head alone was tried; the ones behind it wait")
			r.g.Expect(r.status("bad")).To(And(
				HaveField("Pending", BeEquivalentTo(3)), HaveField("ConsecutiveFailures", BeEquivalentTo(1))))

			// The receiver recovers; the head's retry comes at its time, and the rest follow in order.
			r.rx.setFailing("bad", false)
			r.g.Expect(r.next("bad")).To(Equal(r.t0.Add(time.Minute)))
			r.at(r.next("bad"))
			r.g.Eventually(func() int64 { return r.status("bad").Delivered }).Should(BeEquivalentTo(3))
			r.g.Expect(r.rx.notes("bad")).To(Equal([]string{"bad-1", "bad-1", "bad-2", "bad-3"}))
			r.g.Eventually(func() int { return r.st.queued("bad") + r.st.queued("good") }).Should(BeZero(), "settled notes leave the store")
		})
	}
}

// acrobatSchedule is when Acrobat Sign tries one notification that always fails, as offsets from
// its first attempt: retries after 1, 2, 4 … 512 minutes, then every 12 hours, the last one clamped
// to the 72-hour mark (16 attempts in all).
func acrobatSchedule() []time.Duration {
	out := []time.Duration{0}
	at := time.Duration(0)
	for gap := time.Minute; len(out) < 16; gap = min(2*gap, 12*time.Hour) {
		at += gap
		out = append(out, min(at, 72*time.Hour))
	}
	return out
}

// TestRuleRetryScheduleAndDrop: a failing notification is retried on Acrobat Sign's schedule, the
// delays adding up from the scheduled times (not from the answers of a slow receiver, not from a
// timer firing late), gets its last retry exactly at 72 hours, and is dropped when that fails.
func TestRuleRetryScheduleAndDrop(t *testing.T) {
	want := acrobatSchedule()
	if want[15] != 72*time.Hour || want[10] != 1023*time.Minute || want[11] != 1023*time.Minute+12*time.Hour {
		t.Fatalf("schedule under test is not Acrobat Sign's: %v", want)
	}
	for _, tc := range []struct {
		name string
		// took is how long the receiver takes to answer; late is how late the timer fires.
		took, late time.Duration
	}{
		{name: "prompt receiver"},
		{name: "slow receiver", took: 4 * time.Second},
		{name: "timer firing late", late: 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, Config{}, nil)
			r.rx.took = tc.took
			r.rx.setFailing("wh", true)
			wh := r.webhook("wh", "acc")
			wh.LastVerified = r.t0 // verified: the drop does not disable it (TestRuleAutoDisable)
			r.e.Upsert(wh)
			r.queue("wh", "acc", 1, r.t0)
			for i := 1; i < len(want); i++ {
				r.g.Eventually(func() int { return len(r.rx.notes("wh")) }).Should(Equal(i))
				r.idle()
				r.g.Expect(r.next("wh")).To(Equal(r.t0.Add(want[i])), "retry %d is scheduled from the schedule, not from the answers", i)
				r.at(r.next("wh").Add(tc.late))
			}
			r.g.Eventually(func() int64 { return r.status("wh").Dropped }).Should(BeEquivalentTo(1))
			r.idle()
			var got, expect []time.Duration
			for i, s := range r.rx.sends() {
				r.g.Expect(s.note).To(Equal("wh-1"))
				got = append(got, s.at.Sub(r.t0))
				if i > 0 {
					expect = append(expect, want[i]+tc.late)
				} else {
					expect = append(expect, 0)
				}
			}
			r.g.Expect(got).To(Equal(expect), "16 attempts, the last at 72 hours")
			r.g.Expect(r.status("wh")).To(And(HaveField("Pending", BeZero()), HaveField("ConsecutiveFailures", BeEquivalentTo(16)),
				HaveField("Disabled", BeFalse())))
			r.g.Expect(r.next("wh")).To(BeZero(), "nothing left to retry")
		})
	}
}

// TestRuleMissedRetriesAreNotMadeUpInABurst: a head whose retry slots passed while the dispatcher
// was down gets one attempt at once, and its next one a RetryBase later — not one attempt per
// missed slot within the same second, each using up a retry. Slots not missed keep the schedule.
func TestRuleMissedRetriesAreNotMadeUpInABurst(t *testing.T) {
	r := newRig(t, Config{}, nil)
	r.rx.setFailing("wh", true)
	wh := r.webhook("wh", "acc")
	wh.LastVerified = r.t0
	r.e.Upsert(wh)
	r.queue("wh", "acc", 1, r.t0)
	r.g.Eventually(func() int { return len(r.rx.notes("wh")) }).Should(Equal(1))
	r.idle()
	r.g.Expect(r.next("wh")).To(Equal(r.t0.Add(time.Minute)))

	// Down for 40 minutes: the slots at 1, 3, 7, 15 and 31 minutes pass without an attempt.
	resumed := r.t0.Add(40 * time.Minute)
	r.at(resumed)
	r.g.Eventually(func() int { return len(r.rx.notes("wh")) }).Should(Equal(2))
	r.idle()
	r.g.Expect(r.rx.notes("wh")).To(HaveLen(2), "one attempt for the missed slots")
	r.g.Expect(r.next("wh")).To(Equal(resumed.Add(time.Minute)), "the next a RetryBase later")
	r.at(resumed.Add(time.Minute))
	r.g.Eventually(func() int { return len(r.rx.notes("wh")) }).Should(Equal(3))
	r.idle()
	r.g.Expect(r.next("wh")).To(Equal(resumed.Add(time.Minute+4*time.Minute)), "then the schedule again, from that attempt")
	r.g.Expect(r.status("wh").ConsecutiveFailures).To(BeEquivalentTo(3))
}

// TestRuleExpiredWithoutAttempt: a notification whose 72 hours passed while it waited (its webhook
// held, or the dispatcher down) is dropped without an attempt; one exactly at the mark still goes.
func TestRuleExpiredWithoutAttempt(t *testing.T) {
	for _, tc := range []struct {
		name    string
		age     time.Duration
		attempt bool
	}{
		{name: "a second past 72 hours", age: 72*time.Hour + time.Second},
		{name: "days past", age: 100 * time.Hour},
		{name: "exactly 72 hours", age: 72 * time.Hour, attempt: true},
		{name: "71 hours", age: 71 * time.Hour, attempt: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, Config{}, nil)
			held := r.webhook("wh", "acc")
			held.Deliverable, held.LastVerified = false, r.t0
			r.e.Upsert(held)
			r.queue("wh", "acc", 1, r.t0)
			r.at(r.t0.Add(tc.age))
			held.Deliverable = true
			r.e.Upsert(held)
			if tc.attempt {
				r.g.Eventually(func() int64 { return r.status("wh").Delivered }).Should(BeEquivalentTo(1))
				return
			}
			r.g.Eventually(func() int64 { return r.status("wh").Dropped }).Should(BeEquivalentTo(1))
			r.idle()
			r.g.Expect(r.rx.sends()).To(BeEmpty())
			r.g.Expect(r.status("wh").Disabled).To(BeFalse(), "verified within 7 days")
		})
	}
}

// TestRuleHeldNotificationsExpireOnTime: a webhook held back (its signing Secret missing) sends
// nothing, but its notifications are dropped when their 72 hours pass, one by one, while it stays
// held: the stream's own age limit would otherwise remove them an hour later with no record. A
// drop of a held notification does not auto-disable (no request was made), and the webhook
// delivers what is left once it is no longer held.
func TestRuleHeldNotificationsExpireOnTime(t *testing.T) {
	r := newRig(t, Config{}, nil)
	wh := r.webhook("wh", "acc")
	wh.Deliverable, wh.HeldReason = false, "SigningSecretUnavailable"
	wh.LastVerified = r.t0.Add(-10 * 24 * time.Hour) // a drop after a delivery failure would auto-disable
	r.e.Upsert(wh)
	r.queue("wh", "acc", 2, r.t0)
	r.queue("wh", "acc", 1, r.t0.Add(2*time.Hour))

	r.at(r.t0.Add(72 * time.Hour))
	r.idle()
	r.g.Expect(r.status("wh").Dropped).To(BeZero(), "not before the 72 hours have passed")

	r.at(r.t0.Add(72*time.Hour + time.Second))
	r.g.Eventually(func() int64 { return r.status("wh").Dropped }).Should(BeEquivalentTo(2))
	r.g.Eventually(func() int { return r.st.queued("wh") }).Should(Equal(1), "the dropped notes leave the store")
	r.idle()
	r.g.Expect(r.status("wh")).To(And(HaveField("Dropped", BeEquivalentTo(2)), HaveField("Disabled", BeFalse())))

	r.at(r.t0.Add(73 * time.Hour))
	r.queue("wh", "acc", 1, r.t0.Add(73*time.Hour))
	r.at(r.t0.Add(74*time.Hour + time.Second))
	r.g.Eventually(func() int64 { return r.status("wh").Dropped }).Should(BeEquivalentTo(3))
	r.idle()
	r.g.Expect(r.rx.sends()).To(BeEmpty(), "a held webhook is sent nothing")

	wh.Deliverable, wh.HeldReason = true, ""
	r.e.Upsert(wh)
	r.g.Eventually(func() int64 { return r.status("wh").Delivered }).Should(BeEquivalentTo(1))
	r.g.Expect(r.status("wh")).To(And(HaveField("Dropped", BeEquivalentTo(3)), HaveField("Disabled", BeFalse())))
}

// TestRuleAHeldQueueWhoseStoreFailsWaits: a held queue whose head cannot be read (the store
// failing) looks again a second later, as a deliverable one retries; before, it was scheduled
// again at once, for ever: a store read and an error line in a loop on the shared dispatcher.
func TestRuleAHeldQueueWhoseStoreFailsWaits(t *testing.T) {
	r := newRig(t, Config{}, nil)
	wh := r.webhook("wh", "acc")
	wh.Deliverable = false
	r.e.Upsert(wh)
	r.st.mu.Lock()
	r.st.loadErr = errors.New("store unavailable")
	r.st.mu.Unlock()
	r.queue("wh", "acc", 1, r.t0)
	loads := func() int { r.st.mu.Lock(); defer r.st.mu.Unlock(); return r.st.loads }
	r.g.Eventually(loads).Should(BeNumerically(">=", 1))
	r.g.Consistently(loads).WithTimeout(200 * time.Millisecond).Should(BeNumerically("<=", 2))
	before := loads()
	r.at(r.t0.Add(2 * time.Second))
	r.g.Eventually(loads).Should(BeNumerically(">", before), "and looks again")
}

// TestRuleAutoDisable: a drop disables the webhook when nothing succeeded within 7 days, counted from
// its last successful delivery or its last successful verification, whichever is later; disabling
// drops everything still queued, in memory and in the store, and is saved.
func TestRuleAutoDisable(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		name                  string
		lastSuccess, verified time.Duration // before the drop; 0: never
		disabled              bool
	}{
		{name: "success 8 days ago", lastSuccess: 8 * day, disabled: true},
		{name: "success exactly 7 days ago", lastSuccess: 7 * day, disabled: true},
		{name: "success 6 days ago", lastSuccess: 6 * day},
		{name: "verified 8 days ago, never delivered", verified: 8 * day, disabled: true},
		{name: "verified yesterday, never delivered", verified: day},
		{name: "success 8 days ago, verified yesterday", lastSuccess: 8 * day, verified: day},
		{name: "success yesterday, verified 8 days ago", lastSuccess: day, verified: 8 * day},
		{name: "neither", disabled: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One attempt only (no retries): the first failure drops.
			policy := DefaultPolicy()
			policy.MaxRetries = 0
			ago := func(d time.Duration) time.Time {
				if d == 0 {
					return time.Time{}
				}
				return rigStart.Add(-d)
			}
			r := newRig(t, Config{Policy: policy}, func(st *memStore) {
				// The last success is what a previous run saved.
				st.state["wh"] = fmt.Appendf(nil, `{"status":{"lastSuccess":%q}}`, ago(tc.lastSuccess).Format(time.RFC3339Nano))
			})
			r.rx.setFailing("wh", true)
			wh := r.webhook("wh", "acc")
			wh.LastVerified = ago(tc.verified)
			// Queued while held, so that all three are queued when the first attempt fails.
			wh.Deliverable = false
			r.e.Upsert(wh)
			r.queue("wh", "acc", 3, r.t0)
			wh.Deliverable = true
			r.e.Upsert(wh)
			r.g.Eventually(func() int64 { return r.status("wh").Dropped }).ShouldNot(BeZero())
			r.idle()
			st := r.status("wh")
			r.g.Expect(st.Disabled).To(Equal(tc.disabled))
			r.g.Expect(st).To(And(HaveField("Dropped", BeEquivalentTo(3)), HaveField("Pending", BeZero())))
			if !tc.disabled {
				r.g.Expect(r.rx.notes("wh")).To(Equal([]string{"wh-1", "wh-2", "wh-3"}), "each is tried in turn, and dropped")
				return
			}
			r.g.Expect(st).To(And(
				HaveField("DisabledAt", Equal(r.t0))))
			r.g.Expect(r.rx.notes("wh")).To(Equal([]string{"wh-1"}))
			r.g.Eventually(func() int { return r.st.queued("wh") }).Should(BeZero(), "the queue is purged from the store")
			r.g.Eventually(func() bool { saved, _ := r.st.saved("wh"); return saved.Status.Disabled }).Should(BeTrue(), "the disable is saved")
			// Nothing more is sent, whatever arrives.
			r.queue("wh", "acc", 1, r.t0)
			r.at(r.t0.Add(time.Hour))
			r.idle()
			r.g.Expect(r.rx.notes("wh")).To(Equal([]string{"wh-1"}))
		})
	}
}

// TestRuleAQueueMovedToAnotherAccountStartsOnce: a queue waiting for its account's slot when its
// webhook moves to another account (its namespace rebound) and is cancelled leaves the old
// account's waiting list; before, it stayed there, and once it had work under the new account
// both accounts' turns started it: two attempts of one head at once (a duplicate, and the second
// settling popped the next note unsent, or panicked on an empty queue).
func TestRuleAQueueMovedToAnotherAccountStartsOnce(t *testing.T) {
	r := newRig(t, Config{AccountConcurrency: 1}, nil)
	r.rx.hold = true
	r.e.Upsert(r.webhook("x", "a"))
	r.queue("x", "a", 1, r.t0)
	r.g.Eventually(func() int { return r.rx.inFlightOf("a") }).Should(Equal(1))
	r.e.Upsert(r.webhook("w", "a"))
	r.queue("w", "a", 1, r.t0) // waits for a's slot
	r.e.Upsert(r.webhook("w", "b"))
	r.g.Expect(r.e.Cancel(context.Background(), "w")).To(Succeed())
	r.queue("w", "b", 1, r.t0)
	r.g.Eventually(func() int { return r.rx.inFlightOf("b") }).Should(Equal(1))

	r.rx.release() // x's answer (the first held): a's slot frees
	r.g.Eventually(func() int { return r.rx.inFlightOf("a") }).Should(BeZero())
	r.g.Consistently(func() []string { return r.rx.notes("w") }).WithTimeout(100*time.Millisecond).Should(HaveLen(1), "one attempt at a time")
	r.rx.release()
	r.g.Eventually(func() int64 { return r.status("w").Delivered }).Should(BeEquivalentTo(1))
}

// TestRuleAccountCap: never more than AccountConcurrency notifications in flight for one account,
// however many of its webhooks have work; another account is not held back by it.
func TestRuleAccountCap(t *testing.T) {
	for _, limit := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("cap %d", limit), func(t *testing.T) {
			r := newRig(t, Config{AccountConcurrency: limit}, nil)
			r.rx.hold = true
			const webhooks, each = 5, 2
			for i := range webhooks {
				uid := fmt.Sprintf("wh%d", i)
				r.e.Upsert(r.webhook(uid, "busy"))
				r.queue(uid, "busy", each, r.t0)
			}
			r.e.Upsert(r.webhook("lone", "quiet"))
			r.queue("lone", "quiet", 1, r.t0)

			r.g.Eventually(func() int { return r.rx.inFlightOf("busy") }).Should(Equal(limit))
			r.g.Eventually(func() int { return r.rx.inFlightOf("quiet") }).Should(Equal(1), "the other account has its own slots")
			r.g.Consistently(func() int { return r.rx.inFlightOf("busy") }).WithTimeout(20 * time.Millisecond).Should(Equal(limit))
			for range webhooks*each + 1 {
				r.rx.release()
			}
			r.g.Eventually(func() int { return len(r.rx.sends()) }).Should(Equal(webhooks*each + 1))
			r.idle()
			r.g.Expect(r.rx.maxInFlight("busy")).To(Equal(limit))
		})
	}
}

// TestRuleAccountFairness: the webhooks of one account take turns for its slots — one that just
// delivered goes to the back of the line — so a webhook with a long backlog cannot starve the others.
func TestRuleAccountFairness(t *testing.T) {
	for _, tc := range []struct {
		name   string
		queued []int // notifications per webhook a, b, c…
		want   []string
	}{
		{name: "equal backlogs", queued: []int{3, 3, 3},
			want: []string{"a-1", "b-1", "c-1", "a-2", "b-2", "c-2", "a-3", "b-3", "c-3"}},
		{name: "one long backlog", queued: []int{6, 1},
			want: []string{"a-1", "b-1", "a-2", "a-3", "a-4", "a-5", "a-6"}},
		{name: "uneven", queued: []int{1, 3, 2},
			want: []string{"a-1", "b-1", "c-1", "b-2", "c-2", "b-3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, Config{AccountConcurrency: 1}, nil)
			// Each attempt answers only when released, so that the line is formed before the first
			// attempt ends.
			r.rx.hold = true
			// Queued while held, then made deliverable in order a, b, c.
			for i, n := range tc.queued {
				uid := string(rune('a' + i))
				wh := r.webhook(uid, "acc")
				wh.Deliverable = false
				r.e.Upsert(wh)
				r.queue(uid, "acc", n, r.t0)
			}
			// Held queues are attempted too (to expire their heads on time), through the account's
			// slot: those attempts end before any is made deliverable, or they decide the order.
			r.idle()
			for i := range tc.queued {
				r.e.Upsert(r.webhook(string(rune('a'+i)), "acc"))
			}
			for range tc.want {
				r.rx.release()
			}
			r.g.Eventually(func() []string { return r.rx.notes("") }).Should(Equal(tc.want))
		})
	}
}

// TestRuleNamespacesOfAnAccountTakeTurns: namespaces bound to one account take turns for its slots
// first, then their webhooks: a namespace with many webhooks (each answering just before the
// timeout, so never backing off) held the account's slots for as long as it liked, and another
// namespace's webhook waited behind every one of them.
func TestRuleNamespacesOfAnAccountTakeTurns(t *testing.T) {
	r := newRig(t, Config{AccountConcurrency: 1}, nil)
	r.rx.hold = true
	// Namespace "many" has webhooks a, b, c with two notifications each; "one" has x, with two,
	// made deliverable last.
	for _, uid := range []string{"a", "b", "c", "x"} {
		wh := r.webhook(uid, "acc")
		wh.Namespace = namespaceOf(uid)
		wh.Deliverable = false
		r.e.Upsert(wh)
		r.queue(uid, "acc", 2, r.t0)
	}
	r.idle() // the held queues' attempts end first (TestRuleAccountFairness)
	for _, uid := range []string{"a", "b", "c", "x"} {
		wh := r.webhook(uid, "acc")
		wh.Namespace = namespaceOf(uid)
		r.e.Upsert(wh)
	}
	// a-1 starts as soon as a is deliverable; b, c and x then wait, "many" first. Without the
	// namespaces' turns x waits behind all of "many" each time: a-1, b-1, c-1, x-1, a-2, b-2, c-2, x-2.
	want := []string{"a-1", "b-1", "x-1", "c-1", "x-2", "a-2", "b-2", "c-2"}
	for range want {
		r.rx.release()
	}
	r.g.Eventually(func() []string { return r.rx.notes("") }).Should(Equal(want))
}

func namespaceOf(uid string) string {
	if uid == "x" {
		return "one"
	}
	return "many"
}

// TestRuleAnAttemptTheSenderCouldNotMakeIsNoFailure: when the sender could not have a connection for
// reasons of the dispatcher's own (the process's bound on connections, other accounts holding it),
// nothing was sent: the attempt is tried again a second later, and counts as no failure of the
// webhook (which would back it off, drop its notes and auto-disable it).
func TestRuleAnAttemptTheSenderCouldNotMakeIsNoFailure(t *testing.T) {
	r := newRig(t, Config{}, nil)
	r.rx.setBusy("wh", true)
	r.e.Upsert(r.webhook("wh", "acc"))
	r.queue("wh", "acc", 1, r.t0)
	r.g.Eventually(r.rx.busyTries).Should(Equal(1))
	r.idle()
	r.g.Expect(r.next("wh")).To(Equal(r.t0.Add(time.Second)))
	r.g.Expect(r.status("wh")).To(And(HaveField("ConsecutiveFailures", BeZero()), HaveField("Pending", BeEquivalentTo(1))))
	r.rx.setBusy("wh", false)
	r.at(r.next("wh"))
	r.g.Eventually(func() int64 { return r.status("wh").Delivered }).Should(BeEquivalentTo(1))
	r.g.Expect(r.status("wh").ConsecutiveFailures).To(BeZero())
}

// TestRuleEngineSavesItsState: the engine saves its counters itself — every SaveInterval, and
// what is left when it stops — without a save per delivery and without anyone calling it; what it
// saved is what a restarted engine starts from.
func TestRuleEngineSavesItsState(t *testing.T) {
	const interval = 10 * time.Second
	r := newRig(t, Config{SaveInterval: interval}, nil)
	r.e.Upsert(r.webhook("wh", "acc"))
	r.queue("wh", "acc", 3, r.t0)
	r.g.Eventually(func() int64 { return r.status("wh").Delivered }).Should(BeEquivalentTo(3))
	r.idle()
	_, puts := r.st.saved("wh")
	r.g.Expect(puts).To(BeZero(), "successes alone are not saved one by one")

	// The clock moves on: the saver writes the counters.
	r.g.Eventually(func() int64 {
		r.clk.Step(interval)
		saved, _ := r.st.saved("wh")
		return saved.Status.Delivered
	}).Should(BeEquivalentTo(3))

	// More deliveries, then a clean stop with the clock standing still: nothing is lost.
	r.queue("wh", "acc", 2, r.t0)
	r.g.Eventually(func() int64 { return r.status("wh").Delivered }).Should(BeEquivalentTo(5))
	r.idle()
	r.stop()
	saved, _ := r.st.saved("wh")
	r.g.Expect(saved.Status.Delivered).To(BeEquivalentTo(5))

	// A new engine on the same store starts from it.
	r2 := newRig(t, Config{}, func(st *memStore) { st.state["wh"] = r.st.state["wh"] })
	r2.e.Upsert(r2.webhook("wh", "acc"))
	r2.g.Expect(r2.status("wh").Delivered).To(BeEquivalentTo(5))
}

// Log lines about one webhook name it as every component does: the Webhook as namespace/name and
// its uid (issue 15: the key "webhook" once held a uid here and namespace/name elsewhere).
func TestLogLinesNameTheWebhookAndItsUID(t *testing.T) {
	g := NewWithT(t)
	logs := &testlog.Buffer{}
	clk := clocktesting.NewFakeClock(rigStart)
	st := newMemStore()
	e := New(Config{Policy: DefaultPolicy()}, st, newMemReceiver(clk), clk, logs.Logger(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); e.Wait() }()
	g.Expect(e.Start(ctx)).To(Succeed())
	wh := Webhook{UID: "3b1d-uid", Namespace: "team-a", Name: "orders", AccountID: "acc", URL: "https://acc.test/orders",
		ClientID: "client", Scope: "ACCOUNT", Deliverable: true}
	e.Upsert(wh)
	e.Enqueue(wh.UID, st.enqueue(wh.UID, store.Note{EventSeq: 4242, Created: rigStart})) // its event is gone
	g.Eventually(logs.String).WithTimeout(5 * time.Second).Should(And(
		ContainSubstring("Loading event of a notification; dropping it"),
		ContainSubstring(`"Webhook"={"name"="orders" "namespace"="team-a"}`),
		ContainSubstring(`"uid"="3b1d-uid"`)))
	g.Expect(logs.String()).NotTo(ContainSubstring(`"webhook"=`))
}

// TestWorkersCarryOnFromOneAttemptToTheNext: attempts go to the delivery workers that finished
// theirs instead of a goroutine each (whose stack would grow anew every time), and the waiting
// workers end when the engine stops.
func TestWorkersCarryOnFromOneAttemptToTheNext(t *testing.T) {
	reapEvery(t, time.Hour)
	r := newRig(t, Config{}, nil)
	r.rx.hold = true
	// k attempts at once start at least k workers, which then wait for more. Waiting workers are made
	// first, so that what follows does not hang on whether the worker that handed an attempt
	// over was back in time to take the next (on a loaded machine it often is not).
	const k = 4
	for i := range k {
		uid := fmt.Sprintf("warm-%d", i)
		r.e.Upsert(r.webhook(uid, "acc"))
		r.queue(uid, "acc", 1, r.t0)
	}
	r.g.Eventually(func() int { return r.rx.inFlightOf("acc") }).Should(Equal(k))
	for range k {
		r.rx.release()
	}
	r.idle()
	r.g.Eventually(func() bool { return r.e.idleWorkers.Load() == r.e.liveWorkers.Load() }).Should(BeTrue())
	started := r.e.workers.Load()
	r.g.Expect(r.e.idleWorkers.Load()).To(BeNumerically(">=", k))

	// One queue's attempts follow one another, each handed over while the one before settles: at
	// most two workers are busy at a time, so the waiting ones take them all and none starts.
	r.e.Upsert(r.webhook("wh", "acc"))
	const n = 200
	r.queue("wh", "acc", n, r.t0)
	for range n {
		r.rx.release()
	}
	r.g.Eventually(func() int64 { return r.status("wh").Delivered }).Should(BeEquivalentTo(n))
	r.idle()
	r.g.Expect(r.e.workers.Load()).To(Equal(started), "workers started for %d attempts in a row", n)
	r.g.Eventually(r.e.liveWorkers.Load).Should(BeEquivalentTo(started), "the workers wait for more")

	r.stop()
	r.g.Eventually(r.e.liveWorkers.Load).Should(BeZero(), "workers left after the engine stopped")
}

// TestWorkersNotNeededEnd: the workers of a burst that wait all along until the next look end.
func TestWorkersNotNeededEnd(t *testing.T) {
	reapEvery(t, 50*time.Millisecond)
	r := newRig(t, Config{}, nil)
	for i := range 5 {
		uid := fmt.Sprintf("wh%d", i)
		r.e.Upsert(r.webhook(uid, uid))
		r.queue(uid, uid, 20, r.t0)
	}
	r.g.Eventually(func() int64 { return r.status("wh4").Delivered }).Should(BeEquivalentTo(20))
	r.idle()
	r.g.Expect(r.e.workers.Load()).To(BeNumerically(">", 1))
	r.g.Eventually(r.e.liveWorkers.Load).Should(BeZero(), "workers left waiting")
}

// reapEvery sets workerReap for one test, restored after the rig's cleanup (registered later, so
// run first) has stopped its engine.
func reapEvery(t *testing.T, d time.Duration) {
	was := workerReap
	t.Cleanup(func() { workerReap = was })
	workerReap = d
}

// TestWorkersBeyondTheIdleCapEnd: a worker that finishes when as many wait as the engine allows
// ends; with none allowed to wait, every attempt has a worker of its own.
func TestWorkersBeyondTheIdleCapEnd(t *testing.T) {
	r := newRig(t, Config{}, nil)
	r.e.mu.Lock()
	r.e.idleMax = 0 // before the first attempt: workers read it after this lock
	r.e.mu.Unlock()
	r.e.Upsert(r.webhook("wh", "acc"))
	const n = 20
	r.queue("wh", "acc", n, r.t0)
	r.g.Eventually(func() int64 { return r.status("wh").Delivered }).Should(BeEquivalentTo(n))
	r.idle()
	r.g.Expect(r.e.workers.Load()).To(BeNumerically(">=", n), "one worker per attempt (and per look at a queue found empty)")
	r.g.Eventually(r.e.liveWorkers.Load).Should(BeZero())
}

// An event counted lost at ingest for a queue is counted once: the producer's retry of an event
// whose post was answered 503 routes it again, and its lost notification was recorded and counted
// again (two records, two drops for one notification).
func TestRuleAnEventIsCountedLostOnce(t *testing.T) {
	r := newRig(t, Config{}, nil)
	r.e.Upsert(r.webhook("wh", "acc"))
	for _, seq := range []uint64{7, 7, 8, 7} {
		r.g.Expect(r.e.CountLost("wh", store.Note{EventSeq: seq, Created: r.t0})).To(BeTrue())
	}
	// The retry's note stored by another dispatcher, lost on arrival here: the same notification.
	r.g.Expect(r.e.CountLost("wh", store.Note{Seq: 100, EventSeq: 8, Created: r.t0})).To(BeTrue())
	r.g.Expect(r.status("wh").Dropped).To(BeEquivalentTo(2), "events 7 and 8, once each")
	r.g.Expect(r.e.CountLost("wh", store.Note{Seq: 101, EventSeq: 9, Created: r.t0})).To(BeTrue())
	r.g.Expect(r.status("wh").Dropped).To(BeEquivalentTo(3), "another event's note is counted")
}

// TestRuleTheLastRetryTheSenderCouldNotMakeStillGoes: the last retry, exactly at the 72-hour mark,
// that the sender could not make (the process's connections all in use: tried again a second later,
// no failure) is made a second later all the same: it is judged by the time it was scheduled for.
// Judged by its try a second later, it was past the mark and dropped without being sent.
func TestRuleTheLastRetryTheSenderCouldNotMakeStillGoes(t *testing.T) {
	want := acrobatSchedule()
	mark := want[len(want)-1]
	for _, tc := range []struct {
		name      string
		after     time.Duration // when the next try comes, after the mark
		delivered bool
	}{
		{name: "a second later", after: time.Second, delivered: true},
		// Not for ever: a read that never succeeds still ends at the 72 hours.
		{name: "past the grace", after: ownRetryGrace + time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, Config{}, nil)
			r.rx.setFailing("wh", true)
			wh := r.webhook("wh", "acc")
			wh.LastVerified = r.t0
			r.e.Upsert(wh)
			r.queue("wh", "acc", 1, r.t0)
			for i := 1; i < len(want); i++ {
				r.g.Eventually(func() int { return len(r.rx.notes("wh")) }).Should(Equal(i))
				r.idle()
				if i == len(want)-1 {
					r.rx.setBusy("wh", true) // the last retry finds no connection
				}
				r.at(r.next("wh"))
			}
			r.g.Eventually(r.rx.busyTries).Should(Equal(1))
			r.idle()
			r.g.Expect(r.next("wh")).To(Equal(r.t0.Add(mark + time.Second)))
			r.rx.setBusy("wh", false)
			r.rx.setFailing("wh", false)
			r.at(r.t0.Add(mark + tc.after))
			if tc.delivered {
				r.g.Eventually(func() int64 { return r.status("wh").Delivered }).Should(BeEquivalentTo(1), "sent, past the mark")
				r.g.Expect(r.status("wh").Dropped).To(BeZero())
				return
			}
			r.g.Eventually(func() int64 { return r.status("wh").Dropped }).Should(BeEquivalentTo(1), "dropped unsent")
			r.g.Expect(r.status("wh").Delivered).To(BeZero())
		})
	}
}
