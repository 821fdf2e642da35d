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
	"container/list"
	"sync"
	"time"

	"github.com/hookline/hookline/dispatcher/ingest"
)

// cachedEvent is a parsed event kept for building payloads.
type cachedEvent struct {
	seq     uint64
	ev      *ingest.Event
	created time.Time
	size    int
	elem    *list.Element
}

// eventCache keeps recently accepted events parsed, within a byte budget, so that a fan-out to many
// webhooks and a healthy webhook's prompt delivery never go back to the store.
type eventCache struct {
	mu     sync.Mutex
	budget int
	used   int
	m      map[uint64]*cachedEvent
	lru    *list.List
}

func newEventCache(budget int) *eventCache {
	return &eventCache{budget: budget, m: map[uint64]*cachedEvent{}, lru: list.New()}
}

func (c *eventCache) put(e *cachedEvent) {
	if e.size > c.budget {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[e.seq]; ok {
		c.lru.MoveToFront(old.elem)
		return
	}
	e.elem = c.lru.PushFront(e)
	c.m[e.seq] = e
	c.used += e.size
	for c.used > c.budget {
		last := c.lru.Back()
		victim := last.Value.(*cachedEvent)
		c.lru.Remove(last)
		delete(c.m, victim.seq)
		c.used -= victim.size
	}
}

func (c *eventCache) get(seq uint64) (*cachedEvent, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[seq]
	if ok {
		c.lru.MoveToFront(e.elem)
	}
	return e, ok
}
