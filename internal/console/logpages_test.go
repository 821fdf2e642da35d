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
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"k8s.io/client-go/rest"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/deliveries"
)

// fakeReadAPI stands in for the dispatcher's read API (its real authorization is tested in
// dispatcher/logapi and in test/browser): it answers only requests carrying tokenA and only for
// team-a/hook, 404 otherwise, as the real one answers a denied SubjectAccessReview.
func fakeReadAPI(t *testing.T, tokenA string, seen *[]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*seen = append(*seen, r.Header.Get("Authorization")+" "+r.URL.RequestURI())
		w.Header().Set("Content-Type", "application/json")
		const base = "/v1/namespaces/team-a/webhooks/hook/notifications"
		if r.Header.Get("Authorization") != "Bearer "+tokenA || !strings.HasPrefix(r.URL.Path, base) {
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(deliveries.Error{Status: 404, Reason: "NotFound", Message: "webhook not found"})
			return
		}
		at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		n := deliveries.Notification{NotificationID: "n-1", EventName: "AGREEMENT_CREATED", State: deliveries.StateRetrying, Attempts: 1, HTTPStatus: 500, Reason: "HTTPError", Updated: at}
		switch r.URL.Path {
		case base:
			_ = json.NewEncoder(w).Encode(deliveries.NotificationList{Items: []deliveries.Notification{n}, Next: "c2"})
		case base + "/n-1":
			_ = json.NewEncoder(w).Encode(deliveries.AttemptList{Notification: n, Records: []deliveries.Record{{Kind: deliveries.KindAttempt, At: at,
				State: deliveries.StateRetrying, Attempt: 1, DurationMillis: 12, Reason: "HTTPError", HTTPStatus: 500,
				Response: `<script>alert(1)</script><img src=x onerror=alert(2)>`}}})
		case base + "/n-1/body":
			_, _ = w.Write([]byte(`{"webhookNotificationId":"n-1","note":"<b>bold</b>"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(deliveries.Error{Status: 404, Reason: "NotFound", Message: "notification not found"})
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestNotificationPagesPassTheUsersTokenAndShowReceiverTextAsText(t *testing.T) {
	var seen []string
	api := fakeReadAPI(t, "token-a", &seen)
	base, _ := url.Parse(api.URL)
	s, err := New(Config{API: &rest.Config{Host: "https://127.0.0.1:1"}, InsecureCookies: true, Deliveries: &LogAPI{Base: base, HTTP: api.Client()}})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	a, _ := s.Sessions().Create("token-a", "alice")
	b, _ := s.Sessions().Create("token-b", "bob")
	get := func(sess *Session, path string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.AddCookie(&http.Cookie{Name: s.sessionCookie, Value: sess.ID})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}

	code, body := get(a, "/webhooks/team-a/hook/notifications/n-1")
	if code != http.StatusOK {
		t.Fatalf("notification page: %d %s", code, body)
	}
	if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") ||
		!strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;") {
		t.Fatalf("the receiver's answer is not shown as text: %s", body)
	}
	for _, want := range []string{"12 ms", "HTTPError", "500", `data-kind="attempt"`} {
		if !strings.Contains(body, want) {
			t.Errorf("notification page lacks %q", want)
		}
	}
	code, body = get(a, "/webhooks/team-a/hook/notifications/n-1/body")
	if code != http.StatusOK || !strings.Contains(body, "{\n  &#34;webhookNotificationId&#34;: &#34;n-1&#34;,") || strings.Contains(body, "<b>bold") {
		t.Fatalf("payload page: %d, want the body indented and escaped: %s", code, body)
	}
	// Bob's token: the read API answers 404, and so does the console, for the page and the body.
	for _, p := range []string{"/webhooks/team-a/hook/notifications/n-1", "/webhooks/team-a/hook/notifications/n-1/body"} {
		if code, _ := get(b, p); code != http.StatusNotFound {
			t.Errorf("%s as bob: %d, want 404", p, code)
		}
	}
	for _, r := range seen {
		if !strings.HasPrefix(r, "Bearer token-a ") && !strings.HasPrefix(r, "Bearer token-b ") {
			t.Errorf("request without the user's token: %s", r)
		}
	}
	if len(seen) != 4 {
		t.Errorf("read API requests: %v", seen)
	}
}

func TestReadAPIUnauthorizedEndsTheSession(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer api.Close()
	base, _ := url.Parse(api.URL)
	s, _ := New(Config{API: &rest.Config{Host: "https://127.0.0.1:1"}, InsecureCookies: true, Deliveries: &LogAPI{Base: base, HTTP: api.Client()}})
	sess, _ := s.Sessions().Create("old", "alice")
	req := httptest.NewRequest(http.MethodGet, "/webhooks/team-a/hook/notifications/n-1", nil)
	req.AddCookie(&http.Cookie{Name: s.sessionCookie, Value: sess.ID})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther || !strings.Contains(rec.Header().Get("Location"), "expired") {
		t.Fatalf("%d %v, want a redirect to sign in", rec.Code, rec.Header())
	}
	if _, ok := s.Sessions().Get(sess.ID); ok {
		t.Fatal("the session survived the read API's 401")
	}
}

func TestNotificationPagesWithoutReadAPI(t *testing.T) {
	s, _ := newTestServer(t, true)
	sess, _ := s.Sessions().Create("token", "alice")
	req := httptest.NewRequest(http.MethodGet, "/webhooks/team-a/hook/notifications/n-1", nil)
	req.AddCookie(&http.Cookie{Name: s.sessionCookie, Value: sess.ID})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "no dispatcher read API") {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
}

// postReplayForm posts form to team-a/hook's replays as the session sessionID.
func postReplayForm(s *Server, sessionID string, form url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/webhooks/team-a/hook/replays", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: s.sessionCookie, Value: sessionID})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

func TestRecoverNeedsAValidTimeBeforeAnyAPICall(t *testing.T) {
	s, _ := newTestServer(t, true)
	sess, _ := s.Sessions().Create("token", "alice")
	form := url.Values{"csrf": {sess.CSRF}, "since": {"<b>yesterday</b>"}, "states": {"failed"}}
	rec := postReplayForm(s, sess.ID, form)
	body := rec.Body.String()
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(body, `id="replay-error"`) || !strings.Contains(body, `value="failed" checked`) {
		t.Fatalf("%d %s", rec.Code, body)
	}

	// The same for the optional end of the range.
	form = url.Values{"csrf": {sess.CSRF}, "since": {"2026-12-01T00:00"}, "until": {"tomorrow"}, "states": {"lost"}}
	rec = postReplayForm(s, sess.ID, form)
	body = rec.Body.String()
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(body, "Give the end as") || !strings.Contains(body, `value="tomorrow"`) ||
		!strings.Contains(body, `value="lost" checked`) {
		t.Fatalf("%d %s", rec.Code, body)
	}
}

// The end of a recovery's range is the user's text: a refused one is shown back in the form as
// an attribute's value, never as markup.
func TestRecoverFormShowsARefusedEndAsText(t *testing.T) {
	s, _ := newTestServer(t, true)
	sess, _ := s.Sessions().Create("token", "alice")
	hostile := `"><img src=x id=injected>`
	form := url.Values{"csrf": {sess.CSRF}, "since": {"2026-12-01T00:00"}, "until": {hostile}, "states": {"failed"}}
	rec := postReplayForm(s, sess.ID, form)
	body := rec.Body.String()
	if rec.Code != http.StatusUnprocessableEntity || strings.Contains(body, "<img") || !strings.Contains(body, `value="&#34;&gt;&lt;img src=x id=injected&gt;"`) {
		t.Fatalf("%d %s", rec.Code, body)
	}
}

func TestReplayPrefixKeepsNamesValid(t *testing.T) {
	long := strings.Repeat("a", 253)
	if p := replayPrefix(long); len(p)+5 > 253 {
		t.Fatalf("prefix %d bytes", len(p))
	}
	if replayPrefix("orders") != "orders-replay-" {
		t.Fatal(replayPrefix("orders"))
	}
}

func TestWebhookReplaysMapToTheirResource(t *testing.T) {
	m, err := mapper.RESTMapping(hooklinev1.GroupVersion.WithKind("WebhookReplay").GroupKind(), "v1alpha1")
	if err != nil || m.Resource.Resource != "webhookreplays" {
		t.Fatalf("%v %v", m, err)
	}
}

func TestARunningReplaysPageReloadsItself(t *testing.T) {
	s, _ := newTestServer(t, true)
	for _, running := range []bool{true, false} {
		p := page{L: localizerFor("en"), Title: "r", CSRF: "x", Data: replayData{Namespace: "a", Name: "w", Replay: &hooklinev1.WebhookReplay{}, Running: running}}
		if running {
			p.Refresh = replayRefreshSeconds
		}
		rec := httptest.NewRecorder()
		s.render(rec, httptest.NewRequest(http.MethodGet, "/webhooks/a/w/replays/r", nil), http.StatusOK, "replay", p)
		if got := strings.Contains(rec.Body.String(), `<meta http-equiv="refresh" content="2;url=?auto=1">`); got != running {
			t.Errorf("running=%v: meta refresh %v: %s", running, got, rec.Body.String())
		}
	}
}

// A producer's event shapes the body a tenant opens in the console, which serves every tenant from
// one small pod: a body nested a thousand deep grows a thousandfold when indented (120 KB became
// 120 MB, and the page more), and a long one grows up to sixfold when escaped. The page shows a
// body whose indented form would pass 1 MiB as it came, and at most its first 512 KiB, cut on a
// character's start; at most four such pages are built at once.
func TestPayloadPagesStayBoundedWhateverTheBody(t *testing.T) {
	const depth, members = 1000, 60000
	deep := `{"webhookNotificationId":"deep","a":` + strings.Repeat("[", depth) + strings.Repeat("0,", members) + "0" + strings.Repeat("]", depth) + "}"
	long := `{"webhookNotificationId":"long","a":"` + strings.Repeat("&", 3<<20) + `é"}`
	// é's first byte is the last the page may show.
	split := `{"a":"` + strings.Repeat("a", ShownBody-1-len(`{"a":"`)) + `é` + strings.Repeat("b", 100) + `"}`
	bodies := map[string]string{"deep": deep, "long": long, "split": split, "small": `{"webhookNotificationId":"small","n":[1,{"a":"<b>"}]}`}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/namespaces/team-a/webhooks/hook/notifications/"), "/body")
		_, _ = w.Write([]byte(bodies[id]))
	}))
	t.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL)
	s, err := New(Config{API: &rest.Config{Host: "https://127.0.0.1:1"}, InsecureCookies: true, Deliveries: &LogAPI{Base: base, HTTP: srv.Client()}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.Sessions().Create("token-a", "alice")
	get := func(id string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, "/webhooks/team-a/hook/notifications/"+id+"/body", nil)
		req.AddCookie(&http.Cookie{Name: s.sessionCookie, Value: a.ID})
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	page := func(id string) string {
		code, body := get(id)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", id, code, body)
		}
		return body
	}

	got := page("deep")
	if len(got) > 1<<20 || !strings.Contains(got, "&#34;a&#34;:[[[[") || strings.Contains(got, "payload-truncated") {
		t.Errorf("deep body: a page of %d bytes; want the body as it came (%d bytes), whole", len(got), len(deep))
	}
	got = page("long")
	if len(got) > 4<<20 || !strings.Contains(got, `id="payload-truncated"`) || !strings.Contains(got, "512 KiB") ||
		strings.Contains(got, "é") || strings.Count(got, "&amp;") < ShownBody-64 || !utf8.ValidString(got) {
		t.Errorf("long body: a page of %d bytes with %d escaped characters; want its first 512 KiB and the notice", len(got), strings.Count(got, "&amp;"))
	}
	got = page("split")
	if !utf8.ValidString(got) || strings.Contains(got, "é") || !strings.Contains(got, strings.Repeat("a", 64)+"</pre>") {
		t.Errorf("a body cut inside a character: want it cut before the character, the page valid UTF-8")
	}
	got = page("small")
	if !strings.Contains(got, "{\n  &#34;webhookNotificationId&#34;: &#34;small&#34;,\n  &#34;n&#34;: [\n    1,") || strings.Contains(got, "payload-truncated") {
		t.Errorf("small body: want it indented, whole: %s", got)
	}

	// Every turn to build a page taken: a request waits its turn, then is answered 503; with one
	// given back, it is built.
	pageWait = 50 * time.Millisecond
	t.Cleanup(func() { pageWait = 5 * time.Second })
	for range pageTurns {
		s.turns.all <- struct{}{}
	}
	if code, body := get("small"); code != http.StatusServiceUnavailable || !strings.Contains(body, "as many pages as it may at once") {
		t.Errorf("a page beyond the turns: %d, want 503 with its reason", code)
	}
	<-s.turns.all
	if code, _ := get("small"); code != http.StatusOK {
		t.Errorf("with a turn free: %d, want 200", code)
	}

	// One user holds at most userTurns of them: its next page is refused at once, another user's
	// is built; the user's turns given back, its page is built again.
	for range pageTurns - 1 {
		<-s.turns.all
	}
	b, _ := s.Sessions().Create("token-b", "bob")
	var held []func()
	for range userTurns {
		release, ok := s.turns.take(httptest.NewRequest(http.MethodGet, "/", nil), a.signer)
		if !ok {
			t.Fatal("a user's own turns")
		}
		held = append(held, release)
	}
	if code, _ := get("small"); code != http.StatusServiceUnavailable {
		t.Errorf("a user's page beyond its turns: %d, want 503", code)
	}
	req := httptest.NewRequest(http.MethodGet, "/webhooks/team-a/hook/notifications/small/body", nil)
	req.AddCookie(&http.Cookie{Name: s.sessionCookie, Value: b.ID})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("another user's page: %d, want 200", rec.Code)
	}
	for _, release := range held {
		release()
		release() // once only
	}
	if code, _ := get("small"); code != http.StatusOK {
		t.Errorf("with the user's turns given back: %d, want 200", code)
	}
	if n := len(s.turns.all); n != 0 {
		t.Errorf("%d turns still taken after every page was sent", n)
	}
}

