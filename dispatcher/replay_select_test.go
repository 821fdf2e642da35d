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
	"runtime"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/payload"
	"github.com/hookline/hookline/internal/deliveries"
)

// A selection by time holds a notification only while its newest record is in one of the
// replay's states, so that its memory follows what it may replay, not the webhook's history; it
// selects by the newest record all the same, and it stops holding more at its bound.
func TestSelectorHoldsOnlyWhatItMaySelect(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	rp := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Name: "recover"}, Spec: hooklinev1.WebhookReplaySpec{
		WebhookName: "orders", Since: &metav1.Time{Time: t0}, States: []hooklinev1.ReplayState{hooklinev1.ReplayLost}}}
	rec := func(seq uint64, state deliveries.State, replay string) deliveries.Record {
		return deliveries.Record{Kind: deliveries.KindAttempt, WebhookUID: "uid", NotificationID: fmt.Sprintf("n-%d", seq), EventSeq: seq,
			EventID: fmt.Sprintf("e-%d", seq), EventName: "AGREEMENT_ACTION_COMPLETED", Created: t0.Add(time.Duration(seq) * time.Second),
			At: t0.Add(time.Hour), State: state, Replay: replay}
	}
	s := newSelector(rp, t0.Add(2*time.Hour), nil, true, 3)
	for seq := uint64(1); seq <= 1000; seq++ {
		s.add(rec(seq, deliveries.StateDelivered, ""))
	}
	if len(s.newest) != 0 {
		t.Fatalf("holds %d delivered notifications, want none", len(s.newest))
	}
	s.add(rec(7, deliveries.StateLost, ""))         // delivered, then lost: selected
	s.add(rec(1001, deliveries.StateLost, ""))      // lost, then delivered: not selected
	s.add(rec(1001, deliveries.StateDelivered, "")) //
	s.add(rec(1002, deliveries.StateLost, ""))      // lost, then replayed by another replay and lost again
	s.add(rec(1002, deliveries.StateReplayed, "earlier"))
	s.add(rec(1002, deliveries.StateLost, "earlier"))
	s.add(rec(1003, deliveries.StateLost, "recover")) // this replay's own record: counted, not selected
	got, unavailable := s.result()
	if len(unavailable) != 0 || s.overflow {
		t.Fatalf("unavailable %v, overflow %v", unavailable, s.overflow)
	}
	var seqs []uint64
	for _, c := range got {
		seqs = append(seqs, c.seq)
		if c.id != fmt.Sprintf("n-%d", c.seq) || c.eventID != fmt.Sprintf("e-%d", c.seq) || !c.created.Equal(t0.Add(time.Duration(c.seq)*time.Second)) {
			t.Errorf("candidate %+v lost its notification's id, event or time", c)
		}
	}
	if fmt.Sprint(seqs) != "[7 1002]" {
		t.Fatalf("selected %v, want [7 1002]", seqs)
	}
	if s.own[1003] != deliveries.StateLost {
		t.Fatalf("own %v", s.own)
	}

	// Two held; the bound is three: the fourth and fifth do not fit.
	s.add(rec(2000, deliveries.StateLost, ""))
	if s.overflow {
		t.Fatal("overflow at three held notifications, the bound")
	}
	s.add(rec(2001, deliveries.StateLost, ""))
	if !s.overflow || len(s.newest) != 3 {
		t.Fatalf("overflow %v with %d held, want true with 3", s.overflow, len(s.newest))
	}
}

// BenchmarkSelectionMemory measures what a selection by time holds per notification in one of its
// states (held-B/op, the figure behind --replay-max-selection's "about 130 bytes") and per
// notification in another state (other-B/op): go test ./dispatcher -run XXX -bench SelectionMemory.
func BenchmarkSelectionMemory(b *testing.B) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	rp := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Name: "recover"}, Spec: hooklinev1.WebhookReplaySpec{
		WebhookName: "orders", Since: &metav1.Time{Time: t0}, States: []hooklinev1.ReplayState{hooklinev1.ReplayLost}}}
	const n = 100_000
	// Records as the log's decoder hands them over: strings of their own.
	records := func(state deliveries.State) []deliveries.Record {
		out := make([]deliveries.Record, n)
		for i := range out {
			out[i] = deliveries.Record{Kind: deliveries.KindAttempt, WebhookUID: "uid", NotificationID: payload.NotificationID("uid", "account", fmt.Sprint(i)),
				EventSeq: uint64(i + 1), EventID: fmt.Sprintf("3AAABLblqZhD%012d", i), EventName: string([]byte("AGREEMENT_ACTION_COMPLETED")),
				Created: t0.Add(time.Duration(i) * time.Millisecond), State: deliveries.State([]byte(state))}
		}
		return out
	}
	// What the selection holds once the records are gone, the strings it keeps of theirs included
	// (measured from before the records were decoded).
	held := func(state deliveries.State) float64 {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		s := func() *selector { // the records are gone once it returns
			s := newSelector(rp, t0.Add(time.Hour), nil, true, 0)
			for _, r := range records(state) {
				s.add(r)
			}
			return s
		}()
		runtime.GC()
		runtime.ReadMemStats(&m1)
		runtime.KeepAlive(s)
		return float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / n
	}
	var h, o float64
	for range b.N {
		h, o = held(deliveries.StateLost), held(deliveries.StateDelivered)
	}
	b.ReportMetric(h, "held-B/op")
	b.ReportMetric(o, "other-B/op")
}

