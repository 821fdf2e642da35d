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
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"k8s.io/utils/clock"

	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/dispatcher/payload"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/deliveries"
	"github.com/hookline/hookline/internal/echo"
)

// A process that dies between settling notes and removing them from their queue leaves them
// queued, with their records in the log. The next process reads the log's newest records as it
// starts and removes those notes unsent; a note whose record predates its queueing (a replay of
// the same name created again), one the log holds no settlement for, and every note after it are
// sent.
func TestNotesSettledBeforeAStartAreNotSentAgain(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	g.Expect(err).NotTo(HaveOccurred())
	defer st.Close()

	var mu sync.Mutex
	var got []string
	ids := map[string]string{} // notification id → event id
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ID string `json:"webhookNotificationId"`
		}
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &body)
		mu.Lock()
		got = append(got, body.ID)
		mu.Unlock()
		w.Header().Set(echo.Header, r.Header.Get(echo.Header))
	}))
	defer srv.Close()
	received := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, id := range got {
			out = append(out, ids[id])
		}
		return out
	}

	wh := Webhook{UID: recUID, Namespace: "ns", Name: "wh", AccountID: recAccount, URL: srv.URL, ClientID: "c",
		Scope: "ACCOUNT", Deliverable: true, LastVerified: time.Now()}
	created := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	queued := map[string]store.Note{}
	enqueue := func(id, replay string, at time.Time) {
		raw := fmt.Appendf(nil, `{"id":%q,"event":"AGREEMENT_CREATED","accountId":%q,"resource":{"type":"AGREEMENT","id":"a"},"notification":{"agreement":{"id":"a","name":"n","status":"s"}}}`, id, recAccount)
		_, err := ingest.Parse(raw)
		g.Expect(err).NotTo(HaveOccurred())
		seq, _, err := st.PutEvent(ctx, recAccount+"/"+id, raw, created)
		g.Expect(err).NotTo(HaveOccurred())
		n := store.Note{EventSeq: seq, Created: at, EventID: id, EventName: "AGREEMENT_CREATED", Replay: replay}
		res, err := st.EnqueueAll(ctx, []store.Enqueue{{UID: recUID, Note: n}})
		g.Expect(err).NotTo(HaveOccurred())
		n.Seq = res[0].Seq
		queued[id] = n
		ids[payload.NotificationID(recUID, recAccount, id)] = id
	}
	replayedAt := time.Now().Add(-time.Minute)
	enqueue("delivered", "", created)
	enqueue("dropped", "", created)
	enqueue("replayed", "again", replayedAt)
	enqueue("recreated", "again2", replayedAt)
	enqueue("retrying", "", created)
	enqueue("after", "", created)

	settled := func(id string, kind deliveries.Kind, state deliveries.State, at time.Time) deliveries.Record {
		n := queued[id]
		return deliveries.Record{Kind: kind, WebhookUID: recUID, EventSeq: n.EventSeq, EventID: id, Replay: n.Replay, At: at, State: state}
	}
	rec := &fakeRecorder{tail: []deliveries.Record{
		settled("delivered", deliveries.KindAttempt, deliveries.StateDelivered, created.Add(time.Second)),
		settled("dropped", deliveries.KindDropped, deliveries.StateDropped, created.Add(time.Second)),
		// A record of another webhook about the same event changes nothing here.
		{Kind: deliveries.KindAttempt, WebhookUID: "other", EventSeq: queued["retrying"].EventSeq, State: deliveries.StateDelivered, At: time.Now()},
		settled("replayed", deliveries.KindAttempt, deliveries.StateDelivered, replayedAt.Add(time.Second)),
		// The replay "again2" of before was deleted and created again: its record predates the note.
		settled("recreated", deliveries.KindAttempt, deliveries.StateDelivered, replayedAt.Add(-time.Second)),
		settled("retrying", deliveries.KindAttempt, deliveries.StateRetrying, replayedAt),
	}}

	// The engine finds the queue in the store as a restarted one does.
	e := New(Config{Policy: fastPolicy(), Recorder: rec}, st, NewSender(5*time.Second, true, nil, loopback),
		clock.RealClock{}, logr.Discard(), nil)
	g.Expect(e.Start(ctx)).To(Succeed())
	e.Upsert(wh)

	g.Eventually(received).WithTimeout(10*time.Second).Should(Equal([]string{"recreated", "retrying", "after"}),
		"only what the log does not record as settled since it was queued, in order")
	g.Eventually(func() int {
		notes, err := st.LoadNotes(ctx, recUID, 1, 100)
		g.Expect(err).NotTo(HaveOccurred())
		return len(notes)
	}).WithTimeout(10*time.Second).Should(BeZero(), "the settled notes left the queue too")
	for _, r := range rec.all() {
		g.Expect(r.EventID).To(BeElementOf("recreated", "retrying", "after"), "nothing new is recorded about the notes settled before")
	}
	cancel()
	e.Wait()
}
