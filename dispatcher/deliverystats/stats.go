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

// Package deliverystats answers a webhook's deliveries, failures and attempt latency over the last
// 24 hours or 7 days, for the console's chart. It does not read the whole delivery log per view:
// the log's stream interleaves every webhook's records, so a full read costs what all webhooks
// wrote. Instead a bounded LRU cache keeps, per webhook, hourly sums and the stream sequence read
// to; the first view reads the webhook's last 7 days once, every later view only the records
// written since (deliverylog.Log.ScanFrom). A webhook evicted from the cache is read again in full
// when next viewed.
package deliverystats

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"

	"k8s.io/utils/lru"

	"github.com/hookline/hookline/internal/deliveries"
)

// Source reads a webhook's records from a stream sequence on (deliverylog.Log).
type Source interface {
	ScanFrom(ctx context.Context, uid string, since time.Time, from uint64, fn func(seq uint64, rec deliveries.Record) error) (next uint64, err error)
}

// DefaultSize is how many webhooks the cache keeps by default: an entry holds at most 169 hourly
// sums (about 8 KiB), so the default costs at most a few MiB.
const DefaultSize = 512

// keep is how far back an entry's sums reach: the longest window and the hour it starts in.
const keep = 7*24*time.Hour + time.Hour

// Cache keeps per-webhook sums. Its zero value is not usable: use New.
//
// One namespace's webhooks hold at most a share of it (share): a tenant with more Webhooks than
// the cache holds, asking for their figures in turn, evicted every other tenant's entries, whose
// next view read a week of records again; beyond its share, a namespace's own least recently used
// entry goes instead.
type Cache struct {
	src   Source
	now   func() time.Time
	share int

	mu      sync.Mutex
	entries *lru.Cache
	// byNamespace holds each namespace's cached uids, least recently used first.
	byNamespace map[string]*list.List
}

// New returns a cache of at most size webhooks (0: DefaultSize), at most an eighth of them of one
// namespace, reading src; now is its clock (nil: time.Now).
func New(src Source, size int, now func() time.Time) *Cache {
	if size <= 0 {
		size = DefaultSize
	}
	if now == nil {
		now = time.Now
	}
	c := &Cache{src: src, now: now, share: max(1, size/8), byNamespace: map[string]*list.List{}}
	c.entries = lru.NewWithEvictionFunc(size, func(_ lru.Key, v any) { c.forgetLocked(v.(*entry)) })
	return c
}

// forgetLocked takes e, evicted, out of its namespace's list.
func (c *Cache) forgetLocked(e *entry) {
	l := c.byNamespace[e.namespace]
	if l == nil || e.elem == nil {
		return
	}
	l.Remove(e.elem)
	e.elem = nil
	if l.Len() == 0 {
		delete(c.byNamespace, e.namespace)
	}
}

// sums is one hour's (or one bucket's) figures.
type sums struct {
	delivered, failed, dropped, attempts int
	millis, maxMillis                    int64
}

func (s *sums) add(o sums) {
	s.delivered += o.delivered
	s.failed += o.failed
	s.dropped += o.dropped
	s.attempts += o.attempts
	s.millis += o.millis
	s.maxMillis = max(s.maxMillis, o.maxMillis)
}

func (s sums) counts() deliveries.Counts {
	c := deliveries.Counts{Delivered: s.delivered, FailedAttempts: s.failed, Dropped: s.dropped, Attempts: s.attempts, LatencyMaxMillis: s.maxMillis}
	if s.attempts > 0 {
		c.LatencyMeanMillis = s.millis / int64(s.attempts)
	}
	return c
}

// of is what one record adds.
func of(r *deliveries.Record) (sums, bool) {
	var s sums
	switch r.Kind {
	case deliveries.KindAttempt:
		s.attempts, s.millis, s.maxMillis = 1, r.DurationMillis, r.DurationMillis
		if r.State == deliveries.StateDelivered {
			s.delivered = 1
		} else {
			s.failed = 1
		}
		if r.State == deliveries.StateDropped {
			s.dropped = 1
		}
	case deliveries.KindDropped, deliveries.KindLost:
		s.dropped = 1
	default:
		return s, false
	}
	return s, true
}

