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

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// grownTime is the time of the g-th item a grown list brings: every one different, in no order
// (5003 is a prime larger than the items read), so that the newest are spread over the answers.
func grownTime(g int) time.Time {
	return time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC).Add(time.Duration(g*7919%5003) * time.Second)
}

// heldBytes is the heap the test's process holds once its garbage is collected (twice: a pool's
// buffers survive one collection).
func heldBytes() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// grownAPI stands in for the API server of a tenant who grew its Events or replays: every list
// answer brings as many items as the console asks for (items makes them, from the index of the
// first) and a continue token, for ever. While it makes the last answer the console reads
// (maxAnswers), it measures the heap held: the console's then, what it kept of the answers
// before; *held is that, less what was held before the list was read (baseline).
func grownAPI(t *testing.T, items func(first, n int) any) (c client.Client, baseline func(), held *atomic.Int64) {
	t.Helper()
	var answers atomic.Int32
	var before atomic.Int64
	held = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		first, _ := strconv.Atoi(r.URL.Query().Get("continue"))
		if answers.Add(1) == maxAnswers {
			held.Store(heldBytes() - before.Load())
		}
		list := items(first, limit)
		meta := listMetaOf(list)
		meta.Continue = strconv.Itoa(first + limit)
		body, err := json.Marshal(list)
		if err != nil {
			t.Error(err)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	c, err := userClient(&rest.Config{Host: srv.URL}, "token-a")
	if err != nil {
		t.Fatal(err)
	}
	return c, func() { before.Store(heldBytes()) }, held
}

// listMetaOf is the ListMeta of the lists grownAPI makes.
func listMetaOf(list any) *metav1.ListMeta {
	switch l := list.(type) {
	case *corev1.EventList:
		return &l.ListMeta
	case *hooklinev1.WebhookReplayList:
		return &l.ListMeta
	}
	panic(fmt.Sprintf("%T", list))
}

// A page read every Event about its Webhook, and every replay of it, keeping all of them until it
// showed the newest: core/v1 Events bound none of their strings, and the page cut only the ones it
// shows, so 250 Events with a 13,000-character involvedObject.fieldPath (an answer just under
// 4 MiB) held 80 MB over twenty answers; replays held every one of their notification ids. Two
// such pages at once took the console's 128 Mi. A list now holds only what its page shows, of its
// newest items: less than one answer, however many answers it reads.
func TestListsKeepOnlyWhatTheirPagesShow(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	fieldPath, message := strings.Repeat("f", 13000), strings.Repeat("m", 2500)
	c, baseline, held := grownAPI(t, func(first, n int) any {
		l := &corev1.EventList{TypeMeta: metav1.TypeMeta{Kind: "EventList", APIVersion: "v1"}}
		for i := first; i < first+n; i++ {
			l.Items = append(l.Items, corev1.Event{
				ObjectMeta:     metav1.ObjectMeta{Namespace: "team-a", Name: fmt.Sprintf("hook.%d", i)},
				InvolvedObject: corev1.ObjectReference{Kind: "Webhook", Namespace: "team-a", Name: "hook", UID: "u-1", FieldPath: fieldPath},
				Reason:         "Grown", Message: message, Type: corev1.EventTypeWarning, Count: 3,
				LastTimestamp:       metav1.NewTime(grownTime(i)),
				ReportingController: "tenant.example.com/grower", Related: &corev1.ObjectReference{FieldPath: "x"},
			})
		}
		return l
	})
	baseline()
	events, allowed, more, err := webhookEvents(ctx, c, &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "hook", UID: "u-1"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(allowed).To(BeTrue())
	g.Expect(more).To(BeTrue())
	t.Logf("Events: %d bytes held while the last of %d answers was read", held.Load(), maxAnswers)
	g.Expect(held.Load()).To(BeNumerically("<", maxAnswer), "what the page shows of the Events, not every Event read")
	var want []time.Time
	for i := range maxAnswers * eventsPage {
		want = append(want, grownTime(i))
	}
	slices.SortFunc(want, func(a, b time.Time) int { return b.Compare(a) })
	var got []time.Time
	for i := range events {
		e := &events[i]
		got = append(got, eventTime(e).UTC())
		g.Expect(e.Message).To(HaveLen(maxShownText), "cut as before")
		g.Expect(e.InvolvedObject.FieldPath).To(BeEmpty())
		g.Expect(e.ReportingController).To(BeEmpty())
		g.Expect(e.Related).To(BeNil())
		g.Expect([]any{e.Reason, e.Type, e.Count}).To(Equal([]any{"Grown", corev1.EventTypeWarning, int32(3)}))
	}
	g.Expect(got).To(Equal(want[:maxEventsShown]), "the newest, newest first")

	// Replays holding 200 notification ids each: a row shows the first few and counts the others.
	c, baseline, held = grownAPI(t, func(first, n int) any {
		l := &hooklinev1.WebhookReplayList{TypeMeta: metav1.TypeMeta{Kind: "WebhookReplayList", APIVersion: hooklinev1.GroupVersion.String()}}
		for i := first; i < first+n; i++ {
			rp := hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: fmt.Sprintf("hook-replay-%d", i),
				CreationTimestamp: metav1.NewTime(grownTime(i)), Labels: map[string]string{"grown": "yes"}},
				Spec: hooklinev1.WebhookReplaySpec{WebhookName: "hook"},
				Status: hooklinev1.WebhookReplayStatus{Matched: 200, Delivered: 200, Unavailable: []string{message},
					Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Completed", Message: message}}}}
			for j := range 200 {
				rp.Spec.NotificationIDs = append(rp.Spec.NotificationIDs, hooklinev1.NotificationID(fmt.Sprintf("%08x-0000-4000-8000-%012x", i, j)))
			}
			l.Items = append(l.Items, rp)
		}
		return l
	})
	baseline()
	rows, allowed, err := webhookReplays(ctx, c, "team-a", "hook")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(allowed).To(BeTrue())
	t.Logf("replays: %d bytes held while the last of %d answers was read", held.Load(), maxAnswers)
	g.Expect(held.Load()).To(BeNumerically("<", maxAnswer), "what the rows show of the replays, not every replay read")
	g.Expect(rows).To(HaveLen(maxReplaysShown))
	for i, row := range rows {
		g.Expect(row.Replay.CreationTimestamp.Time).To(BeTemporally("==", want[i]), "the newest, newest first")
		n := strings.TrimPrefix(row.Replay.Name, "hook-replay-")
		g.Expect(row.Replay.Spec.NotificationIDs).To(HaveLen(maxIDsShown))
		g.Expect(string(row.Replay.Spec.NotificationIDs[0])).To(Equal(fmt.Sprintf("%08x-0000-4000-8000-%012x", atoi(t, n), 0)))
		g.Expect(row.MoreIDs).To(Equal(200 - maxIDsShown))
		g.Expect(row.Replay.Labels).To(BeNil())
		g.Expect(row.Replay.Status.Unavailable).To(BeNil())
		g.Expect(row.Running).To(BeFalse())
		g.Expect(row.Ready.Message).To(HaveLen(maxShownText))
		g.Expect(row.Replay.Status.Delivered).To(Equal(int64(200)))
	}

	// The row shows the first ids and how many more there are.
	s, _ := newTestServer(t, true)
	sess, _ := s.Sessions().Create("token-a", "alice")
	rec := httptest.NewRecorder()
	s.render(rec, turned(httptest.NewRequest(http.MethodGet, "/webhooks/team-a/hook", nil)), http.StatusOK, "detail",
		s.page(&reqCtx{sess: *sess, L: localizerFor("en")}, "team-a/hook", detailData{WH: &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "hook"}},
			Events: events, EventsAllowed: true, Replays: rows, ReplaysAllowed: true, Log: logData{Off: true}}))
	g.Expect(rec.Code).To(Equal(http.StatusOK))
	g.Expect(rec.Body.String()).To(ContainSubstring(fmt.Sprintf("%s and %d more</td>", rows[0].Replay.Spec.NotificationIDs[maxIDsShown-1], 200-maxIDsShown)))
	g.Expect(rec.Body.String()).NotTo(ContainSubstring(fieldPath[:100]))
}

