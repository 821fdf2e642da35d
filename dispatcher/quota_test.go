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

package dispatcher_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/dispatcher/ingest"
)

// TestOneAccountCannotFillTheStore performs the producer's attack on the shared store: a token
// for one account posts valid events as fast as it can. Its account is refused once its stored
// events reach the quota (429, Retry-After, nothing stored), another account's producer is not,
// and a restart of the dispatcher does not give the account its quota back.
func TestOneAccountCannotFillTheStore(t *testing.T) {
	g := NewWithT(t)
	const quota = 4 << 10
	tokA, tokB := "token-for-acc-a-only-0123456789", "token-for-acc-b-only-0123456789"
	nsB := newNamespace(t, "quota-b", "")
	rc := newReceiver(t)
	o := stackOptions{
		namespaces: []string{nsB},
		tokens: []ingest.TokenEntry{
			{Name: "a", Token: tokA, Accounts: []string{"quota-a"}},
			{Name: "b", Token: tokB, Accounts: []string{"quota-b"}},
		},
		mutate: func(c *dispatcherConfig) { c.AccountQuota = quota },
	}
	s := startStack(t, o)
	s.activeWebhook(t, nsB, "orders", accountSpec(rc.URL))

	size := len(event("ev-00000", "quota-a"))
	accepted, refusedAt := 0, -1
	var refusal struct{ Code, Message string }
	var retryAfter string
	for i := range 2 * quota / size {
		req := event(fmt.Sprintf("ev-%05d", i), "quota-a")
		code, body, header := s.postFull(t, tokA, req)
		if code == http.StatusAccepted {
			accepted++
			continue
		}
		g.Expect(code).To(Equal(http.StatusTooManyRequests), "%s", body)
		g.Expect(json.Unmarshal(body, &refusal)).To(Succeed())
		refusedAt, retryAfter = i, header.Get("Retry-After")
		break
	}
	g.Expect(refusedAt).To(BeNumerically(">=", 0), "the producer filled the store past its account's quota")
	g.Expect(accepted).To(Equal(quota/(size+ingest.StoredEventOverhead)), "each event counts with its stored record")
	g.Expect(refusal.Code).To(Equal("ACCOUNT_QUOTA_EXCEEDED"))
	g.Expect(refusal.Message).To(ContainSubstring(`"quota-a"`))
	g.Expect(refusal.Message).To(ContainSubstring("quota of 4 KiB per account"))
	g.Expect(retryAfter).To(MatchRegexp(`^[0-9]+$`))
	g.Expect(s.metric(t, "hookline_ingest_events_rejected_total")).To(BeNumerically(">=", 1))

	// Another account's producer still stores events, and they are delivered.
	s.mustPostWith(t, tokB, event("ev-b-1", "quota-b"))
	g.Eventually(rc.got).Should(HaveLen(1))

	// A restart (a new intake) still counts what the account stored.
	s.stop()
	s = startStack(t, stackOptions{namespaces: o.namespaces, tokens: o.tokens, mutate: o.mutate, dir: s.dir})
	code, body, _ := s.postFull(t, tokA, event("ev-after-restart", "quota-a"))
	g.Expect(code).To(Equal(http.StatusTooManyRequests), "%s", body)
	s.mustPostWith(t, tokB, event("ev-b-2", "quota-b"))
	// Delivered at least once each: without the delivery log a restart may send a notification
	// delivered just before it again, with the same id.
	g.Eventually(func() []string {
		var got []string
		for _, d := range rc.got() {
			if bytes.Contains(d.Body, []byte(`"agr-ev-b-2"`)) {
				got = append(got, "ev-b-2")
			}
		}
		return got
	}).WithTimeout(10 * time.Second).ShouldNot(BeEmpty())
}
