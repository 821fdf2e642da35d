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
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/dispatcher/store"
)

// groupEvent is event() for group, with the group in the agreement's name so that a delivered body
// tells whose event it is.
func groupEvent(id, account, group string) []byte {
	var ev map[string]any
	if err := json.Unmarshal(event(id, account), &ev); err != nil {
		panic(err)
	}
	ev["groupId"] = group
	ev["notification"].(map[string]any)["agreement"].(map[string]any)["name"] = "confidential to " + group
	return mustJSON(ev)
}

// The event-id collision attack (issue 10, item 8), against the real dispatcher: ingest, embedded
// JetStream, routing, and receivers for two group-restricted namespaces of one account. A producer
// posts "dup-7" for group grp-1, then "dup-7 " and "dup-7\n" for grp-2. JetStream's dedupe saw one
// id (the NATS client trims the message id header) and the routed marker two, so the second post
// was routed with its own attributes and grp-2's webhook received grp-1's event. Now such ids are
// refused, and a re-post of a stored but unrouted event routes the stored event, never the
// request's claims.
func TestEventIDsCannotCollide(t *testing.T) {
	g := NewWithT(t)
	const account = "acc-dup"
	ns1 := newNamespace(t, account, "grp-1")
	ns2 := newNamespace(t, account, "grp-2")
	s := startStack(t, stackOptions{namespaces: []string{ns1, ns2}})
	rc1, rc2 := newReceiver(t), newReceiver(t)
	s.activeWebhook(t, ns1, "grp-1-account", accountSpec(rc1.URL+"/grp-1"))
	s.activeWebhook(t, ns2, "grp-2-account", accountSpec(rc2.URL+"/grp-2"))

	s.mustPost(t, groupEvent("dup-7", account, "grp-1"))
	g.Eventually(func() int { return len(rc1.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))

	for _, id := range []string{"dup-7 ", "dup-7\n", "dup-7\t", " dup-7", "dup-7\u00a0", "dup-7\u2028"} {
		code, body := s.postWith(t, testToken, groupEvent(id, account, "grp-2"))
		g.Expect(code).To(Equal(http.StatusBadRequest), "id %q: %s", id, body)
		var e struct{ Code, Message string }
		g.Expect(json.Unmarshal(body, &e)).To(Succeed())
		g.Expect(e.Code).To(Equal("INVALID_ARGUMENTS"))
		g.Expect(e.Message).To(MatchRegexp(`^id must not`), "the error names the field id")
	}

	// A crash between storing an event and queueing its notifications leaves it stored without a
	// routed marker; its next post completes the routing. Store grp-1's event as such a crash
	// would, then re-post its id claiming grp-2: the stored event is routed (to grp-1), the claim
	// is not.
	_, dup, err := s.app.Store.PutEvent(context.Background(), store.EventKey(account, "dup-9"), groupEvent("dup-9", account, "grp-1"), time.Now())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dup).To(BeFalse())
	code, body := s.postWith(t, testToken, groupEvent("dup-9", account, "grp-2"))
	g.Expect(code).To(Equal(http.StatusAccepted), "%s", body)
	g.Eventually(func() int { return len(rc1.got()) }).WithTimeout(10*time.Second).Should(Equal(2), "the stored event reaches grp-1")

	// Positive control for grp-2, last: its own event arrives, and nothing before it did (one
	// queue, delivered in order).
	s.mustPost(t, groupEvent("dup-10", account, "grp-2"))
	g.Eventually(func() int { return len(rc2.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	g.Consistently(func() int { return len(rc2.got()) }).WithTimeout(500 * time.Millisecond).Should(Equal(1))
	for _, d := range rc2.got() {
		g.Expect(string(d.Body)).NotTo(ContainSubstring("grp-1"), "grp-2 received grp-1's event")
		g.Expect(string(d.Body)).To(ContainSubstring("confidential to grp-2"))
	}
	for _, d := range rc1.got() {
		g.Expect(string(d.Body)).To(ContainSubstring("confidential to grp-1"))
	}
}
