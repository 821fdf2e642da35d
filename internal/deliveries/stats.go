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

package deliveries

import "time"

// Window is a span of time the statistics cover.
type Window string

// Windows of the statistics.
const (
	// Window24h: the last 24 hours in hourly buckets.
	Window24h Window = "24h"
	// Window7d: the last 7 days in 6-hour buckets.
	Window7d Window = "7d"
)

// Span returns the window's length and its bucket size; ok is false for an unknown window.
func (w Window) Span() (length, bucket time.Duration, ok bool) {
	switch w {
	case Window24h:
		return 24 * time.Hour, time.Hour, true
	case Window7d:
		return 7 * 24 * time.Hour, 6 * time.Hour, true
	}
	return 0, 0, false
}

// Counts are a span's deliveries, failures and attempt latency.
type Counts struct {
	// Delivered counts the attempts that succeeded.
	Delivered int `json:"delivered"`
	// FailedAttempts counts the attempts that failed (the notification is retried or dropped).
	FailedAttempts int `json:"failedAttempts"`
	// Dropped counts the notifications given up (dropped) or never queued (lost).
	Dropped int `json:"dropped"`
	// Attempts counts every attempt; the latencies are theirs.
	Attempts int `json:"attempts"`
	// LatencyMeanMillis and LatencyMaxMillis: how long attempts took (0 without attempts).
	LatencyMeanMillis int64 `json:"latencyMeanMillis"`
	LatencyMaxMillis  int64 `json:"latencyMaxMillis"`
}

// Bucket is one span of the statistics, starting at Start.
type Bucket struct {
	Start time.Time `json:"start"`
	Counts
}

// Stats is a webhook's deliveries over a window, oldest bucket first; the last one holds now.
type Stats struct {
	Window        Window   `json:"window"`
	BucketSeconds int64    `json:"bucketSeconds"`
	Buckets       []Bucket `json:"buckets"`
	// Total sums the buckets.
	Total Counts `json:"total"`
}
