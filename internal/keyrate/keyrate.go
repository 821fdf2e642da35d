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

// Package keyrate keeps a token-bucket rate limiter per key (a user, a namespace), each forgotten
// once it has been idle long enough to be full again, so that memory follows the keys in use.
package keyrate

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
)

// Limiters hands out one limiter per key.
type Limiters struct {
	limit rate.Limit
	burst int
	idle  time.Duration
	cache *utilcache.LRUExpireCache
	// mu makes Get's look-up and addition one step: two first uses of a key at once each made a
	// limiter of their own, and the one not kept lost its charge.
	mu sync.Mutex
}

// New returns limiters of limit events per second and burst, each kept for idle after its last
// use, at most size at once (the least recently used go first). idle should be at least the time
// an empty bucket takes to fill, or a busy key forgotten early starts again full.
func New(limit rate.Limit, burst int, idle time.Duration, size int) *Limiters {
	return &Limiters{limit: limit, burst: burst, idle: idle, cache: utilcache.NewLRUExpireCache(size)}
}

// Get returns key's limiter. It is kept for idle from this use on: the cache's expiry counts from
// when an entry was added, so it is added again at every use (a limiter kept from its creation
// only was full again every idle period, however busy its key).
func (l *Limiters) Get(key string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.cache.Get(key)
	if !ok {
		v = rate.NewLimiter(l.limit, l.burst)
	}
	l.cache.Add(key, v, l.idle)
	return v.(*rate.Limiter)
}
