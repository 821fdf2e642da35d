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

// Package gcheadroom bounds the garbage the collector lets grow between cycles in bytes, not only
// as a share of the live heap. With GOGC=100 the heap may reach twice the live heap before a
// collection: cheap while the live heap is small, but a dispatcher draining a large backlog holds
// a few hundred MB live (JetStream's block buffers, the queues' read-ahead), and twice that is
// what its resident memory becomes. A Tuner lowers GOGC as the live heap grows, so that the
// headroom stays near a fixed number of bytes; it never raises GOGC above the runtime's setting.
//
// It also keeps the Go memory limit just above what that GOGC lets the process hold (the heap's
// goal and the runtime's other memory), so that the heap's free pages go back to the system as
// soon as the heap shrinks below its goal. Without a limit the runtime's scavenger keeps free
// pages up to a tenth of the heap's goal and returns the rest slowly: 20-45 MB of a draining
// dispatcher's resident memory were such pages. The limit never drives the collector: it sits
// above the goal, and follows it as the live heap grows.
//
// A Target, when set, is a soft bound on that memory: as the process nears it the limit stays at
// the target and the collector works harder, until the heap's garbage is down to a quarter of the
// live heap (GOGC 25, MinPercent); a live heap larger than that makes the limit follow it again,
// so a target set too low costs collector CPU within that bound, never a collector that runs
// without pause.
package gcheadroom

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// MinPercent is the lowest GOGC a Tuner sets: below it the collector's CPU grows faster than the
// memory it saves (session 15 of docs/performance.md: GOGC=25 cost a drain 7 % of its rate).
const MinPercent = 25

// Tuner sets GOGC from the live heap: Headroom × 100 / live, between MinPercent and Max.
type Tuner struct {
	// Headroom is the garbage, in bytes, the heap may grow by before a collection.
	Headroom uint64
	// Max is the highest GOGC set: the runtime's own setting (100 by default).
	Max int
	// Live returns the live heap after the last collection; Set sets GOGC. Tests replace them.
	Live func() uint64
	Set  func(percent int)
	last int

	// Ceiling is the memory limit in force when the Tuner was made (math.MaxInt64: none): the
	// limit the Tuner sets never exceeds it, and it is put back when Run ends. 0: the Tuner leaves
	// the memory limit alone.
	Ceiling int64
	// Other returns the memory the runtime holds besides the heap's objects and free pages
	// (stacks, metadata, the unused parts of the heap's spans); SetLimit sets the memory limit.
	// Tests replace them.
	Other     func() uint64
	SetLimit  func(bytes int64)
	lastLimit int64

	// Target is a soft bound on the memory limit set (0: none): it is kept while the heap's goal
	// under it leaves at least MinPercent of the live heap as garbage, and given up above that.
	Target int64
}

// LimitSlack is what the memory limit leaves above the heap's goal and the runtime's other
// memory. With none, a limit under what the heap reaches between two adjustments makes the
// collector run without pause (a 1,000,000 drain: 35 % slower, and more garbage); 8 MiB cost it
// nothing measurable (docs/performance.md, session 23).
const LimitSlack = 8 << 20

// minGoal is the least heap goal the runtime uses (4 MB at GOGC=100, scaled by GOGC).
const minGoal = 4 << 20

// New returns a Tuner of the running program, or nil when headroom is 0 or the GOGC environment
// variable is set (the operator's explicit choice wins).
func New(headroom uint64) *Tuner {
	if headroom == 0 || os.Getenv("GOGC") != "" {
		return nil
	}
	setting := int(metric("/gc/gogc:percent"))
	if setting <= 0 {
		return nil
	}
	t := &Tuner{Headroom: headroom, Max: setting, Live: func() uint64 { return metric("/gc/heap/live:bytes") },
		Set: func(p int) { debug.SetGCPercent(p) }}
	if os.Getenv("GOMEMLIMIT") == "" {
		t.Ceiling = debug.SetMemoryLimit(-1)
		t.Other, t.SetLimit = otherMemory, func(n int64) { debug.SetMemoryLimit(n) }
	}
	return t
}

