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
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// Recover scenario: 10 accounts × 10 webhooks are auto-disabled, events for them are lost while
// they are disabled, they are reactivated, and one WebhookReplay per webhook (--state lost)
// recovers them, timed from the replays' creation. Its rate is compared with the drain rate of the
// same number of notifications, queued normally for the same webhooks while their receiver was
// down, timed from the first delivery; both read their events back from the store (each follows
// a dispatcher restart), as a backlog larger than the event cache does. The auto-disable needs
// short drop and disable periods: the dispatcher is replaced by one with them for the recover and
// by one without them (the production defaults) for the drain.
const (
	recoverAccounts   = 10
	recoverPerAccount = 10
)

// disableFlags make a failing webhook auto-disable within seconds; replayFlags are the recovering
// dispatcher's (Acrobat Sign's 72 hours again: nothing recovered may expire while it waits its turn).
var (
	disableFlags = []string{"--drop-after=3s", "--disable-after=1s"}
	// The cap on replays running at once per namespace is raised to the webhooks of a namespace
	// (recoverPerAccount), as docs/deliveries.md advises for a recover of a whole namespace: with
	// the default of 2 the scenario measures the cap (about half the drain rate), not the replays.
	replayFlags = []string{fmt.Sprintf("--replay-max-per-namespace=%d", recoverPerAccount)}
)

