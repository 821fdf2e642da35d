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

	"k8s.io/apimachinery/pkg/types"
)

// backoff tracks failed verifications per webhook and hands out capped, doubling retry delays.
// It lives in memory: after a restart every failing webhook is simply verified once more.
type backoff struct {
	base, max time.Duration

	mu       sync.Mutex
	failures map[types.NamespacedName]int
}

func newBackoff(base, max time.Duration) *backoff {
	return &backoff{base: base, max: max, failures: map[types.NamespacedName]int{}}
}

// next records a failure of key and returns how long to wait before the next try.
func (b *backoff) next(key types.NamespacedName) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.failures[key]
	b.failures[key] = n + 1
	d := b.base
	for i := 0; i < n && d < b.max; i++ {
		d *= 2
	}
	return min(d, b.max)
}

// forget clears key's failures after a success, a deletion or a spec change that makes retrying moot.
func (b *backoff) forget(key types.NamespacedName) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.failures, key)
}