// After a restart the replay's count of what it queued is the log's: the notifications its "queued
// again" records name, less those a later record takes back (their notes could not be stored), and
// those with a record of its deliveries.
func TestSelectorCountsWhatTheReplayQueued(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	rp := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Name: "recover", UID: "0a1b2c3d-4e5f-4a5b-8c7d-0123456789ab", CreationTimestamp: metav1.Time{Time: t0}},
		Spec: hooklinev1.WebhookReplaySpec{WebhookName: "orders"}}
	ref := deliveries.ReplayRef(rp.Name, string(rp.UID))
	rec := func(seq uint64, kind deliveries.Kind, reason string) deliveries.Record {
		return deliveries.Record{Kind: kind, WebhookUID: "uid", EventSeq: seq, At: t0.Add(time.Minute), State: deliveries.StateReplayed, Reason: reason, Replay: ref}
	}
	s := newSelector(rp, t0.Add(time.Hour), nil, false, 0)
	if want := t0.Add(-scanSkew); !s.from().Equal(want) {
		t.Fatalf("read from %v, want the replay's creation %v (its start, a status, may be later)", s.from(), want)
	}
	s.add(rec(1, deliveries.KindReplayQueued, "Replayed"))
	s.add(rec(2, deliveries.KindReplayQueued, "Replayed"))
	s.add(rec(2, deliveries.KindReplayQueued, reasonNotQueued)) // storing failed: taken back
	s.add(rec(3, deliveries.KindReplayQueued, "Replayed"))
	s.add(rec(3, deliveries.KindReplayQueued, reasonNotQueued))
	s.add(rec(3, deliveries.KindReplayQueued, "Replayed")) // queued by the retry
	s.add(rec(4, deliveries.KindAttempt, "Delivered"))     // its "queued again" record lost in a crash
	if got := s.queued(); got != 3 {
		t.Fatalf("queued %d, want 3 (1, 3 and 4)", got)
	}
}

// A replay selects the notifications as they stood at its start, so that a resumed replay (its
// webhook set INACTIVE and ACTIVE again between two batches, or a crash) selects the same ones:
// it selected the webhook's failing head, cancelled by the INACTIVE after the start, and queued it
// after later events it had queued (found by a review helper). Another replay's "queued again"
// record written since still takes a notification out.
func TestResumedSelectionIsTheFirst(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	start := t0.Add(time.Hour)
	rp := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Name: "recover", UID: "11111111-2222", CreationTimestamp: metav1.Time{Time: start}},
		Spec: hooklinev1.WebhookReplaySpec{WebhookName: "orders", Since: &metav1.Time{Time: t0}}}
	rec := func(seq uint64, state deliveries.State, at time.Time, replay string, kind deliveries.Kind) deliveries.Record {
		return deliveries.Record{Kind: kind, WebhookUID: "uid", NotificationID: fmt.Sprintf("n-%d", seq), EventSeq: seq,
			EventID: fmt.Sprintf("e-%d", seq), EventName: "AGREEMENT_ACTION_COMPLETED", Created: t0.Add(time.Duration(seq) * time.Second),
			At: at, State: state, Replay: replay}
	}
	seqs := func(cs []candidate) (out []uint64) {
		for _, c := range cs {
			out = append(out, c.seq)
		}
		return out
	}
	before := []deliveries.Record{
		rec(10, deliveries.StateRetrying, start.Add(-time.Minute), "", deliveries.KindAttempt), // the failing head at the start
		rec(20, deliveries.StateDropped, start.Add(-time.Minute), "", deliveries.KindDropped),
		rec(30, deliveries.StateDropped, start.Add(-time.Minute), "", deliveries.KindDropped),
		rec(40, deliveries.StateDropped, start.Add(-time.Minute), "", deliveries.KindDropped),
		// Dropped just before the start, by a dispatcher whose clock runs 1.5 s ahead.
		rec(50, deliveries.StateDropped, start.Add(1500*time.Millisecond), "", deliveries.KindDropped),
	}
	first := newSelector(rp, start, nil, true, 0)
	for _, r := range before {
		first.add(r)
	}
	sel, _ := first.result()
	if fmt.Sprint(seqs(sel)) != "[20 30 40 50]" {
		t.Fatalf("first run selects %v, want [20 30 40 50]", seqs(sel))
	}
	// 20 is queued; the webhook is set INACTIVE (10 and 20 cancelled); another replay queues 40.
	ref := replayRef(rp)
	after := append(before,
		rec(20, deliveries.StateReplayed, start.Add(5*time.Second), ref, deliveries.KindReplayQueued),
		rec(10, deliveries.StateCancelled, start.Add(6*time.Second), "", deliveries.KindCancelled),
		rec(20, deliveries.StateCancelled, start.Add(6*time.Second), ref, deliveries.KindCancelled),
		rec(40, deliveries.StateReplayed, start.Add(7*time.Second), "other/uid", deliveries.KindReplayQueued),
	)
	resumed := newSelector(rp, start, nil, true, 0)
	for _, r := range after {
		resumed.add(r)
	}
	sel, _ = resumed.result()
	var todo []uint64
	for _, c := range sel {
		if !resumed.already(c.seq) {
			todo = append(todo, c.seq)
		}
	}
	if fmt.Sprint(seqs(sel)) != "[20 30 50]" || fmt.Sprint(todo) != "[30 50]" {
		t.Fatalf("the resumed replay selects %v and queues %v; want [20 30 50], queueing [30 50]", seqs(sel), todo)
	}
}