// indentedSize never says less than json.Indent writes, so a body it lets through is indented
// within the bound, and says not much more; it stops counting soon after the limit.
func TestIndentedSizeBoundsIndent(t *testing.T) {
	for _, b := range []string{
		`{}`, `[]`, `{"a":[1,2,{"b":"c,d{[\"]"}],"e":{}}`, `[[[[0,0],[]],{"x":[{"y":null}]}]]`,
		`{"webhookNotificationId":"n","agreement":{"id":"1","participantSetsInfo":[{"memberInfos":[{"email":"a@b"}]}]}}`,
		` { "spaced" : [ 1 , 2 ] } `,
	} {
		var buf bytes.Buffer
		if err := json.Indent(&buf, []byte(b), "", "  "); err != nil {
			t.Fatal(err)
		}
		n := indentedSize([]byte(b), 1<<30)
		if n < buf.Len() || n > 2*buf.Len()+len(b) {
			t.Errorf("%s: indentedSize %d, json.Indent wrote %d", b, n, buf.Len())
		}
	}
	deep := []byte(strings.Repeat("[", 100000))
	if n := indentedSize(deep, len(deep)+1000); n <= len(deep)+1000 || n > len(deep)+1100 {
		t.Errorf("past the limit: %d, want it to stop soon after %d", n, len(deep)+1000)
	}
}

