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

package gcheadroom

import (
	"context"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"testing"
	"time"
)

const mib = 1 << 20

func TestPercentKeepsTheHeadroomInBytes(t *testing.T) {
	tu := &Tuner{Headroom: 128 * mib, Max: 100}
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 100}, {64 * mib, 100}, {128 * mib, 100}, {200 * mib, 64}, {256 * mib, 50}, {512 * mib, 25}, {4096 * mib, 25},
	} {
		if got := tu.Percent(c.live); got != c.want {
			t.Errorf("live %d MiB: GOGC %d, want %d", c.live/mib, got, c.want)
		}
	}
	// Never above the runtime's own setting, nor below it when that is under MinPercent.
	if got := (&Tuner{Headroom: 128 * mib, Max: 50}).Percent(64 * mib); got != 50 {
		t.Errorf("Max 50: GOGC %d", got)
	}
	if got := (&Tuner{Headroom: 128 * mib, Max: 10}).Percent(4096 * mib); got != 10 {
		t.Errorf("Max 10: GOGC %d", got)
	}
}

// GOGC is set when it moves by 5 points or more, and back to the runtime's setting as the live heap
// shrinks.
func TestAdjustSetsOnChange(t *testing.T) {
	var live uint64
	var sets []int
	tu := &Tuner{Headroom: 100 * mib, Max: 100, Live: func() uint64 { return live }, Set: func(p int) { sets = append(sets, p) }}
	for _, l := range []uint64{10, 150, 152, 160, 200, 300, 90} {
		live = l * mib
		tu.Adjust()
	}
	if want := []int{100, 66, 50, 33, 100}; !slices.Equal(sets, want) {
		t.Fatalf("set %v, want %v", sets, want)
	}
}

func TestNewLeavesAnExplicitSettingAlone(t *testing.T) {
	if New(0) != nil {
		t.Error("a Tuner for headroom 0")
	}
	t.Setenv("GOGC", "80")
	if New(128*mib) != nil {
		t.Error("a Tuner although GOGC is set")
	}
}

// Against the real runtime: a live heap four times the headroom gets GOGC 25.
func TestTunerLowersTheRuntimesGOGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tu := New(16 * mib)
	if tu == nil {
		t.Skip("GOGC is set in the environment")
	}
	held := make([]byte, 64*mib)
	for i := range held {
		held[i] = byte(i)
	}
	runtime.GC()
	if got := tu.Adjust(); got != MinPercent {
		t.Fatalf("GOGC %d with %d MiB live, want %d", got, tu.Live()/mib, MinPercent)
	}
	if got := debug.SetGCPercent(100); got != MinPercent {
		t.Fatalf("the runtime's GOGC is %d", got)
	}
	runtime.KeepAlive(held)
}

// The memory limit is the heap's goal at the GOGC set (at least the headroom), plus the runtime's
// other memory, over 95 %, plus LimitSlack; never above the ceiling; set when it moves by a MiB or
// more.
func TestLimitFollowsTheGoal(t *testing.T) {
	var live, other uint64
	var limits []int64
	tu := &Tuner{Headroom: 100 * mib, Max: 100, Live: func() uint64 { return live }, Set: func(int) {},
		Ceiling: 400 * mib, Other: func() uint64 { return other }, SetLimit: func(n int64) { limits = append(limits, n) }}
	bound := func(goal, other uint64) int64 { return int64((goal+other)*100/95 + LimitSlack) }
	for _, c := range []struct {
		live, other uint64
		want        int64 // 0: not set
	}{
		{0, 30 * mib, bound(100*mib, 30*mib)},         // before the first collection: the headroom
		{20 * mib, 30 * mib, 0},                       // a small heap: still the headroom
		{70 * mib, 30 * mib, bound(140*mib, 30*mib)},  // GOGC 100: twice the live heap
		{70*mib + 100<<10, 30 * mib, 0},               // moved by less than a MiB
		{200 * mib, 28 * mib, bound(300*mib, 28*mib)}, // GOGC 50: the live heap and the headroom
		{260 * mib, 40 * mib, 400 * mib},              // above the ceiling
		{270 * mib, 40 * mib, 0},                      // still the ceiling
		{60 * mib, 20 * mib, bound(120*mib, 20*mib)},  // back down as the heap shrinks
	} {
		live, other = c.live, c.other
		n := len(limits)
		tu.Adjust()
		switch {
		case c.want == 0 && len(limits) != n:
			t.Errorf("live %d KiB: limit set to %d", c.live>>10, limits[n])
		case c.want != 0 && (len(limits) != n+1 || limits[n] != c.want):
			t.Errorf("live %d KiB: limits %v, want %d last", c.live>>10, limits, c.want)
		}
	}
}

