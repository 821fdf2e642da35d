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

package deliverylog

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/dispatcher/payload"
	"github.com/hookline/hookline/internal/deliveries"
)

const floodAccount = "acc-flood"

var floodUIDs = []string{"5d6f0e1a-0000-4000-8000-00000000f001", "5d6f0e1a-0000-4000-8000-00000000f002"}

// floodRecord is a delivered attempt of webhook uid (of floodAccount) for event i, about 1.3 KB.
func floodRecord(uid string, i int) deliveries.Record {
	ev := fmt.Sprintf("flood-%d", i)
	r := rec(ev, uint64(i+1), time.Now(), deliveries.StateDelivered, 1, 200, "Delivered")
	r.WebhookUID, r.NotificationID = uid, payload.NotificationID(uid, floodAccount, ev)
	r.Response = strings.Repeat("x", 1000)
	return r
}

func floodAccountOf(uid string) (string, bool) {
	switch uid {
	case testUID:
		return testAccount, true
	case floodUIDs[0], floodUIDs[1]:
		return floodAccount, true
	}
	return "", false
}

// flood appends n flood records, spread over floodUIDs, and waits until they are stored.
func (f *fixture) flood(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		f.log.Append(floodRecord(floodUIDs[i%len(floodUIDs)], i))
	}
	if err := f.log.Barrier(f.ctx); err != nil {
		t.Fatal(err)
	}
}

// patient lets the share's checks wait for the count, and the writer for the checks, as long as a
// loaded machine needs (the whole test suite running beside): the tests below are about which
// records a trim takes, not about whether the count keeps up with a writer appending as fast as
// it can, and a check that gave up on a count 2 s behind let the stream's own bound take the
// oldest records, whoever's they were.
func patient(t *testing.T) {
	catchUp, wait := shareCatchUp, shareWait
	shareCatchUp, shareWait = time.Minute, time.Minute
	t.Cleanup(func() { shareCatchUp, shareWait = catchUp, wait })
}

