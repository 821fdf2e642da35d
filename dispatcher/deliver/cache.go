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
	"sync/atomic"
	"time"

	"github.com/hookline/hookline/dispatcher/event"
	"github.com/hookline/hookline/dispatcher/payload"
)

// eventOverhead is what a cached event holds besides its raw bytes and its prepared members: the
// decoded event's fields, the entry and its list element, and, for an event read from the store,
// the message's subject and headers around its bytes. TestEventCacheHoldsItsBudget measures it.
const eventOverhead = 768

// cachedEvent is a parsed event kept for building payloads.
type cachedEvent struct {
	seq     uint64
	ev      *event.Event
	created time.Time
	// size is what the event counts against the cache's budget: its raw bytes and eventOverhead,
	// and its members once prepared.
	size  int
	elem  *list.Element
	cache *eventCache // the cache holding it, for charging its members

	// The notification is read for payload building once, by the first attempt that needs it, and
	// shared by every webhook's attempts (see payload.Prepared).
	prepOnce sync.Once
	prep     *payload.Prepared
	prepErr  error
}

// prepared returns the event read for payload building.
func (c *cachedEvent) prepared() (*payload.Prepared, error) {
	c.prepOnce.Do(func() {
		c.prep, c.prepErr = payload.Prepare(payload.Event{ID: c.ev.ID, Event: c.ev.Event, AccountID: c.ev.AccountID, Notification: c.ev.Notification})
		if c.prep != nil {
			c.cache.charge(c, c.prep.Footprint())
		}
	})
	return c.prep, c.prepErr
}

// eventCache keeps recently accepted events parsed, within a byte budget, so that a fan-out to many
// webhooks and a healthy webhook's prompt delivery never go back to the store.
//
// An event larger than the whole budget (a 25 MB signed PDF) is kept in a slot of its own, the most
// recent such event only: its fan-out to many webhooks then reads and parses it once instead of
// once per attempt, and memory holds at most one of them besides the budget. Concurrent reads of
// one event are made once (load), so a fan-out that starts before the event is cached does not
// read it once per webhook either.
type eventCache struct {
	mu      sync.Mutex
	budget  int
	used    int
	m       map[uint64]*cachedEvent
	lru     *list.List
	big     *cachedEvent
	loading map[uint64]*eventLoad
	// hits and misses count the reads load answered from memory (a concurrent read of the same
	// event included) and from the store.
	hits, misses atomic.Uint64
}

// eventLoad is a read of an event from the store in progress; other callers wait for it.
type eventLoad struct {
	done chan struct{}
	ev   *cachedEvent
	err  error
}

func newEventCache(budget int) *eventCache {
	return &eventCache{budget: budget, m: map[uint64]*cachedEvent{}, lru: list.New(), loading: map[uint64]*eventLoad{}}
}

func (c *eventCache) put(e *cachedEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(e)
}

func (c *eventCache) putLocked(e *cachedEvent) {
	if e.size > c.budget {
		c.big = e
		return
	}
	if old, ok := c.m[e.seq]; ok {
		c.lru.MoveToFront(old.elem)
		return
	}
	e.elem = c.lru.PushFront(e)
	e.cache = c
	c.m[e.seq] = e
	c.used += e.size
	c.evictLocked()
}

// bytes returns what the cached events count against the budget.
func (c *eventCache) bytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// charge counts n more bytes for e (its members, once prepared), if it is still cached.
func (c *eventCache) charge(e *cachedEvent, n int) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[e.seq] != e {
		return
	}
	e.size += n
	c.used += n
	c.evictLocked()
}

// evictLocked lets the least recently used events go until the cache is within its budget.
func (c *eventCache) evictLocked() {
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
	return c.getLocked(seq)
}

func (c *eventCache) getLocked(seq uint64) (*cachedEvent, bool) {
	if c.big != nil && c.big.seq == seq {
		return c.big, true
	}
	e, ok := c.m[seq]
	if ok {
		c.lru.MoveToFront(e.elem)
	}
	return e, ok
}

// load returns event seq from the cache or, when it is not there, from read, which runs once
// however many callers ask for seq meanwhile.
func (c *eventCache) load(seq uint64, read func() (*cachedEvent, error)) (*cachedEvent, error) {
	c.mu.Lock()
	if e, ok := c.getLocked(seq); ok {
		c.mu.Unlock()
		c.hits.Add(1)
		return e, nil
	}
	if l := c.loading[seq]; l != nil {
		c.mu.Unlock()
		c.hits.Add(1)
		<-l.done
		return l.ev, l.err
	}
	c.misses.Add(1)
	l := &eventLoad{done: make(chan struct{})}
	c.loading[seq] = l
	c.mu.Unlock()

	l.ev, l.err = read()
	c.mu.Lock()
	if l.err == nil {
		c.putLocked(l.ev)
	}
	delete(c.loading, seq)
	c.mu.Unlock()
	close(l.done)
	return l.ev, l.err
}
