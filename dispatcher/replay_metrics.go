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

package dispatcher

import (
	"github.com/prometheus/client_golang/prometheus"
)

// ReplayMetrics are the replays' metrics: what they do now, what they queued again and completed,
// and what reading the delivery log for them costs.
type ReplayMetrics struct {
	requeued, completed prometheus.Counter
	scanSeconds         prometheus.Histogram
	replays             *prometheus.Desc
	// phases counts the replays by what they do (set by the Replayer).
	phases func() map[string]int
}

// NewReplayMetrics creates the replays' metrics and registers them with reg.
func NewReplayMetrics(reg prometheus.Registerer) (*ReplayMetrics, error) {
	m := &ReplayMetrics{
		requeued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookline_replay_notifications_queued_total",
			Help: "Notifications queued again by WebhookReplays.",
		}),
		completed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookline_replays_completed_total",
			Help: "WebhookReplays completed (every notification they queued again delivered or failed).",
		}),
		scanSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hookline_replay_log_read_seconds",
			Help:    "Duration of the delivery log reads for replays (each serves every replay that asked within 200 ms of the first, or while the previous read ran).",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 9),
		}),
		replays: prometheus.NewDesc("hookline_replays",
			"WebhookReplays this dispatcher knows of that did not finish, by state: waiting for their Webhook, queued for their turn in their namespace, running.",
			[]string{"state"}, nil),
	}
	for _, c := range []prometheus.Collector{m.requeued, m.completed, m.scanSeconds, m} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Describe implements prometheus.Collector for the hookline_replays gauge.
func (m *ReplayMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.replays }

// Collect implements prometheus.Collector for the hookline_replays gauge.
func (m *ReplayMetrics) Collect(ch chan<- prometheus.Metric) {
	if m.phases == nil {
		return
	}
	for state, n := range m.phases() {
		ch <- prometheus.MustNewConstMetric(m.replays, prometheus.GaugeValue, float64(n), state)
	}
}
