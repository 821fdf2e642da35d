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
//   - at most pageTurns pages built at once, sessionTurns of them for one session; a request
//     waits pageWait for its turn, then gets 503. The turn is given back once the page is built,
//     before it is sent, so a reader that takes a page slowly holds none.
//
// A page's worst case is then about two answers decoded and one page: some 3 × 8 MiB, three at
// once.

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/hookline/hookline/internal/safetext"
)

const (
	// maxAnswer bounds one answer read: a list of 1,000 Webhooks is about 3 MiB, a page of 500
	// notifications a few hundred KiB.
	maxAnswer = 4 << 20
	// maxPage bounds a built page: the largest normal page, a payload's (ShownBody indented and
	// escaped), is a few MiB.
	maxPage = 8 << 20
	// pageTurns and sessionTurns bound the pages built at once, in all and for one session.
	pageTurns    = 3
	sessionTurns = 2
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
	per map[string]int // turns held, by session
}

func newTurns() *turns { return &turns{all: make(chan struct{}, pageTurns), per: map[string]int{}} }

// take waits for a turn for session, at most pageWait; release gives it back (once, whatever the
// number of calls). ok is false when none came (or r ended).
func (t *turns) take(r *http.Request, session string) (release func(), ok bool) {
	t.mu.Lock()
	if t.per[session] >= sessionTurns {
		t.mu.Unlock()
		return nil, false
	}
	t.per[session]++
	t.mu.Unlock()
	mine := func() {
		t.mu.Lock()
		if t.per[session]--; t.per[session] <= 0 {
			delete(t.per, session)
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

// turnWriter gives its request's turn back when the page starts to be sent: pages are built
// whole before the first byte is written.
type turnWriter struct {
	http.ResponseWriter
	release func()
}

func (w *turnWriter) WriteHeader(code int) {
	w.release()
	w.ResponseWriter.WriteHeader(code)
}

func (w *turnWriter) Write(b []byte) (int, error) {
	w.release()
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *turnWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

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

// pageBuffer is a page being built: writes past maxPage fail with errPageTooLarge.
type pageBuffer struct{ bytes.Buffer }

func (b *pageBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxPage {
		return 0, errPageTooLarge
	}
	return b.Buffer.Write(p)
}

// clip shortens s to maxShownText bytes, marking the cut.
func clip(s string) string { return safetext.Clip(s, maxShownText) }
