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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/testsupport/freeport"
)

// A producer posts a large event, and while a dispatcher stores and routes it, re-posts its id
// with tiny bodies. Each re-post found the event stored and not routed yet, read its whole body
// (about 300 bytes of request for 25 MB read) and queued its notifications again. Now a re-post of
// an event another dispatcher stored moments ago is answered 503 EVENT_IN_PROGRESS with
// Retry-After, reading nothing and queueing nothing; once that dispatcher has had time enough to
// route it (it crashed), a re-post routes the stored event, once. (Re-posts to the dispatcher
// routing it wait for its Accept.)
func TestRepostsOfAnEventBeingRoutedElsewhereReadAndQueueNothing(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account = "acc-repost"
	ns := newNamespace(t, account, "")
	rc := newReceiver(t)
	addr := freeport.Addr(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	g.Expect(os.WriteFile(tokenFile, []byte(strings.Repeat("t0ken", 8)), 0o600)).To(Succeed())
	s := startStack(t, stackOptions{namespaces: []string{ns}, mutate: func(c *dispatcher.Config) {
		c.Store.ListenAddress, c.Store.ListenTokenFile = addr, tokenFile
	}})
	s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
	// However slow the machine, the re-posts below come within the grace.
	dispatcher.SetRoutingGrace(s.app, time.Hour)

	// Another dispatcher stores a 2 MiB event (kept in the object store) and is still routing it.
	var big map[string]any
	g.Expect(json.Unmarshal(event("big-1", account), &big)).To(Succeed())
	agreement := big["notification"].(map[string]any)["agreement"].(map[string]any)
	agreement["message"], agreement["name"] = strings.Repeat("x", 2<<20), "Contract big-1 as stored"
	other, err := store.Open(ctx, store.Config{URL: "nats://" + addr, Auth: store.Auth{TokenFile: tokenFile}})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(other.Close)
	_, dup, err := other.PutEvent(ctx, store.EventKey(account, "big-1"), mustJSON(big), time.Now())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dup).To(BeFalse())

	for range 20 {
		code, body, hdr := s.postFull(t, testToken, event("big-1", account))
		g.Expect(code).To(Equal(http.StatusServiceUnavailable), "%s", body)
		g.Expect(string(body)).To(ContainSubstring(`"code":"EVENT_IN_PROGRESS"`))
		g.Expect(hdr.Get("Retry-After")).To(Equal("1"))
	}
	g.Consistently(func() int { return len(rc.got()) }).WithTimeout(300 * time.Millisecond).Should(BeZero())

	// That dispatcher had time enough (here: the grace is over at once): the stored event is
	// routed, once, with its own body.
	dispatcher.SetRoutingGrace(s.app, time.Nanosecond)
	s.mustPost(t, event("big-1", account))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	g.Expect(string(rc.got()[0].Body)).To(ContainSubstring("Contract big-1 as stored"), "the stored event is sent, not the re-post")
	s.mustPost(t, event("big-1", account))
	g.Consistently(func() int { return len(rc.got()) }).WithTimeout(300 * time.Millisecond).Should(Equal(1))
}
