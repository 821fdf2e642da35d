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

package deliverylog

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the log's: what the writer stored, and what the stream holds and has let go.
type metrics struct {
	records, messages, bytes, writeErrors, trimmed prometheus.Counter
	stream                                         *streamCollector
}

func newMetrics(l *Log) *metrics {
	return &metrics{
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookline_delivery_log_records_total",
			Help: "Delivery records written to the delivery log (acknowledged by JetStream).",
		}),
		messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookline_delivery_log_messages_total",
			Help: "JetStream messages the delivery log's records were written in (a webhook's records gathered together; acknowledged by JetStream).",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookline_delivery_log_bytes_total",
			Help: "Bytes of delivery records (JSON) written to the delivery log.",
		}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookline_delivery_log_write_errors_total",
			Help: "Failed writes to the delivery log: each failed publish (retried until stored) and each record that could not be written at all (logged).",
		}),
		trimmed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookline_delivery_log_trimmed_bytes_total",
			Help: "Bytes of delivery records removed to keep the log under --delivery-log-max-bytes, each time from the account holding the most of it (counted from the messages' sizes).",
		}),
		stream: &streamCollector{
			l: l,
			stored: prometheus.NewDesc("hookline_delivery_log_stored_messages",
				"Messages the delivery log holds now (each holds one or more records of one webhook).", nil, nil),
			storedBytes: prometheus.NewDesc("hookline_delivery_log_stored_bytes",
				"Bytes the delivery log's stream holds now (records with JetStream's overhead).", nil, nil),
			removed: prometheus.NewDesc("hookline_delivery_log_removed_messages_total",
				"Messages of delivery records removed by retention (max age or max bytes) or trimmed from the account holding the most of the log, since the stream was created.", nil, nil),
		},
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.records, m.messages, m.bytes, m.writeErrors, m.trimmed, m.stream} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// streamCollector reads the stream's state at each scrape: the stream is the truth, and it survives
// restarts where counters would not.
type streamCollector struct {
	l                            *Log
	stored, storedBytes, removed *prometheus.Desc
}

func (c *streamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.stored
	ch <- c.storedBytes
	ch <- c.removed
}

func (c *streamCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := c.l.stream.Info(ctx)
	if err != nil {
		c.l.log.V(1).Info("Reading the delivery log's stream for metrics failed", "error", err.Error())
		return
	}
	ch <- prometheus.MustNewConstMetric(c.stored, prometheus.GaugeValue, float64(info.State.Msgs))
	ch <- prometheus.MustNewConstMetric(c.storedBytes, prometheus.GaugeValue, float64(info.State.Bytes))
	// Nothing but retention and the share's trims remove records: every sequence before the
	// first is one removed, and every one deleted after it.
	removed := uint64(info.State.NumDeleted)
	if info.State.FirstSeq > 0 {
		removed += info.State.FirstSeq - 1
	}
	ch <- prometheus.MustNewConstMetric(c.removed, prometheus.CounterValue, float64(removed))
}
