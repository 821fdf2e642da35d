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
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hookline/hookline/internal/deliveries"
)

// maxPage is the read API's largest page.
const maxPage = 500

func (a *App) deliveries(ctx context.Context, args []string) error {
	var lc logCommand
	var states, events stringList
	var since, until string
	var limit int
	fs := lc.flags("deliveries")
	fs.Var(&states, "state", "state filter")
	fs.Var(&events, "event", "event filter")
	fs.StringVar(&since, "since", "", "since")
	fs.StringVar(&until, "until", "", "until")
	fs.IntVar(&limit, "limit", 50, "most notifications")
	pos, err := lc.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("deliveries takes one Webhook NAME (or NAMESPACE/NAME), got %d arguments", len(pos))
	}
	if limit < 1 {
		return usagef("--limit %d: at least 1", limit)
	}
	q := url.Values{}
	for _, s := range states {
		q.Add("state", s)
	}
	for _, e := range events {
		q.Add("event", e)
	}
	if since != "" {
		q.Set("since", since)
	}
	if until != "" {
		q.Set("until", until)
	}
	key, c, err := lc.connect(a, pos[0])
	if err != nil {
		return err
	}
	// Follow the cursor until --limit notifications are read or the log has no more.
	var all deliveries.NotificationList
	all.Items = []deliveries.Notification{}
	for {
		q.Set("limit", strconv.Itoa(min(limit-len(all.Items), a.PageSize, maxPage)))
		var page deliveries.NotificationList
		if err := c.get(ctx, webhookPath(key.Namespace, key.Name), q, &page); err != nil {
			return err
		}
		all.Items = append(all.Items, page.Items...)
		all.Next, all.Incomplete = page.Next, all.Incomplete || page.Incomplete
		if page.Next == "" || len(all.Items) >= limit {
			break
		}
		q.Set("cursor", page.Next)
	}
	if lc.structured() {
		if err := writeStructured(a.Stdout, lc.output, all); err != nil {
			return err
		}
	} else {
		a.notificationTable(a.Stdout, all.Items)
		if len(all.Items) == 0 {
			fmt.Fprintf(a.Stderr, "No notifications of webhook %s/%s match.\n", key.Namespace, key.Name)
		}
	}
	// Hints go to stderr, so that -o json stays parseable.
	if all.Next != "" {
		fmt.Fprintf(a.Stderr, "More notifications match: raise --limit (now %d) or narrow --since/--until.\n", limit)
	}
	if all.Incomplete {
		fmt.Fprintln(a.Stderr, "The log was not read to the start of the time range: narrow --since/--until to see older notifications.")
	}
	return nil
}

// logCommand is what deliveries and attempts share: the kubeconfig and read-API flags, -o, and
// the connection to the read API for one Webhook.
type logCommand struct {
	kf     kubeFlags
	af     apiFlags
	output string
}

// flags returns the command's flag set with the shared flags bound.
func (lc *logCommand) flags(name string) *flag.FlagSet {
	fs := newFlagSet(name)
	lc.kf.bind(fs)
	lc.af.bind(fs)
	fs.StringVar(&lc.output, "o", "", "output format")
	fs.StringVar(&lc.output, "output", "", "output format")
	return fs
}

// parse parses args and checks -o; it returns the positional arguments.
func (lc *logCommand) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	switch lc.output {
	case "", "table", "json", "yaml":
		return pos, nil
	}
	return nil, usagef("--output %q: use table, json or yaml", lc.output)
}

// structured reports whether -o asks for JSON or YAML rather than a table.
func (lc *logCommand) structured() bool { return lc.output != "" && lc.output != "table" }

// connect resolves the Webhook argument (NAME or NAMESPACE/NAME) and a client of the read API.
func (lc *logCommand) connect(a *App, webhook string) (client.ObjectKey, *logClient, error) {
	k, err := a.connect(lc.kf)
	if err != nil {
		return client.ObjectKey{}, nil, err
	}
	key, err := objectKey(webhook, lc.kf.namespace, k.namespace)
	if err != nil {
		return client.ObjectKey{}, nil, err
	}
	c, err := a.logClient(k, lc.af)
	return key, c, err
}

func (a *App) notificationTable(out io.Writer, items []deliveries.Notification) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NOTIFICATION ID\tEVENT\tSTATE\tATTEMPTS\tLAST REASON/STATUS\tUPDATED")
	now := a.Now()
	for _, n := range items {
		state := string(n.State)
		if n.Replay != "" {
			state += " (replay " + n.Replay + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", terminalSafe(n.NotificationID), orDash(terminalSafe(n.EventName)),
			terminalSafe(state), n.Attempts, outcomeString(n.Reason, n.HTTPStatus), ago(n.Updated, now))
	}
	_ = w.Flush()
}