func (s *stack) recoverScenario(ctx context.Context, p *poster, o options) (row, error) {
	notifications := o.recover
	// profile starts a CPU profile of the dispatcher; its result waits until it is written (before
	// the dispatcher is replaced, after the timing).
	profile := func(phase string) (wait func()) {
		if o.recoverProfile == "" {
			return func() {}
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			saveURL(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.pprofAddr, o.recoverProfileSeconds), o.recoverProfile+"."+phase)
		}()
		return func() { <-done }
	}
	webhooks := recoverAccounts * recoverPerAccount
	events := max(notifications/recoverPerAccount, recoverAccounts)
	lost := int64(events * recoverPerAccount)
	if err := s.restartDispatcher(disableFlags...); err != nil {
		return row{}, err
	}
	g, _, err := s.createGroup(ctx, "r", recoverAccounts, recoverPerAccount)
	if err != nil {
		return row{}, err
	}
	s.routed(p, "r", recoverAccounts, recoverPerAccount)

	// 1. The receiver fails: one notification per webhook is dropped and disables it.
	s.sink.dead.Store("r", true)
	for a := range recoverAccounts {
		if err := p.post(s.ingestURL, p.event(account("r", a)), benchToken); err != nil {
			return row{}, err
		}
	}
	if err := s.waitWebhooks(ctx, "r", webhooks, time.Minute, func(wh *hooklinev1.Webhook) bool {
		return wh.Status.State == hooklinev1.ObservedDisabled
	}); err != nil {
		return row{}, fmt.Errorf("auto-disable: %w", err)
	}

	// 2. Events while disabled: lost.
	since := time.Now().Add(-time.Second).Truncate(time.Second)
	ingest, err := s.postEvents(p, "r", events)
	if err != nil {
		return row{}, err
	}

	// 3. The receiver recovers; every webhook is reactivated and verified again, by a dispatcher
	// with the production drop and disable periods on the same data.
	if err := s.resumeDispatcher(len(disableFlags), replayFlags...); err != nil {
		return row{}, err
	}
	s.sink.dead.Delete("r")
	list := &hooklinev1.WebhookList{}
	if err := s.c.List(ctx, list); err != nil {
		return row{}, err
	}
	patch := []byte(`{"metadata":{"annotations":{"` + hooklinev1.ReactivateAnnotation + `":"bench-recover"}}}`)
	for i := range list.Items {
		wh := &list.Items[i]
		if strings.HasPrefix(wh.Namespace, "bench-r-") {
			if err := s.c.Patch(ctx, wh, client.RawPatch(types.MergePatchType, patch)); err != nil {
				return row{}, err
			}
		}
	}
	if err := s.waitWebhooks(ctx, "r", webhooks, 2*time.Minute, func(wh *hooklinev1.Webhook) bool {
		return wh.Status.State == hooklinev1.ObservedActive
	}); err != nil {
		return row{}, fmt.Errorf("reactivation: %w", err)
	}

	// 4. One replay per webhook recovers what was lost.
	before := s.sink.count.Load()
	profiled := profile("recover")
	start := time.Now()
	var replays []*hooklinev1.WebhookReplay
	for i := range list.Items {
		wh := &list.Items[i]
		if strings.HasPrefix(wh.Namespace, "bench-r-") {
			replays = append(replays, &hooklinev1.WebhookReplay{
				ObjectMeta: metav1.ObjectMeta{Namespace: wh.Namespace, Name: wh.Name + "-recover"},
				Spec: hooklinev1.WebhookReplaySpec{WebhookName: wh.Name, Since: &metav1.Time{Time: since},
					States: []hooklinev1.ReplayState{hooklinev1.ReplayLost}},
			})
		}
	}
	stopTimeline := s.timeline("recover", start, before, lost)
	// The whole stack's CPU by process, for each phase: both phases fill the machine, so what the
	// control plane spends on the replays' writes is taken from the deliveries too.
	stack0 := treeCPUByName()
	var req0 map[string]float64
	if o.apiserverProfile != "" {
		req0 = apiserverRequests(s)
		go captureAPIServerProfile(s, o.apiserverProfile+".recover", 0, 6*time.Second)
	}
	// Created at once, as `kubectl apply -f` of a directory would: the clock runs from the first.
	var wg sync.WaitGroup
	createErrs := make([]error, len(replays))
	for i, rp := range replays {
		wg.Add(1)
		go func() { defer wg.Done(); createErrs[i] = s.c.Create(ctx, rp) }()
	}
	wg.Wait()
	if err := errors.Join(createErrs...); err != nil {
		return row{}, err
	}
	cpu0, _, _ := procStats(s.dispatcher.Process.Pid)
	err = waitDelivered(s.sink, before+lost, recoverWait(o))
	recoverTook := time.Since(start)
	stack1 := treeCPUByName()
	if o.apiserverProfile != "" {
		for k, v := range apiserverRequests(s) {
			if d := v - req0[k]; d > 0 {
				fmt.Fprintf(os.Stderr, "bench: recover: API server: %s: %.0f\n", k, d)
			}
		}
	}
	stopTimeline()
	if err != nil {
		return row{}, fmt.Errorf("recover: %w", err)
	}
	cpu1, peak, _ := procStats(s.dispatcher.Process.Pid)
	var matched int64
	for _, rp := range replays {
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
			if err := s.c.Get(ctx, client.ObjectKeyFromObject(rp), rp); err != nil {
				return row{}, err
			}
			if meta.IsStatusConditionTrue(rp.Status.Conditions, hooklinev1.ConditionReady) {
				break
			}
			if time.Now().After(deadline) {
				return row{}, fmt.Errorf("replay %s/%s not completed: %+v", rp.Namespace, rp.Name, rp.Status)
			}
		}
		matched += rp.Status.Matched
	}
	completed := time.Since(start)
	if matched != lost {
		return row{}, fmt.Errorf("the replays matched %d notifications, %d were lost", matched, lost)
	}
	recoverRate := float64(lost) / recoverTook.Seconds()
	profiled()

	// 5. The drain rate of as many notifications, for the same webhooks, with production settings.
	if err := s.restartDispatcher(); err != nil {
		return row{}, err
	}
	s.routed(p, "r", recoverAccounts, recoverPerAccount)
	s.sink.dead.Store("r", true)
	if _, err := s.postEvents(p, "r", events); err != nil {
		return row{}, err
	}
	// Read back from the store, as the recover reads its events (and a backlog beyond the event
	// cache is): a dispatcher started on this data has none of them in memory.
	if err := s.resumeDispatcher(0); err != nil {
		return row{}, err
	}
	before = s.sink.count.Load()
	s.sink.dead.Delete("r")
	// From the first delivery: the heads wait out their retry delay (at most --retry-cap) first.
	for deadline := time.Now().Add(time.Minute); s.sink.count.Load() == before && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	drainStart := time.Now()
	dcpu0, _, _ := procStats(s.dispatcher.Process.Pid)
	dstack0 := treeCPUByName()
	stopTimeline = s.timeline("drain", drainStart, before, lost)
	profiled = profile("drain")
	err = waitDelivered(s.sink, before+lost, recoverWait(o))
	drainRate := float64(lost) / time.Since(drainStart).Seconds()
	dcpu1, _, _ := procStats(s.dispatcher.Process.Pid)
	dstack1 := treeCPUByName()
	stopTimeline()
	if err != nil {
		return row{}, fmt.Errorf("drain: %w", err)
	}
	profiled()

	r := row{offered: ingest, delivered: recoverRate, peakRSS: peak, cpuPer1000: (cpu1 - cpu0) / float64(lost) * 1000}
	// A figure, not a correctness check: reported as every target is, not enforced (a smoke run's
	// phases last about a second, mostly the replays' poll interval, so its ratio means nothing).
	r.note = fmt.Sprintf("recover %.0f/s = %.2f × drain %.0f/s (target ≥ 1%s; CPU s/1k: drain %.3f); whole stack µs per notification: recover %s, drain %s; %d replays completed in %.1fs; %d webhooks",
		recoverRate, recoverRate/drainRate, drainRate, missed(recoverRate < drainRate && !o.smoke), (dcpu1-dcpu0)/float64(lost)*1000,
		cpuByProcess(stack0, stack1, lost), cpuByProcess(dstack0, dstack1, lost), len(replays), completed.Seconds(), len(g.uids))
	return r, nil
}

// recoverWait is how long the recover and the drain wait for their deliveries.
func recoverWait(o options) time.Duration {
	if o.smoke {
		return 2 * time.Minute
	}
	return 10 * time.Minute
}

