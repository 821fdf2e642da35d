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
	"net/netip"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/internal/netguard"
)

// In allow-list mode the dispatcher delivers only into the allowed ranges: a receiver on
// 127.0.0.1 that the manager verified (its guard allows loopback) gets no POST from a dispatcher
// that allows only 127.0.0.2, and the attempt fails as BlockedAddress. The real stack, the
// Webhook made Active by the real manager.
func TestAllowListModeRefusesEverythingElse(t *testing.T) {
	g := NewWithT(t)
	const account = "acc-allowlist"
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: func(c *dispatcher.Config) {
		c.Guard = netguard.New(netguard.Policy{Mode: netguard.ModeAllowList,
			Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	}})
	wh := s.activeWebhook(t, ns, "only-allowed", accountSpec(rc.URL))
	s.mustPost(t, event("allowlist-1", account))
	g.Eventually(func() string {
		st, _ := s.app.Engine.Status(string(wh.UID))
		return st.LastFailureReason + ": " + st.LastFailureMessage
	}).WithTimeout(10 * time.Second).Should(And(HavePrefix("BlockedAddress"), ContainSubstring("allowlist")))
	g.Expect(rc.got()).To(BeEmpty(), "the receiver outside the allow-list got a POST")
}
