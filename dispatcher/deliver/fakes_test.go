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
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/gomega"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/hookline/hookline/dispatcher/store"
)

// memStore is QueueStore in memory: the queues, events and state of the engine's unit tests.
type memStore struct {
	mu     sync.Mutex
	seq    uint64 // the notes stream's last sequence (one stream for every queue, as JetStream's)
	notes  map[string][]store.Note
	events map[uint64]memEvent
	state  map[string][]byte
	puts   map[string]int // PutState calls per uid
	// revs holds each state's revision, from stateSeq.
	revs     map[string]uint64
	stateSeq uint64
	// removing, when set, holds every Remove until it is closed; getting, every GetEvent (gets
	// counts the calls).
	removing, getting chan struct{}
	// loaded, when set, is called once LoadNotes has read (without the lock); loadErr, when set,
	// fails every LoadNotes.
	loaded  func(uid string)
	loadErr error
	gets    int
	// lagFrom, when set, hides the notes from that sequence on from LoadNotes, as the store's
	// index of recent notes hides a note another dispatcher stored until its announcement comes
	// (LastNoteSeq and Queues, read from the stream, see them).
	lagFrom uint64
	// loads counts the LoadNotes calls.
	loads int
	// putting, when set, holds every PutState until it is closed; stating every GetState (states
	// counts the calls).
	putting, stating chan struct{}
	states           int
}

type memEvent struct {
	raw     []byte
	created time.Time
}

func newMemStore() *memStore {
	return &memStore{notes: map[string][]store.Note{}, events: map[uint64]memEvent{}, state: map[string][]byte{}, puts: map[string]int{}, revs: map[string]uint64{}}
}

// putEvent stores an event and returns its sequence.
func (s *memStore) putEvent(raw []byte, created time.Time) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq := uint64(len(s.events) + 1)
	s.events[seq] = memEvent{raw: raw, created: created}
	return seq
}

// enqueue stores n in uid's queue and returns it with its sequence.
func (s *memStore) enqueue(uid string, n store.Note) store.Note {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	n.Seq = s.seq
	s.notes[uid] = append(s.notes[uid], n)
	return n
}

func (s *memStore) queued(uid string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.notes[uid])
}

// saved returns uid's saved record, and how many times it was written.
func (s *memStore) saved(uid string) (record, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r record
	if raw := s.state[uid]; raw != nil {
		_ = json.Unmarshal(raw, &r)
	}
	return r, s.puts[uid]
}

func (s *memStore) Queues(context.Context) (map[string]uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]uint64{}
	for uid, ns := range s.notes {
		if len(ns) > 0 {
			out[uid] = uint64(len(ns))
		}
	}
	return out, nil
}

func (s *memStore) LoadNotes(_ context.Context, uid string, from uint64, max int) ([]store.Note, error) {
	s.mu.Lock()
	s.loads++
	if err := s.loadErr; err != nil {
		s.mu.Unlock()
		return nil, err
	}
	var out []store.Note
	for _, n := range s.notes[uid] {
		if s.lagFrom != 0 && n.Seq >= s.lagFrom {
			break
		}
		if n.Seq >= from && len(out) < max {
			out = append(out, n)
		}
	}
	loaded := s.loaded
	s.mu.Unlock()
	if loaded != nil {
		loaded(uid)
	}
	return out, nil
}

func (s *memStore) LastNoteSeq(_ context.Context, uid string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ns := s.notes[uid]; len(ns) > 0 {
		return ns[len(ns)-1].Seq, nil
	}
	return 0, nil
}

func (s *memStore) Remove(_ context.Context, uid string, upTo uint64) error {
	s.mu.Lock()
	gate := s.removing
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := s.notes[uid]
	for len(ns) > 0 && ns[0].Seq <= upTo {
		ns = ns[1:]
	}
	s.notes[uid] = ns
	return nil
}

func (s *memStore) RemoveQueue(_ context.Context, uid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.notes, uid)
	return nil
}

func (s *memStore) GetEvent(_ context.Context, seq uint64) ([]byte, time.Time, error) {
	s.mu.Lock()
	s.gets++
	gate := s.getting
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ev, ok := s.events[seq]
	if !ok {
		return nil, time.Time{}, fmt.Errorf("loading event %d: %w", seq, jetstream.ErrMsgNotFound)
	}
	return ev.raw, ev.created, nil
}

// GetEventWithin is GetEvent, telling reserve the size of events above 512 KiB first (those the
// store keeps in its object store by default).
func (s *memStore) GetEventWithin(ctx context.Context, seq uint64, reserve func(int64) error) ([]byte, time.Time, error) {
	s.mu.Lock()
	ev, ok := s.events[seq]
	s.mu.Unlock()
	if ok && reserve != nil && len(ev.raw) > 512<<10 {
		if err := reserve(int64(len(ev.raw))); err != nil {
			return nil, time.Time{}, err
		}
	}
	return s.GetEvent(ctx, seq)
}

