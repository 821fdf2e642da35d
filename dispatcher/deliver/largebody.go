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
	"context"
	"sync"

	"golang.org/x/sync/semaphore"
)

// largeTurns is the memory for large bodies (Config.LargeBodyBytes), of which one account holds at
// most half: without the share, an account whose receivers take their time to answer (up to the
// attempt's timeout) held the whole of it with a few 10 MB bodies, and every other account's large
// notifications waited behind them, each holding a slot of its account's concurrency meanwhile.
type largeTurns struct {
	all   *semaphore.Weighted
	share int64

	mu       sync.Mutex
	accounts map[string]*accountTurns
}

// accountTurns is one account's share, kept while someone uses or waits for it.
type accountTurns struct {
	sem   *semaphore.Weighted
	users int
}

func newLargeTurns(size int64) *largeTurns {
	return &largeTurns{all: semaphore.NewWeighted(size), share: max(size/2, 1), accounts: map[string]*accountTurns{}}
}

// acquire waits for w bytes of account's share and of the whole, and returns their release.
func (l *largeTurns) acquire(ctx context.Context, account string, w int64) (release func(), err error) {
	a, done := l.enter(account)
	aw := min(w, l.share)
	if err := a.sem.Acquire(ctx, aw); err != nil {
		done()
		return nil, err
	}
	if err := l.all.Acquire(ctx, w); err != nil {
		a.sem.Release(aw)
		done()
		return nil, err
	}
	return func() { l.all.Release(w); a.sem.Release(aw); done() }, nil
}

// tryAcquire is acquire without waiting: ok is false when either has no room now.
func (l *largeTurns) tryAcquire(account string, w int64) (release func(), ok bool) {
	a, done := l.enter(account)
	aw := min(w, l.share)
	if !a.sem.TryAcquire(aw) {
		done()
		return nil, false
	}
	if !l.all.TryAcquire(w) {
		a.sem.Release(aw)
		done()
		return nil, false
	}
	return func() { l.all.Release(w); a.sem.Release(aw); done() }, true
}

// enter returns account's share, counted as used until done.
func (l *largeTurns) enter(account string) (*accountTurns, func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.accounts[account]
	if a == nil {
		a = &accountTurns{sem: semaphore.NewWeighted(l.share)}
		l.accounts[account] = a
	}
	a.users++
	return a, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if a.users--; a.users == 0 {
			delete(l.accounts, account)
		}
	}
}
