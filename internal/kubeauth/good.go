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

package kubeauth

import (
	"slices"
	"strings"
	"sync"
	"time"

	utilcache "k8s.io/apimachinery/pkg/util/cache"
)

// goodPerOwner bounds the tokens remembered as accepted for one owner (a ServiceAccount's
// namespace, or a user): a tenant may mint ServiceAccount tokens at will, and with one list for
// everybody, its new tokens pushed every other user's out (whose next request then needed a review
// from the budget of new tokens, which the same tenant kept spent).
const goodPerOwner = 128

// goodTokens holds the digests of the tokens the API server accepted within GoodFor, at most size
// in all and goodPerOwner per owner. Past either bound the owner's own least recently accepted
// goes; past the whole, that of the owner holding the most.
type goodTokens struct {
	clk  utilcache.Clock
	size int

	mu      sync.Mutex
	byKey   map[[32]byte]goodToken
	byOwner map[string][][32]byte // oldest first; may hold keys since removed or re-added
}

type goodToken struct {
	owner string
	until time.Time
}

func newGoodTokens(size int, clk utilcache.Clock) *goodTokens {
	return &goodTokens{clk: clk, size: size, byKey: map[[32]byte]goodToken{}, byOwner: map[string][][32]byte{}}
}

// has reports whether key was accepted within GoodFor.
func (g *goodTokens) has(key [32]byte) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, ok := g.byKey[key]
	return ok && g.clk.Now().Before(t.until)
}

// add remembers key as accepted now, for user.
func (g *goodTokens) add(key [32]byte, user string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	owner := OwnerOf(user)
	if t, ok := g.byKey[key]; ok && t.owner == owner {
		// Accepted again: the newest of its owner's, so that a token in use outlasts idle ones.
		g.byKey[key] = goodToken{owner: owner, until: g.clk.Now().Add(GoodFor)}
		list := g.byOwner[owner]
		if i := slices.Index(list, key); i >= 0 {
			g.byOwner[owner] = append(slices.Delete(list, i, i+1), key)
		}
		return
	}
	g.removeLocked(key)
	if g.countLocked(owner) >= goodPerOwner {
		g.evictLocked(owner)
	}
	if len(g.byKey) >= g.size {
		for o := range g.byOwner {
			g.compactLocked(o) // the expired ones first
		}
		if len(g.byKey) >= g.size {
			g.evictLocked(g.largestLocked())
		}
	}
	g.byKey[key] = goodToken{owner: owner, until: g.clk.Now().Add(GoodFor)}
	g.byOwner[owner] = append(g.byOwner[owner], key)
}

// remove forgets key (revoked).
func (g *goodTokens) remove(key [32]byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.removeLocked(key)
}

func (g *goodTokens) removeLocked(key [32]byte) {
	t, ok := g.byKey[key]
	if !ok {
		return
	}
	delete(g.byKey, key)
	g.compactLocked(t.owner)
}

// countLocked is how many of owner's keys are held, after dropping the stale ones from its list.
func (g *goodTokens) countLocked(owner string) int {
	g.compactLocked(owner)
	return len(g.byOwner[owner])
}

// compactLocked drops from owner's list the keys no longer held for it, and the expired ones.
func (g *goodTokens) compactLocked(owner string) {
	now := g.clk.Now()
	list := g.byOwner[owner]
	kept := list[:0]
	for _, k := range list {
		if t, ok := g.byKey[k]; ok && t.owner == owner {
			if now.Before(t.until) {
				kept = append(kept, k)
			} else {
				delete(g.byKey, k)
			}
		}
	}
	if len(kept) == 0 {
		delete(g.byOwner, owner)
		return
	}
	g.byOwner[owner] = kept
}

// evictLocked forgets owner's oldest key.
func (g *goodTokens) evictLocked(owner string) {
	list := g.byOwner[owner]
	if len(list) == 0 {
		return
	}
	delete(g.byKey, list[0])
	g.compactLocked(owner)
}

// largestLocked returns the owner holding the most keys.
func (g *goodTokens) largestLocked() string {
	best, n := "", -1
	for owner, list := range g.byOwner {
		if len(list) > n || len(list) == n && owner < best {
			best, n = owner, len(list)
		}
	}
	return best
}

// OwnerOf is whose share a token of user counts in: a ServiceAccount's namespace (its tenant may
// create ServiceAccounts at will), or the user.
func OwnerOf(user string) string {
	if rest, ok := strings.CutPrefix(user, "system:serviceaccount:"); ok {
		if ns, name, ok := strings.Cut(rest, ":"); ok && ns != "" && name != "" {
			return "namespace/" + ns
		}
	}
	return "user/" + user
}
