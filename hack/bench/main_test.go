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
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/internal/controlplane"
)

// TestSmoke runs every scenario of the benchmark at a tiny size and checks correctness only: every
// notification arrives at the webhook it names, once, in order where order is checked. Figures are
// printed, never asserted (performance lives in `make bench`).
func TestSmoke(t *testing.T) {
	controlplane.SkipIfMissing(t)
	o := options{smoke: true, concurrency: 16,
		scenarios: "throughput,latency,fanout,isolation,backlog,controlplane,console,bigevents,deliverylog,recover,replicas"}
	o.duration, o.backlog, o.cpWebhooks, o.recover = smokeDuration, 2_000, 200, 1_000
	rows, err := run(context.Background(), o)
	var b strings.Builder
	printTable(&b, rows)
	t.Log("\n" + b.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 9 {
		t.Fatalf("%d rows, want one per scenario", len(rows))
	}
}

// The latency row's tail summary counts the slow deliveries per second of sending and names the
// seconds holding most of them, so that a burst (a stall) tells itself from a spread.
func TestSlowestSeconds(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	var samples []latency
	add := func(second, n int, d time.Duration) {
		for i := range n {
			samples = append(samples, latency{sent: start.Add(time.Duration(second)*time.Second + time.Duration(i)*time.Millisecond), d: d})
		}
	}
	add(0, 50, time.Millisecond)
	add(2, 7, 90*time.Millisecond)
	add(3, 1, 30*time.Millisecond)
	add(4, 2, 40*time.Millisecond)
	add(19, 50, time.Millisecond)
	want := "above 25ms: 10 deliveries in 3 of 20 s; most at s2 (7, max 90ms), s4 (2, max 40ms), s3 (1, max 30ms)"
	if got := slowestSeconds(samples, 25*time.Millisecond); got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if got := slowestSeconds(samples[:50], 25*time.Millisecond); got != "none above 25ms in 1 s" {
		t.Fatalf("got %q", got)
	}
}

// The burst's CPU account sets each process's cores in the second with most slow deliveries against
// its mean over the run, the machine's busy time outside the stack counted as "other".
func TestBurstCPU(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	lat := []latency{{sent: start, d: time.Millisecond}, {sent: start.Add(2500 * time.Millisecond), d: 80 * time.Millisecond}}
	var cpu []cpuSample
	api, disp, machine, steal := 0.0, 0.0, 0.0, 0.0
	for i := range 5 {
		// One sample a second: the API server uses 0.1 cores, and 0.9 in the third second, when
		// something outside the stack takes 0.5 more and the hypervisor 0.6.
		cpu = append(cpu, cpuSample{at: start.Add(time.Duration(i) * time.Second), machine: machine, steal: steal,
			byName: map[string]float64{"kube-apiserver": api, "dispatcher": disp}})
		apiNow, other := 0.1, 0.0
		if i == 2 {
			apiNow, other = 0.9, 0.5
			steal += 0.6
		}
		api += apiNow
		disp += 0.4
		machine += apiNow + 0.4 + other
	}
	want := "CPU at s2 (cores, run mean): kube-apiserver 0.90 (0.30), steal 0.60 (0.15), other 0.50 (0.12), dispatcher 0.40 (0.40)"
	if got := burstCPU(lat, cpu, 25*time.Millisecond); got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if got := burstCPU(lat[:1], cpu, 25*time.Millisecond); got != "" {
		t.Fatalf("no slow delivery, no account: got %q", got)
	}
}

// The isolation scenario waits for the healthy webhooks' notifications: every count of events
// must leave out exactly those sent to the hanging ones (an open loop's count is rarely a multiple
// of 100; the old formula n*hang/100 waited for notifications that never existed).
func TestHungEvents(t *testing.T) {
	for _, n := range []int64{0, 4, 9, 10, 11, 99, 100, 27260, 28204} {
		var hung int64
		for i := range n {
			if i%100 < 10 {
				hung++
			}
		}
		if got := hungEvents(n, 10); got != hung {
			t.Errorf("hungEvents(%d, 10) = %d, want %d", n, got, hung)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{
		{[]float64{0.9}, 0.9},
		{[]float64{1.1, 0.8, 0.95}, 0.95},
		{[]float64{1.0, 0.8, 0.9, 0.7}, 0.85},
	} {
		xs := slices.Clone(c.xs)
		if got := median(xs); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("median(%v) = %v, want %v", c.xs, got, c.want)
		}
		if !slices.Equal(xs, c.xs) {
			t.Errorf("median changed its argument: %v", xs)
		}
	}
}

// The sweep's misses are read from every series of the metric and listed by the drain's share,
// most first.
func TestSweepMissesFromTheMetric(t *testing.T) {
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n++
		fmt.Fprintf(w, "# HELP hookline_store_sweep_misses_total x\nhookline_store_sweep_misses_total{reason=\"cut\"} %d\n", 10*n)
		fmt.Fprintf(w, "hookline_store_sweep_misses_total{reason=\"floor\"} %d\nhookline_store_sweep_misses_total{reason=\"far\"} 0\nother_total 5\n", 50*n)
	}))
	defer srv.Close()
	m0, m1 := sweepMisses(srv.URL), sweepMisses(srv.URL)
	if got, want := missList(m0, m1), "sweep missed: floor 50, cut 10"; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
	if got := missList(m1, m1); got != "sweep missed none" {
		t.Fatalf("%q", got)
	}
}
