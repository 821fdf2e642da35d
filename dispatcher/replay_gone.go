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
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// replayPresentFor is how long Gone trusts that a replay it found present still is. The engine
// asks before every replayed attempt, and the informer cache's Get cost 3 % of a recover's CPU
// (docs/performance.md, session 27); a replay deleted meanwhile sends at most this long more (its
// reconcile on the deletion forgets it at once, which is usually sooner).
const replayPresentFor = 250 * time.Millisecond

// presentReplays remembers, per WebhookReplay, until when Gone takes it for present.
type presentReplays struct {
	mu    sync.Mutex
	until map[types.NamespacedName]time.Time
}

// present reports whether key was found present less than replayPresentFor before now.
func (p *presentReplays) present(key types.NamespacedName, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	until, ok := p.until[key]
	return ok && now.Before(until)
}

// found records that key was found present at now.
func (p *presentReplays) found(key types.NamespacedName, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.until == nil {
		p.until = map[types.NamespacedName]time.Time{}
	}
	if len(p.until) >= 1024 {
		// Replays come and go: what expired is dropped before the map grows further.
		for k, u := range p.until {
			if !now.Before(u) {
				delete(p.until, k)
			}
		}
	}
	p.until[key] = now.Add(replayPresentFor)
}

// forget drops what is remembered of key (deleted, or finished).
func (p *presentReplays) forget(key types.NamespacedName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.until, key)
}
