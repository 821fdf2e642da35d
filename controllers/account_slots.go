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

package controllers

import (
	"sync"
	"time"
)

// accountSlots bounds how many verifications run at once per account, like Acrobat Sign's limit of
// ten concurrent webhook creations per account. A full account does not block a worker: the caller
// reports the webhook as throttled and retries shortly, so other accounts keep flowing.
//
// The namespaces bound to one account (a group each) share its slots in turns: while another
// namespace's webhook waits, a namespace at its share (the limit divided among the namespaces
// verifying or waiting) gets a free slot only if the free slots exceed what the waiting ones are
// still owed of their shares. Slots went to whoever asked first when one freed, so a tenant whose
// many webhooks kept changing (each change a verification, a success no backoff) held every slot,
// and another namespace's new webhook waited a minute per hundred of them, its events not routed
// meanwhile.
type accountSlots struct {
	limit int
	// waitFor is how long a refused webhook counts as waiting: well beyond the retry of a
	// throttled webhook (jittered up to twice ThrottleRetry), since a retry can come late when the
	// reconcile workers are busy verifying (up to the verification timeout each).
	waitFor time.Duration
	now     func() time.Time

	mu       sync.Mutex
	accounts map[string]*slotAccount
	// waiter is where each waiting webhook (by uid) is recorded, to forget it when it is deleted.
	waiter map[string]slotKey
}

// slotKey names a namespace of an account.
type slotKey struct{ account, ns string }

// slotAccount is one account's slots: in use, by namespace, and the webhooks refused lately, by
// namespace (a namespace waits while one of its webhooks does: one that got its slot no longer
// counts, the others still do).
type slotAccount struct {
	inUse   int
	byNS    map[string]int
	waiting map[string]map[string]time.Time // namespace → webhook uid → until when
	// pruneAt is when the lapsed waits are next forgotten all at once (each is forgotten when
	// met before that).
	pruneAt time.Time
}

func newAccountSlots(limit int, throttleRetry time.Duration, now func() time.Time) *accountSlots {
	return &accountSlots{limit: limit, waitFor: 10 * throttleRetry, now: now, accounts: map[string]*slotAccount{}, waiter: map[string]slotKey{}}
}

// tryAcquire takes a slot of account for webhook uid of namespace ns and reports whether it got
// one.
func (s *accountSlots) tryAcquire(account, ns, uid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[account]
	if a == nil {
		a = &slotAccount{byNS: map[string]int{}, waiting: map[string]map[string]time.Time{}}
		s.accounts[account] = a
	}
	now := s.now()
	if !now.Before(a.pruneAt) {
		s.pruneLocked(account, a, now)
		a.pruneAt = now.Add(s.waitFor)
	}
	// The namespaces sharing the slots: verifying, or waiting for one (ns among them).
	var others []string
	sharing := len(a.byNS)
	if a.byNS[ns] == 0 {
		sharing++
	}
	for w := range a.waiting {
		if w == ns || !s.waitingLocked(slotKey{account, w}, a, now) {
			continue
		}
		others = append(others, w)
		if a.byNS[w] == 0 {
			sharing++
		}
	}
	grant := a.inUse < s.limit
	if share := (s.limit + sharing - 1) / sharing; grant && a.byNS[ns] >= share {
		owed := 0
		for _, w := range others {
			owed += max(share-a.byNS[w], 0)
		}
		grant = s.limit-a.inUse > owed
	}
	k := slotKey{account, ns}
	if was, ok := s.waiter[uid]; ok && was != k {
		// Waiting elsewhere before (its namespace bound to another account since): not any more.
		if old := s.accounts[was.account]; old != nil {
			s.unwaitLocked(was, old, uid)
			if old != a {
				s.dropIdleLocked(was.account, old)
			}
		}
	}
	if !grant {
		if a.waiting[ns] == nil {
			a.waiting[ns] = map[string]time.Time{}
		}
		a.waiting[ns][uid] = now.Add(s.waitFor)
		s.waiter[uid] = k
		return false
	}
	s.unwaitLocked(k, a, uid)
	a.inUse++
	a.byNS[ns]++
	return true
}

// waitingLocked reports whether one of ns's webhooks still waits for a slot of a, forgetting those
// met whose wait lapsed (they stopped asking: verified meanwhile on a recorded verification,
// changed, deleted).
func (s *accountSlots) waitingLocked(k slotKey, a *slotAccount, now time.Time) bool {
	for uid, until := range a.waiting[k.ns] {
		if now.Before(until) {
			return true
		}
		s.unwaitLocked(k, a, uid)
	}
	return false
}

// pruneLocked forgets every lapsed wait of account a.
func (s *accountSlots) pruneLocked(account string, a *slotAccount, now time.Time) {
	for ns, m := range a.waiting {
		for uid, until := range m {
			if !now.Before(until) {
				s.unwaitLocked(slotKey{account, ns}, a, uid)
			}
		}
	}
}

// unwaitLocked forgets uid's wait in k (a is k's account).
func (s *accountSlots) unwaitLocked(k slotKey, a *slotAccount, uid string) {
	m := a.waiting[k.ns]
	if m == nil {
		return
	}
	delete(m, uid)
	if s.waiter[uid] == k {
		delete(s.waiter, uid)
	}
	if len(m) == 0 {
		delete(a.waiting, k.ns)
	}
}

// forget drops what is recorded of webhook uid (deleted): its wait, and its account's entry if
// that leaves nothing in it.
func (s *accountSlots) forget(uid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.waiter[uid]
	if !ok {
		return
	}
	if a := s.accounts[k.account]; a != nil {
		s.unwaitLocked(k, a, uid)
		s.dropIdleLocked(k.account, a)
	}
	delete(s.waiter, uid)
}

// release returns a slot taken by tryAcquire for ns.
func (s *accountSlots) release(account, ns string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[account]
	if a == nil {
		return
	}
	a.inUse--
	if a.byNS[ns]--; a.byNS[ns] <= 0 {
		delete(a.byNS, ns)
	}
	if a.inUse <= 0 {
		s.pruneLocked(account, a, s.now())
		s.dropIdleLocked(account, a)
	}
}

// dropIdleLocked forgets account a when nothing is in use or waiting.
func (s *accountSlots) dropIdleLocked(account string, a *slotAccount) {
	if a.inUse <= 0 && len(a.waiting) == 0 {
		delete(s.accounts, account)
	}
}
