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
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// replicaPartitions is the number of partitions of the replicas scenario's group.
const replicaPartitions = 16

// replica is one active-active dispatcher of the replicas scenario.
type replica struct {
	cmd                    *exec.Cmd
	ingest, metrics, pprof string
}

// startReplica starts active-active dispatcher i (from 1): the first embeds JetStream and lets
// the others in through a listener with a token.
func (s *stack) startReplica(i int, natsAddr, tokenFile string, profiled bool) (*replica, error) {
	r := &replica{ingest: freeAddr(), metrics: freeAddr()}
	if profiled {
		r.pprof = freeAddr()
	}
	args := slices.Clone(s.dispatcherArgs[1:])
	set := func(flag, value string) {
		for j, a := range args {
			if a == flag && j+1 < len(args) {
				args[j+1] = value
				return
			}
		}
		args = append(args, flag, value)
	}
	set("--listen-address", r.ingest)
	set("--metrics-bind-address", r.metrics)
	set("--pprof-address", r.pprof)
	args = append(args, dispatcherExtraArgs...)
	args = append(args, "--partitions", fmt.Sprint(replicaPartitions), "--lease-ttl", "5s",
		"--lease-identity", fmt.Sprintf("replica-%d", i))
	if i == 1 {
		args = append(args, "--data-dir", filepath.Join(s.dir, "data-replicas"),
			"--nats-listen-address", natsAddr, "--nats-listen-token-file", tokenFile)
	} else {
		args = append(args, "--nats-url", "nats://"+natsAddr, "--nats-token-file", tokenFile)
	}
	r.cmd = exec.Command(s.dispatcherArgs[0], args...)
	if err := start(s.dir, fmt.Sprintf("replica-%d", i), r.cmd); err != nil {
		return nil, err
	}
	if err := waitServing(r.cmd, "http://"+r.ingest+"/readyz", http.StatusOK, time.Minute, s.dir); err != nil {
		return nil, fmt.Errorf("replica %d: %w", i, err)
	}
	return r, nil
}

