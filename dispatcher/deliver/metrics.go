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
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the delivery engine's Prometheus metrics. Labels never name a webhook by default:
// per-object series would grow with the number of customers.
type Metrics struct {
	deliveries *prometheus.CounterVec
	latency    prometheus.Histogram
	drops      prometheus.Counter
	losts      prometheus.Counter
	disables   prometheus.Counter
	trims      prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg (nil: not registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookline_deliveries_total", Help: "Delivery attempts by outcome (Delivered or the failure reason).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hookline_delivery_attempt_duration_seconds", Help: "Duration of delivery attempts.",
			// Up to twice the default 5 s timeout, so that attempts ended by a timeout land in a
			// bucket of their own (just above it) instead of +Inf.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 6, 7.5, 10},
		}),
		drops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookline_notifications_dropped_total", Help: "Notifications dropped after 72 hours (or with their auto-disabled webhook's queue).",
		}),
		losts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookline_notifications_lost_total", Help: "Events not queued because the matching webhook was auto-disabled.",
		}),
		disables: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookline_webhooks_auto_disabled_total", Help: "Webhooks auto-disabled.",
		}),
		trims: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookline_payloads_trimmed_total", Help: "Notifications whose optional sections were trimmed to fit the size cap.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.deliveries, m.latency, m.drops, m.losts, m.disables, m.trims)
	}
	return m
}

func (m *Metrics) attempt(a Attempt, d time.Duration) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(a.Reason).Inc()
	m.latency.Observe(d.Seconds())
}

func (m *Metrics) dropped() {
	if m != nil {
		m.drops.Inc()
	}
}

func (m *Metrics) droppedN(n int64) {
	if m != nil {
		m.drops.Add(float64(n))
	}
}

func (m *Metrics) lost() {
	if m != nil {
		m.losts.Inc()
	}
}

func (m *Metrics) disabled() {
	if m != nil {
		m.disables.Inc()
	}
}

func (m *Metrics) trimmed() {
	if m != nil {
		m.trims.Inc()
	}
}

var (
	queueDepthDesc = prometheus.NewDesc("hookline_queue_depth",
		"Notifications queued for delivery, failing heads included, over all webhooks.", nil, nil)
	oldestDesc = prometheus.NewDesc("hookline_queue_oldest_pending_age_seconds",
		"Age of the oldest queued notification at the head of a webhook's queue.", nil, nil)
	inFlightDesc = prometheus.NewDesc("hookline_deliveries_in_flight",
		"Delivery attempts in flight.", nil, nil)
	disabledDesc = prometheus.NewDesc("hookline_webhooks_disabled",
		"Webhooks currently auto-disabled.", nil, nil)
	cacheReadsDesc = prometheus.NewDesc("hookline_event_cache_reads_total",
		"Reads of events for delivery, by where they were answered: hit (the event cache) or miss (the store).", []string{"result"}, nil)
	cacheBytesDesc = prometheus.NewDesc("hookline_event_cache_bytes",
		"Memory the event cache's events hold, counted against --event-cache-bytes.", nil, nil)
)

// engineCollector reads queue gauges from the engine at scrape time.
type engineCollector struct{ e *Engine }

// Collector returns a Prometheus collector of the engine's queue gauges.
func (e *Engine) Collector() prometheus.Collector { return engineCollector{e} }

// Describe implements prometheus.Collector.
func (c engineCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- oldestDesc
	ch <- inFlightDesc
	ch <- disabledDesc
	ch <- cacheReadsDesc
	ch <- cacheBytesDesc
}

// Collect implements prometheus.Collector.
func (c engineCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.e
	e.mu.Lock()
	var depth, inFlight, disabled float64
	var oldest time.Time
	for _, q := range e.queues {
		depth += float64(q.status.Pending)
		if q.inFlight {
			inFlight++
		}
		if q.status.Disabled {
			disabled++
		}
		if len(q.mem) > 0 && (oldest.IsZero() || q.mem[0].Created.Before(oldest)) {
			oldest = q.mem[0].Created
		}
	}
	now := e.clock.Now()
	e.mu.Unlock()
	age := 0.0
	if !oldest.IsZero() {
		age = now.Sub(oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, depth)
	ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, inFlight)
	ch <- prometheus.MustNewConstMetric(disabledDesc, prometheus.GaugeValue, disabled)
	ch <- prometheus.MustNewConstMetric(cacheReadsDesc, prometheus.CounterValue, float64(e.events.hits.Load()), "hit")
	ch <- prometheus.MustNewConstMetric(cacheReadsDesc, prometheus.CounterValue, float64(e.events.misses.Load()), "miss")
	ch <- prometheus.MustNewConstMetric(cacheBytesDesc, prometheus.GaugeValue, float64(e.events.bytes()))
}
