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
	"math"
	"sync"
	"time"
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
	perSecond, burst float64

	mu       sync.Mutex
	balances map[string]notesBalance
}

type notesBalance struct {
	tokens float64
	at     time.Time
}

func newNotesBudget(perMinute float64, burst int) *notesBudget {
	return &notesBudget{perSecond: perMinute / 60, burst: float64(burst), balances: map[string]notesBalance{}}
}

// balanceLocked is namespace's balance at now.
func (b *notesBudget) balanceLocked(namespace string, now time.Time) float64 {
	nb, ok := b.balances[namespace]
	if !ok {
		return b.burst
	}
	return math.Min(b.burst, nb.tokens+now.Sub(nb.at).Seconds()*b.perSecond)
}

// wait returns how long namespace's replays wait before one may start selecting (0: now).
func (b *notesBudget) wait(namespace string, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	bal := b.balanceLocked(namespace, now)
	if bal > 0 {
		return 0
	}
	if b.perSecond <= 0 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration((-bal + 1) / b.perSecond * float64(time.Second))
}

// charge takes n notifications queued from namespace's balance at now.
func (b *notesBudget) charge(namespace string, n int, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bal := b.balanceLocked(namespace, now) - float64(n)
	if bal >= b.burst {
		delete(b.balances, namespace)
		return
	}
	b.balances[namespace] = notesBalance{tokens: bal, at: now}
	if len(b.balances) > 4096 {
		for ns := range b.balances {
			if b.balanceLocked(ns, now) >= b.burst {
				delete(b.balances, ns) // full again: as if never charged
			}
		}
	}
}
