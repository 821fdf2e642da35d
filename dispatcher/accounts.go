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
	"cmp"
	"sync"
	"sync/atomic"
	"time"

	utilcache "k8s.io/apimachinery/pkg/util/cache"
)

// Accounts is the account each webhook's namespace is bound to, by webhook uid, as the Syncer
// last saw it: every webhook, whatever its state and whichever dispatcher delivers it. The
// delivery log asks it who a webhook's records belong to (its share of the log's bound, the ids
// of queued notifications).
type Accounts struct {
	mu sync.RWMutex
	m  map[string]string // "": a webhook seen in a namespace never bound while this process ran
	// known is set once every webhook has been seen (the Syncer's first pass).
	known atomic.Bool
	// gone remembers the webhooks deleted while this process ran, for keepDeleted.
	gone *utilcache.LRUExpireCache
	// keepDeleted is how long a deletion is remembered: the delivery log's retention and a day
	// (set before the Syncer runs; 0: deletedRemembered).
	keepDeleted time.Duration
}

// Deleted reports whether uid was deleted while this process ran (the most recent
// maxDeletedRemembered, for the delivery log's retention).
func (a *Accounts) Deleted(uid string) bool {
	if a == nil {
		return false
	}
	a.mu.RLock()
	gone := a.gone
	a.mu.RUnlock()
	if gone == nil {
		return false
	}
	_, ok := gone.Get(uid)
	return ok
}

const (
	// maxDeletedRemembered bounds the deleted webhooks remembered.
	maxDeletedRemembered = 1 << 16
	// deletedRemembered is how long a deleted webhook is remembered without keepDeleted: the
	// delivery log's default retention and a day.
	deletedRemembered = 8 * 24 * time.Hour
)

// Known reports whether every webhook has been seen: before, Of does not know all of them.
func (a *Accounts) Known() bool { return a != nil && a.known.Load() }

// Of returns the account uid's namespace is bound to (the last one, if it is bound to none now);
// false for a webhook not seen, deleted, or never bound while this process ran.
func (a *Accounts) Of(uid string) (string, bool) {
	if a == nil {
		return "", false
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	account := a.m[uid]
	return account, account != ""
}

// Seen reports whether uid is a webhook the Syncer saw and has not seen deleted.
func (a *Accounts) Seen(uid string) bool {
	if a == nil {
		return false
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	_, ok := a.m[uid]
	return ok
}

// saw records that uid exists, in a namespace bound to account (bound) or to none now: then it
// keeps the account it had, its records still being that account's.
func (a *Accounts) saw(uid, account string, bound bool) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gone != nil {
		a.gone.Remove(uid) // seen again: it exists
	}
	if _, ok := a.m[uid]; ok && !bound {
		return
	}
	if a.m == nil {
		a.m = map[string]string{}
	}
	if !bound {
		account = ""
	}
	a.m[uid] = account
}

// forget drops uid, which was deleted.
func (a *Accounts) forget(uid string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.m, uid)
	if a.gone == nil {
		a.gone = utilcache.NewLRUExpireCache(maxDeletedRemembered)
	}
	a.gone.Add(uid, true, cmp.Or(a.keepDeleted, deletedRemembered))
}
