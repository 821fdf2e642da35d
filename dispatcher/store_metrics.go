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

	"github.com/hookline/hookline/dispatcher/store"
)

var queueReadsDesc = prometheus.NewDesc("hookline_store_queue_reads_total",
	"Reads of a webhook's queued notifications, by what answered them: the index of recent notes (index), the sweep of a backlog (sweep: one sequential read of the notes stream shared by many queues), or a walk of the notes stream (stream).",
	[]string{"answered_by"}, nil)

var sweepMissesDesc = prometheus.NewDesc("hookline_store_sweep_misses_total",
	"Queue reads the sweep of a backlog left to a walk of the notes stream (with the sweep on, every read counted as answered_by=\"stream\" in hookline_store_queue_reads_total), by reason: near-end (no pass runs and the read is near the stream's end), no-pass (no pass runs yet), floor (the queue's list was dropped or purged), cut (the queue's list was cut at its cap), budget (the lists hold the sweep's whole budget), far (the answer is too far ahead of the pass), ended (the pass ended, or the read was cancelled).",
	[]string{"reason"}, nil)

var removalsDesc = prometheus.NewDesc("hookline_store_removals_total",
	"Removals of a webhook's settled notifications from its queue (one per webhook and acknowledgement flush), by what removed them: a compaction of the notes stream up to its oldest notification still queued (compaction), or a purge of the webhook's queue (queue), which walks the stream and is what a compaction held by an old notification leaves.",
	[]string{"by"}, nil)

// storeCounters exposes the store's queue-read and removal counters, read when scraped.
type storeCounters struct{ st *store.Store }

func storeCollector(st *store.Store) prometheus.Collector { return storeCounters{st} }

// Describe implements prometheus.Collector.
func (q storeCounters) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueReadsDesc
	ch <- sweepMissesDesc
	ch <- removalsDesc
}

// Collect implements prometheus.Collector.
func (q storeCounters) Collect(ch chan<- prometheus.Metric) {
	index, sweep, stream := q.st.QueueReads()
	ch <- prometheus.MustNewConstMetric(queueReadsDesc, prometheus.CounterValue, float64(index), "index")
	ch <- prometheus.MustNewConstMetric(queueReadsDesc, prometheus.CounterValue, float64(sweep), "sweep")
	ch <- prometheus.MustNewConstMetric(queueReadsDesc, prometheus.CounterValue, float64(stream), "stream")
	if misses := q.st.SweepMisses(); misses != nil {
		for _, r := range store.MissReasons {
			ch <- prometheus.MustNewConstMetric(sweepMissesDesc, prometheus.CounterValue, float64(misses[r]), r)
		}
	}
	compacted, queue := q.st.Removals()
	ch <- prometheus.MustNewConstMetric(removalsDesc, prometheus.CounterValue, float64(compacted), "compaction")
	ch <- prometheus.MustNewConstMetric(removalsDesc, prometheus.CounterValue, float64(queue), "queue")
}
