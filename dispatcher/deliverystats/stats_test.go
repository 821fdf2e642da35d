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

package deliverystats

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/internal/deliveries"
)

// fakeLog is a delivery log of one stream: records of several webhooks interleaved, each with its
// sequence, as ScanFrom reads them; it counts what each call read.
type fakeLog struct {
	recs  []deliveries.Record // recs[i] is at sequence i+1
	calls []call
}

type call struct {
	uid   string
	since time.Time
	from  uint64
	read  int
}

func (f *fakeLog) ScanFrom(_ context.Context, uid string, since time.Time, from uint64, fn func(uint64, deliveries.Record) error) (uint64, error) {
	c := call{uid: uid, since: since, from: from}
	for i, r := range f.recs {
		seq := uint64(i + 1)
		if r.WebhookUID != uid || (from > 0 && seq < from) || (from == 0 && r.At.Before(since)) {
			continue
		}
		c.read++
		if err := fn(seq, r); err != nil {
			return from, err
		}
	}
	f.calls = append(f.calls, c)
	return uint64(len(f.recs)) + 1, nil
}

func (f *fakeLog) attempt(uid string, at time.Time, state deliveries.State, millis int64) {
	f.recs = append(f.recs, deliveries.Record{Kind: deliveries.KindAttempt, WebhookUID: uid, At: at, State: state, DurationMillis: millis})
}

func (f *fakeLog) other(uid string, at time.Time, kind deliveries.Kind) {
	f.recs = append(f.recs, deliveries.Record{Kind: kind, WebhookUID: uid, At: at})
}

func TestStatsBucketsAndIncrementalReads(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	src := &fakeLog{}
	// Webhook a: two hours ago a delivery (100 ms) and a failure (5,000 ms, a timeout), then a
	// drop; 3 days ago a delivery; 8 days ago one no window shows. Webhook b's records interleave.
	src.attempt("a", now.Add(-2*time.Hour), deliveries.StateDelivered, 100)
	src.attempt("b", now.Add(-2*time.Hour), deliveries.StateDelivered, 1)
	src.attempt("a", now.Add(-2*time.Hour+time.Minute), deliveries.StateRetrying, 5000)
	src.attempt("a", now.Add(-2*time.Hour+2*time.Minute), deliveries.StateDropped, 300)
	src.other("a", now.Add(-2*time.Hour+3*time.Minute), deliveries.KindLost)
	src.other("a", now.Add(-2*time.Hour+3*time.Minute), deliveries.KindCancelled)
	src.attempt("a", now.Add(-72*time.Hour), deliveries.StateDelivered, 40)
	src.attempt("a", now.Add(-8*24*time.Hour), deliveries.StateDelivered, 40)
	c := New(src, 2, clock)

	day, err := c.Stats(ctx, "ns", "a", deliveries.Window24h)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(day.Buckets).To(HaveLen(24))
	g.Expect(day.BucketSeconds).To(Equal(int64(3600)))
	g.Expect(day.Buckets[23].Start).To(Equal(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)), "the last bucket holds now")
	g.Expect(day.Buckets[21].Start).To(Equal(time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)))
	g.Expect(day.Buckets[21].Counts).To(Equal(deliveries.Counts{Delivered: 1, FailedAttempts: 2, Dropped: 2, Attempts: 3, LatencyMeanMillis: 1800, LatencyMaxMillis: 5000}))
	g.Expect(day.Total).To(Equal(day.Buckets[21].Counts), "nothing else in the last 24 hours")
	g.Expect(src.calls).To(HaveLen(1))
	g.Expect(src.calls[0].since).To(Equal(now.Add(-keep)), "the first view reads 7 days back, not the whole log")
	g.Expect(src.calls[0].read).To(Equal(6))

	week, err := c.Stats(ctx, "ns", "a", deliveries.Window7d)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(week.Buckets).To(HaveLen(28))
	g.Expect(week.BucketSeconds).To(Equal(int64(6 * 3600)))
	g.Expect(week.Buckets[27].Start).To(Equal(time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)))
	g.Expect(week.Total.Delivered).To(Equal(2), "3 days ago and 2 hours ago; 8 days ago is outside")
	g.Expect(src.calls[1].from).To(Equal(uint64(9)), "the second view starts where the first stopped")
	g.Expect(src.calls[1].read).To(BeZero())

	// New records, and an hour later: only they are read, and the buckets move with the clock.
	src.attempt("a", now.Add(20*time.Minute), deliveries.StateDelivered, 10)
	now = now.Add(time.Hour)
	day, err = c.Stats(ctx, "ns", "a", deliveries.Window24h)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(src.calls[2].read).To(Equal(1))
	g.Expect(day.Buckets[23].Start).To(Equal(time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC)))
	g.Expect(day.Buckets[22].Delivered).To(Equal(1))
	g.Expect(day.Buckets[20].Attempts).To(Equal(3))

	_, err = c.Stats(ctx, "ns", "a", "1y")
	g.Expect(err).To(MatchError(ErrUnknownWindow))
}

func TestStatsCacheIsBounded(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)
	src := &fakeLog{}
	for _, uid := range []string{"a", "b", "c"} {
		src.attempt(uid, now.Add(-time.Minute), deliveries.StateDelivered, 5)
	}
	c := New(src, 2, func() time.Time { return now })
	for _, uid := range []string{"a", "b", "c", "a"} {
		s, err := c.Stats(ctx, "ns-"+uid, uid, deliveries.Window24h)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(s.Total.Delivered).To(Equal(1), uid)
	}
	g.Expect(c.entries.Len()).To(Equal(2))
	// a was evicted by c: read again from 7 days back, not continued.
	g.Expect(src.calls[3].from).To(BeZero())
	g.Expect(src.calls[3].read).To(Equal(1))
}

// One namespace's webhooks hold at most an eighth of the cache: a tenant asking for the figures of
// more Webhooks than the cache holds, in turn, evicts only its own entries; another tenant's
// entry is continued, not read again from a week back.
func TestOneNamespaceHoldsItsShareOfTheStatsCache(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)
	src := &fakeLog{}
	src.attempt("victim", now.Add(-time.Minute), deliveries.StateDelivered, 5)
	c := New(src, 16, func() time.Time { return now }) // a share of 2
	_, err := c.Stats(ctx, "team-b", "victim", deliveries.Window24h)
	g.Expect(err).NotTo(HaveOccurred())
	for i := range 40 {
		uid := fmt.Sprintf("flood-%d", i)
		src.attempt(uid, now.Add(-time.Minute), deliveries.StateDelivered, 5)
		_, err := c.Stats(ctx, "team-a", uid, deliveries.Window24h)
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(c.entries.Len()).To(Equal(3), "the victim and team-a's share")
	s, err := c.Stats(ctx, "team-b", "victim", deliveries.Window24h)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Total.Delivered).To(Equal(1))
	last := src.calls[len(src.calls)-1]
	g.Expect(last.from).NotTo(BeZero(), "continued from where it was, not read again")
}

func TestOldHoursAreForgotten(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)
	src := &fakeLog{}
	src.attempt("a", now.Add(-time.Minute), deliveries.StateDelivered, 5)
	c := New(src, 2, func() time.Time { return now })
	_, err := c.Stats(context.Background(), "ns", "a", deliveries.Window7d)
	g.Expect(err).NotTo(HaveOccurred())
	now = now.Add(8 * 24 * time.Hour)
	s, err := c.Stats(context.Background(), "ns", "a", deliveries.Window7d)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Total.Attempts).To(BeZero())
	v, _ := c.entries.Get("a")
	g.Expect(v.(*entry).hours).To(BeEmpty())
}