func (s *memStore) StateKeys(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for uid := range s.state {
		out = append(out, uid)
	}
	return out, nil
}

func (s *memStore) GetState(_ context.Context, uid string) ([]byte, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states++
	if gate := s.stating; gate != nil {
		s.mu.Unlock()
		<-gate
		s.mu.Lock()
	}
	return s.state[uid], s.revs[uid], nil
}

// PutState compares revisions as JetStream's key-value store does: one sequence for every key,
// and a deleted key has a revision of its own.
func (s *memStore) PutState(_ context.Context, uid string, v []byte, rev uint64) (uint64, error) {
	s.mu.Lock()
	gate := s.putting
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.revs[uid]
	if _, ok := s.state[uid]; !ok && rev == 0 {
		cur = 0 // none, or deleted: a create succeeds
	}
	if cur != rev {
		return 0, fmt.Errorf("%w: at %d, not %d", store.ErrStateChanged, cur, rev)
	}
	s.stateSeq++
	s.state[uid] = append([]byte(nil), v...)
	s.revs[uid] = s.stateSeq
	s.puts[uid]++
	return s.stateSeq, nil
}

func (s *memStore) DeleteState(_ context.Context, uid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.state, uid)
	s.stateSeq++
	s.revs[uid] = s.stateSeq
	return nil
}

// sent is one POST the fake receiver took: to which webhook, for which notification, when.
type sent struct {
	uid, account, note string
	at                 time.Time
}

// memReceiver is Transport in memory. Webhook URLs are https://<account>.test/<uid>; the answer for
// a webhook is decided by fail (nil: every attempt succeeds). With hold set, each Send waits until
// release lets one through, so that tests can see what is in flight at once.
type memReceiver struct {
	clk  *clocktesting.FakeClock
	hold bool
	// stuck, with hold, keeps a held Send waiting when its context ends (a transport stuck in a
	// system call), until release.
	stuck bool
	// took, when set, is how long the receiver takes to answer (the fake clock moves on by it).
	took time.Duration

	mu       sync.Mutex
	fail     map[string]bool
	busy     map[string]bool // answered as the Sender does when no connection can be had (Retry)
	busyHits int
	log      []sent
	inFlight map[string]int // per account
	maxIn    map[string]int
	gate     chan struct{}
}

func newMemReceiver(clk *clocktesting.FakeClock) *memReceiver {
	return &memReceiver{clk: clk, fail: map[string]bool{}, busy: map[string]bool{}, inFlight: map[string]int{}, maxIn: map[string]int{}, gate: make(chan struct{})}
}

func (r *memReceiver) setBusy(uid string, busy bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.busy[uid] = busy
}

func (r *memReceiver) busyTries() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.busyHits
}

func (r *memReceiver) setFailing(uid string, failing bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail[uid] = failing
}

func (r *memReceiver) Send(ctx context.Context, rawURL, _, _ string, _ *tls.Certificate, body []byte, _ http.Header) Attempt {
	u, err := url.Parse(rawURL)
	if err != nil {
		return Attempt{Reason: "BadURL", Message: err.Error()}
	}
	account, uid := strings.TrimSuffix(u.Host, ".test"), strings.TrimPrefix(u.Path, "/")
	var b struct {
		Agreement struct{ ID string } `json:"agreement"`
	}
	_ = json.Unmarshal(body, &b)
	r.mu.Lock()
	if r.busy[uid] {
		r.busyHits++
		r.mu.Unlock()
		return Attempt{Retry: true, Reason: "ConnectionFailed", Message: "no connection could be had"}
	}
	r.inFlight[account]++
	r.maxIn[account] = max(r.maxIn[account], r.inFlight[account])
	r.log = append(r.log, sent{uid: uid, account: account, note: b.Agreement.ID, at: r.clk.Now()})
	failing := r.fail[uid]
	r.mu.Unlock()
	cut := false
	switch {
	case r.hold && r.stuck:
		<-r.gate
		cut = ctx.Err() != nil
	case r.hold:
		select {
		case <-r.gate:
		case <-ctx.Done():
			cut = true
		}
	}
	if r.took > 0 {
		r.clk.Step(r.took)
	}
	r.mu.Lock()
	r.inFlight[account]--
	r.mu.Unlock()
	switch {
	case cut:
		return Attempt{Reason: "Timeout", Message: "the request was cancelled"}
	case failing:
		return Attempt{Status: 503, Reason: "HTTPError", Message: "503 Service Unavailable"}
	}
	return Attempt{OK: true, Status: 200}
}

// release lets one held Send answer.
func (r *memReceiver) release() { r.gate <- struct{}{} }

