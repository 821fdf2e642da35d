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

// Package route decides which webhooks receive an event (docs/architecture.md, step
// 3 of the data path): only webhooks in namespaces bound to the event's account; ACCOUNT scope
// always, GROUP when the group matches, USER when the initiating user matches, RESOURCE when type and
// id match; and only for subscribed events. Signers', CC'd and shared users' own webhooks never fire
// unless one of these rules matches.
package route

import (
	"hash/maphash"
	"sync"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// Target is a webhook as routing sees it.
type Target struct {
	UID       string
	Namespace string
	Name      string
	// AccountID and NamespaceGroup come from the namespace binding; NamespaceGroup, when set,
	// restricts the webhook to that group's events.
	AccountID      string
	NamespaceGroup string
	Scope          hooklinev1.Scope
	GroupID        string
	UserID         string
	Resource       *hooklinev1.WebhookResource
	Events         []hooklinev1.EventName
}

// Event is what routing needs of an event.
type Event struct {
	Name      string
	AccountID string
	GroupID   string
	UserID    string // initiator
	Resource  hooklinev1.WebhookResource
}

// Matches reports whether t receives ev.
func (t *Target) Matches(ev *Event) bool {
	if t.AccountID != ev.AccountID {
		return false
	}
	if t.NamespaceGroup != "" && t.NamespaceGroup != ev.GroupID {
		return false
	}
	switch t.Scope {
	case hooklinev1.ScopeAccount:
	case hooklinev1.ScopeGroup:
		if t.GroupID != ev.GroupID || ev.GroupID == "" {
			return false
		}
	case hooklinev1.ScopeUser:
		if t.UserID != ev.UserID || ev.UserID == "" {
			return false
		}
	case hooklinev1.ScopeResource:
		if t.Resource == nil || *t.Resource != ev.Resource {
			return false
		}
	default:
		return false
	}
	return hooklinev1.SubscriptionMatches(t.Events, ev.Name)
}

// Table is the set of routable webhooks, indexed by account. It is safe for concurrent use.
type Table struct {
	mu        sync.RWMutex
	byAccount map[string]map[string]*Target
	accountOf map[string]string
	// holds are read-locked by every Route call until its caller has queued its notifications, and
	// write-locked (briefly) by Withdraw: a barrier after which no one still acts on a removed
	// target. Accounts share them by hash, holdStripes of them: one for all made a tenant's
	// Withdraw (its Webhook's status.state is its to write) hold up every account's intake while
	// the events in flight were queued.
	holds [holdStripes]sync.RWMutex
}

// holdStripes is how many barriers the accounts share.
const holdStripes = 256

// holdSeed hashes accounts to their barrier.
var holdSeed = maphash.MakeSeed()

// holdsOf is account's barrier.
func (tb *Table) holdsOf(account string) *sync.RWMutex {
	return &tb.holds[maphash.String(holdSeed, account)%holdStripes]
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{byAccount: map[string]map[string]*Target{}, accountOf: map[string]string{}}
}

// Set adds or replaces a target.
func (tb *Table) Set(t *Target) {
	tb.mu.Lock()
	was, had := tb.deleteLocked(t.UID)
	m := tb.byAccount[t.AccountID]
	if m == nil {
		m = map[string]*Target{}
		tb.byAccount[t.AccountID] = m
	}
	m[t.UID] = t
	tb.accountOf[t.UID] = t.AccountID
	tb.mu.Unlock()
	if had && was != t.AccountID {
		// Moved to another account: the Route calls of the old one that returned it are waited
		// for, as by Withdraw, since a later Withdraw waits on the new account's barrier only.
		tb.waitForRoutes(was)
	}
}

// Withdraw removes the target with uid, if present, and then waits until every Route call that
// may have returned it has been released. Once Withdraw returns, nothing more is queued on behalf
// of the removed target, so its queue can be cancelled or removed without a late arrival slipping
// in behind (and being delivered under a binding or uid that is gone).
func (tb *Table) Withdraw(uid string) {
	tb.mu.Lock()
	acc, present := tb.deleteLocked(uid)
	tb.mu.Unlock()
	if present {
		// A target absent here was removed by an earlier Withdraw, which waited already. Only
		// its account's barrier: Route calls of other accounts never returned it.
		tb.waitForRoutes(acc)
	}
}

// waitForRoutes returns once every Route call of account under way when it was called has been
// released.
func (tb *Table) waitForRoutes(account string) {
	h := tb.holdsOf(account)
	h.Lock()
	h.Unlock() //nolint:staticcheck // an empty critical section is the barrier
}

// deleteLocked removes the target with uid, and returns the account it was in, if it was present.
func (tb *Table) deleteLocked(uid string) (account string, ok bool) {
	acc, ok := tb.accountOf[uid]
	if !ok {
		return "", false
	}
	delete(tb.accountOf, uid)
	if m := tb.byAccount[acc]; m != nil {
		delete(m, uid)
		if len(m) == 0 {
			delete(tb.byAccount, acc)
		}
	}
	return acc, true
}

// Route returns the targets that receive ev, like Match, and a release function that the caller
// must call once it has queued (or given up queueing) their notifications. Withdraw waits for it.
func (tb *Table) Route(ev *Event) (targets []*Target, release func()) {
	h := tb.holdsOf(ev.AccountID)
	h.RLock()
	return tb.Match(ev), h.RUnlock
}

// Hold returns the target with uid, if it is routable, and a release function like Route's: the
// caller queues a notification for it alone (a test notification), and Withdraw waits for that.
func (tb *Table) Hold(uid string) (t Target, release func(), ok bool) {
	tb.mu.RLock()
	acc, found := tb.accountOf[uid]
	tb.mu.RUnlock()
	if !found {
		return Target{}, func() {}, false
	}
	h := tb.holdsOf(acc)
	h.RLock()
	// Looked up again under the barrier: a Withdraw that removed it meanwhile did not wait for
	// this hold, and one that removes it from now on does.
	tb.mu.RLock()
	defer tb.mu.RUnlock()
	if tb.accountOf[uid] == acc {
		if p := tb.byAccount[acc][uid]; p != nil {
			return *p, h.RUnlock, true
		}
	}
	h.RUnlock()
	return Target{}, func() {}, false
}

// Match returns the targets that receive ev.
func (tb *Table) Match(ev *Event) []*Target {
	tb.mu.RLock()
	defer tb.mu.RUnlock()
	var out []*Target
	for _, t := range tb.byAccount[ev.AccountID] {
		if t.Matches(ev) {
			out = append(out, t)
		}
	}
	return out
}

// Len returns the number of targets.
func (tb *Table) Len() int {
	tb.mu.RLock()
	defer tb.mu.RUnlock()
	return len(tb.accountOf)
}

// Targets returns a snapshot of every target, for diagnostics and the syncer's sweep.
func (tb *Table) Targets() []Target {
	tb.mu.RLock()
	defer tb.mu.RUnlock()
	var out []Target
	for _, m := range tb.byAccount {
		for _, t := range m {
			out = append(out, *t)
		}
	}
	return out
}