// replicasScenario measures active-active dispatchers: the same closed-loop load as the throughput
// scenario, spread over the ingest APIs of 1, 2 and 3 replicas that share one JetStream (embedded
// in the first), each delivering its share of 16 partitions. It replaces the stack's dispatcher,
// so it runs last. CPU is that of every replica together, the embedded NATS server included.
func (s *stack) replicasScenario(ctx context.Context, p *poster, o options) ([]row, error) {
	// The single dispatcher of the other scenarios stops: this one brings its own.
	_ = s.dispatcher.Process.Signal(syscall.SIGTERM)
	_ = s.dispatcher.Wait()
	tokenFile := filepath.Join(s.dir, "nats-token")
	if err := os.WriteFile(tokenFile, []byte(strings.Repeat("bench-nats-token", 3)), 0o600); err != nil {
		return nil, err
	}
	accounts, per := 100, 10
	if o.smoke {
		accounts, per = 20, 5 // correctness only: fewer webhooks to verify
	}
	g, _, err := s.createGroup(ctx, "rep", accounts, per)
	if err != nil {
		return nil, err
	}
	perEvent := int64(len(g.uids) / accounts)
	natsAddr := freeAddr()
	var replicas []*replica
	defer func() {
		for _, r := range replicas {
			_ = r.cmd.Process.Signal(syscall.SIGTERM)
			_ = r.cmd.Wait()
		}
	}()
	var rows []row
	for n := 1; n <= 3; n++ {
		r, err := s.startReplica(n, natsAddr, tokenFile, n == 1 && o.replicasProfile != "")
		if err != nil {
			return rows, err
		}
		replicas = append(replicas, r)
		if err := waitShared(replicas); err != nil {
			return rows, err
		}
		urls := make([]string, len(replicas))
		for i, r := range replicas {
			urls[i] = "http://" + r.ingest + "/v1/events"
		}
		// Every replica routes every webhook before the load (one probe event per account).
		before, q0 := s.sink.count.Load(), p.queued.Load()
		for a := range accounts {
			if err := p.post(urls[a%len(urls)], p.event(account("rep", a)), benchToken); err != nil {
				return rows, err
			}
		}
		if err := waitDelivered(s.sink, before+p.queued.Load()-q0, waitFor(o)); err != nil {
			return rows, err
		}
		before, q0 = s.sink.count.Load(), p.queued.Load()
		cpu0 := replicasCPU(replicas)
		each0 := cpuEach(replicas)
		ri0, ra0 := replicasQueueReads(replicas)
		start := time.Now()
		if o.replicasProfile != "" {
			go captureProfile(replicas[0].pprof, fmt.Sprintf("%s.%d", o.replicasProfile, n), o.duration/2)
		}
		sent, err := p.closedLoopTo(urls, o.concurrency, o.duration, func(i int) string { return account("rep", i%accounts) })
		if err != nil {
			return rows, err
		}
		if q := p.queued.Load() - q0; q != sent*perEvent {
			return rows, fmt.Errorf("%d replicas: %d events queued %d notifications, want %d", n, sent, q, sent*perEvent)
		}
		want := before + sent*perEvent
		if err := waitDelivered(s.sink, want, waitFor(o)); err != nil {
			return rows, fmt.Errorf("%d replicas: %w", n, err)
		}
		elapsed := time.Since(start)
		cpu1 := replicasCPU(replicas)
		each1 := cpuEach(replicas)
		ri1, ra1 := replicasQueueReads(replicas)
		var split []string
		for i := range each1 {
			split = append(split, fmt.Sprintf("%.3f", (each1[i]-each0[i])/float64(want-before)*1000))
		}
		delivered := float64(want - before)
		peak := 0.0
		for _, r := range replicas {
			_, mb, _ := procStats(r.cmd.Process.Pid)
			peak = max(peak, mb)
		}
		rows = append(rows, row{
			scenario: fmt.Sprintf("active-active, %d replica(s) (%d accounts × %d webhooks, 1 KB)", n, accounts, per),
			offered:  float64(sent) / o.duration.Seconds(), delivered: delivered / elapsed.Seconds(),
			cpuPer1000: (cpu1 - cpu0) / delivered * 1000, peakRSS: peak,
			note: fmt.Sprintf("%d partitions; CPU of all replicas with the embedded NATS server, per replica %s (the first embeds NATS); %d deliveries, all checked; %s",
				replicaPartitions, strings.Join(split, " + "), int64(delivered), readShare("index", ri0, ra0, ri1, ra1)),
		})
	}
	return rows, nil
}

// replicasQueueReads sums queueReads over the replicas.
func replicasQueueReads(rs []*replica) (index, all float64) {
	for _, r := range rs {
		i, a := queueReads("http://"+r.metrics+"/metrics", "index")
		index, all = index+i, all+a
	}
	return index, all
}

// cpuEach is the CPU seconds used so far by each replica.
func cpuEach(rs []*replica) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i], _, _ = procStats(r.cmd.Process.Pid)
	}
	return out
}

// replicasCPU is the CPU seconds used so far by every replica.
func replicasCPU(rs []*replica) float64 {
	total := 0.0
	for _, r := range rs {
		cpu, _, _ := procStats(r.cmd.Process.Pid)
		total += cpu
	}
	return total
}

// waitShared waits until every replica delivers some of the partitions and together they deliver
// all of them.
func waitShared(rs []*replica) error {
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		sum, each := 0, true
		for _, r := range rs {
			n := int(scrape("http://"+r.metrics+"/metrics", "hookline_partitions_owned"))
			sum += n
			each = each && n > 0
		}
		if each && sum == replicaPartitions {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d replicas never shared the %d partitions", len(rs), replicaPartitions)
		}
	}
}