// turned is r holding a turn, as authed gives a session's request: its page is built within
// maxPage, not maxOpenPage.
func turned(r *http.Request) *http.Request { return withTurn(r, func() {}) }

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The pages built at once are counted per user, not per session: a user holds up to maxPerUser
// sessions, and counted per session those had every turn, so that another user waited (503), and
// each page built as large as a tenant's objects make it. Here alice's two pages wait in the API
// server: a third, from another session of hers, is refused at once; bob's is built.
func TestPageTurnsAreCountedPerUser(t *testing.T) {
	g := NewWithT(t)
	s, entered, releaseOnce, open := blockingPages(t, func(auth string) bool { return auth == "Bearer token-a" })
	var alice []*Session
	for range userTurns + 1 {
		sess, err := s.Sessions().Create("token-a", "alice")
		g.Expect(err).NotTo(HaveOccurred())
		alice = append(alice, sess)
	}
	bob, _ := s.Sessions().Create("token-b", "bob")

	var waiting []<-chan int
	for _, sess := range alice[:userTurns] {
		waiting = append(waiting, open(sess))
		<-entered // its page is being built, its turn held
	}
	select {
	case code := <-open(alice[userTurns]):
		g.Expect(code).To(Equal(http.StatusServiceUnavailable), "alice's page beyond her turns, from another session")
	case <-entered:
		t.Fatalf("alice's third page is being built at once, from her third session")
	}
	g.Expect(<-open(bob)).To(Equal(http.StatusOK), "another user's page")
	releaseOnce()
	for _, code := range waiting {
		g.Expect(<-code).To(Equal(http.StatusOK))
	}
	g.Expect(s.turns.per).To(BeEmpty(), "every turn given back")
}

