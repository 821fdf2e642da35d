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

package console

// What one request may cost the console. The console is one pod (128 Mi in the chart) whose
// sessions live in memory, so a page that outgrows it signs every user out; and tenants decide the
// size of what a page reads: their Webhooks and replays (labels to the API server's 1.5 MiB per
// object), the Events in their namespace (core/v1 Events take messages of any length), their
// receivers' answers in the delivery log. Each part of a page's cost is bounded, whatever is there:
//
//   - every answer read, of the API server or of the read API, up to maxAnswer;
//   - every page built up to maxPage (beyond, the page says so instead);
//   - lists read a page at a time, each page's items copied as they are read into fresh objects
//     that hold only what is shown (clipped), of which only the newest that are shown are kept
//     (newest), and at most maxAnswers answers in all: a list costs what its page shows plus the
//     answer being read, however many items it has and however large;
//   - at most pageTurns pages built at once, userTurns of them for one owner (kubeauth.OwnerOf:
//     a user with all its sessions, or all the ServiceAccounts of one namespace together); a
//     request waits pageWait for its turn, then gets 503.
//     Once built, a page holds its size of the sending budget (sendBudget) instead of its turn
//     until it is sent, which must happen within sendGrace plus its size at sendRate: a reader
//     that takes pages slowly holds neither a turn nor bytes for long;
//   - the pages built without a turn, which anyone may ask for (the sign-in page, the error pages
//     answered before a session is known), take maxOpenPage of the sending budget before they
//     are built, and carry at most maxReturnPath of the request URI (returnPath): a request
//     waiting for room holds no page, however many wait.
//
// In all, some 3 × (an answer being decoded and a page being built) plus sendBudget: under 100 MiB
// at worst. The connections (cmd/console bounds them) hold their headers besides.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hookline/hookline/internal/kubeauth"
	"github.com/hookline/hookline/internal/safetext"
)

const (
	// maxAnswer bounds one answer read: a list of 1,000 Webhooks is about 3 MiB, a page of 500
	// notifications a few hundred KiB.
	maxAnswer = 4 << 20
	// maxPage bounds a built page: the largest normal page, a payload's (ShownBody indented and
	// escaped), is a few MiB.
	maxPage = 8 << 20
	// pageTurns and userTurns bound the pages built at once, in all and for one owner. userTurns
	// stays below pageTurns, so that one owner never holds every turn.
	pageTurns = 3
	userTurns = 2
	// maxShownText bounds a message shown from an object (an Event's, a condition's): Events
	// created through core/v1 carry messages of any length.
	maxShownText = 2 << 10
)

// pageWait is how long a request waits for its turn before the console answers 503 (a variable
// for tests).
var pageWait = 5 * time.Second

// errAnswerTooLarge ends the read of an answer larger than maxAnswer.
var errAnswerTooLarge = errors.New("the answer is larger than the console reads (4 MiB); use kubectl or the hookline CLI")

// errPageTooLarge ends the build of a page larger than maxPage.
var errPageTooLarge = errors.New("page too large")

// turns hands out the turns to build pages.
type turns struct {
	all chan struct{}
	mu  sync.Mutex
	per map[string]int // turns held or waited for, by owner (kubeauth.OwnerOf)
}

func newTurns() *turns { return &turns{all: make(chan struct{}, pageTurns), per: map[string]int{}} }

// take waits for a turn for a session of signer (Session.signer), at most pageWait; release gives
// it back (once, whatever the number of calls). ok is false when none came (or r ended).
//
// The turn counts against the signer's owner (kubeauth.OwnerOf), not the session nor the signer: a
// user may hold several sessions (maxPerUser), and a tenant may sign in with as many ServiceAccounts
// of its namespace as it creates (maxPerServiceAccountNamespace); counted per session or per
// signer, one tenant that made its own pages slow held every turn, and every other user got 503.
//
// A request counts against its owner from the moment it starts waiting, not only once it holds a
// turn, and one beyond userTurns gets 503 at once instead of waiting. So one owner has at most
// userTurns requests holding or waiting for turns: it never holds more than userTurns of the
// pageTurns, and its requests never queue ahead of another owner's more than userTurns deep.
// That is fairness enough for three turns, without a queue per owner and a round robin between
// them.
func (t *turns) take(r *http.Request, signer string) (release func(), ok bool) {
	owner := kubeauth.OwnerOf(signer)
	t.mu.Lock()
	if t.per[owner] >= userTurns {
		t.mu.Unlock()
		return nil, false
	}
	t.per[owner]++
	t.mu.Unlock()
	mine := func() {
		t.mu.Lock()
		if t.per[owner]--; t.per[owner] <= 0 {
			delete(t.per, owner)
		}
		t.mu.Unlock()
	}
	wait := time.NewTimer(pageWait)
	defer wait.Stop()
	select {
	case t.all <- struct{}{}:
	case <-wait.C:
		mine()
		return nil, false
	case <-r.Context().Done():
		mine()
		return nil, false
	}
	return sync.OnceFunc(func() { <-t.all; mine() }), true
}

