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

package notify

import "github.com/prometheus/client_golang/prometheus"

// Outcomes of a problem e-mail, the values of the outcome label of hookline_problem_emails_total.
const (
	OutcomeSent       = "sent"
	OutcomeFailed     = "failed"
	OutcomeSuppressed = "suppressed"
	OutcomeDropped    = "dropped"
)

// Metrics are the notifier's Prometheus metrics. Like the delivery engine's, their labels never
// name a webhook: per-object series would grow with the number of customers.
type Metrics struct {
	emails            *prometheus.CounterVec
	invalidRecipients prometheus.Counter
	refusedRecipients prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg (nil: not registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		emails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookline_problem_emails_total",
			Help: "Problem-notification e-mails by kind (SustainedFailure, AutoDisabled) and outcome (sent, failed, suppressed by a rate limit, dropped from a full queue).",
		}, []string{"kind", "outcome"}),
		invalidRecipients: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookline_problem_email_invalid_recipients_total",
			Help: "Problem-notification addresses skipped because they are not valid e-mail addresses.",
		}),
		refusedRecipients: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookline_problem_email_refused_recipients_total",
			Help: "Problem-notification addresses skipped because the operator does not allow their domain for the webhook's account (--problem-email-allowed-domains).",
		}),
	}
	// Create every series up front, so that an alert on rate(...{outcome="failed"}) has a zero to
	// start from instead of an absent series.
	for _, k := range []Kind{SustainedFailure, AutoDisabled} {
		for _, o := range []string{OutcomeSent, OutcomeFailed, OutcomeSuppressed, OutcomeDropped} {
			m.emails.WithLabelValues(string(k), o)
		}
	}
	if reg != nil {
		reg.MustRegister(m.emails, m.invalidRecipients, m.refusedRecipients)
	}
	return m
}

func (m *Metrics) count(k Kind, outcome string) {
	m.emails.WithLabelValues(string(k), outcome).Inc()
}
