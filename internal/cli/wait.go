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

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// waiter is what one --wait waits for. obj is read into on every poll; the functions look at it.
type waiter struct {
	obj  client.Object
	noun string // "webhook", "replay": for the last error reading it
	what string // "team-a/orders", "webhookreplay team-a/orders-1"
	goal string // "to become Active", "to complete"
	// done reports whether the wait is over: true with nil when it succeeded, an error when it
	// can no longer succeed.
	done func() (bool, error)
	// progress is a one-line summary, printed whenever it changes.
	progress func() string
	// timedOut is the detail that follows the timeout message (lines starting with "\n  ").
	timedOut func() string
	// goesOn is said when the wait ends early: what the user's object does meanwhile.
	goesOn string
	// timeoutGoal is the goal as the timeout message says it (after what and goesOn).
	timeoutGoal string
}

// waitFor polls w.obj every PollInterval until w.done says so or timeout passes, printing on
// stderr a line whenever the progress changes and a dot otherwise. An API-server error that passes
// keeps it waiting; the last one is reported if the wait times out on it.
func (a *App) waitFor(ctx context.Context, k *kube, timeout time.Duration, w waiter) error {
	key := client.ObjectKeyFromObject(w.obj)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := &progressDots{w: a.Stderr}
	defer p.end()
	p.line(fmt.Sprintf("waiting up to %s for %s %s", timeout, w.what, w.goal))
	ticker := time.NewTicker(a.PollInterval)
	defer ticker.Stop()
	var lastErr error
	seen := ""
	for {
		err := k.client.Get(ctx, key, w.obj)
		switch {
		case err == nil:
			lastErr = nil
			if over, err := w.done(); over || err != nil {
				p.end()
				return err
			}
			if now := w.progress(); now != seen {
				seen = now
				p.line("  " + now)
			} else {
				p.dot()
			}
		case apierrors.IsNotFound(err):
			return fmt.Errorf("%s was deleted while waiting", w.what)
		case ctx.Err() == nil:
			lastErr = err
			p.dot()
		}
		select {
		case <-ctx.Done():
			p.end()
			if errors.Is(ctx.Err(), context.Canceled) {
				return errors.New("interrupted while waiting" + w.goesOn)
			}
			msg := fmt.Sprintf("timed out after %s waiting for %s%s%s: %s", timeout, w.what, w.timeoutGoal, w.goesOn, w.progress())
			msg += w.timedOut()
			if lastErr != nil {
				msg += fmt.Sprintf("\n  last error reading the %s: %v", w.noun, lastErr)
			}
			return errors.New(msg)
		case <-ticker.C:
		}
	}
}

// progressDots writes status lines and, between them, dots on one line.
type progressDots struct {
	w      io.Writer
	dotted bool
}

func (p *progressDots) dot() {
	fmt.Fprint(p.w, ".")
	p.dotted = true
}

func (p *progressDots) line(s string) {
	p.end()
	fmt.Fprintln(p.w, s)
}

func (p *progressDots) end() {
	if p.dotted {
		fmt.Fprintln(p.w)
		p.dotted = false
	}
}
