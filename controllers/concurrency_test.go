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

package controllers_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// gate holds verification requests until opened and records how many were held at once.
type gate struct {
	mu       sync.Mutex
	inFlight int
	peak     int
	open     chan struct{}
	// holdFor, when set, answers 503 after that long (under the verification timeout) instead
	// of holding until the client gives up: the server notices a client that gave up only a
	// little later, and the request it abandoned would count beside the one taking its slot.
	holdFor time.Duration
}

func (g *gate) handler(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.inFlight++
	g.peak = max(g.peak, g.inFlight)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.inFlight--
		g.mu.Unlock()
	}()
	var timeout <-chan time.Time
	if g.holdFor > 0 {
		t := time.NewTimer(g.holdFor)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-g.open:
		echoHeader(w, r)
	case <-timeout:
		w.WriteHeader(http.StatusServiceUnavailable)
	case <-r.Context().Done():
	}
}

func (g *gate) stats() (inFlight, peak int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight, g.peak
}

func TestVerificationCapPerAccount(t *testing.T) {
	g := NewWithT(t)
	const limit, webhooks = 10, 14
	slow := &gate{open: make(chan struct{})}
	slowRc := newReceiver(t, false, slow.handler)
	fastRc := newReceiver(t, false, echoHeader)

	slowNS := newNamespace(t, "acc-slow", "")
	slowHooks := make([]*hooklinev1.Webhook, 0, webhooks)
	for i := range webhooks {
		slowHooks = append(slowHooks, createWebhook(t, slowNS, fmt.Sprintf("slow-%02d", i), func(s *hooklinev1.WebhookSpec) {
			s.URL = fmt.Sprintf("%s/hook/%d", slowRc.URL, i)
		}))
	}

	// The account fills its ten slots; the other four wait, reported as throttled.
	g.Eventually(func() int { n, _ := slow.stats(); return n }).WithTimeout(10 * time.Second).Should(Equal(limit))
	g.Eventually(func(g Gomega) {
		throttled := 0
		for _, wh := range slowHooks {
			got := getWebhook(g, wh)
			if c := meta.FindStatusCondition(got.Status.Conditions, hooklinev1.ConditionVerified); c != nil && c.Reason == hooklinev1.ReasonVerificationThrottled {
				throttled++
			}
		}
		g.Expect(throttled).To(BeNumerically(">=", 1))
	}).WithTimeout(10 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())

	// Another account is not held up by the busy one.
	fastNS := newNamespace(t, "acc-fast", "")
	fast := createWebhook(t, fastNS, "fast", func(s *hooklinev1.WebhookSpec) { s.URL = fastRc.URL })
	eventuallyReady(t, fast, metav1.ConditionTrue, hooklinev1.ReasonActive)
	for _, wh := range slowHooks {
		g.Expect(getWebhook(g, wh).Status.State).NotTo(Equal(hooklinev1.ObservedActive))
	}

	close(slow.open)
	for _, wh := range slowHooks {
		eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonActive)
	}
	_, peak := slow.stats()
	g.Expect(peak).To(Equal(limit), "at most %d verifications may run at once for one account", limit)
}
