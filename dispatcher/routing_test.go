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
	"encoding/json"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/samples"
)

// TestSeedRoutingMatrixEndToEnd plays the seeds' "Webhook notifications" tables against real
// webhooks: sender A (account acc-A, group grp-A) sends agreement agr-1 that B signs and C receives
// as CC. Webhooks of A, B and C exist in their own accounts (different-account table) and in A's
// account (same-account table); only the ones the seeds mark "yes" receive the event.
func TestSeedRoutingMatrixEndToEnd(t *testing.T) {
	g := NewWithT(t)
	nsA := newNamespace(t, "acc-A", "")
	nsAGroupB := newNamespace(t, "acc-A", "grp-B") // a group admin's namespace for grp-B in A's account
	nsB := newNamespace(t, "acc-B", "")
	nsC := newNamespace(t, "acc-C", "")
	s := startStack(t, stackOptions{namespaces: []string{nsA, nsAGroupB, nsB, nsC}})

	agreement := &hooklinev1.WebhookResource{Type: hooklinev1.ResourceAgreement, ID: "agr-1"}
	all := []hooklinev1.EventName{"AGREEMENT_ALL"}
	type hook struct {
		ns, name string
		spec     hooklinev1.WebhookSpec
		want     bool
	}
	mk := func(scope hooklinev1.Scope, f func(*hooklinev1.WebhookSpec)) hooklinev1.WebhookSpec {
		s := hooklinev1.WebhookSpec{Scope: scope, Events: all}
		if f != nil {
			f(&s)
		}
		return s
	}
	hooks := []hook{
		// Sender A's own webhooks: all four scopes fire.
		{nsA, "a-account", mk(hooklinev1.ScopeAccount, nil), true},
		{nsA, "a-group", mk(hooklinev1.ScopeGroup, func(s *hooklinev1.WebhookSpec) { s.GroupID = "grp-A" }), true},
		{nsA, "a-user", mk(hooklinev1.ScopeUser, func(s *hooklinev1.WebhookSpec) { s.UserID = "user-A" }), true},
		{nsA, "a-resource", mk(hooklinev1.ScopeResource, func(s *hooklinev1.WebhookSpec) { s.Resource = agreement }), true},
		// Same account: B's and C's USER webhooks never fire; a GROUP webhook of another group does not.
		{nsA, "b-user-same-account", mk(hooklinev1.ScopeUser, func(s *hooklinev1.WebhookSpec) { s.UserID = "user-B" }), false},
		{nsA, "c-user-same-account", mk(hooklinev1.ScopeUser, func(s *hooklinev1.WebhookSpec) { s.UserID = "user-C" }), false},
		{nsA, "b-group-other-group", mk(hooklinev1.ScopeGroup, func(s *hooklinev1.WebhookSpec) { s.GroupID = "grp-B" }), false},
		// A namespace restricted to grp-B sees nothing of grp-A, even at ACCOUNT scope.
		{nsAGroupB, "grp-b-admin-account", mk(hooklinev1.ScopeAccount, nil), false},
		// Different accounts: nothing of B's or C's fires, even a RESOURCE webhook on the same id.
		{nsB, "b-account", mk(hooklinev1.ScopeAccount, nil), false},
		{nsB, "b-group", mk(hooklinev1.ScopeGroup, func(s *hooklinev1.WebhookSpec) { s.GroupID = "grp-A" }), false},
		{nsB, "b-user", mk(hooklinev1.ScopeUser, func(s *hooklinev1.WebhookSpec) { s.UserID = "user-B" }), false},
		{nsB, "b-resource", mk(hooklinev1.ScopeResource, func(s *hooklinev1.WebhookSpec) { s.Resource = agreement }), false},
		{nsC, "c-account", mk(hooklinev1.ScopeAccount, nil), false},
		{nsC, "c-user", mk(hooklinev1.ScopeUser, func(s *hooklinev1.WebhookSpec) { s.UserID = "user-C" }), false},
	}
	receivers := map[string]*receiver{}
	for _, h := range hooks {
		rc := newReceiver(t)
		receivers[h.name] = rc
		h.spec.URL = rc.URL
		s.activeWebhook(t, h.ns, h.name, h.spec)
	}
	s.mustPost(t, mustJSON(map[string]any{
		"id": "matrix-1", "event": "AGREEMENT_ACTION_REQUESTED", "accountId": "acc-A", "groupId": "grp-A",
		"initiator": map[string]string{"userId": "user-A"},
		"resource":  map[string]string{"type": "AGREEMENT", "id": "agr-1"},
		"notification": map[string]any{"event": "AGREEMENT_ACTION_REQUESTED", "participantUserId": "user-B",
			"agreement": map[string]any{"id": "agr-1", "name": "NDA", "status": "OUT_FOR_SIGNATURE"}},
	}))
	var want []string
	for _, h := range hooks {
		if h.want {
			want = append(want, h.name)
		}
	}
	got := func() []string {
		var out []string
		for _, h := range hooks {
			if len(receivers[h.name].got()) > 0 {
				out = append(out, h.name)
			}
		}
		slices.Sort(out)
		return out
	}
	slices.Sort(want)
	g.Eventually(got).WithTimeout(10 * time.Second).Should(Equal(want))
	g.Consistently(got).WithTimeout(500 * time.Millisecond).Should(Equal(want))
}