// A tenant may sign in with as many ServiceAccounts of its namespace as it creates, and make its
// own pages slow (Events and replays in its namespace): its ServiceAccounts together hold at most
// userTurns turns, the others are refused at once instead of queueing, and another user's page is
// still built. Counted per ServiceAccount, four of them held all three turns and the queue, and
// every other user got 503.
func TestPageTurnsAreCountedPerOwner(t *testing.T) {
	g := NewWithT(t)
	pageWait = 200 * time.Millisecond // what a page waits for a turn that does not come
	t.Cleanup(func() { pageWait = 5 * time.Second })
	s, entered, releaseOnce, open := blockingPages(t, func(auth string) bool { return strings.HasPrefix(auth, "Bearer token-sa") })

	var building []<-chan int
	for i := 1; i <= 4; i++ {
		sess, err := s.Sessions().Create(fmt.Sprintf("token-sa%d", i), fmt.Sprintf("system:serviceaccount:team-a:sa%d", i))
		g.Expect(err).NotTo(HaveOccurred())
		code := open(sess)
		select {
		case <-entered: // its page is being built, its turn held
			building = append(building, code)
		case c := <-code:
			g.Expect(c).To(Equal(http.StatusServiceUnavailable), "sa%d's page", i)
		}
	}
	bob, _ := s.Sessions().Create("token-b", "bob")
	g.Expect(<-open(bob)).To(Equal(http.StatusOK), "another user's page, while team-a's ServiceAccounts wait for theirs")
	g.Expect(building).To(HaveLen(userTurns), "pages of team-a's ServiceAccounts built at once")
	releaseOnce()
	for _, code := range building {
		g.Expect(<-code).To(Equal(http.StatusOK))
	}
	g.Expect(s.turns.per).To(BeEmpty(), "every turn given back")
}

