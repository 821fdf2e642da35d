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
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// acker removes settled notes from the store in the background. Notes of one webhook are settled in
// order, so one purge up to the highest settled sequence covers every settlement since the last
// purge; under load that turns many deliveries into one store operation. A crash before the purge
// re-delivers those notes after restart, with the same webhookNotificationId.
//
// With a delivery log, each purge waits until the log has stored every record appended before it
// (Recorder.Barrier): a note leaves its queue only once its record is stored, so that queue and log
// together always account for it (what a replay resuming after a crash relies on).
type acker struct {
	store QueueStore
	rec   Recorder
	log   logr.Logger
	// compactor is the store when it compacts: the acker hands it the settled notes, and removes
	// queue by queue only the settlements the compaction has not reached within compactWait.
	compactor Compactor

	// flushing is held (a token in it) by each flush, so that settle returns only after a flush
	// that already took its queues' settlements is done.
	flushing chan struct{}
	mu       sync.Mutex
	upTo     map[string]uint64
	// settled lists the notes settled since the last flush (with a compactor).
	settled []uint64
	kick    chan struct{}
	// every is the least time between two flushes (ackerEvery).
	every time.Duration
	// waiting holds, per queue, since when its settlements wait for the compaction (flushes only),
	// at most wait (compactWait).
	waiting map[string]time.Time
	wait    time.Duration
}

func newAcker(st QueueStore, rec Recorder, log logr.Logger) *acker {
	a := &acker{store: st, rec: rec, log: log, upTo: map[string]uint64{}, kick: make(chan struct{}, 1), flushing: make(chan struct{}, 1),
		every: ackerEvery, waiting: map[string]time.Time{}, wait: compactWait}
	if c, ok := st.(Compactor); ok && c.Compacts() {
		a.compactor = c
	}
	return a
}

func (a *acker) remove(uid string, seq uint64) {
	a.mu.Lock()
	if seq > a.upTo[uid] {
		a.upTo[uid] = seq
	}
	if a.compactor != nil {
		a.settled = append(a.settled, seq)
	}
	a.mu.Unlock()
	a.signal()
}

// putBack returns what a flush could not purge, for the next one (without kicking it: the caller
// decides when to try again).
func (a *acker) putBack(upTo map[string]uint64, settled []uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for uid, seq := range upTo {
		if seq > a.upTo[uid] {
			a.upTo[uid] = seq
		}
	}
	a.settled = append(a.settled, settled...)
}

func (a *acker) signal() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// compactWait is how long settlements wait for the store's compaction to reach them before they
// are removed queue by queue. The compaction stops at the oldest note still queued, which under
// load is one delivery's latency old; a crash meanwhile sends them again after the restart unless
// the delivery log holds their records (resume.go), as for a crash before any flush.
const compactWait = 500 * time.Millisecond

// ackerEvery is the least time between two flushes, so that settlements gather: at low rates each
// delivery would otherwise cost a purge of its own, and a purge that empties the notes stream makes
// JetStream replace its write block (a file created, another removed, a tombstone written) — a
// tenth of the dispatcher's CPU at 500 deliveries/s. Release does not wait for it (settle).
const ackerEvery = 100 * time.Millisecond

func (a *acker) run(ctx context.Context) {
	// Settle what is left with a short grace period so that a clean shutdown does not cause
	// re-deliveries.
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		a.flush(flushCtx, true)
		cancel()
	}()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		}
		if wait := a.every - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		last = time.Now()
		a.flush(ctx, false)
	}
}

// flush purges what was settled; unless now, settlements the compaction has not reached wait for
// a later flush (for at most compactWait).
func (a *acker) flush(ctx context.Context, now bool) {
	a.flushing <- struct{}{}
	defer func() { <-a.flushing }()
	a.mu.Lock()
	upTo, settled := a.upTo, a.settled
	a.upTo, a.settled = map[string]uint64{}, nil
	a.mu.Unlock()
	a.purge(ctx, upTo, settled, now)
}

// settle purges the settled notes of uids now, and returns once they are purged or ctx ended (NATS
// out of reach: the next owner sends them again, with the same ids): a partition given up must
// leave its queues without notes already delivered.
func (a *acker) settle(ctx context.Context, uids []string) {
	select {
	case a.flushing <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-a.flushing }()
	upTo := map[string]uint64{}
	a.mu.Lock()
	for _, uid := range uids {
		if seq, ok := a.upTo[uid]; ok {
			upTo[uid] = seq
			delete(a.upTo, uid)
		}
	}
	a.mu.Unlock()
	a.purge(ctx, upTo, nil, true)
}

// purge removes the notes up to upTo from their queues, once the delivery log stored their
// records; what fails is put back for the next flush. With a compactor, the compaction removes the
// settled notes first, and a queue's settlements it has not reached wait for a later flush unless
// now, or unless they waited compactWait already.
func (a *acker) purge(ctx context.Context, upTo map[string]uint64, settled []uint64, now bool) {
	if len(upTo) == 0 && len(settled) == 0 {
		return
	}
	if a.rec != nil {
		// Unless now, the log's next tick: its records gather meanwhile.
		barrier := a.rec.BarrierAtTick
		switch {
		case now && len(settled) == 0:
			// The records of these queues only: the others' go on gathering.
			uids := slices.Collect(maps.Keys(upTo))
			barrier = func(ctx context.Context) error { return a.rec.BarrierFor(ctx, uids...) }
		case now:
			barrier = a.rec.Barrier
		}
		if err := barrier(ctx); err != nil {
			if ctx.Err() == nil {
				a.log.Error(err, "Waiting for the delivery log; settled notifications stay queued meanwhile")
				time.AfterFunc(time.Second, a.signal)
			}
			a.putBack(upTo, settled)
			return
		}
	}
	var compacted uint64
	if a.compactor != nil {
		// The store keeps what it was told even when its purge fails: the next flush retries it.
		below, held, err := a.compactor.Compact(ctx, settled)
		if err != nil && ctx.Err() == nil {
			a.log.Error(err, "Compacting the queues; settled notifications are removed queue by queue meanwhile")
		}
		// A compaction held by a note queued for long (a receiver down) does not come soon:
		// waiting for it would only make each queue's purge longer.
		compacted, now = below, now || err != nil || held >= a.wait
	}
	at, later := time.Now(), map[string]uint64{}
	for uid, seq := range upTo {
		if seq < compacted {
			a.compactor.Removed(uid, seq)
			delete(a.waiting, uid)
			continue
		}
		if a.compactor != nil && !now {
			since, ok := a.waiting[uid]
			if !ok {
				since = at
				a.waiting[uid] = at
			}
			if at.Sub(since) < a.wait {
				later[uid] = seq
				continue
			}
		}
		delete(a.waiting, uid)
		if err := a.store.Remove(ctx, uid, seq); err != nil && ctx.Err() == nil {
			a.log.Error(err, "Removing settled notifications", "uid", uid)
			a.remove(uid, seq) // try again with the next batch
		}
	}
	if len(later) > 0 {
		a.putBack(later, nil)
		// The next flush comes within every even if nothing else is settled meanwhile.
		a.signal()
	}
}
