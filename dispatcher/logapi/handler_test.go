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

package logapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/internal/deliveries"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func TestParseQuery(t *testing.T) {
	g := NewWithT(t)
	q, err := ParseQuery(url.Values{
		"state": {"failed,delivered", "dropped"}, "event": {"AGREEMENT_CREATED"}, "since": {"2h"},
		"until": {"2026-11-25T11:30:00Z"}, "notificationId": {"a-1,b-2"}, "eventId": {"evt 1"}, "limit": {"7"}, "cursor": {"abc"},
	}, now)
	g.Expect(err).NotTo(HaveOccurred())
	twoHours := 2 * time.Hour
	g.Expect(q).To(Equal(deliveries.Query{
		States:     []deliveries.State{deliveries.StateDropped, deliveries.StateCancelled, deliveries.StateLost, deliveries.StateDelivered},
		EventNames: []string{"AGREEMENT_CREATED"}, Since: now.Add(-2 * time.Hour), SinceAgo: &twoHours, Until: time.Date(2026, 11, 25, 11, 30, 0, 0, time.UTC),
		NotificationIDs: []string{"a-1", "b-2"}, EventIDs: []string{"evt 1"}, Limit: 7, Cursor: "abc",
	}))
	q, err = ParseQuery(url.Values{}, now)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(q).To(Equal(deliveries.Query{Limit: DefaultLimit}))

	long := strings.Repeat("a", maxCursor+1)
	for query, prefix := range map[string]string{
		"state=bogus":         "state: unknown state",
		"state=":              "state: empty value",
		"state=delivered,":    "state: empty value",
		"event=a%20b":         "event:",
		"notificationId=../x": "notificationId:",
		"limit=x":             "limit:",
		"limit=0":             "limit:",
		"limit=501":           "limit:",
		"since=-2h":           "since:",
		"since=tomorrow":      "since:",
		"since=1h&until=2h":   "until (",
		"until=1h&until=2h":   "until: given 2 times",
		"cursor=" + long:      "cursor:",
		"Limit=1":             "unknown parameter \"Limit\"",
		"state=" + strings.Repeat("lost,", 100) + "lost": "state: more than 100 values",
	} {
		v, err := url.ParseQuery(query)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = ParseQuery(v, now)
		g.Expect(err).To(MatchError(HavePrefix(prefix)), query)
	}
}

// The concurrency bound answers at once when full, and a slot is free again after release.
func TestLimits(t *testing.T) {
	g := NewWithT(t)
	l := &Limits{Concurrent: 2, Rate: 0.001, Burst: 2}
	r1, ok1 := l.enter()
	r2, ok2 := l.enter()
	_, ok3 := l.enter()
	g.Expect([]bool{ok1, ok2, ok3}).To(Equal([]bool{true, true, false}))
	r1()
	r3, ok := l.enter()
	g.Expect(ok).To(BeTrue())
	r2()
	r3()
	g.Expect([]bool{l.allow("a", "user/a"), l.allow("a", "user/a"), l.allow("a", "user/a"), l.allow("b", "user/b")}).To(Equal([]bool{true, true, false, true}))
}

// A namespace's requests are bounded whoever makes them: its slots, then its rate; another
// namespace has its own.
func TestNamespaceLimits(t *testing.T) {
	g := NewWithT(t)
	l := &Limits{Concurrent: 8, NamespaceConcurrent: 2, NamespaceRate: 0.001, NamespaceBurst: 3}
	r1, _, ok1 := l.enterNamespace("a")
	r2, _, ok2 := l.enterNamespace("a")
	_, busy, ok3 := l.enterNamespace("a")
	g.Expect([]bool{ok1, ok2, ok3, busy}).To(Equal([]bool{true, true, false, true}))
	r1()
	r3, _, ok := l.enterNamespace("a")
	g.Expect(ok).To(BeTrue(), "a slot is free again")
	r2()
	r3()
	_, busy, ok = l.enterNamespace("a")
	g.Expect([]bool{ok, busy}).To(Equal([]bool{false, false}), "its rate is spent")
	rb, _, ok := l.enterNamespace("b")
	g.Expect(ok).To(BeTrue(), "another namespace has its own")
	rb()
}

func TestStandbyAnswers503(t *testing.T) {
	g := NewWithT(t)
	rec := httptest.NewRecorder()
	Standby().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/namespaces/a/webhooks/b/notifications", nil))
	g.Expect(rec.Code).To(Equal(http.StatusServiceUnavailable))
	g.Expect(rec.Header().Get("Retry-After")).NotTo(BeEmpty())
	var e deliveries.Error
	g.Expect(json.Unmarshal(rec.Body.Bytes(), &e)).To(Succeed())
	g.Expect(e.Reason).To(Equal("Standby"))
}

// Test notifications: one per interval per webhook, and a namespace's budget per minute shared by
// its webhooks, refilled evenly; a request that queued nothing gives both back.
func TestTestSlots(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	h := (&Handler{TestInterval: time.Hour, TestsPerNamespace: 2, Now: func() time.Time { return now }}).Init()
	take := func(uid, ns string) (func(bool), string, time.Duration) { return h.takeTestSlot(uid, ns) }

	doneA, why, _ := take("a", "ns")
	g.Expect(why).To(BeEmpty())
	doneA(true)
	_, why, retry := take("a", "ns")
	g.Expect(why).To(ContainSubstring("per webhook"))
	g.Expect(retry).To(Equal(time.Hour))
	doneB, why, _ := take("b", "ns")
	g.Expect(why).To(BeEmpty())
	_, why, retry = take("c", "ns")
	g.Expect(why).To(ContainSubstring("2 test notifications per minute"))
	g.Expect(retry).To(Equal(30 * time.Second))
	_, why, _ = take("d", "other")
	g.Expect(why).To(BeEmpty(), "another namespace's budget is its own")

	// A retry refused meanwhile, then b's request ends having queued nothing (with a
	// rate.Limiter's Reservation, the refused retry made the give-back give nothing).
	now = now.Add(500 * time.Millisecond)
	_, why, _ = take("c", "ns")
	g.Expect(why).NotTo(BeEmpty())
	now = now.Add(100 * time.Millisecond)
	doneB(false)
	doneB2, why, _ := take("b", "ns")
	g.Expect(why).To(BeEmpty(), "b's slot and the namespace's test were given back")
	doneB2(true)
	_, why, _ = take("c", "ns")
	g.Expect(why).NotTo(BeEmpty())

	now = now.Add(30*time.Second - 600*time.Millisecond)
	doneC, why, _ := take("c", "ns")
	g.Expect(why).To(BeEmpty(), "half a minute later, one more")
	doneC(true)
	_, why, _ = take("e", "ns")
	g.Expect(why).NotTo(BeEmpty())
}
