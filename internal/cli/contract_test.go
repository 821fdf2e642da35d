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
	"net/http/httptest"
	"sync"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/internal/samples"
)

// recordingAcceptor stands in for JetStream behind the real ingest handler: it keeps the parsed
// events and answers two notifications each, deduplicating on account and id.
type recordingAcceptor struct {
	mu     sync.Mutex
	events []*ingest.Event
	seen   map[string]bool
}

func (r *recordingAcceptor) Accept(_ context.Context, ev *ingest.Event, _ []byte) (ingest.Receipt, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := ev.AccountID + "/" + ev.ID
	if r.seen[key] {
		return ingest.Receipt{Duplicate: true}, nil
	}
	r.seen[key] = true
	r.events = append(r.events, ev)
	return ingest.Receipt{Notifications: 2}, nil
}

// TestEmitAgainstTheRealIngestHandler checks the CLI against the dispatcher's own handler: every
// sample, with fresh ids and another account, passes its validation, and its answers (202,
// duplicates, 401, 403) read as they should.
func TestEmitAgainstTheRealIngestHandler(t *testing.T) {
	g := NewWithT(t)
	tokens, err := ingest.StaticTokens(ingest.TokenEntry{Name: "test", Token: goodToken, Accounts: []string{"acc-cli"}})
	g.Expect(err).NotTo(HaveOccurred())
	acc := &recordingAcceptor{seen: map[string]bool{}}
	srv := httptest.NewServer(&ingest.Handler{Tokens: tokens, Acceptor: acc})
	defer srv.Close()

	r := run("emit", "--url", srv.URL, "--token", goodToken, "--all-samples", "--account", "acc-cli")
	g.Expect(r.code).To(Equal(ExitOK), r.stdout+r.stderr)
	g.Expect(lines(r.stdout)).To(HaveLen(len(samples.Names())))
	g.Expect(lines(r.stdout)).To(HaveEach(MatchRegexp(`^accepted evt-\S+-[0-9a-f]{12}-\d+ \(2 notifications\)$`)))
	g.Expect(acc.events).To(HaveLen(len(samples.Names())))
	for _, ev := range acc.events {
		g.Expect(ev.AccountID).To(Equal("acc-cli"))
	}

	r = run("emit", "--url", srv.URL, "--token", goodToken, "--sample", "widget_created", "--account", "acc-cli", "--count", "2", "--new-ids=false")
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(lines(r.stdout)).To(Equal([]string{"accepted evt-widget-created-0001 (2 notifications)", "duplicate evt-widget-created-0001"}))

	r = run("emit", "--url", srv.URL, "--token", goodToken, "--sample", "widget_created")
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(r.stdout).To(MatchRegexp(`^rejected evt-widget-created-0001-\S+: 403 PERMISSION_DENIED: this token may not post events for accountId "acc-1"\n$`))
	g.Expect(r.stderr).To(ContainSubstring(`not allowed to post events for account "acc-1"`))

	r = run("emit", "--url", srv.URL, "--token", "not-the-token-0000", "--sample", "widget_created")
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(r.stdout).To(ContainSubstring(": 401 INVALID_ACCESS_TOKEN: the bearer token is not valid"))
	g.Expect(r.stderr).To(ContainSubstring("refused the token"))
}
