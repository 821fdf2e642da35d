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

package dispatcher

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/internal/notify"
)

// problemEngine is ProblemState in memory: one webhook's delivery state.
type problemEngine struct {
	st    deliver.Status
	wh    deliver.Webhook
	noted []time.Time
}

func (f *problemEngine) Status(string) (deliver.Status, bool)   { return f.st, true }
func (f *problemEngine) Webhook(string) (deliver.Webhook, bool) { return f.wh, true }
func (f *problemEngine) NoteProblemMailed(_ context.Context, _ string, since time.Time) error {
	f.st.ProblemMailed = since
	f.noted = append(f.noted, since)
	return nil
}

func (f *problemEngine) NoteDisableMailed(_ context.Context, _ string, at time.Time) error {
	f.st.DisableMailed = at
	return nil
}

// outbox is ProblemSender in memory.
type outbox []notify.Problem

func (o *outbox) Enqueue(p notify.Problem) bool { *o = append(*o, p); return true }

// fullOutbox is an outbox whose queue is full for the first full e-mails.
type fullOutbox struct {
	outbox
	full int
}

func (o *fullOutbox) Enqueue(p notify.Problem) bool {
	if o.full > 0 {
		o.full--
		return false
	}
	return o.outbox.Enqueue(p)
}

// oneWebhook is a client.Reader holding one Webhook.
type oneWebhook struct{ wh *hooklinev1.Webhook }

func (r oneWebhook) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	if key.Namespace != r.wh.Namespace || key.Name != r.wh.Name {
		return apierrors.NewNotFound(hooklinev1.GroupVersion.WithResource("webhooks").GroupResource(), key.Name)
	}
	r.wh.DeepCopyInto(obj.(*hooklinev1.Webhook))
	return nil
}

func (oneWebhook) List(context.Context, client.ObjectList, ...client.ListOption) error { return nil }

// TestProblemMailerRules: one e-mail per failing streak once it is After old, remembered through
// the engine (so a restart does not repeat it); one e-mail per auto-disable that happened in this
// run; none to a replaced webhook or to nobody.
func TestProblemMailerRules(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	started := now.Add(-10 * time.Minute)
	failing := func(since time.Duration) deliver.Status {
		return deliver.Status{ConsecutiveFailures: 6, FailingSince: now.Add(-since), LastFailureReason: "NonSuccessStatus"}
	}
	disabled := func(at time.Time) deliver.Status {
		st := failing(72 * time.Hour)
		st.Disabled, st.DisabledAt, st.DisabledMessage = true, at, "dropped"
		return st
	}
	mailedBefore := failing(2 * time.Hour)
	mailedBefore.ProblemMailed = mailedBefore.FailingSince
	earlierStreak := failing(2 * time.Hour)
	earlierStreak.ProblemMailed = now.Add(-30 * time.Hour)

	for _, tc := range []struct {
		name string
		// checks are the states seen one after the other.
		checks     []deliver.Status
		recipients []hooklinev1.Email
		replaced   bool
		want       []notify.Kind
		noted      int
	}{
		{name: "failing for 30 minutes", checks: []deliver.Status{failing(30 * time.Minute)}},
		{name: "failing for an hour", checks: []deliver.Status{failing(time.Hour)}, want: []notify.Kind{notify.SustainedFailure}, noted: 1},
		{name: "this streak mailed already (before a restart)", checks: []deliver.Status{mailedBefore}},
		{name: "an earlier streak was mailed", checks: []deliver.Status{earlierStreak}, want: []notify.Kind{notify.SustainedFailure}, noted: 1},
		{name: "checked again after mailing", checks: []deliver.Status{failing(time.Hour), failing(time.Hour)},
			want: []notify.Kind{notify.SustainedFailure}, noted: 1},
		{name: "auto-disabled in this run", checks: []deliver.Status{disabled(now)}, want: []notify.Kind{notify.AutoDisabled}},
		{name: "auto-disabled while seen enabled, checked twice", checks: []deliver.Status{failing(time.Minute), disabled(now), disabled(now)},
			want: []notify.Kind{notify.AutoDisabled}},
		{name: "auto-disabled before this run", checks: []deliver.Status{disabled(started.Add(-time.Hour))}},
		{name: "reactivated, then disabled again", checks: []deliver.Status{disabled(now), failing(time.Minute), disabled(now.Add(time.Minute))},
			want: []notify.Kind{notify.AutoDisabled, notify.AutoDisabled}},
		{name: "nobody to tell", checks: []deliver.Status{failing(time.Hour), disabled(now)}, recipients: []hooklinev1.Email{}, noted: 1},
		{name: "replaced by a new webhook of the same name", checks: []deliver.Status{failing(time.Hour), disabled(now)}, replaced: true, noted: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "wh", UID: "uid-1"}}
			wh.Spec.URL = "https://receiver.example/hook"
			wh.Spec.ProblemNotificationEmails = []hooklinev1.Email{"ops@example.com"}
			if tc.recipients != nil {
				wh.Spec.ProblemNotificationEmails = tc.recipients
			}
			if tc.replaced {
				wh.UID = types.UID("uid-2")
			}
			eng := &problemEngine{wh: deliver.Webhook{UID: "uid-1", Namespace: "ns", Name: "wh", AccountID: "acc"}}
			var sent outbox
			p := &ProblemMailer{Client: oneWebhook{wh}, Engine: eng, Notifier: &sent, After: time.Hour,
				Clock: clocktesting.NewFakePassiveClock(now), Log: logr.Discard()}
			p.init()
			p.started = started
			for _, st := range tc.checks {
				if eng.st.ProblemMailed.After(st.ProblemMailed) {
					st.ProblemMailed = eng.st.ProblemMailed // what the engine remembers
				}
				eng.st = st
				g.Expect(p.check(context.Background(), "uid-1")).To(Succeed())
			}
			var kinds []notify.Kind
			for _, pr := range sent {
				kinds = append(kinds, pr.Kind)
				g.Expect(pr.To).To(Equal([]string{"ops@example.com"}))
				g.Expect(pr.UID).To(Equal("uid-1"))
			}
			g.Expect(kinds).To(Equal(tc.want))
			g.Expect(eng.noted).To(HaveLen(tc.noted))
		})
	}
}