// A target holds the limit while the heap's goal under it leaves a quarter of the live heap as
// garbage (GOGC 25); past that the limit follows the live heap at that GOGC, up to the ceiling.
func TestTargetHoldsTheLimitDownToGOGC25(t *testing.T) {
	tu := &Tuner{Headroom: 100 * mib, Max: 100, Ceiling: 400 * mib, Target: 200 * mib}
	bound := func(goal, other uint64) int64 { return int64((goal+other)*100/95 + LimitSlack) }
	for _, c := range []struct {
		live, other uint64
		want        int64
	}{
		{0, 30 * mib, bound(100*mib, 30*mib)},                 // under the target: as without one
		{50 * mib, 30 * mib, bound(100*mib, 30*mib)},          // still under it
		{90 * mib, 30 * mib, 200 * mib},                       // the goal (180 MiB) would pass it: the target
		{120 * mib, 30 * mib, 200 * mib},                      // GOGC 25 still fits under it
		{150 * mib, 30 * mib, bound(187*mib+512<<10, 30*mib)}, // it does not: GOGC 25's goal
		{380 * mib, 40 * mib, 400 * mib},                      // and never above the ceiling
	} {
		if got := tu.Limit(c.live, tu.Percent(c.live), c.other); got != c.want {
			t.Errorf("live %d MiB, other %d MiB: limit %.1f MiB, want %.1f", c.live/mib, c.other/mib, float64(got)/mib, float64(c.want)/mib)
		}
	}
	// Without a target the same heaps get the goal's bound.
	tu.Target = 0
	if got, want := tu.Limit(90*mib, tu.Percent(90*mib), 30*mib), bound(180*mib, 30*mib); got != want {
		t.Errorf("no target, live 90 MiB: limit %.1f MiB, want %.1f", float64(got)/mib, float64(want)/mib)
	}
}

// Against the real runtime: the limit follows the live heap, and Run puts the ceiling back when it
// ends; GOMEMLIMIT in the environment leaves the limit alone.
func TestTunerSetsTheRuntimesMemoryLimit(t *testing.T) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("GOGC or GOMEMLIMIT is set in the environment")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	debug.SetMemoryLimit(1 << 40)
	tu := New(16 * mib)
	if tu.Ceiling != 1<<40 {
		t.Fatalf("ceiling %d, want the limit in force", tu.Ceiling)
	}
	held := make([]byte, 64*mib)
	for i := range held {
		held[i] = byte(i)
	}
	runtime.GC()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tu.Run(ctx, time.Hour); close(done) }()
	// The first adjustment is made at once; wait for it by its effect.
	deadline := time.Now().Add(10 * time.Second)
	for debug.SetMemoryLimit(-1) == 1<<40 && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	limit := debug.SetMemoryLimit(-1)
	// 64 MiB live at GOGC 25: an 80 MiB goal, and the runtime's other memory.
	if limit < 80*mib*100/95 || limit > 200*mib {
		t.Errorf("memory limit %d MiB with 64 MiB live", limit/mib)
	}
	cancel()
	<-done
	if got := debug.SetMemoryLimit(-1); got != 1<<40 {
		t.Errorf("memory limit %d after Run ended, want the ceiling back", got)
	}
	runtime.KeepAlive(held)
	t.Setenv("GOMEMLIMIT", "1GiB")
	if tu := New(16 * mib); tu.Ceiling != 0 {
		t.Errorf("with GOMEMLIMIT set the Tuner manages the limit (ceiling %d)", tu.Ceiling)
	}
}
