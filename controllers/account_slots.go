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

import "sync"

// accountSlots bounds how many verifications run at once per account, like Acrobat Sign's limit of
// ten concurrent webhook creations per account. A full account does not block a worker: the caller
// reports the webhook as throttled and retries shortly, so other accounts keep flowing.
type accountSlots struct {
	limit int

	mu    sync.Mutex
	inUse map[string]int
}

func newAccountSlots(limit int) *accountSlots {
	return &accountSlots{limit: limit, inUse: map[string]int{}}
}

// tryAcquire takes a slot for account and reports whether it got one.
func (s *accountSlots) tryAcquire(account string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inUse[account] >= s.limit {
		return false
	}
	s.inUse[account]++
	return true
}

// release returns a slot taken by tryAcquire.
func (s *accountSlots) release(account string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inUse[account]--; s.inUse[account] <= 0 {
		delete(s.inUse, account)
	}
}
