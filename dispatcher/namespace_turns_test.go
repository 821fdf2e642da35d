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
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/dispatcher"
)

// The namespaces bound to one account take turns for its delivery slots, end to end: the real API
// server's namespaces and Webhooks, ingest, JetStream and an HTTP receiver. With one slot, a
// namespace with three Webhooks and one with one, two events: between the one's two notifications
// goes at most one of the other's (they take turns), not all three of its Webhooks'. Session 39's fix, tested before on the engine alone
// (TestRuleNamespacesOfAnAccountTakeTurns); here it also shows the namespace reaches the engine.
func TestNamespacesOfAnAccountTakeTurnsEndToEnd(t *testing.T) {
	g := NewWithT(t)
	const account = "acc-namespace-turns"
	many, one := newNamespace(t, account, ""), newNamespace(t, account, "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{many, one}, mutate: func(c *dispatcher.Config) {
		c.Engine.AccountConcurrency = 1
	}})
	for i := range 3 {
		s.activeWebhook(t, many, fmt.Sprintf("hook-%d", i), accountSpec(fmt.Sprintf("%s/many/%d", rc.URL, i)))
	}
	s.activeWebhook(t, one, "hook", accountSpec(rc.URL+"/one"))

	// Each send waits to be let go, so that the line is formed while the first is held.
	arrived, release := make(chan string, 16), make(chan struct{})
	t.Cleanup(func() { close(release) })
	rc.set(func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.URL.Path
		<-release
		echoOK(w, r)
	})
	s.mustPost(t, event("turns-1", account))
	s.mustPost(t, event("turns-2", account))
	var order []string
	for range 8 {
		var path string
		g.Eventually(arrived).WithTimeout(20 * time.Second).Should(Receive(&path))
		order = append(order, path)
		release <- struct{}{}
	}
	var ones []int
	for i, p := range order {
		if strings.HasPrefix(p, "/one") {
			ones = append(ones, i)
		}
	}
	g.Expect(ones).To(HaveLen(2), "%v", order)
	g.Expect(ones[1]-ones[0]-1).To(BeNumerically("<=", 1), "one send of the other namespace between its two: %v", order)
}
