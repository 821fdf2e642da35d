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
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/ingest"
)

// Tenancy proof: account B's webhooks — every scope, with group, user and resource ids equal to
// those of account A's events — never receive A's events; A's ingest token cannot post events for
// B; and B's webhooks do work (they receive B's own event), so their silence means something.
func TestAccountsAreIsolated(t *testing.T) {
	g := NewWithT(t)
	nsA := newNamespace(t, "acc-ten-a", "")
	nsB := newNamespace(t, "acc-ten-b", "")
	s := startStack(t, stackOptions{namespaces: []string{nsA, nsB}})
	const tokenA, tokenB = "token-of-account-a-0123456789", "token-of-account-b-0123456789"
	tokens, err := ingest.StaticTokens(
		ingest.TokenEntry{Name: "a", Token: tokenA, Accounts: []string{"acc-ten-a"}},
		ingest.TokenEntry{Name: "b", Token: tokenB, Accounts: []string{"acc-ten-b"}})
	g.Expect(err).NotTo(HaveOccurred())
	s.app.Ingest.Tokens = tokens

	// event() carries groupId grp-1, initiator u-1 and resource AGREEMENT agr-<id>.
	rcA, rcB := newReceiver(t), newReceiver(t)
	s.activeWebhook(t, nsA, "a-account", accountSpec(rcA.URL+"/a-account"))
	specs := map[string]hooklinev1.WebhookSpec{
		"b-account": accountSpec(rcB.URL + "/b-account"),
		"b-group": {URL: rcB.URL + "/b-group", Scope: hooklinev1.ScopeGroup, GroupID: "grp-1",
			Events: []hooklinev1.EventName{"AGREEMENT_ALL"}},
		"b-user": {URL: rcB.URL + "/b-user", Scope: hooklinev1.ScopeUser, UserID: "u-1",
			Events: []hooklinev1.EventName{"AGREEMENT_ALL"}},
		"b-resource": {URL: rcB.URL + "/b-resource", Scope: hooklinev1.ScopeResource,
			Resource: &hooklinev1.WebhookResource{Type: hooklinev1.ResourceAgreement, ID: "agr-shared"},
			Events:   []hooklinev1.EventName{"AGREEMENT_ALL"}},
	}
	for name, spec := range specs {
		s.activeWebhook(t, nsB, name, spec)
	}
	post := func(token string, body []byte) int {
		req, _ := http.NewRequest(http.MethodPost, s.url+"/v1/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		return resp.StatusCode
	}
	withResource := func(raw []byte, id string) []byte {
		var ev map[string]any
		g.Expect(json.Unmarshal(raw, &ev)).To(Succeed())
		ev["resource"] = map[string]string{"type": "AGREEMENT", "id": id}
		ev["notification"].(map[string]any)["agreement"].(map[string]any)["id"] = id
		return mustJSON(ev)
	}

	// A's event, with ids that B's webhooks are set up to match.
	g.Expect(post(tokenA, withResource(event("ten-1", "acc-ten-a"), "agr-shared"))).To(Equal(http.StatusAccepted))
	// A's token cannot speak for B.
	g.Expect(post(tokenA, withResource(event("ten-2", "acc-ten-b"), "agr-shared"))).To(Equal(http.StatusForbidden))
	g.Eventually(func() int { return len(rcA.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	// Positive control on B's side comes last: once B's own event has reached all four of B's
	// webhooks, anything of A's (posted earlier, queued in ingest order) would have arrived too.
	g.Expect(post(tokenB, withResource(event("ten-3", "acc-ten-b"), "agr-shared"))).To(Equal(http.StatusAccepted))
	g.Eventually(func() int { return len(rcB.got()) }).WithTimeout(10 * time.Second).Should(Equal(len(specs)))
	g.Consistently(func() int { return len(rcB.got()) }).WithTimeout(500 * time.Millisecond).Should(Equal(len(specs)))
	for _, d := range rcB.got() {
		var body map[string]any
		g.Expect(json.Unmarshal(d.Body, &body)).To(Succeed())
		g.Expect(body).To(HaveKeyWithValue("accountId", "acc-ten-b"), "B received %s", d.Path)
	}
	g.Expect(rcA.got()).To(HaveLen(1), "A's webhook received only A's event")
}
