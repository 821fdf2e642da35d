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
// namespace waits, one at its share (the limit divided among the namespaces verifying or waiting)
// is refused. Slots went to whoever asked first when one freed, so a tenant whose many webhooks
// kept changing (each change a verification, a success no backoff) held every slot, and another
// namespace's new webhook waited a minute per hundred of them, its events not routed meanwhile.
type accountSlots struct {
	limit int
	// waitFor is how long a refused namespace counts as waiting: longer than the retry of a
	// throttled webhook (jittered up to twice ThrottleRetry), so that it is still waiting when it
	// asks again.
	waitFor time.Duration
	now     func() time.Time

	mu       sync.Mutex
	accounts map[string]*slotAccount
}

// slotAccount is one account's slots: in use, by namespace, and the webhooks refused lately, by
// namespace (a namespace waits while one of its webhooks does: one that got its slot no longer
// counts, the others still do).
type slotAccount struct {
	inUse   int
	byNS    map[string]int
	waiting map[string]map[string]time.Time // namespace → webhook uid → until when
}

func newAccountSlots(limit int, throttleRetry time.Duration, now func() time.Time) *accountSlots {
	return &accountSlots{limit: limit, waitFor: 3 * throttleRetry, now: now, accounts: map[string]*slotAccount{}}
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
	// The namespaces sharing the slots: verifying, or waiting for one (ns among them).
	others, sharing := false, len(a.byNS)
	if a.byNS[ns] == 0 {
		sharing++
	}
	for w := range a.waiting {
		if w == ns || !waitingLocked(a, w, now) {
			continue
		}
		others = true
		if a.byNS[w] == 0 {
			sharing++
		}
	}
	share := (s.limit + sharing - 1) / sharing
	if a.inUse >= s.limit || others && a.byNS[ns] >= share {
		if a.waiting[ns] == nil {
			a.waiting[ns] = map[string]time.Time{}
		}
		a.waiting[ns][uid] = now.Add(s.waitFor)
		return false
	}
	if delete(a.waiting[ns], uid); len(a.waiting[ns]) == 0 {
		delete(a.waiting, ns)
	}
	a.inUse++
	a.byNS[ns]++
	return true
}

// waitingLocked reports whether one of ns's webhooks still waits for a slot of a, forgetting those
// whose wait lapsed (they stopped asking: verified meanwhile on a recorded verification, changed,
// deleted).
func waitingLocked(a *slotAccount, ns string, now time.Time) bool {
	for uid, until := range a.waiting[ns] {
		if now.Before(until) {
			return true
		}
		delete(a.waiting[ns], uid)
	}
	delete(a.waiting, ns)
	return false
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
	if a.inUse <= 0 && len(a.waiting) == 0 {
		delete(s.accounts, account)
	}
}
