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
	"cmp"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cpuSample is the CPU seconds used so far by each process of the stack (by name), by the whole
// machine, and stolen from this machine by its hypervisor, at one moment.
type cpuSample struct {
	at             time.Time
	byName         map[string]float64
	machine, steal float64
}

// cpuRecorder samples the stack's and the machine's CPU at an interval until stopped, so that a
// burst of slow deliveries can be set against who used the CPU at that moment.
type cpuRecorder struct {
	mu      sync.Mutex
	samples []cpuSample
	stop    chan struct{}
	done    chan struct{}
}

func recordCPU(every time.Duration) *cpuRecorder {
	r := &cpuRecorder{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s := cpuSample{at: time.Now(), byName: treeCPUByName()}
			s.machine, s.steal = machineCPU()
			r.mu.Lock()
			r.samples = append(r.samples, s)
			r.mu.Unlock()
			select {
			case <-r.stop:
				return
			case <-t.C:
			}
		}
	}()
	return r
}

// Stop ends the sampling and returns the samples.
func (r *cpuRecorder) Stop() []cpuSample {
	close(r.stop)
	<-r.done
	return r.samples
}

// machineCPU reads the CPU seconds the machine's cores have spent busy (user, nice, system, irq,
// softirq; guest time is inside user) and those its hypervisor gave to other machines while this
// one had work (steal): on a shared virtual machine, stolen time delays every process alike.
func machineCPU() (busy, steal float64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	jiffies := func(i int) float64 { x, _ := strconv.ParseFloat(f[i], 64); return x / 100 } // USER_HZ
	return jiffies(1) + jiffies(2) + jiffies(3) + jiffies(6) + jiffies(7), jiffies(8)
}

// cpuAt is the CPU each process used per second between the samples around [from, to), "other"
// being the machine's busy time outside the stack (other work on this machine) and "steal" the
// time its hypervisor gave to other machines.
func cpuAt(samples []cpuSample, from, to time.Time) map[string]float64 {
	i := 0 // the last sample at or before from
	for k, s := range samples {
		if !s.at.After(from) {
			i = k
		}
	}
	j := slices.IndexFunc(samples, func(s cpuSample) bool { return !s.at.Before(to) })
	if j < 0 {
		j = len(samples) - 1
	}
	if j <= i {
		return nil
	}
	a, b := samples[i], samples[j]
	secs := b.at.Sub(a.at).Seconds()
	out := map[string]float64{}
	stack := 0.0
	for name, cpu := range b.byName {
		d := cpu - a.byName[name]
		stack += d
		out[name] = d / secs
	}
	out["other"] = max(0, (b.machine-a.machine)-stack) / secs
	out["steal"] = (b.steal - a.steal) / secs
	return out
}

// burstCPU names, for the second holding most deliveries slower than above, the cores each
// process used then and on average over the run, the largest differences first: e.g.
// "CPU at s7 (cores, run mean): kube-apiserver 0.81 (0.12), other 0.40 (0.05), dispatcher 0.35 (0.50)".
func burstCPU(lat []latency, cpu []cpuSample, above time.Duration) string {
	if len(lat) == 0 || len(cpu) < 2 {
		return ""
	}
	first, _, _, order := slowBySecond(lat, above)
	if len(order) == 0 {
		return ""
	}
	worst := order[0]
	from := first.Add(time.Duration(worst) * time.Second)
	then := cpuAt(cpu, from, from.Add(time.Second))
	mean := cpuAt(cpu, cpu[0].at, cpu[len(cpu)-1].at)
	names := slices.Collect(maps.Keys(then))
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(then[b]-mean[b], then[a]-mean[a]) })
	parts := make([]string, 0, len(names))
	for _, n := range names {
		if then[n] < 0.01 && mean[n] < 0.01 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.2f (%.2f)", n, then[n], mean[n]))
	}
	return fmt.Sprintf("CPU at s%d (cores, run mean): %s", worst, strings.Join(parts, ", "))
}