// Limit returns the memory limit for a live heap of live bytes collected at GOGC percent, with
// other bytes of the runtime's other memory: the heap's goal and the other memory with
// LimitSlack to spare, over 95 % (the runtime's scavenger keeps what is mapped under 95 % of
// the limit), and never above Ceiling. The goal counted is at least Headroom: a small heap that
// grows fast (a dispatcher starting on a large store) must not meet a limit set for its size a
// moment before, and below that the runtime's own scavenging goal is the stricter one anyway.
// Above Target, the limit is Target or the bound of a goal at MinPercent, whichever is higher.
func (t *Tuner) Limit(live uint64, percent int, other uint64) int64 {
	live = max(live, minGoal)
	bound := func(goal uint64) uint64 { return (goal+other)*100/95 + LimitSlack }
	n := bound(max(live*uint64(100+percent)/100, t.Headroom))
	if t.Target > 0 {
		n = min(n, max(uint64(t.Target), bound(live*uint64(100+t.least())/100)))
	}
	return int64(min(n, uint64(t.Ceiling)))
}

// Percent returns the GOGC for a live heap of live bytes.
func (t *Tuner) Percent(live uint64) int {
	if live == 0 {
		return t.Max
	}
	p := t.Headroom * 100 / live
	return int(max(min(p, uint64(t.Max)), uint64(t.least())))
}

// least is the lowest GOGC the Tuner sets, and the one a Target gives way at: MinPercent, or the
// runtime's own setting when that is lower.
func (t *Tuner) least() int { return min(MinPercent, t.Max) }

// Adjust sets GOGC for the current live heap, when it moved by 5 points or more since the last
// setting (each setting makes the runtime recompute its pacing).
func (t *Tuner) Adjust() int {
	live := t.Live()
	p := t.Percent(live)
	if t.last == 0 || p-t.last >= 5 || t.last-p >= 5 || p == t.Max && t.last != t.Max {
		t.Set(p)
		t.last = p
	}
	if t.Ceiling > 0 {
		// Moves under a MiB are left alone: each setting makes the runtime recompute its pacing.
		if n := t.Limit(live, t.last, t.Other()); n-t.lastLimit >= 1<<20 || t.lastLimit-n >= 1<<20 || n == t.Ceiling && t.lastLimit != n {
			t.SetLimit(n)
			t.lastLimit = n
		}
	}
	return t.last
}

// Run adjusts GOGC every interval until ctx ends, then puts back the runtime's setting.
func (t *Tuner) Run(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		t.Adjust()
		select {
		case <-ctx.Done():
			t.Set(t.Max)
			if t.Ceiling > 0 {
				t.SetLimit(t.Ceiling)
			}
			return
		case <-tick.C:
		}
	}
}

// metric reads one of the runtime's uint64 metrics: the live heap the last collection marked
// (/gc/heap/live:bytes), the GOGC in force (/gc/gogc:percent).
func metric(name string) uint64 { return read(name)[0] }

// read reads the runtime's uint64 metrics names in one call; 0 for one it does not have.
func read(names ...string) []uint64 {
	sample := make([]metrics.Sample, len(names))
	for i, n := range names {
		sample[i].Name = n
	}
	metrics.Read(sample)
	v := make([]uint64, len(sample))
	for i, s := range sample {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	return v
}

// otherMemory returns what the runtime has mapped and not released, less the heap's objects and
// free pages: goroutine stacks, the runtime's metadata, the unused parts of the heap's spans.
func otherMemory() uint64 {
	v := read("/memory/classes/total:bytes", "/memory/classes/heap/objects:bytes", "/memory/classes/heap/free:bytes",
		"/memory/classes/heap/released:bytes")
	if held := v[1] + v[2] + v[3]; v[0] > held {
		return v[0] - held
	}
	return 0
}
