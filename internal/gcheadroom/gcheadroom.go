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
}

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
	return &Tuner{Headroom: headroom, Max: setting, Live: func() uint64 { return metric("/gc/heap/live:bytes") },
		Set: func(p int) { debug.SetGCPercent(p) }}
}

// Percent returns the GOGC for a live heap of live bytes.
func (t *Tuner) Percent(live uint64) int {
	if live == 0 {
		return t.Max
	}
	p := t.Headroom * 100 / live
	return int(max(min(p, uint64(t.Max)), uint64(min(MinPercent, t.Max))))
}

// Adjust sets GOGC for the current live heap, when it moved by 5 points or more since the last
// setting (each setting makes the runtime recompute its pacing).
func (t *Tuner) Adjust() int {
	p := t.Percent(t.Live())
	if t.last == 0 || p-t.last >= 5 || t.last-p >= 5 || p == t.Max && t.last != t.Max {
		t.Set(p)
		t.last = p
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
			return
		case <-tick.C:
		}
	}
}

// metric reads one of the runtime's uint64 metrics: the live heap the last collection marked
// (/gc/heap/live:bytes), the GOGC in force (/gc/gogc:percent).
func metric(name string) uint64 {
	sample := []metrics.Sample{{Name: name}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return sample[0].Value.Uint64()
}
