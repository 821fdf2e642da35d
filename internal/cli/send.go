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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// emitter sends the events one after the other, in order: per webhook, hookline delivers in
// ingest order, so the order of the sources is the order receivers see.
type emitter struct {
	app      *App
	opts     emitOptions
	endpoint string
	token    string
	events   []event
	total    int
	stderr   *lockedWriter
	ids      *idMinter
	http     *http.Client

	sent, accepted, duplicates, rejected, failed, notifications atomic.Int64
	// forbidden remembers the accounts already explained after a 403.
	forbidden map[string]bool
}

// What the ingest API did with one event, as the output's first word says it.
const (
	outcomeAccepted  = "accepted"
	outcomeDuplicate = "duplicate"
	outcomeRejected  = "rejected"
	outcomeFailed    = "failed"
)

// outcome is what the ingest API did with one event.
type outcome struct {
	kind          string // one of the outcome* constants
	id            string
	notifications int
	status        int
	code, message string
	// fatal stops the run: every following event would fail the same way.
	fatal error
}

func (e *emitter) run(ctx context.Context) error {
	start := e.app.Now()
	stopProgress := e.startProgress()
	err := e.sendAll(ctx)
	stopProgress()
	if e.total > progressThreshold {
		elapsed := e.app.Now().Sub(start)
		rate := ""
		if secs := elapsed.Seconds(); secs > 0 {
			rate = fmt.Sprintf(", %.0f/s", float64(e.sent.Load())/secs)
		}
		fmt.Fprintf(e.stderr, "emitted %d/%d events in %s%s: %d accepted (%d notifications), %d duplicate, %d rejected, %d failed\n",
			e.sent.Load(), e.total, elapsed.Round(time.Millisecond), rate, e.accepted.Load(), e.notifications.Load(),
			e.duplicates.Load(), e.rejected.Load(), e.failed.Load())
	}
	if err != nil {
		return err
	}
	if e.rejected.Load()+e.failed.Load() > 0 {
		return errReported
	}
	return nil
}

// startProgress prints a progress line every ProgressInterval while more than 10 events are sent.
func (e *emitter) startProgress() (stop func()) {
	if e.total <= progressThreshold {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(e.app.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				line := fmt.Sprintf("emitted %d/%d, %d rejected", e.sent.Load(), e.total, e.rejected.Load())
				if f := e.failed.Load(); f > 0 {
					line += fmt.Sprintf(", %d failed", f)
				}
				fmt.Fprintln(e.stderr, line)
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

func (e *emitter) sendAll(ctx context.Context) error {
	for round := 0; round < e.opts.count; round++ {
		for _, ev := range e.events {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("interrupted after %d of %d events", e.sent.Load(), e.total)
			}
			body, id, err := e.prepare(ev)
			if err != nil {
				e.sent.Add(1)
				e.failed.Add(1)
				fmt.Fprintf(e.app.Stdout, "failed %s: %v\n", displayID(id), err)
				continue
			}
			out := e.send(ctx, body, id)
			e.sent.Add(1)
			e.report(out)
			if out.fatal != nil {
				return fmt.Errorf("%w; stopped after %d of %d events", out.fatal, e.sent.Load(), e.total)
			}
		}
	}
	return nil
}

// prepare applies --account and fresh ids to one event.
func (e *emitter) prepare(ev event) ([]byte, string, error) {
	fresh := ev.sample || e.opts.count > 1
	if e.opts.newIDsSet {
		fresh = e.opts.newIDs
	}
	var set []field
	if e.opts.account != "" {
		set = append(set, field{"accountId", e.opts.account})
	}
	if !fresh {
		body, id, err := rewriteEvent(ev.raw, set...)
		if err != nil {
			return nil, id, fmt.Errorf("%s: %v", ev.origin, err)
		}
		return body, id, nil
	}
	_, original, err := rewriteEvent(ev.raw)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %v", ev.origin, err)
	}
	set = append(set, field{"id", e.ids.next(original)})
	body, id, err := rewriteEvent(ev.raw, set...)
	if err != nil {
		return nil, id, fmt.Errorf("%s: %v", ev.origin, err)
	}
	return body, id, nil
}

func displayID(id string) string {
	if id == "" {
		return "(no id)"
	}
	return terminalSafe(id) // the events file's to choose, and read back from it
}

// send posts one event, retrying a 503 (storage unavailable) a few times with doubling delays,
// and an earlier post of the same event still in progress (EVENT_IN_PROGRESS: another dispatcher
// stored it and may still be routing it, or crashed doing so) for as long as that may last.
func (e *emitter) send(ctx context.Context, body []byte, id string) outcome {
	delay := e.app.RetryDelay
	patience := e.app.Now().Add(inProgressPatience)
	for attempt := 0; ; {
		out := e.post(ctx, body, id)
		if out.status != http.StatusServiceUnavailable {
			return out
		}
		if out.code == "EVENT_IN_PROGRESS" {
			if !e.app.Now().Before(patience) {
				return out
			}
		} else if attempt++; attempt > storageRetries {
			return out
		}
		select {
		case <-ctx.Done():
			return out
		case <-time.After(delay):
		}
		delay = min(2*delay, maxRetryDoublings*e.app.RetryDelay)
	}
}

func (e *emitter) post(ctx context.Context, body []byte, id string) outcome {
	out := outcome{id: id}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.endpoint, bytes.NewReader(body))
	if err != nil {
		out.kind, out.message, out.fatal = outcomeFailed, err.Error(), err
		return out
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hookline-cli/"+Version)
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		out.kind = outcomeFailed
		var uerr *url.Error
		if errors.As(err, &uerr) && uerr.Timeout() {
			out.message = fmt.Sprintf("no answer from %s within %s (--timeout)", e.endpoint, e.opts.timeout)
			return out
		}
		if ctx.Err() != nil {
			out.message = "interrupted"
			return out
		}
		out.message = err.Error()
		if isConnectionError(err) {
			out.message = "cannot connect to " + e.endpoint
			out.fatal = fmt.Errorf("cannot connect to the ingest API at %s: %v; is the dispatcher running and listening there? (set --url or $HOOKLINE_URL)",
				e.endpoint, rootCause(err))
		}
		return out
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	out.status = resp.StatusCode
	if resp.StatusCode/100 == 2 {
		var receipt struct {
			ID            string `json:"id"`
			Duplicate     bool   `json:"duplicate"`
			Notifications int    `json:"notifications"`
		}
		if err := json.Unmarshal(raw, &receipt); err != nil {
			out.kind, out.message = outcomeFailed, fmt.Sprintf("%d with an unreadable body (is %s hookline's ingest API?)", resp.StatusCode, e.endpoint)
			return out
		}
		if receipt.ID != "" {
			out.id = receipt.ID
		}
		out.kind, out.notifications = outcomeAccepted, receipt.Notifications
		if receipt.Duplicate {
			out.kind = outcomeDuplicate
		}
		return out
	}
	var apiErr struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &apiErr) != nil || apiErr.Code == "" {
		apiErr.Code = strings.ToUpper(strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "_"))
		apiErr.Message = strings.TrimSpace(string(raw))
		if len(apiErr.Message) > 200 {
			apiErr.Message = apiErr.Message[:200] + "…"
		}
	}
	out.code, out.message = apiErr.Code, apiErr.Message
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		out.kind = outcomeRejected
		if apiErr.Code == "NO_AUTHORIZATION_HEADER" || e.token == "" {
			out.fatal = errors.New("the ingest API wants a token (401): pass --token or --token-file, or set $HOOKLINE_TOKEN")
		} else {
			out.fatal = fmt.Errorf("the ingest API refused the token (401 %s): it is wrong or no longer listed in the dispatcher's tokens file; check --token, --token-file or $HOOKLINE_TOKEN",
				apiErr.Code)
		}
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed:
		out.kind = outcomeFailed
		out.fatal = fmt.Errorf("%s does not serve the ingest API (%d %s): check --url", e.endpoint, resp.StatusCode, http.StatusText(resp.StatusCode))
	case resp.StatusCode/100 == 3:
		out.kind = outcomeFailed
		out.fatal = fmt.Errorf("%s redirects to %s: set --url to the ingest API itself", e.endpoint, resp.Header.Get("Location"))
	case resp.StatusCode/100 == 4:
		out.kind = outcomeRejected
	default:
		out.kind = outcomeFailed
	}
	return out
}

