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

// queueReads exposes the store's queue-read counters, read when scraped.
type queueReads struct{ st *store.Store }

func queueReadsCollector(st *store.Store) prometheus.Collector { return queueReads{st} }

// Describe implements prometheus.Collector.
func (q queueReads) Describe(ch chan<- *prometheus.Desc) { ch <- queueReadsDesc }

// Collect implements prometheus.Collector.
func (q queueReads) Collect(ch chan<- prometheus.Metric) {
	index, sweep, stream := q.st.QueueReads()
	ch <- prometheus.MustNewConstMetric(queueReadsDesc, prometheus.CounterValue, float64(index), "index")
	ch <- prometheus.MustNewConstMetric(queueReadsDesc, prometheus.CounterValue, float64(sweep), "sweep")
	ch <- prometheus.MustNewConstMetric(queueReadsDesc, prometheus.CounterValue, float64(stream), "stream")
}