func (f *fixture) storedBytes(t *testing.T) int64 {
	t.Helper()
	info, err := f.log.stream.Info(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return int64(info.State.Bytes)
}

// A producer of one account posts enough events to fill the log several times over: the stream's
// own bound would take every account's oldest records; the share takes the flooding account's,
// and the other account's history stays whole.
func TestTheAccountHoldingMostOfTheLogLosesItsOldestRecordsFirst(t *testing.T) {
	g := NewWithT(t)
	patient(t)
	const bound = 2 << 20
	f := newFixture(t, Config{MaxBytes: bound, AccountOf: floodAccountOf, Buffer: 32})
	began := time.Now()
	const victims = 300
	for i := range victims {
		f.log.Append(rec(fmt.Sprintf("victim-%d", i), uint64(i+1), time.Now(), deliveries.StateDelivered, 1, 200, "Delivered"))
	}
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())

	const floods = 4 * bound / 1300 // the log filled four times over
	f.flood(t, floods)

	// Every one of the other account's notifications is still on record, the oldest included.
	for _, ev := range []string{"victim-0", fmt.Sprintf("victim-%d", victims-1)} {
		a, err := f.log.Attempts(f.ctx, testUID, nid(ev))
		g.Expect(err).NotTo(HaveOccurred(), ev)
		g.Expect(a.Records).To(HaveLen(1), ev)
	}
	list, err := f.log.Notifications(f.ctx, testUID, deliveries.Query{Limit: 500})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(list.Items).To(HaveLen(victims))
	// The flooding account lost its oldest (the trims run beside the writer), kept its newest.
	g.Eventually(func() error {
		_, err := f.log.Attempts(f.ctx, floodUIDs[0], floodRecord(floodUIDs[0], 0).NotificationID)
		return err
	}).WithTimeout(10 * time.Second).Should(MatchError(ErrNotFound))
	last := floodRecord(floodUIDs[(floods-1)%2], floods-1)
	_, err = f.log.Attempts(f.ctx, last.WebhookUID, last.NotificationID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.storedBytes(t)).To(BeNumerically("<=", bound))
	g.Eventually(func() float64 { return f.metric(t, "hookline_delivery_log_trimmed_bytes_total") }).WithTimeout(10 * time.Second).Should(BeNumerically(">", bound))

	// What a replay of the flooding account's webhooks can still select starts later, and says so
	// (KeptSince); the other account's history is whole.
	for _, uid := range floodUIDs {
		kept, err := f.log.KeptSince(f.ctx, uid)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(kept).To(BeTemporally(">", began), uid)
		g.Expect(kept).To(BeTemporally("<=", time.Now()), uid)
	}
	kept, err := f.log.KeptSince(f.ctx, testUID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(kept.IsZero()).To(BeTrue(), "the untrimmed account's log starts at its first record")

	// With the bound removed (a restart without --delivery-log-max-bytes), what it removed is
	// still said.
	unbounded, err := New(f.ctx, f.log.js, f.log.q, Config{AccountOf: floodAccountOf}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	kept, err = unbounded.KeptSince(f.ctx, floodUIDs[0])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(kept).To(BeTemporally(">", began))
}

// With one account the share takes nothing the stream's bound would not have taken: the log stays
// filled to between its marks (80 and 90 % of the bound) instead of being cut to a part of it.
func TestOneAccountKeepsUsingTheWholeLog(t *testing.T) {
	g := NewWithT(t)
	patient(t)
	const bound = 2 << 20
	f := newFixture(t, Config{MaxBytes: bound, AccountOf: floodAccountOf, Buffer: 32})
	f.flood(t, 3*bound/1300)
	g.Eventually(func() float64 { return f.metric(t, "hookline_delivery_log_trimmed_bytes_total") }).WithTimeout(10 * time.Second).Should(BeNumerically(">", 0))
	g.Expect(f.storedBytes(t)).To(And(BeNumerically(">", 0.75*bound), BeNumerically("<=", bound)))
}

// Records of webhooks that no longer exist (AccountOf does not know them) go first: nobody can
// read them, and deleting a webhook must not move a tenant's records out of its account's count.
func TestDeletedWebhooksRecordsGoFirst(t *testing.T) {
	g := NewWithT(t)
	patient(t)
	const bound = 2 << 20
	const deleted = "5d6f0e1a-0000-4000-8000-0000000dead1"
	f := newFixture(t, Config{MaxBytes: bound, AccountOf: floodAccountOf, Buffer: 32, Deleted: func(uid string) bool { return uid == deleted }})
	first := floodRecord(deleted, 0)
	for i := range 600 { // about 0.8 MB
		f.log.Append(floodRecord(deleted, i))
	}
	g.Expect(f.log.Barrier(f.ctx)).To(Succeed())
	f.flood(t, 900) // about 1.2 MB: past the high mark
	// The trims run beside the writer: wait for the first.
	g.Eventually(func() float64 { return f.metric(t, "hookline_delivery_log_trimmed_bytes_total") }).WithTimeout(10 * time.Second).Should(BeNumerically(">", 0))
	_, err := f.log.Attempts(f.ctx, deleted, first.NotificationID)
	g.Expect(err).To(MatchError(ErrNotFound), "the deleted webhook's oldest record went")
	oldest := floodRecord(floodUIDs[0], 0)
	_, err = f.log.Attempts(f.ctx, oldest.WebhookUID, oldest.NotificationID)
	g.Expect(err).NotTo(HaveOccurred(), "the largest account's oldest record stayed while a deleted webhook's could go")
}

// Until every webhook's account is known (a dispatcher starting), nothing is trimmed: every record
// would count as a deleted webhook's.
func TestNothingIsTrimmedBeforeTheAccountsAreKnown(t *testing.T) {
	g := NewWithT(t)
	const bound = 2 << 20
	f := newFixture(t, Config{MaxBytes: bound, AccountOf: floodAccountOf, Buffer: 32, AccountsKnown: func() bool { return false }})
	f.flood(t, 2*bound/1300)
	g.Expect(f.metric(t, "hookline_delivery_log_trimmed_bytes_total")).To(BeZero())
	g.Expect(f.storedBytes(t)).To(BeNumerically(">", 0.9*bound), "the stream's own bound acted")
}

// A quiet webhook's bytes are counted per epoch, so that what the stream removed by age is
// forgotten even when the webhook wrote again since (one span from its first record to its last
// would never be forgotten, and the quiet account would look ever larger).
func TestAQuietWebhooksOldRecordsAreForgotten(t *testing.T) {
	g := NewWithT(t)
	s := newShare(&Log{cfg: Config{MaxBytes: 1 << 30}})
	const quiet, busy = "quiet", "busy"
	s.count(quiet, 1, 500)
	seq := uint64(2)
	for range 3 * shareEpochs { // three times the high mark, in epochs
		s.count(busy, seq, s.epoch)
		seq++
	}
	s.count(quiet, seq, 500)
	g.Expect(s.held[quiet].bytes).To(BeEquivalentTo(1000))
	s.prune(seq - shareEpochs) // the stream now starts an epoch-full of messages before the end
	g.Expect(s.held[quiet].bytes).To(BeEquivalentTo(500))
	g.Expect(s.held[busy].bytes).To(BeEquivalentTo(shareEpochs * s.epoch))
}

// The accounts holding the most give up what they hold above one level, together: none is left
// holding less than another that gave up nothing.
func TestTrimsTakeTheLargestAccountsDownToOneLevel(t *testing.T) {
	g := NewWithT(t)
	accounts := map[string]string{"a1": "acc-1", "a2": "acc-2", "a3": "acc-3"}
	s := newShare(&Log{cfg: Config{MaxBytes: 1 << 30, AccountOf: func(uid string) (string, bool) {
		a, ok := accounts[uid]
		return a, ok
	}}})
	s.epoch = 100 // a message an epoch: a1 holds 600, a2 500, a3 100
	seq := uint64(1)
	for _, uid := range []string{"a1", "a2", "a1", "a2", "a3", "a1", "a2", "a1", "a2", "a1", "a2", "a1"} {
		s.count(uid, seq, 100)
		seq++
	}
	cuts := s.plan(300) // the level is 400: a1 gives up 200, a2 100, a3 nothing
	g.Expect(cuts).To(HaveLen(2))
	g.Expect(cuts[0].account).To(Equal("acc-1"))
	g.Expect(cuts[1].account).To(Equal("acc-2"))
	// a1's two oldest messages (sequences 1 and 3) and a2's oldest (2) are before the cuts.
	g.Expect(cuts[0].seq).To(BeEquivalentTo(4))
	g.Expect(cuts[1].seq).To(BeEquivalentTo(3))
}

// Records of webhooks of no known account are never cut, but they take part in the level: the
// accounts give up no more than if those were an account's.
func TestUntrimmableRecordsDoNotMakeTheAccountsPayForThem(t *testing.T) {
	g := NewWithT(t)
	s := newShare(&Log{cfg: Config{MaxBytes: 1 << 30, AccountOf: func(uid string) (string, bool) {
		return "acc-1", uid == "a1"
	}}})
	s.epoch = 100
	for i := range 6 {
		s.count("a1", uint64(2*i+1), 100)      // acc-1 holds 600
		s.count("unknown", uint64(2*i+2), 100) // 600 of no known account
	}
	cuts := s.plan(400) // the level is 400: acc-1 gives up 200, the unknown records are left
	g.Expect(cuts).To(HaveLen(1))
	g.Expect(cuts[0].account).To(Equal("acc-1"))
	g.Expect(cuts[0].seq).To(BeEquivalentTo(4)) // a1's two oldest messages, sequences 1 and 3
}

// Once every webhook's account is known, records of a webhook the dispatcher does not know whose
// records were in the log before then belong to a webhook deleted before it started: they go
// first. Those of an unknown webhook written later (one created since, not seen yet) are left.
func TestWebhooksGoneBeforeTheStartAreDeleted(t *testing.T) {
	g := NewWithT(t)
	s := newShare(&Log{cfg: Config{MaxBytes: 1 << 30,
		AccountOf: func(uid string) (string, bool) { return "acc-1", uid == "a1" },
		Seen:      func(uid string) bool { return uid == "a1" || uid == "unbound" },
	}})
	s.epoch = 100
	s.count("gone", 1, 100)
	s.count("a1", 2, 100)
	s.before, s.beforeSet = 2, true // the accounts became known here
	s.count("new", 3, 100)
	s.count("a1", 4, 100)
	cuts := s.plan(100) // what the deleted webhook holds: nothing of an account
	g.Expect(cuts).To(HaveLen(1))
	g.Expect(cuts[0].deleted).To(BeTrue())
	g.Expect(cuts[0].seq).To(BeEquivalentTo(2)) // "gone"'s only message; "new" is not a deleted webhook's
	// A webhook that exists in a namespace bound to no account is not a deleted one, however old
	// its records: it counts as one of the unbound namespaces' account.
	s.count("unbound", 5, 100)
	s.held["unbound"].spans[0].first, s.held["unbound"].spans[0].last = 1, 1
	b, ok := s.bucket("unbound", s.held["unbound"])
	g.Expect(ok).To(BeTrue())
	g.Expect(b).To(Equal(cutAt{account: unbound}))
}

// Records of a webhook that is neither an account's nor remembered as deleted (a tenant that
// deleted more webhooks than are remembered, since the accounts became known; or a live webhook
// this dispatcher has not managed to sync) are left for shareUnknownGrace only, in case it is a
// webhook created since and not seen yet; then they are cut as one more account's, by the level.
func TestUnknownWebhooksRecordsAreCutAfterAGrace(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	s := newShare(&Log{cfg: Config{MaxBytes: 1 << 30,
		AccountOf: func(uid string) (string, bool) { return "acc-1", uid == "a1" },
	}})
	s.now = func() time.Time { return now }
	s.epoch = 100
	s.before, s.beforeSet = 0, true
	for i := range 6 {
		s.count("a1", uint64(2*i+1), 100)      // acc-1 holds 600
		s.count("unknown", uint64(2*i+2), 100) // 600 of no known account, since the start
	}
	cuts := s.plan(400) // the level is 400: acc-1 gives up 200, the unknown records are left
	g.Expect(cuts).To(HaveLen(1), "within the grace, only the account is cut")
	g.Expect(cuts[0].account).To(Equal("acc-1"))
	g.Expect(cuts[0].seq).To(BeEquivalentTo(4))

	now = now.Add(shareUnknownGrace - time.Second)
	g.Expect(s.plan(400)).To(HaveLen(1))

	now = now.Add(time.Second)
	cuts = s.plan(400) // the level is 400 again: each gives up 200
	g.Expect(cuts).To(ConsistOf(
		cutAt{account: "acc-1", seq: 4},  // before 4: its messages 1 and 3
		cutAt{account: unknown, seq: 5})) // before 5: the unknown webhook's 2 and 4
}

// A dispatcher that becomes the trimmer anew (its number from Config.Trimmer changed: it gave the
// role up and took it again, and another trimmed meanwhile) counts afresh from the stream: what
// it had counted may have been purged by the other.
func TestANewTrimmerCountsAfresh(t *testing.T) {
	g := NewWithT(t)
	const bound = 2 << 20
	var gen atomic.Uint64
	gen.Store(1)
	f := newFixture(t, Config{MaxBytes: bound, AccountOf: floodAccountOf, Buffer: 32, Trimmer: gen.Load})
	s := f.log.share
	// Above the half where the count starts, under the high mark; the webhook's records in the
	// middle of the stream, where a trim cuts (records at its start are forgotten as they leave).
	f.flood(t, bound*3/10/1300)
	for i := range 100 {
		r := floodRecord(testUID, i)
		r.NotificationID = nid(r.EventID)
		f.log.Append(r)
	}
	f.flood(t, bound*3/10/1300)
	held := func(uid string) int64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		if h := s.held[uid]; h != nil {
			return h.bytes
		}
		return 0
	}
	caughtUp := func() bool {
		info, ok := s.info(f.ctx)
		return ok && s.seenSeq() >= info.State.LastSeq
	}
	g.Eventually(caughtUp).WithTimeout(10 * time.Second).Should(BeTrue())
	g.Expect(held(testUID)).To(BeNumerically(">", 0))

	// Another dispatcher, the trimmer meanwhile, removed the webhook's records.
	g.Expect(f.log.stream.Purge(f.ctx, jetstream.WithPurgeSubject(subject(testUID)))).To(Succeed())
	g.Expect(f.storedBytes(t)).To(BeNumerically(">", bound/2), "the count goes on")
	gen.Store(2)
	s.kickCheck()
	g.Eventually(func() int64 { return held(testUID) }).WithTimeout(10 * time.Second).Should(BeZero())
	g.Eventually(caughtUp).WithTimeout(10 * time.Second).Should(BeTrue())
	g.Expect(held(floodUIDs[0])).To(BeNumerically(">", 0), "the rest is counted again")
}