// A problem e-mail that finds the notifier's queue full (another namespace's burst: the queue is
// shared) is neither lost nor recorded as mailed: the check fails, and the next one mails it. Before,
// the failing streak was recorded as mailed either way, and its e-mail never came.
func TestProblemMailerTriesAgainWhenTheQueueIsFull(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	failing := deliver.Status{ConsecutiveFailures: 6, FailingSince: now.Add(-2 * time.Hour), LastFailureReason: "NonSuccessStatus"}
	disabled := failing
	disabled.Disabled, disabled.DisabledAt, disabled.DisabledMessage = true, now, "dropped"
	for _, tc := range []struct {
		name string
		st   deliver.Status
		kind notify.Kind
	}{{"a failing streak", failing, notify.SustainedFailure}, {"an auto-disable", disabled, notify.AutoDisabled}} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "wh", UID: "uid-1"}}
			wh.Spec.ProblemNotificationEmails = []hooklinev1.Email{"ops@example.com"}
			eng := &problemEngine{st: tc.st, wh: deliver.Webhook{UID: "uid-1", Namespace: "ns", Name: "wh", AccountID: "acc"}}
			sent := &fullOutbox{full: 1}
			p := &ProblemMailer{Client: oneWebhook{wh}, Engine: eng, Notifier: sent, After: time.Hour,
				Clock: clocktesting.NewFakePassiveClock(now), Log: logr.Discard()}
			p.init()
			p.started = now.Add(-time.Hour)
			g.Expect(p.check(context.Background(), "uid-1")).To(MatchError(errMailQueueFull))
			g.Expect(sent.outbox).To(BeEmpty())
			g.Expect(eng.noted).To(BeEmpty(), "not recorded as mailed")
			g.Expect(p.check(context.Background(), "uid-1")).To(Succeed())
			g.Expect(sent.outbox).To(HaveLen(1))
			g.Expect(sent.outbox[0].Kind).To(Equal(tc.kind))
			g.Expect(p.check(context.Background(), "uid-1")).To(Succeed())
			g.Expect(sent.outbox).To(HaveLen(1), "once")
		})
	}
}

// An auto-disable is mailed once whichever replica delivers the webhook: the next owner of its
// partition, running since before the disable, took it for one of its own run and mailed it again
// at every hand-over (found by a review helper). What was mailed is kept with the delivery state.
// A state saved without that record (an earlier version) keeps the rule by time: an auto-disable
// from before this run was reported by the run that made it.
func TestAutoDisableIsMailedOnceAcrossOwners(t *testing.T) {
	g := NewWithT(t)
	started := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	disabledAt := started.Add(2 * time.Hour)
	wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "wh", UID: "uid-1"}}
	wh.Spec.URL = "https://receiver.example/hook"
	wh.Spec.ProblemNotificationEmails = []hooklinev1.Email{"ops@example.com"}
	st := deliver.Status{ConsecutiveFailures: 16, FailingSince: disabledAt.Add(-72 * time.Hour),
		Disabled: true, DisabledAt: disabledAt, DisabledMessage: "dropped"}
	var sent outbox
	check := func(st deliver.Status, started, now time.Time) deliver.Status {
		eng := &problemEngine{st: st, wh: deliver.Webhook{UID: "uid-1", Namespace: "ns", Name: "wh", AccountID: "acc"}}
		p := &ProblemMailer{Client: oneWebhook{wh}, Engine: eng, Notifier: &sent, After: time.Hour,
			Clock: clocktesting.NewFakePassiveClock(now), Log: logr.Discard()}
		p.init()
		p.started = started
		g.Expect(p.check(context.Background(), "uid-1")).To(Succeed())
		return eng.st // as saved
	}
	saved := check(st, started, disabledAt) // replica A disables it
	g.Expect(sent).To(HaveLen(1))
	g.Expect(saved.DisableMailed).To(Equal(disabledAt))
	check(saved, started, disabledAt.Add(time.Hour))                       // B, running as long, takes it over
	check(saved, disabledAt.Add(2*time.Hour), disabledAt.Add(3*time.Hour)) // C, started since
	g.Expect(sent).To(HaveLen(1), "one auto-disable, one e-mail")

	// Saved without the record: mailed by the run that disabled it if it began before this one.
	check(st, disabledAt.Add(time.Minute), disabledAt.Add(time.Hour))
	g.Expect(sent).To(HaveLen(1))
	check(st, started, disabledAt.Add(time.Hour)) // its owner crashed before mailing it
	g.Expect(sent).To(HaveLen(2))
}