// postEvents posts events events spread over the group's accounts (one poster per account, so
// that each webhook's events keep their order) and returns the ingest rate.
func (s *stack) postEvents(p *poster, prefix string, events int) (float64, error) {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, recoverAccounts)
	for a := range recoverAccounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := a; i < events; i += recoverAccounts {
				if err := p.post(s.ingestURL, p.event(account(prefix, a)), benchToken); err != nil {
					errs[a] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(events) / time.Since(start).Seconds(), errors.Join(errs...)
}

// waitWebhooks waits until want webhooks of the group satisfy ok.
func (s *stack) waitWebhooks(ctx context.Context, prefix string, want int, timeout time.Duration, ok func(*hooklinev1.Webhook) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		list := &hooklinev1.WebhookList{}
		if err := s.c.List(ctx, list); err != nil {
			return err
		}
		n := 0
		var others []*hooklinev1.Webhook
		for i := range list.Items {
			if !strings.HasPrefix(list.Items[i].Namespace, "bench-"+prefix+"-") {
				continue
			}
			if ok(&list.Items[i]) {
				n++
			} else {
				others = append(others, &list.Items[i])
			}
		}
		if n == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d webhooks after %s; %s", n, want, timeout, describeWebhooks(others, 3))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// describeWebhooks tells, for the first max of whs, what their status says: whether the dispatcher
// or the manager (which derives the state from the dispatcher's conditions) is behind.
func describeWebhooks(whs []*hooklinev1.Webhook, max int) string {
	var b strings.Builder
	for i, wh := range whs[:min(len(whs), max)] {
		if i > 0 {
			b.WriteString("; ")
		}
		st := &wh.Status
		fmt.Fprintf(&b, "%s/%s: state %q, pending %d, delivered %d, dropped %d, %d consecutive failures, conditions",
			wh.Namespace, wh.Name, st.State, ptr.Deref(st.PendingNotifications, 0), ptr.Deref(st.DeliveredTotal, 0),
			ptr.Deref(st.DroppedTotal, 0), ptr.Deref(st.ConsecutiveFailures, 0))
		for _, c := range st.Conditions {
			fmt.Fprintf(&b, " %s=%s(%s)", c.Type, c.Status, c.Reason)
		}
	}
	return b.String()
}

// resumeDispatcher stops the dispatcher and starts it again on its data directory, with its last
// drop flags (the extra ones it was started with) replaced by extra.
func (s *stack) resumeDispatcher(drop int, extra ...string) error {
	old := s.dispatcher
	_ = old.Process.Signal(syscall.SIGTERM)
	_ = old.Wait()
	args := append(slices.Clone(old.Args[1:len(old.Args)-drop]), extra...)
	s.dispatchers++
	s.dispatcher = exec.Command(old.Path, args...)
	if err := start(s.dir, fmt.Sprintf("dispatcher-%d", s.dispatchers), s.dispatcher); err != nil {
		return err
	}
	return s.waitDispatcher(time.Minute)
}

// timeline prints, when stopped, how long after start the sink had received the first
// delivery and 10, 50, 90 and 100 % of n beyond before: where a phase loses time (its start, its
// tail) shows there.
func (s *stack) timeline(phase string, start time.Time, before, n int64) (stop func()) {
	marks := []float64{0, 0.1, 0.5, 0.9, 1}
	at := make([]time.Duration, len(marks))
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		next := 0
		for next < len(marks) {
			got := s.sink.count.Load() - before
			for next < len(marks) && (marks[next] == 0 && got > 0 || marks[next] > 0 && float64(got) >= marks[next]*float64(n)) {
				at[next] = time.Since(start)
				next++
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		if at[len(at)-1] == 0 {
			at[len(at)-1] = time.Since(start)
		}
		var b strings.Builder
		for i, m := range marks {
			fmt.Fprintf(&b, " %.0f%%@%.2fs", m*100, at[i].Seconds())
		}
		fmt.Fprintf(os.Stderr, "bench: %s timeline:%s\n", phase, b.String())
	}
}

// cpuByProcess describes the CPU the stack's processes used between two treeCPUByName samples, in
// µs per notification of n: the total, then each process that used any, most first.
func cpuByProcess(before, after map[string]float64, n int64) string {
	type use struct {
		name string
		us   float64
	}
	var uses []use
	var total float64
	for name, cpu := range after {
		if d := (cpu - before[name]) / float64(n) * 1e6; d >= 0.5 {
			uses = append(uses, use{name, d})
			total += d
		}
	}
	slices.SortFunc(uses, func(a, b use) int { return cmp.Compare(b.us, a.us) })
	parts := make([]string, len(uses))
	for i, u := range uses {
		parts[i] = fmt.Sprintf("%s %.0f", u.name, u.us)
	}
	return fmt.Sprintf("%.0f (%s)", total, strings.Join(parts, ", "))
}
