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
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/internal/deliveries"
)

func replayRecord(uid, replay string, seq uint64, kind deliveries.Kind, state deliveries.State) deliveries.Record {
	return deliveries.Record{Kind: kind, WebhookUID: uid, EventSeq: seq, State: state, Replay: replay}
}

// A replay's tally counts the final state of each notification it queued, once: a retry then a
// delivery is one delivered, a notification delivered again after a crash is still one; what the
// log held before the tally began counts only where nothing newer was observed. The replay is
// woken when the last one settles. Other replays' (another object of the same name included) and
// original deliveries' records do not count.
func TestReplayTallyCountsEachNotificationsNewestState(t *testing.T) {
	g := NewWithT(t)
	key := types.NamespacedName{Namespace: "team-a", Name: "recover"}
	var woken []types.NamespacedName
	tl := newReplayTally(func(k types.NamespacedName) { woken = append(woken, k) })
	ref := deliveries.ReplayRef("recover", "0a1b2c3d-4e5f-4a5b-8c7d-0123456789ab")
	tl.begin(key, "uid-1", ref)

	_, _, _, complete := tl.counts("uid-1", ref, 4)
	g.Expect(complete).To(BeFalse(), "not complete before the log was read")

	tl.observe(replayRecord("uid-1", ref, 1, deliveries.KindReplayQueued, deliveries.StateReplayed))
	tl.observe(replayRecord("uid-1", ref, 1, deliveries.KindAttempt, deliveries.StateRetrying))
	tl.observe(replayRecord("uid-1", "recover", 1, deliveries.KindAttempt, deliveries.StateDelivered))                                                               // a note queued before refs carried the uid
	tl.observe(replayRecord("uid-1", ref, 1, deliveries.KindAttempt, deliveries.StateDelivered))                                                                     // after a crash
	tl.observe(replayRecord("uid-1", deliveries.ReplayRef("recover", "ffff0000-0000-4000-8000-000000000000"), 5, deliveries.KindAttempt, deliveries.StateDelivered)) // another object of the name
	deleted := replayRecord("uid-1", "recover", 6, deliveries.KindCancelled, deliveries.StateCancelled)
	deleted.Reason = deliver.ReasonReplayDeleted
	tl.observe(deleted) // a previous object's, of before refs, cancelled for its deletion
	tl.observe(replayRecord("uid-1", "other", 2, deliveries.KindAttempt, deliveries.StateDelivered))
	tl.observe(replayRecord("uid-1", "", 2, deliveries.KindAttempt, deliveries.StateDelivered))
	tl.observe(replayRecord("uid-2", "recover", 2, deliveries.KindAttempt, deliveries.StateDelivered))
	// Read from the log: seq 1 was retrying then (older than what was observed), 2 and 3 settled.
	// The log says 4 were queued.
	tl.merge("uid-1", ref, map[uint64]deliveries.State{1: deliveries.StateRetrying, 2: deliveries.StateDropped, 3: deliveries.StateDelivered}, 4)

	delivered, failed, queued, complete := tl.counts("uid-1", ref, 4)
	g.Expect(complete).To(BeTrue())
	g.Expect([]int64{delivered, failed, queued}).To(Equal([]int64{2, 1, 4}))
	g.Expect(woken).To(BeEmpty())
	// A status that says fewer were queued (its tenant may write it) does not lower the count.
	_, _, queued, _ = tl.counts("uid-1", ref, 0)
	g.Expect(queued).To(BeEquivalentTo(4))

	tl.observe(replayRecord("uid-1", ref, 4, deliveries.KindCancelled, deliveries.StateCancelled))
	delivered, failed, _, _ = tl.counts("uid-1", ref, 4)
	g.Expect([]int64{delivered, failed}).To(Equal([]int64{2, 2}))
	g.Expect(woken).To(Equal([]types.NamespacedName{key}), "woken once the last one settled")

	tl.end(key)
	_, _, _, complete = tl.counts("uid-1", ref, 4)
	g.Expect(complete).To(BeFalse())
}