// TestSeedUserScopeFollowsTheSenderEndToEnd plays the seeds' same-account table for USER scope
// with the shipped AGREEMENT_ACTION_COMPLETED sample, posted as it is: agreement agr-9 sent by u-1
// (the initiator) and signed by u-3 (actingUserId, participantUserId). Sender A's USER webhook
// fires ("系統會觸發做為傳送者的使用者 A 的「使用者」層級 Webhook"); signer B's own USER webhook, in
// the same account, does not ("系統不會觸發做為收件者的使用者 B 的「使用者」層級 Webhook").
func TestSeedUserScopeFollowsTheSenderEndToEnd(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-user-scope", "")
	s := startStack(t, stackOptions{namespaces: []string{ns}})
	users := map[string]string{"sender-u1": "u-1", "signer-u3": "u-3"}
	receivers := map[string]*receiver{}
	for name, user := range users {
		rc := newReceiver(t)
		receivers[name] = rc
		s.activeWebhook(t, ns, name, hooklinev1.WebhookSpec{URL: rc.URL, Scope: hooklinev1.ScopeUser, UserID: user,
			Events: []hooklinev1.EventName{"AGREEMENT_ALL"}})
	}
	raw, err := samples.Event("agreement_action_completed")
	g.Expect(err).NotTo(HaveOccurred())
	var ev map[string]any
	g.Expect(json.Unmarshal(raw, &ev)).To(Succeed())
	ev["accountId"] = "acc-user-scope"
	n := ev["notification"].(map[string]any)
	g.Expect(ev["initiator"]).To(HaveKeyWithValue("userId", "u-1"), "the sample's agreement is sent by u-1")
	g.Expect(n["actingUserId"]).To(Equal("u-3"), "the sample's action is u-3's signature")
	s.mustPost(t, mustJSON(ev))

	g.Eventually(func() int { return len(receivers["sender-u1"].got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	var body map[string]any
	g.Expect(json.Unmarshal(receivers["sender-u1"].got()[0].Body, &body)).To(Succeed())
	g.Expect(body).To(HaveKeyWithValue("webhookScope", "USER"))
	g.Expect(body).To(HaveKeyWithValue("actingUserId", "u-3"))

	g.Consistently(func() int { return len(receivers["signer-u3"].got()) }).WithTimeout(500*time.Millisecond).Should(BeZero(),
		"the signer's own USER webhook fired for an agreement the signer did not send")
	g.Expect(receivers["sender-u1"].got()).To(HaveLen(1))
}
