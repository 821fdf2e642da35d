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

// Command bench is `make bench`: it starts the whole stack on this machine — a real kube-apiserver
// and etcd, bin/manager and bin/dispatcher as processes (the dispatcher with production settings:
// embedded JetStream on file storage, durable acknowledgements; only http to 127.0.0.1 is allowed) —
// a fast receiver that echoes the client id, and a load generator posting to the ingest API. In the
// same run it measures the raw ceiling: the same HTTP client posting the same body straight to the
// same receiver. Every delivery is checked (right webhook, unique webhookNotificationId, nothing
// missing), so a fast wrong answer cannot score. It prints one table.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "Length of each timed scenario.")
	flag.StringVar(&o.scenarios, "scenarios", "throughput,latency,fanout,isolation,backlog,controlplane,console,bigevents,deliverylog,recover,replicas", "Scenarios to run, comma separated (deliverylog: the throughput and backlog scenarios with the delivery log off and on, side by side; replicas: the throughput scenario on 1, 2 and 3 active-active dispatchers).")
	flag.IntVar(&o.backlog, "backlog", 1_000_000, "Notifications pending in the backlog scenario.")
	flag.IntVar(&o.recover, "recover", 100_000, "Lost notifications recovered by WebhookReplays in the recover scenario.")
	flag.IntVar(&o.cpWebhooks, "controlplane-webhooks", 10_000, "Webhooks created in the control-plane scenario.")
	flag.IntVar(&o.concurrency, "concurrency", 64, "Concurrent posts of the load generator in the throughput scenario.")
	flag.BoolVar(&o.smoke, "smoke", false, "Tiny run that checks correctness only (used by make test).")
	flag.StringVar(&o.profile, "cpuprofile", "", "Write the dispatcher's CPU profile, taken during the throughput scenario, to this file (and the latency scenario's to this file + \".latency\", the first 20 s of the backlog's drain to this file + \".drain\").")
	flag.StringVar(&o.recoverProfile, "recover-cpuprofile", "", "Write the dispatcher's CPU profiles, taken over the first -recover-profile-seconds of the recover and of its drain baseline, to this path with .recover and .drain appended.")
	flag.IntVar(&o.recoverProfileSeconds, "recover-profile-seconds", 10, "Length of each recover scenario CPU profile.")
	flag.StringVar(&o.heapProfile, "heapprofile", "", "Write the dispatcher's heap profile, taken with the backlog queued, to this file.")
	flag.StringVar(&o.replicasProfile, "replicas-cpuprofile", "", "Write the CPU profile of the first active-active replica (the one embedding NATS), taken over the first half of each replicas run, to this path with the replica count appended (.1, .2, .3).")
	flag.IntVar(&o.logRounds, "deliverylog-rounds", 3, "Pairs of throughput runs in the deliverylog scenario (log off and on; the second pair on first, and so on, alternating); its ratio is their median. The backlog runs once per mode.")
	flag.StringVar(&o.logProfile, "deliverylog-profile", "", "Write the dispatcher's profiles of the deliverylog scenario to this path with suffixes: .cpu.off and .cpu.on (CPU, over the second half of each throughput run), .peakheap.off and .peakheap.on (heap at the highest RSS of each backlog run, queueing and drain).")
	flag.StringVar(&o.apiserverProfile, "apiserver-cpuprofile", "", "Write the API server's CPU profile, taken during the throughput scenario, to this file (and one of the recover scenario's recover phase to this file + \".recover\"); also print each process's CPU per delivery and the API server's requests per second (for the recover phase, its requests).")
	flag.StringVar(&o.peakHeapProfile, "peak-heapprofile", "", "Write the dispatcher's heap profile taken at the highest RSS while the backlog is being queued to this file, and the one at the highest RSS while it drains to this file + \".drain\".")
	flag.Func("dispatcher-arg", "Extra dispatcher flag, e.g. -dispatcher-arg=--event-cache-bytes=16777216 (repeatable).", func(v string) error {
		dispatcherExtraArgs = append(dispatcherExtraArgs, v)
		return nil
	})
	flag.Parse()
	if o.smoke {
		o.duration, o.backlog, o.cpWebhooks, o.recover, o.logRounds = smokeDuration, 2_000, 200, 1_000, 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rows, err := run(ctx, o)
	printTable(os.Stdout, rows)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// smokeDuration is the length of each timed scenario in a smoke run.
const smokeDuration = 2 * time.Second

type options struct {
	duration    time.Duration
	scenarios   string
	backlog     int
	recover     int
	cpWebhooks  int
	concurrency int
	smoke       bool
	profile     string
	heapProfile string
	// peakHeapProfile is the heap profile at the backlog's queueing peak.
	peakHeapProfile string
	// apiserverProfile is the API server's CPU profile during the throughput scenario (and, with
	// ".recover" appended, during the recover scenario's recover phase).
	apiserverProfile string
	// logRounds is the number of throughput pairs of the deliverylog scenario.
	logRounds int
	// logProfile is the deliverylog scenario's profiles' path prefix.
	logProfile string
	// replicasProfile is the replicas scenario's profiles' path prefix.
	replicasProfile string
	// recoverProfile and recoverProfileSeconds: the recover scenario's CPU profiles.
	recoverProfile        string
	recoverProfileSeconds int
}

func (o options) want(s string) bool {
	for _, x := range strings.Split(o.scenarios, ",") {
		if strings.TrimSpace(x) == s {
			return true
		}
	}
	return false
}
