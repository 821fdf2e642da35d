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
	"testing"
	"time"
)

// TestScheduleMatchesAcrobatSign checks the design's table: attempt times in minutes after the first
// failure 1, 3, 7, 15, 31, 63, 127, 255, 511, 1023, 1743, 2463, 3183, 3903, then the 15th clamped
// to the 72-hour mark, and a drop after it.
func TestScheduleMatchesAcrobatSign(t *testing.T) {
	p := DefaultPolicy()
	created := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	want := []int{1, 3, 7, 15, 31, 63, 127, 255, 511, 1023, 1743, 2463, 3183, 3903, 4320}
	scheduled := created // the first attempt happens at creation and fails
	for i, minutes := range want {
		next, drop := p.NextAttempt(created, scheduled, scheduled, i+1)
		if drop {
			t.Fatalf("dropped after %d failures, want retry at minute %d", i+1, minutes)
		}
		if got := next.Sub(created); got != time.Duration(minutes)*time.Minute {
			t.Fatalf("retry %d at minute %v, want %d", i+1, got.Minutes(), minutes)
		}
		scheduled = next
	}
	if _, drop := p.NextAttempt(created, scheduled, scheduled, len(want)+1); !drop {
		t.Fatal("not dropped after the 15th retry at the 72-hour mark")
	}
}

func TestDropWhenRetriesRunOutBeforeTheDeadline(t *testing.T) {
	p := Policy{RetryBase: time.Second, RetryCap: time.Second, MaxRetries: 3, DropAfter: time.Hour}
	created := time.Now()
	s := created
	for i := 1; i <= 3; i++ {
		next, drop := p.NextAttempt(created, s, s, i)
		if drop {
			t.Fatalf("dropped after %d failures", i)
		}
		s = next
	}
	if _, drop := p.NextAttempt(created, s, s, 4); !drop {
		t.Fatal("a fourth failure with MaxRetries 3 must drop")
	}
}

func TestLateStartedNotificationKeepsItsOwnClock(t *testing.T) {
	p := DefaultPolicy()
	created := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	// Waited 71h50m behind a failing head, then failed once: the retry is clamped to its 72 h mark.
	first := created.Add(71*time.Hour + 50*time.Minute)
	next, drop := p.NextAttempt(created, first, first, 1)
	if drop || !next.Equal(first.Add(time.Minute)) {
		t.Fatalf("next=%s drop=%v", next, drop)
	}
	next, drop = p.NextAttempt(created, created.Add(71*time.Hour+59*time.Minute), created.Add(71*time.Hour+59*time.Minute), 5)
	if drop || !next.Equal(created.Add(72*time.Hour)) {
		t.Fatalf("clamp: next=%s drop=%v", next, drop)
	}
	if !p.Expired(created, created.Add(72*time.Hour+time.Second)) || p.Expired(created, created.Add(72*time.Hour)) {
		t.Fatal("Expired disagrees with the 72-hour mark")
	}
}
