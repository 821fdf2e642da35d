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
	"time"

	"golang.org/x/time/rate"

	"github.com/hookline/hookline/internal/keyrate"
)

// Defaults of each namespace's budget of notifications its replays queue again: a replay of up to
// DefaultReplayMaxSelection at once, then 25,000 a minute.
const (
	DefaultReplayNotesPerMinute = 25_000
	DefaultReplayNotesBurst     = DefaultReplayMaxSelection
)

// notesBudget is each namespace's budget of notifications queued again by its replays. Queueing
// costs the shared dispatcher a stored note, a "queued again" record and, unless delivered, a
// cancellation or a drop with its record; a tenant creating replays, deleting each once queued,
// and replaying what the deletions cancelled, queued hundreds of thousands a minute with only the
// log reads budgeted. A replay starts selecting only while its namespace's balance is above zero,
// and is then charged for everything it queues (the balance may go below zero: a replay, once
// started, queues its whole selection, so that a resumed one never finds half of it queued).
type notesBudget struct {
	burst    int
	limiters *keyrate.Limiters
}

func newNotesBudget(perMinute float64, burst int) *notesBudget {
	// Idle long enough to be full again, a namespace's limiter is forgotten: that changes nothing.
	full := time.Duration(float64(burst)/perMinute*float64(time.Minute)) + time.Minute
	return &notesBudget{burst: burst, limiters: keyrate.New(rate.Limit(perMinute/60), burst, full, 4096)}
}

// wait returns how long namespace's replays wait before one may start selecting (0: now).
func (b *notesBudget) wait(namespace string, now time.Time) time.Duration {
	lim := b.limiters.Get(namespace)
	tokens := lim.TokensAt(now)
	if tokens > 0 {
		return 0
	}
	return time.Duration((1 - tokens) / float64(lim.Limit()) * float64(time.Second))
}

// charge takes n notifications queued from namespace's balance at now, below zero if need be (a
// reservation is never cancelled; one larger than the burst would be refused, hence the parts).
func (b *notesBudget) charge(namespace string, n int, now time.Time) {
	lim := b.limiters.Get(namespace)
	for n > 0 {
		k := min(n, b.burst)
		lim.ReserveN(now, k)
		n -= k
	}
}
