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

package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	verificationsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hookline_verifications_total",
		Help: "Intent verifications by outcome (Verified or the failure reason).",
	}, []string{"result"})
	verificationsThrottled = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hookline_verifications_throttled_total",
		Help: "Verifications postponed because their account had the maximum in flight.",
	})
	verificationsInFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "hookline_verifications_in_flight",
		Help: "Intent verifications currently running.",
	})
	verificationDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hookline_verification_duration_seconds",
		Help:    "Duration of intent verification requests.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
)

func init() {
	ctrlmetrics.Registry.MustRegister(verificationsTotal, verificationsThrottled, verificationsInFlight, verificationDuration)
}