// keptFeed is a replay log whose bound removed a webhook's records before kept.
type keptFeed struct {
	countingLog
	kept time.Time
}

func (l *keptFeed) KeptSince(context.Context, string) (time.Time, error) { return l.kept, nil }

// A recover from before the delivery log's bound removed the webhook's oldest records says which
// part is gone: it found nothing there and reported nothing missing (found by a review helper).
func TestReplaySaysWhatTheLogsBoundRemoved(t *testing.T) {
	kept := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	r := &Replayer{Log: &keptFeed{kept: kept}}
	replay := func(since time.Time, ids ...hooklinev1.NotificationID) *hooklinev1.WebhookReplay {
		return &hooklinev1.WebhookReplay{Spec: hooklinev1.WebhookReplaySpec{WebhookName: "orders", Since: &metav1.Time{Time: since}, NotificationIDs: ids}}
	}
	gone, err := r.trimmedSince(context.Background(), replay(kept.Add(-2*time.Hour)), "uid")
	if err != nil || !strings.Contains(gone, "only from 2026-12-06T12:00:00Z") || !strings.Contains(gone, "--delivery-log-max-bytes") {
		t.Fatalf("a selection from before the log's start: %q, %v", gone, err)
	}
	for name, rp := range map[string]*hooklinev1.WebhookReplay{
		"a selection from after it": replay(kept.Add(time.Minute)),
		"a selection by id":         replay(kept.Add(-2*time.Hour), "a165944d-3a42-5764-944c-12007c9001d5"),
	} {
		if gone, err := r.trimmedSince(context.Background(), rp, "uid"); gone != "" || err != nil {
			t.Errorf("%s: %q, %v", name, gone, err)
		}
	}
	if gone, _ := (&Replayer{Log: &keptFeed{}}).trimmedSince(context.Background(), replay(kept), "uid"); gone != "" {
		t.Errorf("a log that removed nothing: %q", gone)
	}

	// The log as a whole starts later (its age bound, or it is younger): said too, the later of the
	// two times winning.
	starts := kept.Add(time.Hour)
	r = &Replayer{Log: &startsFeed{keptFeed: keptFeed{kept: kept}, starts: starts}}
	gone, err = r.trimmedSince(context.Background(), replay(kept.Add(-2*time.Hour)), "uid")
	if err != nil || !strings.Contains(gone, "only from 2026-12-06T13:00:00Z") || !strings.Contains(gone, "--delivery-log-max-age") {
		t.Fatalf("a selection from before the log's oldest record: %q, %v", gone, err)
	}
	if gone, _ := r.trimmedSince(context.Background(), replay(starts.Add(time.Minute)), "uid"); gone != "" {
		t.Errorf("a selection from after the log's start: %q", gone)
	}
	if gone, _ := (&Replayer{Log: &startsFeed{}}).trimmedSince(context.Background(), replay(kept), "uid"); gone != "" {
		t.Errorf("an empty log: %q", gone)
	}
}

// startsFeed is a keptFeed whose oldest record is at starts.
type startsFeed struct {
	keptFeed
	starts time.Time
}

func (l *startsFeed) Starts(context.Context) (time.Time, error) { return l.starts, nil }