// entry is one webhook's hourly sums and where its reading stopped.
type entry struct {
	// namespace and elem (in Cache.byNamespace) are the cache's, under its lock.
	namespace string
	elem      *list.Element

	mu     sync.Mutex
	loaded bool
	next   uint64          // the stream sequence to read from
	hours  map[int64]*sums // by Unix hour (UTC)
}

func (e *entry) fold(r *deliveries.Record) {
	s, ok := of(r)
	if !ok {
		return
	}
	h := r.At.Unix() / 3600
	if e.hours[h] == nil {
		e.hours[h] = &sums{}
	}
	e.hours[h].add(s)
}

// prune forgets the hours no window reaches any more.
func (e *entry) prune(now time.Time) {
	oldest := now.Add(-keep).Unix() / 3600
	for h := range e.hours {
		if h < oldest {
			delete(e.hours, h)
		}
	}
}

func (c *Cache) entry(namespace, uid string) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.entries.Get(uid); ok {
		e := v.(*entry)
		if e.elem != nil {
			c.byNamespace[e.namespace].MoveToBack(e.elem)
		}
		return e
	}
	l := c.byNamespace[namespace]
	if l == nil {
		l = list.New()
		c.byNamespace[namespace] = l
	}
	if l.Len() >= c.share {
		c.entries.Remove(l.Front().Value.(string)) // its namespace's least recently used
	}
	e := &entry{namespace: namespace, hours: map[int64]*sums{}}
	if l = c.byNamespace[namespace]; l == nil { // emptied by the removal
		l = list.New()
		c.byNamespace[namespace] = l
	}
	e.elem = l.PushBack(uid)
	c.entries.Add(uid, e)
	return e
}

// Stats returns the figures over w of webhook uid of namespace, reading only the records written
// since the last call for uid (all of its last 7 days when uid is not cached).
func (c *Cache) Stats(ctx context.Context, namespace, uid string, w deliveries.Window) (deliveries.Stats, error) {
	length, bucket, ok := w.Span()
	if !ok {
		return deliveries.Stats{}, ErrUnknownWindow
	}
	e := c.entry(namespace, uid)
	e.mu.Lock()
	defer e.mu.Unlock()
	now := c.now()
	var since time.Time
	if !e.loaded {
		since = now.Add(-keep)
	}
	next, err := c.src.ScanFrom(ctx, uid, since, e.next, func(seq uint64, r deliveries.Record) error {
		e.fold(&r)
		// What is folded is not read again should the reading fail further on.
		e.next, e.loaded = seq+1, true
		return nil
	})
	if err != nil {
		return deliveries.Stats{}, err
	}
	e.next, e.loaded = next, true
	e.prune(now)
	return e.window(now, w, length, bucket), nil
}

// window sums the hours into w's buckets, aligned on UTC multiples of bucket; the last one holds
// now.
func (e *entry) window(now time.Time, w deliveries.Window, length, bucket time.Duration) deliveries.Stats {
	end := now.Truncate(bucket).Add(bucket)
	n := int(length / bucket)
	out := deliveries.Stats{Window: w, BucketSeconds: int64(bucket / time.Second), Buckets: make([]deliveries.Bucket, n)}
	perBucket := int64(bucket / time.Hour)
	var total sums
	for i := range n {
		start := end.Add(-time.Duration(n-i) * bucket)
		var s sums
		for h := start.Unix() / 3600; h < start.Unix()/3600+perBucket; h++ {
			if hs := e.hours[h]; hs != nil {
				s.add(*hs)
			}
		}
		total.add(s)
		out.Buckets[i] = deliveries.Bucket{Start: start.UTC(), Counts: s.counts()}
	}
	out.Total = total.counts()
	return out
}

// ErrUnknownWindow: a window other than 24h and 7d.
var ErrUnknownWindow = errors.New("unknown window: use 24h or 7d")
