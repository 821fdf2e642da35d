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
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hookline/hookline/internal/samples"
)

// Defaults and limits of emit.
const (
	defaultIngestURL = "http://127.0.0.1:8090"
	ingestPath       = "/v1/events"
	// progressThreshold is the number of events above which emit reports progress and a summary.
	progressThreshold = 10
	// storageRetries is how often an event the ingest API could not store (503) is sent again.
	storageRetries = 3
	// inProgressPatience is how long an event whose earlier post is still in progress
	// (EVENT_IN_PROGRESS) is sent again: the dispatcher answers so for 35 s after it was stored.
	inProgressPatience = 40 * time.Second
	// maxRetryDoublings bounds the doubling delay between two sends of one event, in first
	// delays (RetryDelay: 500 ms, so 4 s).
	maxRetryDoublings = 8
)

type emitOptions struct {
	url, token, tokenFile, account string
	samples                        stringList
	allSamples                     bool
	newIDs, newIDsSet              bool
	count                          int
	timeout                        time.Duration
	caFile                         string
}

func (a *App) emit(ctx context.Context, args []string) error {
	var o emitOptions
	fs := newFlagSet("emit")
	fs.StringVar(&o.url, "url", "", "ingest API URL")
	fs.StringVar(&o.token, "token", "", "bearer token")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the bearer token")
	fs.StringVar(&o.account, "account", "", "accountId of every event")
	fs.Var(&o.samples, "sample", "built-in sample (repeatable)")
	fs.BoolVar(&o.allSamples, "all-samples", false, "every built-in sample")
	fs.BoolVar(&o.newIDs, "new-ids", false, "fresh unique ids")
	fs.IntVar(&o.count, "count", 1, "send each event N times")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "timeout of each request")
	fs.StringVar(&o.caFile, "ca-file", "", "PEM CA certificates trusted for an https ingest URL, besides the system's")
	files, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	o.newIDsSet = isSet(fs, "new-ids")

	if len(files) == 0 && len(o.samples) == 0 && !o.allSamples {
		return usagef("nothing to send: name FILEs, - for stdin, --sample NAME or --all-samples")
	}
	if o.count < 1 {
		return usagef("--count must be at least 1")
	}
	if o.timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	if o.token != "" && o.tokenFile != "" {
		return usagef("use either --token or --token-file, not both")
	}
	if isSet(fs, "account") && strings.TrimSpace(o.account) == "" {
		return usagef("--account must not be empty")
	}
	stdinUses := 0
	for _, f := range files {
		if f == "-" {
			stdinUses++
		}
	}
	if stdinUses > 1 {
		return usagef("- (stdin) may be given only once")
	}
	for _, name := range o.samples {
		if _, err := samples.Event(name); err != nil {
			return usagef("--sample: %v", err)
		}
	}
	rawURL := o.url
	if rawURL == "" {
		rawURL = a.Getenv("HOOKLINE_URL")
	}
	if rawURL == "" {
		rawURL = defaultIngestURL
	}
	endpoint, err := ingestEndpoint(rawURL)
	if err != nil {
		return err
	}
	token, err := a.emitToken(o)
	if err != nil {
		return err
	}
	events, err := a.loadEvents(files, o)
	if err != nil {
		return err
	}
	transport, err := ingestTransport(o.caFile)
	if err != nil {
		return err
	}
	e := &emitter{
		app:      a,
		opts:     o,
		endpoint: endpoint,
		token:    token,
		events:   events,
		total:    len(events) * o.count,
		stderr:   &lockedWriter{w: a.Stderr},
		ids:      newIDMinter(),
		http: &http.Client{
			Timeout:   o.timeout,
			Transport: transport,
			// A redirect would turn the POST into a GET; report it instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		forbidden: map[string]bool{},
	}
	return e.run(ctx)
}

// ingestEndpoint completes a --url: http:// when no scheme is given, /v1/events when the path
// does not end in it.
func ingestEndpoint(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usagef("--url %q is not an http(s) URL such as %s", raw, defaultIngestURL)
	}
	if !strings.HasSuffix(u.Path, ingestPath) {
		u.Path = strings.TrimSuffix(u.Path, "/") + ingestPath
		u.RawPath = ""
	}
	return u.String(), nil
}