// outcomeString is "Reason status", either part left out when absent.
func outcomeString(reason string, status int) string {
	parts := []string{}
	if reason != "" {
		parts = append(parts, terminalSafe(reason))
	}
	if status != 0 {
		parts = append(parts, strconv.Itoa(status))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func deliveriesUsage(a *App) string {
	return fmt.Sprintf(`List a Webhook's notifications from the dispatcher's delivery log, newest first, with their
state (pending, retrying, replayed, delivered, dropped, cancelled, lost), attempts and last outcome.
Needs get on webhooks/deliveries in the namespace (the view role grants it).

Usage:
  %[1]s deliveries [flags] NAME|NAMESPACE/NAME

Flags:
%[2]s%[3]s      --state S,...          only these states (repeatable); failed = dropped, cancelled and lost
      --event NAME,...       only these events (repeatable)
      --since T              only notifications since T: RFC 3339, or a duration before now (2h)
      --until T              ... and until T
      --limit N              show at most N notifications (default 50), following the API's pages
  -o, --output FORMAT        table (default), json or yaml

Examples:
  %[1]s deliveries -n team-a agreements --state failed --since 24h
  %[1]s attempts -n team-a agreements NOTIFICATION_ID
`, a.Name, kubeFlagsUsage, apiFlagsUsage)
}

func (a *App) attempts(ctx context.Context, args []string) error {
	var lc logCommand
	pos, err := lc.parse(lc.flags("attempts"), args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("attempts takes a Webhook NAME (or NAMESPACE/NAME) and a NOTIFICATION_ID, got %d arguments", len(pos))
	}
	key, c, err := lc.connect(a, pos[0])
	if err != nil {
		return err
	}
	var al deliveries.AttemptList
	if err := c.get(ctx, webhookPath(key.Namespace, key.Name)+"/"+url.PathEscape(pos[1]), nil, &al); err != nil {
		return err
	}
	if al.Records == nil {
		al.Records = []deliveries.Record{}
	}
	if lc.structured() {
		return writeStructured(a.Stdout, lc.output, al)
	}
	a.attemptTable(a.Stdout, key.Namespace+"/"+key.Name, al)
	return nil
}

// responseWidth is how much of a receiver's answer a table row shows; -o json shows it whole.
const responseWidth = 80

func (a *App) attemptTable(out io.Writer, webhook string, al deliveries.AttemptList) {
	n := al.Notification
	now := a.Now()
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Webhook:\t%s\n", webhook)
	fmt.Fprintf(w, "Notification:\t%s\n", terminalSafe(n.NotificationID))
	fmt.Fprintf(w, "Event:\t%s (id %s)\n", orDash(terminalSafe(n.EventName)), terminalSafe(n.EventID))
	fmt.Fprintf(w, "Created:\t%s (%s)\n", n.Created.UTC().Format(time.RFC3339), ago(n.Created, now))
	fmt.Fprintf(w, "State:\t%s\n", terminalSafe(string(n.State)))
	_ = w.Flush()
	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "#\tAT\tSTATE\tSTATUS\tDURATION\tREASON\tRESPONSE")
	for _, r := range al.Records {
		num := "-"
		if r.Kind == deliveries.KindAttempt {
			num = strconv.Itoa(r.Attempt)
		}
		state := string(r.State)
		if r.Replay != "" {
			state += " (replay " + r.Replay + ")"
		}
		status := "-"
		if r.HTTPStatus != 0 {
			status = strconv.Itoa(r.HTTPStatus)
		}
		dur := "-"
		if r.Kind == deliveries.KindAttempt {
			dur = (time.Duration(r.DurationMillis) * time.Millisecond).String()
		}
		reason := orDash(terminalSafe(r.Reason))
		if r.Message != "" {
			reason += ": " + oneLine(r.Message)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", num, r.At.UTC().Format(time.RFC3339), terminalSafe(state), status, dur,
			reason, excerpt(r.Response))
	}
	_ = w.Flush()
}

// excerpt shows a receiver's answer as one line of text. The dispatcher stores it with control
// characters escaped already; whatever else is not printable (a log written by something else) is
// quoted and escaped here, so that nothing in it is ever interpreted by the terminal.
func excerpt(s string) string {
	if s == "" {
		return "-"
	}
	if utf8.RuneCountInString(s) > responseWidth {
		s = string([]rune(s)[:responseWidth]) + "…"
	}
	return terminalSafe(s)
}

func attemptsUsage(a *App) string {
	return fmt.Sprintf(`Show every record of one notification from the dispatcher's delivery log, oldest first: each
attempt with its time, HTTP status, duration, reason and the start of the receiver's answer (quoted,
escaped), and when it was dropped, cancelled, lost or queued again by a replay.
Needs get on webhooks/deliveries in the namespace (the view role grants it).

Usage:
  %[1]s attempts [flags] NAME|NAMESPACE/NAME NOTIFICATION_ID

Flags:
%[2]s%[3]s  -o, --output FORMAT        table (default), json or yaml (the whole response excerpt)
`, a.Name, kubeFlagsUsage, apiFlagsUsage)
}