// blockingPages serves a console against a stand-in API server whose answers to the requests blocks
// picks (by Authorization header) wait until release is called; entered receives each such
// request's path, and open builds the Webhooks list for a session, answering its status code.
func blockingPages(t *testing.T, blocks func(auth string) bool) (s *Server, entered chan string, release func(), open func(*Session) <-chan int) {
	t.Helper()
	entered, gate := make(chan string, 8), make(chan struct{})
	release = sync.OnceFunc(func() { close(gate) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if blocks(r.Header.Get("Authorization")) {
			entered <- r.URL.Path
			<-gate
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"WebhookList","apiVersion":"hookline.io/v1alpha1","metadata":{},"items":[]}`))
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(release) // before the server closes: its handlers wait for it
	s, err := New(Config{API: &rest.Config{Host: srv.URL}, InsecureCookies: true})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	open = func(sess *Session) <-chan int {
		code := make(chan int, 1)
		go func() {
			req := httptest.NewRequest(http.MethodGet, "/webhooks", nil)
			req.AddCookie(&http.Cookie{Name: s.sessionCookie, Value: sess.ID})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			code <- rec.Code
		}()
		return code
	}
	return s, entered, release, open
}

// serveOnLoopback serves s from a real http.Server on 127.0.0.1, with the console's header bound,
// and returns its address and the count of requests that reached the handler.
func serveOnLoopback(t *testing.T, s *Server) (addr string, entered *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered = &atomic.Int32{}
	h := s.Handler()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered.Add(1)
		h.ServeHTTP(w, r)
	}), MaxHeaderBytes: MaxHeaderBytes, ReadHeaderTimeout: time.Minute}
	go func() { _ = srv.Serve(smallSendBuffers{ln}) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), entered
}

// smallSendBuffers keeps its connections' kernel send buffers small (Linux grows them to MiBs on
// loopback): what a reader does not take stays in the process, where the test measures it. The
// kernel's buffers count against a pod's memory too.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(8 << 10)
	}
	return c, err
}

// openPage is a request anyone may send whose page is built without a turn, and the status it is
// answered.
type openPage struct {
	req    string
	status int
}

// openPages are the open pages asked for with the query q: the sign-in page, the sign-in form
// posted without its nonce, and a form posted to a signed-in path without a session.
func openPages(q string) []openPage {
	post := " HTTP/1.1\r\nHost: console\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\n\r\n"
	return []openPage{
		{"GET /signin?" + q + " HTTP/1.1\r\nHost: console\r\n\r\n", http.StatusOK},
		{"POST /signin?" + q + post, http.StatusForbidden},
		{"POST /webhooks/new?" + q + post, http.StatusForbidden},
	}
}

// A request URI is as long as its client makes it, within the header's 64 KiB, and the pages
// anyone may ask for printed it, percent-encoded, in each of their three language links: a query
// of 64 KiB of quotes made a sign-in page of 582 KB (and an error page, posted without a nonce or
// a session, as much). They were built before they waited for room in the sending budget, as many
// as were asked for at once, so 120 connections asking and never reading held 105 MB of the test's
// heap (the console has 128 Mi). The language links now bring back at most 2 KiB of path and
// query, and a page built without a turn takes its room in the budget before it is built: pages of
// under 2 KB, and the 120 connections hold 9 MB, their requests.
func TestLongRequestURIsCannotBlowUpTheConsole(t *testing.T) {
	g := NewWithT(t)
	s, _ := newTestServer(t, true)
	addr, entered := serveOnLoopback(t, s)
	// ask sends req on a connection of its own and reads the answer.
	ask := func(req string) (status int, page string) {
		conn, err := net.Dial("tcp", addr)
		g.Expect(err).NotTo(HaveOccurred())
		defer func() { _ = conn.Close() }()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = io.WriteString(conn, req)
		g.Expect(err).NotTo(HaveOccurred())
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		g.Expect(err).NotTo(HaveOccurred())
		body, err := io.ReadAll(resp.Body)
		g.Expect(err).NotTo(HaveOccurred())
		t.Logf("%.20s… (%d bytes): %d, a page of %d bytes", req, len(req), resp.StatusCode, len(body))
		return resp.StatusCode, string(body)
	}
	long := strings.Repeat(`"`, MaxHeaderBytes-1024)
	for _, p := range openPages(long) {
		status, page := ask(p.req)
		g.Expect(status).To(Equal(p.status), p.req[:20])
		g.Expect(len(page)).To(BeNumerically("<", 16<<10), "the page, not the request URI three times over")
		g.Expect(page).To(ContainSubstring(`next=%2f`), "the language links bring back the path")
	}
	// The language links bring back the page as it was asked for, query and all, up to the
	// longest query kept (each quote three bytes once escaped): still a page well within
	// maxOpenPage.
	_, page := ask(openPages("expired=1")[0].req)
	g.Expect(page).To(ContainSubstring(`href="/lang?l=da&amp;next=%2fsignin%3fexpired%3d1"`))
	_, page = ask(openPages(strings.Repeat(`"`, maxReturnPath-len("/signin?")))[0].req)
	g.Expect(page).To(ContainSubstring(`next=%2fsignin%3f%22%22`))
	g.Expect(len(page)).To(BeNumerically("<", maxOpenPage/2))

	// Many connections asking and never reading hold their requests, not pages.
	const conns = 120
	base, before := heldBytes(), entered.Load()
	for i := range conns {
		conn, err := net.Dial("tcp", addr)
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(func() { _ = conn.Close() })
		_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
		_, err = io.WriteString(conn, openPages(long)[i%3].req)
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Eventually(entered.Load).WithTimeout(30 * time.Second).Should(BeNumerically(">=", before+conns))
	growth := func() int64 { return heldBytes() - base }
	g.Consistently(growth).WithTimeout(time.Second).WithPolling(100 * time.Millisecond).Should(BeNumerically("<", 40<<20))
	t.Logf("%d connections asking with a 64 KiB request URI, never reading: %d bytes held", conns, growth())

	// Another user's sign-in page is answered meanwhile.
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/signin")
	g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
}

// A page anyone may ask for is built only once it holds room in the sending budget for the largest
// such page: built first, as before, every request waiting for room held its page, however many
// waited. With less room left than maxOpenPage, the sign-in page waits (503 after pageWait),
// though the page, once built, would have fitted.
func TestOpenPagesTakeRoomBeforeTheyAreBuilt(t *testing.T) {
	g := NewWithT(t)
	pageWait = 200 * time.Millisecond // what a page waits for room that does not come
	t.Cleanup(func() { pageWait = 5 * time.Second })
	s, _ := newTestServer(t, true)
	h := s.Handler()
	signin := func() int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/signin", nil))
		return rec.Code
	}
	held := int64(sendBudget - maxOpenPage + 1)
	g.Expect(s.sending.Acquire(context.Background(), held)).To(Succeed())
	g.Expect(signin()).To(Equal(http.StatusServiceUnavailable))
	s.sending.Release(held)
	g.Expect(signin()).To(Equal(http.StatusOK))
	g.Expect(s.sending.TryAcquire(sendBudget)).To(BeTrue(), "every byte given back")
}