// sends returns what the receiver took so far.
func (r *memReceiver) sends() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sent(nil), r.log...)
}

// notes lists the notifications uid received, in order ("" for every webhook).
func (r *memReceiver) notes(uid string) []string {
	var out []string
	for _, s := range r.sends() {
		if uid == "" || s.uid == uid {
			out = append(out, s.note)
		}
	}
	return out
}

func (r *memReceiver) inFlightOf(account string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inFlight[account]
}

func (r *memReceiver) maxInFlight(account string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxIn[account]
}

// rig is an engine on a fake clock, an in-memory store and an in-memory receiver.
type rig struct {
	t   *testing.T
	g   Gomega
	clk *clocktesting.FakeClock
	st  *memStore
	rx  *memReceiver
	e   *Engine
	t0  time.Time
	// stop stops the engine and waits for it (once; cleanup calls it too); cancel only ends its
	// context.
	stop   func()
	cancel context.CancelFunc
}

// rigStart is when every rig's clock starts.
var rigStart = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// newRig builds the engine; prepare, when set, fills the store before the engine starts (what a
// previous run left).
func newRig(t *testing.T, cfg Config, prepare func(*memStore)) *rig {
	t.Helper()
	clk := clocktesting.NewFakeClock(rigStart)
	r := &rig{t: t, g: NewWithT(t), clk: clk, st: newMemStore(), rx: newMemReceiver(clk), t0: rigStart}
	if prepare != nil {
		prepare(r.st)
	}
	if cfg.Policy == (Policy{}) {
		cfg.Policy = DefaultPolicy()
	}
	r.e = New(cfg, r.st, r.rx, clk, logr.Discard(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.g.Expect(r.e.Start(ctx)).To(Succeed())
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			if r.rx.hold {
				close(r.rx.gate)
			}
			r.e.Wait()
		})
	}
	t.Cleanup(r.stop)
	return r
}

// webhook is the delivery configuration of uid in account.
func (r *rig) webhook(uid, account string) Webhook {
	return Webhook{UID: uid, Namespace: "ns", Name: uid, AccountID: account, URL: "https://" + account + ".test/" + uid,
		ClientID: "client", Scope: "ACCOUNT", Deliverable: true}
}

// queue stores n notifications for uid (notes <uid>-1..<uid>-n, created at created) and tells the
// engine, as Intake.Accept does.
func (r *rig) queue(uid, account string, n int, created time.Time) {
	r.t.Helper()
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("%s-%d", uid, i)
		raw := fmt.Appendf(nil, `{"id":%q,"event":"AGREEMENT_CREATED","accountId":%q,"resource":{"type":"AGREEMENT","id":%q},"notification":{"agreement":{"id":%q,"name":"n","status":"OUT_FOR_SIGNATURE"}}}`,
			id, account, id, id)
		seq := r.st.putEvent(raw, created)
		r.e.Enqueue(uid, r.st.enqueue(uid, store.Note{EventSeq: seq, Created: created}))
	}
}

// idle waits until nothing is in flight: every attempt started has been settled.
func (r *rig) idle() {
	r.t.Helper()
	r.g.Eventually(func() bool {
		for _, d := range r.e.Debug() {
			if d.InFlight || d.Waiting {
				return false
			}
		}
		return true
	}).WithTimeout(5 * time.Second).WithPolling(time.Millisecond).Should(BeTrue())
}

// next returns when uid's head is next attempted (zero when it waits for nothing).
func (r *rig) next(uid string) time.Time {
	r.t.Helper()
	for _, d := range r.e.Debug() {
		if d.UID == uid && d.HeadNext != "" {
			t, err := time.Parse(time.RFC3339Nano, d.HeadNext)
			r.g.Expect(err).NotTo(HaveOccurred())
			return t
		}
	}
	return time.Time{}
}

// at moves the clock to t and wakes the retry timer, which then sees t however its last wait was
// computed (a timer armed just before the clock moved would otherwise fire late).
func (r *rig) at(t time.Time) {
	r.clk.SetTime(t)
	r.e.poke()
}

// status returns uid's delivery state.
func (r *rig) status(uid string) Status {
	st, _ := r.e.Status(uid)
	return st
}

// holdRemovals makes every Remove wait until open is called (once or more). The test's cleanup
// calls it, before the engine's stop, which flushes its acker.
func (s *memStore) holdRemovals(t *testing.T) (open func()) {
	removing := make(chan struct{})
	open = sync.OnceFunc(func() { close(removing) })
	t.Cleanup(open)
	s.mu.Lock()
	s.removing = removing
	s.mu.Unlock()
	return open
}

// lag hides the notes from sequence from on from LoadNotes (0: none hidden).
func (s *memStore) lag(from uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lagFrom = from
}