func (a *App) emitToken(o emitOptions) (string, error) {
	switch {
	case o.tokenFile != "":
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return "", fmt.Errorf("reading --token-file: %w", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", fmt.Errorf("--token-file %s is empty", o.tokenFile)
		}
		return t, nil
	case o.token != "":
		return o.token, nil
	}
	return strings.TrimSpace(a.Getenv("HOOKLINE_TOKEN")), nil
}

// loadEvents reads every source before anything is sent, so that a bad file sends nothing and the
// progress line knows the total.
func (a *App) loadEvents(files []string, o emitOptions) ([]event, error) {
	var events []event
	for _, f := range files {
		var data []byte
		var err error
		origin := f
		if f == "-" {
			origin = "stdin"
			data, err = io.ReadAll(a.Stdin)
		} else {
			data, err = os.ReadFile(f)
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", origin, err)
		}
		evs, err := splitEvents(data, origin)
		if err != nil {
			return nil, err
		}
		events = append(events, evs...)
	}
	names := []string(o.samples)
	if o.allSamples {
		names = append(names, samples.Names()...)
	}
	for _, name := range names {
		data, err := samples.Event(name)
		if err != nil {
			return nil, usagef("--sample: %v", err)
		}
		events = append(events, event{raw: data, origin: "sample " + name, sample: true})
	}
	return events, nil
}

func emitUsage(a *App) string {
	return fmt.Sprintf(`Post events to the dispatcher's ingest API (POST /v1/events) and print what it did with each.

Usage:
  %[1]s emit [flags] [FILE ...]

Sources, sent in this order, one event after the other:
  FILE                 a JSON event, a JSON array of events, or newline-delimited JSON events
  -                    the same, read from standard input
  --sample NAME        a built-in sample event (repeatable), one of:
%[2]s
  --all-samples        every built-in sample

Flags:
  --url URL            ingest API (default: $HOOKLINE_URL, else %[3]s);
                       %[4]s is appended when the path does not end with it
  --token TOKEN        bearer token (default: $HOOKLINE_TOKEN)
  --token-file FILE    read the bearer token from FILE
  --account ID         set the accountId of every event to ID
  --new-ids            give every event a fresh unique id (default: true for samples, false for files)
  --count N            send every event N times, each with a fresh id unless --new-ids=false (default 1)
  --timeout DURATION   timeout of each request (default 30s)

Output, one line per event on stdout:
  accepted ID (N notifications)
  duplicate ID
  rejected ID: STATUS CODE: MESSAGE
  failed ID: ERROR
With more than 10 events, a progress line every second and a summary go to stderr.
An event the ingest API could not store (503) is retried 3 times; one whose earlier post is still
in progress (503 EVENT_IN_PROGRESS) for up to 40 s.

Exit status: 0 when every event was accepted or a duplicate, 1 when any was rejected or failed
(a wrong token or an unreachable URL stops at the first event), 2 on usage errors.

Examples:
  %[1]s emit --all-samples --account acc-1
  %[1]s emit --sample agreement_action_completed --count 5000
  %[1]s emit --url http://dispatcher.hookline:8090 --token-file token.txt events.ndjson
  cat event.json | %[1]s emit -
`, a.Name, wrap(strings.Join(samples.Names(), ", "), 23, 100), defaultIngestURL, ingestPath)
}

// wrap breaks text at spaces into lines of at most width characters, each indented by indent.
func wrap(text string, indent, width int) string {
	pad := strings.Repeat(" ", indent)
	var b strings.Builder
	line := pad
	for _, word := range strings.Fields(text) {
		if len(line) > indent && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line = pad
		}
		if len(line) > indent {
			line += " "
		}
		line += word
	}
	b.WriteString(line)
	return b.String()
}

// ingestTransport trusts the system's CAs and those in caFile, if set.
func ingestTransport(caFile string) (http.RoundTripper, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if caFile == "" {
		return t, nil
	}
	pemData, err := os.ReadFile(caFile)
	if err != nil {
		return nil, usagef("--ca-file: %v", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, usagef("--ca-file %s holds no PEM certificate", caFile)
	}
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return t, nil
}
