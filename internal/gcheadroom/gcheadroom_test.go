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
	"runtime"
	"runtime/debug"
	"slices"
	"testing"
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
