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
	"errors"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/internal/notify"
)

// ProblemState is what the ProblemMailer reads of the delivery engine (*deliver.Engine), and the one
// thing it records there.
type ProblemState interface {
	Status(uid string) (deliver.Status, bool)
	Webhook(uid string) (deliver.Webhook, bool)
	NoteProblemMailed(ctx context.Context, uid string, since time.Time) error
	NoteDisableMailed(ctx context.Context, uid string, at time.Time) error
}

// ProblemSender queues a problem e-mail (*notify.Notifier: rate limits, allowed domains, SMTP), and
// reports false when it could not (its queue is full).
type ProblemSender interface {
	Enqueue(notify.Problem) bool
}

// errMailQueueFull is check's error when the e-mail could not be queued (the queue is full, or holds
// its namespace's share, or the e-mails of all namespaces reached the overall limit): it is tried
// again at the next retry, and not recorded as mailed meanwhile.
var errMailQueueFull = errors.New("the problem e-mail could not be queued now")

// ProblemMailer e-mails a webhook's problemNotificationEmails about its delivery problems: once per
// failing streak that has lasted After, and once when the webhook is auto-disabled. It is a runnable
// of its own that only reads the engine's state, so that status writes and e-mail neither wait for
// nor call back into each other. What it mailed is remembered where it must survive a restart: the
// streak through Engine.NoteProblemMailed and the auto-disable through Engine.NoteDisableMailed
// (both saved with the delivery state, which the next owner of the webhook's partition reads: it
// mailed again every auto-disable it took over).
type ProblemMailer struct {
	// Client reads the Webhook (its recipients and URL), from the cache.
	Client   client.Reader
	Engine   ProblemState
	Notifier ProblemSender
	// After is how long a failing streak lasts before it is mailed.
	After time.Duration
	Clock clock.PassiveClock
	Log   logr.Logger

	mu       sync.Mutex
	started  time.Time
	marked   map[string]bool
	disabled map[string]bool // the auto-disable state last seen (and mailed)
	kick     chan struct{}
}

func (p *ProblemMailer) init() {
	if p.marked == nil {
		p.marked, p.disabled, p.kick = map[string]bool{}, map[string]bool{}, make(chan struct{}, 1)
	}
}

// Mark notes that uid's delivery state changed (the engine's change notification).
func (p *ProblemMailer) Mark(uid string, _ bool) {
	p.mu.Lock()
	p.init()
	p.marked[uid] = true
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (p *ProblemMailer) NeedLeaderElection() bool { return false }

// problemRetry is how often webhooks whose check failed (the store did not save what was mailed)
// are checked again.
const problemRetry = 10 * time.Second

// Start checks marked webhooks until ctx ends (manager.Runnable).
func (p *ProblemMailer) Start(ctx context.Context) error {
	p.mu.Lock()
	p.init()
	p.started = p.Clock.Now()
	p.mu.Unlock()
	retry := time.NewTicker(problemRetry)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.kick:
		case <-retry.C:
			p.forgetRemoved()
		}
		p.mu.Lock()
		marked := p.marked
		p.marked = map[string]bool{}
		p.mu.Unlock()
		for uid := range marked {
			if err := p.check(ctx, uid); err != nil && ctx.Err() == nil {
				if errors.Is(err, errMailQueueFull) {
					p.Log.V(1).Info("Problem e-mail not queued (queue full, or the overall limit reached); trying again shortly", "uid", uid)
				} else {
					p.Log.Error(err, "Recording a problem e-mail; checking again shortly", "uid", uid)
				}
				p.mu.Lock()
				p.marked[uid] = true
				p.mu.Unlock()
			}
		}
	}
}

// forgetRemoved drops what is remembered of webhooks the engine no longer knows (deleted).
func (p *ProblemMailer) forgetRemoved() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for uid := range p.disabled {
		if _, ok := p.Engine.Status(uid); !ok {
			delete(p.disabled, uid)
		}
	}
}

// check mails what uid's state calls for, if anything.
func (p *ProblemMailer) check(ctx context.Context, uid string) error {
	st, ok := p.Engine.Status(uid)
	cfg, ok2 := p.Engine.Webhook(uid)
	p.mu.Lock()
	wasDisabled, seen := p.disabled[uid]
	if !ok || !ok2 {
		delete(p.disabled, uid) // removed
		p.mu.Unlock()
		return nil
	}
	started := p.started
	p.mu.Unlock()
	if !seen {
		// First seen in this run: an auto-disable on record as mailed was (by this replica or
		// another that delivered the webhook before); one from before this run, saved by a
		// version that kept no such record, was reported by the run that made it.
		wasDisabled = st.Disabled && (st.DisableMailed.Equal(st.DisabledAt) || st.DisableMailed.IsZero() && st.DisabledAt.Before(started))
	}
	err := p.mailFor(ctx, uid, st, cfg, wasDisabled)
	if err == nil {
		// Recorded once what it called for is done: after a failure (the e-mail queue was full)
		// the next check sees the same change again.
		p.mu.Lock()
		p.disabled[uid] = st.Disabled
		p.mu.Unlock()
	}
	return err
}

// mailFor mails what uid's state st calls for, given the auto-disable state last seen.
func (p *ProblemMailer) mailFor(ctx context.Context, uid string, st deliver.Status, cfg deliver.Webhook, wasDisabled bool) error {
	switch {
	case st.Disabled && !wasDisabled:
		if st.DisableMailed.Equal(st.DisabledAt) {
			return nil
		}
		if err := p.mail(ctx, uid, st, cfg, notify.AutoDisabled); err != nil {
			return err
		}
		return p.Engine.NoteDisableMailed(ctx, uid, st.DisabledAt)
	case !st.Disabled && st.ConsecutiveFailures > 0 && p.Clock.Since(st.FailingSince) >= p.After &&
		!st.ProblemMailed.Equal(st.FailingSince):
		// One e-mail per failing streak, remembered in the saved delivery state so that a restart
		// does not send it again; the notifier's interval covers flapping.
		if err := p.mail(ctx, uid, st, cfg, notify.SustainedFailure); err != nil {
			return err
		}
		return p.Engine.NoteProblemMailed(ctx, uid, st.FailingSince)
	}
	return nil
}

// mail queues a problem e-mail to the webhook's problemNotificationEmails; it never blocks delivery.
func (p *ProblemMailer) mail(ctx context.Context, uid string, st deliver.Status, cfg deliver.Webhook, kind notify.Kind) error {
	wh := &hooklinev1.Webhook{}
	if err := p.Client.Get(ctx, client.ObjectKey{Namespace: cfg.Namespace, Name: cfg.Name}, wh); err != nil {
		return client.IgnoreNotFound(err)
	}
	if string(wh.UID) != uid || len(wh.Spec.ProblemNotificationEmails) == 0 {
		return nil // replaced by a new webhook of the same name, or nobody to tell
	}
	pr := notify.Problem{
		Kind: kind, Namespace: wh.Namespace, Name: wh.Name, UID: uid, URL: wh.Spec.URL, AccountID: cfg.AccountID,
		Since: st.FailingSince, ConsecutiveFailures: int(st.ConsecutiveFailures), QueueDepth: int(st.Pending),
		LastError: st.LastFailureReason + ": " + st.LastFailureMessage,
	}
	if kind == notify.AutoDisabled && st.DisabledMessage != "" {
		pr.LastError = st.DisabledMessage
	}
	for _, to := range wh.Spec.ProblemNotificationEmails {
		pr.To = append(pr.To, string(to))
	}
	if !p.Notifier.Enqueue(pr) {
		return errMailQueueFull
	}
	return nil
}
