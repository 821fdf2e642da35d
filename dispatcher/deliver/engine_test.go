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

package deliver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"k8s.io/utils/clock"

	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/echo"
)

// TestOutOfOrderEnqueueLosesNothing reproduces concurrent ingest requests for one webhook: the store
// assigns sequences 1..n, but Enqueue hears about them in another order. Every note must still be
// delivered, once, in sequence order — even with a memory queue smaller than the backlog.
func TestOutOfOrderEnqueueLosesNothing(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	g.Expect(err).NotTo(HaveOccurred())
	defer st.Close()

	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Agreement struct{ ID string } `json:"agreement"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		got = append(got, body.Agreement.ID)
		mu.Unlock()
		w.Header().Set(echo.Header, r.Header.Get(echo.Header))
	}))
	defer srv.Close()

	e := New(Config{Policy: DefaultPolicy(), MemQueue: 4}, st, NewSender(time.Second, true, nil, loopback), clock.RealClock{}, logr.Discard(), nil)
	g.Expect(e.Start(ctx)).To(Succeed())
	const uid = "wh-1"
	e.Upsert(Webhook{UID: uid, Name: "wh", AccountID: "acc", URL: srv.URL, ClientID: "c", Scope: "ACCOUNT", Deliverable: false})

	const n = 20
	var notes []store.Note
	var want []string
	for i := range n {
		id := fmt.Sprintf("e%02d", i)
		raw := fmt.Appendf(nil, `{"id":%q,"event":"AGREEMENT_CREATED","accountId":"acc","resource":{"type":"AGREEMENT","id":"a-%s"},"notification":{"agreement":{"id":"a-%s","name":"n","status":"s"}}}`, id, id, id)
		ev, err := ingest.Parse(raw)
		g.Expect(err).NotTo(HaveOccurred())
		seq, _, err := st.PutEvent(ctx, "acc/"+id, raw, time.Now())
		g.Expect(err).NotTo(HaveOccurred())
		e.CacheEvent(seq, ev, time.Now(), len(raw), uid)
		res, err := st.EnqueueAll(ctx, []store.Enqueue{{UID: uid, Note: store.Note{EventSeq: seq, Created: time.Now()}}})
		g.Expect(err).NotTo(HaveOccurred())
		notes = append(notes, store.Note{Seq: res[0].Seq, EventSeq: seq, Created: time.Now()})
		want = append(want, "a-"+id)
	}
	// Reported in reverse, then delivery switched on.
	for i := n - 1; i >= 0; i-- {
		e.Enqueue(uid, notes[i])
	}
	e.Upsert(Webhook{UID: uid, Name: "wh", AccountID: "acc", URL: srv.URL, ClientID: "c", Scope: "ACCOUNT", Deliverable: true})
	g.Eventually(func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), got...) }).
		WithTimeout(10 * time.Second).Should(Equal(want))
	// The receiver records the last body before the engine reads its answer and counts it.
	g.Eventually(func(g Gomega) {
		st2, _ := e.Status(uid)
		g.Expect(st2.Pending).To(BeZero())
		g.Expect(st2.Delivered).To(BeEquivalentTo(n))
	}).WithTimeout(10 * time.Second).Should(Succeed())
}