// turnKey carries a request's turn in its context, for write to give it back.
type turnKey struct{}

// withTurn returns r carrying release, its turn's release.
func withTurn(r *http.Request, release func()) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), turnKey{}, release))
}

// hasTurn reports whether r was given a turn (withTurn), even one given back since.
func hasTurn(r *http.Request) bool {
	_, ok := r.Context().Value(turnKey{}).(func())
	return ok
}

// giveTurnBack gives r's turn back, if it has one.
func giveTurnBack(r *http.Request) {
	if release, ok := r.Context().Value(turnKey{}).(func()); ok {
		release()
	}
}

// sendWait is how long a built page waits for room in the sending budget; sendGrace and sendRate
// make the deadline by which it must be sent (sendGrace plus its size at sendRate), so that a
// reader that takes a page slowly holds its bytes for a bounded time.
const (
	sendGrace = 10 * time.Second
	sendRate  = 1 << 20 // bytes a second
)

// sendBudget bounds the bytes of the pages being sent at once: each is held in memory until the
// reader has it.
const sendBudget = 24 << 20

// maxOpenPage bounds a page built without a turn: the sign-in page, and the error pages answered
// before a session is known or a turn taken, which anyone may ask for, in any number. Their text
// is the catalog's and their only part a request chooses is the language links' way back
// (returnPath), so they are 2 to 20 KB. Such a page takes this much of the sending budget before
// it is built (and gives back what it did not use), so that the requests waiting for room hold no
// page: built first, the pages of 120 connections that asked and never read held 105 MB.
const maxOpenPage = 64 << 10

// cappedAnswers is a RoundTripper whose answers' bodies end with errAnswerTooLarge past maxAnswer.
type cappedAnswers struct{ next http.RoundTripper }

func (c cappedAnswers) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err == nil {
		resp.Body = &cappedBody{ReadCloser: resp.Body, left: maxAnswer}
	}
	return resp, err
}

type cappedBody struct {
	io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	if b.left -= int64(n); b.left < 0 {
		return n, errAnswerTooLarge
	}
	return n, err
}

// pageBuffer is a page being built: writes past max bytes fail with errPageTooLarge.
type pageBuffer struct {
	bytes.Buffer
	max int
}

func (b *pageBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, errPageTooLarge
	}
	return b.Buffer.Write(p)
}

// maxAnswers bounds the answers one list is read in.
const maxAnswers = 20

// readPages reads a list a page of limit items at a time into a fresh list from newList each, and
// hands each page to take, which keeps what it needs of it (trimmed: tenants decide how large the
// items are) and reports whether it has enough (stop) and whether it left items out (cut). A page
// whose answer is larger than maxAnswer is read again in smaller pages, down to one item (an
// object is at most the API server's 1.5 MiB), so one grown object does not make the list fail.
// truncated says that the list holds more than was read: take had enough, or maxAnswers were read.
func readPages[L client.ObjectList](ctx context.Context, c client.Client, newList func() L, limit int64, opts []client.ListOption,
	take func(L) (stop, cut bool)) (truncated bool, err error) {
	cont := ""
	for range maxAnswers {
		l := newList()
		err := c.List(ctx, l, append(opts[:len(opts):len(opts)], client.Limit(limit), client.Continue(cont))...)
		if errors.Is(err, errAnswerTooLarge) && limit > 1 {
			limit = max(1, limit/10)
			continue
		}
		if err != nil {
			return false, err
		}
		stop, cut := take(l)
		cont = l.GetContinue()
		if stop || cont == "" {
			return cut || stop && cont != "", nil
		}
	}
	return true, nil
}

// newest keeps the n newest of the items added to it (cmp orders the newest first), holding at
// most 2n at any time: when it holds 2n, it sorts them and drops the older half. A list read a
// page at a time thus holds what its page shows, not every item of every answer.
type newest[T any] struct {
	n   int
	cmp func(a, b T) int
	// items are the ones kept; dropped says that some were left out.
	items   []T
	dropped bool
}

// add keeps v, if it is among the n newest so far.
func (k *newest[T]) add(v T) {
	k.items = append(k.items, v)
	if len(k.items) >= 2*k.n {
		k.trim()
	}
}

// trim sorts the items kept, newest first, and drops all but the first n.
func (k *newest[T]) trim() {
	slices.SortStableFunc(k.items, k.cmp)
	if len(k.items) > k.n {
		clear(k.items[k.n:]) // what they point to is garbage now, not held by the array
		k.items, k.dropped = k.items[:k.n], true
	}
}

// result returns the n newest, newest first, and whether others were left out.
func (k *newest[T]) result() ([]T, bool) {
	k.trim()
	return k.items, k.dropped
}

// clip shortens s to maxShownText bytes, marking the cut.
func clip(s string) string { return safetext.Clip(s, maxShownText) }
