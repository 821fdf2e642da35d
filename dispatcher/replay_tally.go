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
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/internal/deliveries"
)

// replayTally counts the deliveries of running replays as the engine records them, so that a
// replay's progress costs nothing per count: reading it back from the log would cost every record
// of every webhook written since the replay started, once per replay.
//
// A replay's tally begins before anything it queues can be attempted (or, after a restart, before
// the log is read for what the previous run recorded: records appended before that read are
// stored when it starts, Log.Barrier); what the read finds is merged under what was observed
// meanwhile, which is newer.
type replayTally struct {
	// wake is called once every notification a replay queued is settled.
	wake func(types.NamespacedName)

	mu   sync.Mutex
	runs map[tallyKey]*tally
}

// tallyKey names a replay by its webhook's uid (its namespace) and the ref its notes and records
// carry (deliveries.ReplayRef, or the bare name of before).
type tallyKey struct{ uid, replay string }

// tally is one replay's count: the state after the newest record of each notification it queued.
type tally struct {
	key    types.NamespacedName
	states map[uint64]deliveries.State
	// delivered and failed count the final states in states.
	delivered, failed int64
	// queued is how many the replay queued (0: not known yet).
	queued int64
	// floor is how many the log says it queued, read after a restart: the status may say less
	// (its tenant may write it), and counts never takes less.
	floor int64
	// complete is set once the records stored before the tally began were read in.
	complete bool
}

func newReplayTally(wake func(types.NamespacedName)) *replayTally {
	return &replayTally{wake: wake, runs: map[tallyKey]*tally{}}
}

// observe counts r when it is about a running replay's delivery. It runs on every Append.
func (t *replayTally) observe(r deliveries.Record) {
	if r.Replay == "" || r.Kind == deliveries.KindReplayQueued {
		return
	}
	if deletedEarlier(r) {
		return
	}
	t.mu.Lock()
	tl := t.runs[tallyKey{r.WebhookUID, r.Replay}]
	settled := tl != nil && tl.set(r.EventSeq, r.State)
	t.mu.Unlock()
	if settled && t.wake != nil {
		t.wake(tl.key)
	}
}

// set records state for seq and reports whether that settled the last of the queued ones.
func (tl *tally) set(seq uint64, state deliveries.State) bool {
	tl.count(tl.states[seq], -1)
	tl.states[seq] = state
	tl.count(state, 1)
	return tl.queued > 0 && tl.delivered+tl.failed == tl.queued
}

func (tl *tally) count(s deliveries.State, d int64) {
	switch s {
	case deliveries.StateDelivered:
		tl.delivered += d
	case deliveries.StateDropped, deliveries.StateCancelled, deliveries.StateLost:
		tl.failed += d
	}
}

// begin starts counting the replay key of webhook uid, whose notes and records carry ref
// (deliveries.ReplayRef; nothing when it counts already). Records of notes queued before replays
// were told apart by uid carry the bare name: they count too.
func (t *replayTally) begin(key types.NamespacedName, uid, ref string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := tallyKey{uid, ref}
	if t.runs[k] == nil {
		tl := &tally{key: key, states: map[uint64]deliveries.State{}}
		t.runs[k], t.runs[tallyKey{uid, key.Name}] = tl, tl
	}
}

// merge adds what the log held of the replay (read after begin) under what was observed since,
// and the log's count of what it queued (0: not counted).
func (t *replayTally) merge(uid, replay string, stored map[uint64]deliveries.State, queued int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tl := t.runs[tallyKey{uid, replay}]
	if tl == nil {
		return
	}
	for seq, s := range stored {
		if _, newer := tl.states[seq]; !newer {
			tl.set(seq, s)
		}
	}
	tl.floor = max(tl.floor, queued)
	tl.complete = true
}

// counts returns the replay's delivered and failed notifications, once its tally is complete, and
// how many it queued: queued, or the log's count if more. It remembers that (to wake the replay
// when they are settled).
func (t *replayTally) counts(uid, replay string, queued int64) (delivered, failed, queuedAll int64, complete bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tl := t.runs[tallyKey{uid, replay}]
	if tl == nil || !tl.complete {
		return 0, 0, queued, false
	}
	tl.queued = max(queued, tl.floor)
	return tl.delivered, tl.failed, tl.queued, true
}

// counted reports whether the tally of replay (of webhook uid) is complete: the log was read.
func (t *replayTally) counted(uid, replay string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	tl := t.runs[tallyKey{uid, replay}]
	return tl != nil && tl.complete
}

// end forgets the tally of the replay key.
func (t *replayTally) end(key types.NamespacedName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, tl := range t.runs {
		if tl.key == key {
			delete(t.runs, k)
		}
	}
}

// observedRecorder is the delivery log as the engine writes it, with the replays' tally observing
// each record as it is appended.
type observedRecorder struct {
	deliver.Recorder
	tally *replayTally
}

// Append counts r for its replay, then hands it to the log.
func (o observedRecorder) Append(r deliveries.Record) {
	o.tally.observe(r)
	o.Recorder.Append(r)
}
