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

package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/dispatcher/ingest"
)

// --gc-headroom and --memory-target take non-negative quantities; 0 turns them off.
func TestTuneGCReadsTheHeadroomAndTarget(t *testing.T) {
	for _, bad := range []string{"", "lots", "-1Mi", "128MB!"} {
		if err := tuneGC(context.Background(), bad, "0"); err == nil {
			t.Errorf("--gc-headroom %q accepted", bad)
		}
		if err := tuneGC(context.Background(), "0", bad); err == nil {
			t.Errorf("--memory-target %q accepted", bad)
		}
	}
	if err := tuneGC(context.Background(), "0", "0"); err != nil {
		t.Errorf("--gc-headroom 0 --memory-target 0: %v", err)
	}
}

// validOptions returns options that pass validate, with the ingest limits at their defaults.
func validOptions() options {
	return options{
		tokensFile: "tokens.yaml", maxBody: ingest.DefaultMaxBody, maxInFlight: ingest.DefaultMaxInFlight,
		replayMaxPerNamespace: 1, replayLogReads: 1, replayNotes: 1, replayMaxSelection: 1, maxReceiverConnections: 1,
	}
}

// One token's requests may hold half of --max-ingest-bytes-in-flight: a bound under twice the
// largest body (plus the byte a streamed body reserves to tell a larger one) let one producer
// stalling its largest upload refuse every other account's largest events. 48 MiB with 25 MiB
// events, the former default, is refused, naming both flags; the defaults pass.
func TestInFlightBoundHoldsTwoLargestEvents(t *testing.T) {
	if err := validOptions().validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		maxBody, maxInFlight int64
		ok                   bool
	}{
		{ingest.DefaultMaxBody, 48 << 20, false},
		{ingest.DefaultMaxBody, 2 * ingest.DefaultMaxBody, false},
		{ingest.DefaultMaxBody, 2*(ingest.DefaultMaxBody+1) - 1, false},
		{ingest.DefaultMaxBody, 2 * (ingest.DefaultMaxBody + 1), true},
		{1 << 20, 4 << 20, true},
	} {
		o := validOptions()
		o.maxBody, o.maxInFlight = tc.maxBody, tc.maxInFlight
		err := o.validate()
		if tc.ok {
			if err != nil {
				t.Errorf("--max-event-bytes %d --max-ingest-bytes-in-flight %d: %v", tc.maxBody, tc.maxInFlight, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "--max-ingest-bytes-in-flight") || !strings.Contains(err.Error(), "--max-event-bytes") {
			t.Errorf("--max-event-bytes %d --max-ingest-bytes-in-flight %d: error %v, want one naming both flags", tc.maxBody, tc.maxInFlight, err)
		}
	}
}

// The pprof server has no authentication: only a loopback address is allowed, since any pod could
// otherwise profile the dispatcher every tenant shares and list every Webhook's queue.
func TestPprofOnlyOnLoopback(t *testing.T) {
	for _, ok := range []string{"", "127.0.0.1:6060", "[::1]:6060", "localhost:6060", "127.0.0.2:0"} {
		if err := checkPprofAddress(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{":6060", "0.0.0.0:6060", "[::]:6060", "10.0.0.7:6060", "dispatcher.example:6060", "127.0.0.1"} {
		if err := checkPprofAddress(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Events and notes are kept at least an hour past --drop-after: JetStream deletes what outlives
// --retention itself, with no record, so a notification still queued then (its webhook failing, no
// dispatcher delivering around the mark) vanished after its 202. The defaults (72 h, 73 h) pass.
func TestRetentionOutlastsDropAfter(t *testing.T) {
	for _, tc := range []struct {
		dropAfter, retention time.Duration
		ok                   bool
	}{
		{72 * time.Hour, 73 * time.Hour, true},
		{3 * time.Second, 73 * time.Hour, true},
		{72 * time.Hour, 72 * time.Hour, false},
		{72 * time.Hour, 72*time.Hour + 30*time.Minute, false},
		{96 * time.Hour, 73 * time.Hour, false},
	} {
		o := validOptions()
		o.policy.DropAfter, o.store.Retention = tc.dropAfter, tc.retention
		err := o.validate()
		if tc.ok && err != nil {
			t.Errorf("drop-after %s, retention %s refused: %v", tc.dropAfter, tc.retention, err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "--retention") || !strings.Contains(err.Error(), "--drop-after")) {
			t.Errorf("drop-after %s, retention %s: %v, want a refusal naming both flags", tc.dropAfter, tc.retention, err)
		}
	}
}
