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

package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/internal/testlog"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{DataDir: dir, InlineMax: 1024})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEventsAreDeduplicatedAndSurviveRestart(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	now := time.Now()

	small := []byte(`{"id":"e1"}`)
	big := bytes.Repeat([]byte("x"), 300<<10) // above InlineMax: goes to the object store
	seq1, dup, err := s.PutEvent(ctx, "acc/e1", small, now)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dup).To(BeFalse())
	again, dup, err := s.PutEvent(ctx, "acc/e1", small, now)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dup).To(BeTrue())
	g.Expect(again).To(Equal(seq1))
	seq2, _, err := s.PutEvent(ctx, "acc/e2", big, now)
	g.Expect(err).NotTo(HaveOccurred())

	res, err := s.EnqueueAll(ctx, []Enqueue{
		{UID: "wh-a", Note: Note{EventSeq: seq1, Created: now}},
		{UID: "wh-b", Note: Note{EventSeq: seq1, Created: now}},
		{UID: "wh-a", Note: Note{EventSeq: seq2, Created: now}},
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res).To(HaveLen(3))
	// Routing is recorded per event, so that a re-post is not queued twice.
	routed, err := s.Routed(ctx, "acc/e1", seq1)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(routed).To(BeFalse())
	g.Expect(s.MarkRouted(ctx, "acc/e1", seq1)).To(Succeed())
	s.Close()

	s = open(t, dir)
	defer s.Close()
	routed, err = s.Routed(ctx, "acc/e1", seq1)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(routed).To(BeTrue(), "the routed record must survive a restart")
	raw, created, err := s.GetEvent(ctx, seq2)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(raw).To(Equal(big))
	g.Expect(created.UnixNano()).To(Equal(now.UnixNano()))
	q, err := s.Queues(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(q).To(Equal(map[string]uint64{"wh-a": 2, "wh-b": 1}))

	notes, err := s.LoadNotes(ctx, "wh-a", 0, 10)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(notes).To(HaveLen(2))
	g.Expect(notes[0].EventSeq).To(Equal(seq1))
	g.Expect(notes[1].EventSeq).To(Equal(seq2))
	g.Expect(s.Remove(ctx, "wh-a", notes[0].Seq)).To(Succeed())
	notes, err = s.LoadNotes(ctx, "wh-a", 0, 10)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(notes).To(HaveLen(1))
	g.Expect(notes[0].EventSeq).To(Equal(seq2))

	g.Expect(s.RemoveQueue(ctx, "wh-b")).To(Succeed())
	q, err = s.Queues(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(q).To(Equal(map[string]uint64{"wh-a": 1}))

	rev, err := s.PutState(ctx, "wh-a", []byte("state"), 0)
	g.Expect(err).NotTo(HaveOccurred())
	st, got, err := s.GetState(ctx, "wh-a")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(st).To(Equal([]byte("state")))
	g.Expect(got).To(Equal(rev))
	// Written at the revision read, and only then: a write that expects an older one, or none,
	// stores nothing (a late write of a previous owner).
	rev2, err := s.PutState(ctx, "wh-a", []byte("state 2"), rev)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = s.PutState(ctx, "wh-a", []byte("late"), rev)
	g.Expect(err).To(MatchError(ErrStateChanged))
	_, err = s.PutState(ctx, "wh-a", []byte("late"), 0)
	g.Expect(err).To(MatchError(ErrStateChanged))
	st, _, _ = s.GetState(ctx, "wh-a")
	g.Expect(st).To(Equal([]byte("state 2")))

	g.Expect(s.DeleteState(ctx, "wh-a")).To(Succeed())
	st, got, err = s.GetState(ctx, "wh-a")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(st).To(BeNil())
	g.Expect(got).To(BeZero())
	_, err = s.PutState(ctx, "wh-a", []byte("late"), rev2)
	g.Expect(err).To(MatchError(ErrStateChanged), "a deleted state is not written back by a late write")
	_, err = s.PutState(ctx, "wh-a", []byte("new"), 0)
	g.Expect(err).NotTo(HaveOccurred(), "a deleted state may be created again")
}

// TestExternalNATS runs the store against a separate NATS server with JetStream reached by URL, as
// with --nats-url.
func TestExternalNATS(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	g.Expect(err).NotTo(HaveOccurred())
	go srv.Start()
	g.Expect(srv.ReadyForConnections(10 * time.Second)).To(BeTrue())
	defer srv.Shutdown()

	s, err := Open(ctx, Config{URL: srv.ClientURL()})
	g.Expect(err).NotTo(HaveOccurred())
	defer s.Close()
	seq, dup, err := s.PutEvent(ctx, "acc/x", []byte(`{"id":"x"}`), time.Now())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dup).To(BeFalse())
	_, err = s.EnqueueAll(ctx, []Enqueue{{UID: "wh", Note: Note{EventSeq: seq, Created: time.Now()}}})
	g.Expect(err).NotTo(HaveOccurred())
	q, err := s.Queues(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(q).To(Equal(map[string]uint64{"wh": 1}))
}

func TestNoteEncodingKeepsOldNotesReadable(t *testing.T) {
	created := time.Unix(1700000000, 123)
	old := encodeNote(Note{EventSeq: 42, Created: created})
	n, err := decodeNote(old)
	if err != nil || n.EventSeq != 42 || !n.Created.Equal(created) || n.EventID != "" || n.Replay != "" {
		t.Fatalf("old note: %+v, %v", n, err)
	}
	full := Note{EventSeq: 7, Created: created, EventID: "ev-1", EventName: "AGREEMENT_ACTION_COMPLETED", Replay: "replay-a"}
	got, err := decodeNote(encodeNote(full))
	if err != nil || got != full {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	enc := encodeNote(full)
	for i := len(old); i < len(enc); i++ {
		if _, err := decodeNote(enc[:i]); err == nil && i > len(old) {
			t.Fatalf("a note cut at %d of %d bytes decoded", i, len(enc))
		}
	}
}

// TestEmbeddedServerLogsIntoTheDispatchersLog: the embedded NATS server's own log (a full disk, a
// corrupt block) reaches the dispatcher's log instead of being switched off.
func TestEmbeddedServerLogsIntoTheDispatchersLog(t *testing.T) {
	logs := &testlog.Buffer{}
	s, err := Open(context.Background(), Config{DataDir: t.TempDir(), Log: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if !strings.Contains(logs.String(), "JetStream") {
		t.Fatalf("the embedded server logged nothing about JetStream:\n%s", logs.String())
	}
}

// The events and the queues are stored in 4 MB message blocks, not the 8 MB nats-server gives an
// unbounded stream: every block read or written is held in memory whole, and a drain reads the
// queues at a thousand places at once (docs/performance.md, "Smaller blocks").
func TestStreamsUseMediumBlocks(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, Config{DataDir: dir})
	g.Expect(err).NotTo(HaveOccurred())
	defer s.Close()

	const total = 10 << 20 // more than one 8 MB block
	now := time.Now()
	body := bytes.Repeat([]byte("e"), 200<<10) // inline: below the default InlineMax
	var seqs []uint64
	for i := 0; i*len(body) < total; i++ {
		seq, _, err := s.PutEvent(ctx, fmt.Sprintf("acc/e%d", i), body, now)
		g.Expect(err).NotTo(HaveOccurred())
		seqs = append(seqs, seq)
	}
	id := strings.Repeat("n", 4<<10) // notes are small; a long event id makes them big
	var batch []Enqueue
	for i := 0; i*len(id) < total; i++ {
		batch = append(batch, Enqueue{UID: "wh-a", Note: Note{EventSeq: seqs[i%len(seqs)], EventID: id, Created: now}})
	}
	_, err = s.EnqueueAll(ctx, batch)
	g.Expect(err).NotTo(HaveOccurred())

	for _, stream := range []string{EventsStream, NotesStream} {
		blocks, err := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", stream, "msgs", "*.blk"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(len(blocks)).To(BeNumerically(">=", 3), "%s: %d MB in blocks of at most 4 MB", stream, total>>20)
		for _, b := range blocks {
			fi, err := os.Stat(b)
			g.Expect(err).NotTo(HaveOccurred())
			// A block is closed by the first message that does not fit.
			g.Expect(fi.Size()).To(BeNumerically("<=", 4<<20+len(body)+1024), "%s: %s", stream, filepath.Base(b))
		}
	}
}

// A store created before the streams had their per-subject limit opens with it set, its events and
// queues intact.
func TestStreamsGainTheirLimitOnUpgrade(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	now := time.Now()
	seq, _, err := s.PutEvent(ctx, "acc/e1", []byte(`{"id":"e1"}`), now)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = s.EnqueueAll(ctx, []Enqueue{{UID: "wh-a", Note: Note{EventSeq: seq, Created: now}}})
	g.Expect(err).NotTo(HaveOccurred())
	for _, st := range []jetstream.Stream{s.events, s.notes} {
		cfg := st.CachedInfo().Config
		cfg.MaxMsgsPerSubject = -1 // as created before
		_, err := s.js.UpdateStream(ctx, cfg)
		g.Expect(err).NotTo(HaveOccurred())
	}
	s.Close()

	s = open(t, dir)
	defer s.Close()
	for _, st := range []jetstream.Stream{s.events, s.notes} {
		info, err := st.Info(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(info.Config.MaxMsgsPerSubject).To(BeEquivalentTo(mediumBlocks), info.Config.Name)
	}
	raw, _, err := s.GetEvent(ctx, seq)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(raw).To(MatchJSON(`{"id":"e1"}`))
	notes, err := s.LoadNotes(ctx, "wh-a", 0, 10)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(notes).To(HaveLen(1))
}

// A producer re-posting a large event (its body kept in the object store) had each re-post's
// upload deleted at once, and each deletion left a marker in the object store for the retention:
// one message per re-post, never counted against any quota. A re-post of a routed event now
// uploads nothing (since session 35 also when the intake that stored it marked it in its record,
// the usual case: each such re-post wrote and deleted the whole body), and one of an event not
// routed yet leaves nothing behind.
func TestRepostsOfALargeEventLeaveNothingInTheObjectStore(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	s := open(t, t.TempDir())
	t.Cleanup(s.Close)
	big := bytes.Repeat([]byte("x"), 300<<10)
	state := func() jetstream.StreamState {
		st, err := s.JetStream().Stream(ctx, "OBJ_"+BodiesBucket)
		g.Expect(err).NotTo(HaveOccurred())
		info, err := st.Info(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		return info.State
	}
	objects := func() uint64 { return state().Msgs }
	routed, _, err := s.PutEvent(ctx, "acc/routed", big, time.Now())
	g.Expect(err).NotTo(HaveOccurred())
	// As the intake marks an event it stored: in its record, not under the key.
	g.Expect(s.MarkRouted(ctx, "acc/routed", routed)).To(Succeed())
	_, _, err = s.PutEvent(ctx, "acc/pending", big, time.Now())
	g.Expect(err).NotTo(HaveOccurred())
	before := objects()
	for range 5 {
		written := state().LastSeq
		_, dup, err := s.PutEvent(ctx, "acc/routed", big, time.Now())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(dup).To(BeTrue())
		// Not even uploaded and deleted again: each re-post wrote the whole body into the store.
		g.Expect(state().LastSeq).To(Equal(written), "chunks written for a re-post of a routed event")
		_, dup, err = s.PutEvent(ctx, "acc/pending", big, time.Now())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(dup).To(BeTrue())
	}
	g.Expect(objects()).To(Equal(before), "messages left in the object store by re-posts")
	// The originals are whole.
	for _, key := range []string{"acc/routed", "acc/pending"} {
		seq, dup, err := s.PutEvent(ctx, key, []byte("{}"), time.Now())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(dup).To(BeTrue())
		if key == "acc/pending" {
			raw, _, err := s.GetEvent(ctx, seq)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(raw).To(Equal(big))
		}
	}
}