// rootCause strips the url.Error and net.OpError wrapping: "connection refused".
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

func (e *emitter) report(out outcome) {
	w := e.app.Stdout
	id := displayID(out.id)
	switch out.kind {
	case outcomeAccepted:
		e.accepted.Add(1)
		e.notifications.Add(int64(out.notifications))
		plural := "s"
		if out.notifications == 1 {
			plural = ""
		}
		fmt.Fprintf(w, "accepted %s (%d notification%s)\n", id, out.notifications, plural)
	case outcomeDuplicate:
		e.duplicates.Add(1)
		fmt.Fprintf(w, "duplicate %s\n", id)
	case outcomeRejected:
		e.rejected.Add(1)
		fmt.Fprintf(w, "rejected %s: %d %s: %s\n", id, out.status, terminalSafe(out.code), terminalSafe(out.message))
		if out.status == http.StatusForbidden {
			e.explainForbidden(out)
		}
	default:
		e.failed.Add(1)
		if out.status != 0 {
			fmt.Fprintf(w, "failed %s: %d %s: %s\n", id, out.status, terminalSafe(out.code), terminalSafe(out.message))
		} else {
			fmt.Fprintf(w, "failed %s: %s\n", id, terminalSafe(out.message))
		}
	}
}

// explainForbidden says once per account why a 403 happened.
func (e *emitter) explainForbidden(out outcome) {
	account := e.opts.account
	if account == "" {
		// The API's message quotes the account: `... for accountId "acc-9"`.
		if i := strings.LastIndex(out.message, `"`); i > 0 {
			if j := strings.LastIndex(out.message[:i], `"`); j >= 0 {
				account = out.message[j+1 : i]
			}
		}
	}
	if e.forbidden[account] {
		return
	}
	e.forbidden[account] = true
	fmt.Fprintf(e.stderr, "hint: the token is valid but not allowed to post events for account %q: use a token whose accounts list it (or \"*\"), or --account to post to an account the token is for\n", account)
}

// lockedWriter serialises the progress goroutine's lines with the command's other stderr output.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