// Anyone can link to a Webhook's page with delivery log filters: a state that is not one of the
// log's, or an event that is not an event's name, is refused in the console's words before the
// read API is asked. The read API's refusal quotes the value, and the page showed it as an alert:
// a sentence a link chose.
func TestALinkCannotPutItsTextOnAWebhooksPage(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	asked := func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(seen) }
	readAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.RequestURI())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/v1/namespaces/team-a/webhooks/hook/notifications" {
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(deliveries.Error{Status: 404, Reason: "NotFound", Message: "not found"})
			return
		}
		// As the read API refuses a filter: quoting it.
		for _, key := range []string{"state", "event", "cursor"} {
			if v := r.URL.Query().Get(key); v != "" && strings.Contains(v, " ") {
				w.WriteHeader(http.StatusBadRequest)
				_ = json.NewEncoder(w).Encode(deliveries.Error{Status: 400, Reason: "BadRequest", Message: key + ": " + strconv.Quote(v) + " is not valid"})
				return
			}
		}
		_ = json.NewEncoder(w).Encode(deliveries.NotificationList{Items: []deliveries.Notification{}})
	}))
	t.Cleanup(readAPI.Close)
	base, _ := url.Parse(readAPI.URL)
	s, err := New(Config{API: &rest.Config{Host: fakeKubeAPI(t).URL}, InsecureCookies: true, Deliveries: &LogAPI{Base: base, HTTP: readAPI.Client()}})
	if err != nil {
		t.Fatal(err)
	}
	sess, _ := s.Sessions().Create("token-a", "alice")
	get := func(query url.Values) (int, string) {
		req := httptest.NewRequest(http.MethodGet, "/webhooks/team-a/hook?"+query.Encode(), nil)
		req.AddCookie(&http.Cookie{Name: s.sessionCookie, Value: sess.ID})
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	const sentence = "Your session expired so call the help desk at 555 0100 with your token"
	for _, key := range []string{"state", "event"} {
		code, body := get(url.Values{key: {sentence}})
		if strings.Contains(body, sentence) || strings.Contains(body, "with your token") {
			t.Errorf("?%s=<sentence>: the page says it (%d): %s", key, code, body)
		}
		if code != http.StatusOK || !strings.Contains(body, `id="log-error">Those filters are not valid`) {
			t.Errorf("?%s=<sentence>: %d, want the page with the console's own message", key, code)
		}
	}
	for _, r := range asked() {
		if strings.Contains(r, "session") {
			t.Errorf("the read API was asked with the sentence: %s", r)
		}
	}
	// A cursor is the read API's to judge: its refusal is said in the console's words too.
	if code, body := get(url.Values{"cursor": {sentence}}); code != http.StatusOK || strings.Contains(body, "with your token") ||
		!strings.Contains(body, `id="log-error">Those filters are not valid`) {
		t.Errorf("?cursor=<sentence>: %d, want the page with the console's own message: %s", code, body)
	}
	// Filters the read API takes still reach it.
	if code, body := get(url.Values{"state": {"failed"}, "event": {"AGREEMENT_CREATED"}}); code != http.StatusOK || strings.Contains(body, `id="log-error"`) {
		t.Errorf("valid filters: %d, want the log: %s", code, body)
	}
	if !slices.ContainsFunc(asked(), func(r string) bool {
		return strings.Contains(r, "event=AGREEMENT_CREATED") && strings.Contains(r, "state=failed")
	}) {
		t.Errorf("valid filters not passed on: %v", asked())
	}
}
