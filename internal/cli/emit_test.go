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

package cli

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/internal/samples"
)

const (
	goodToken        = "test-token-0123456789"
	forbiddenAccount = "acc-forbidden"
)

// fakeIngest answers like the dispatcher's ingest API: 202 {"id","duplicate","notifications"},
// errors {"code","message"} with 400, 401, 403 and 503.
type fakeIngest struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	paths  []string
	seen   map[string]bool
	// unavailable answers 503 to the next n posts of an id; inProgress 503 EVENT_IN_PROGRESS.
	unavailable, inProgress map[string]int
	// delay slows every answer down, so that progress lines appear.
	delay time.Duration
}

func newFakeIngest(t *testing.T) *fakeIngest {
	f := &fakeIngest{seen: map[string]bool{}, unavailable: map[string]int{}, inProgress: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeIngest) serve(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.bodies = append(f.bodies, body)
	f.paths = append(f.paths, r.URL.Path)
	delay := f.delay
	f.mu.Unlock()
	time.Sleep(delay)
	switch {
	case r.URL.Path != "/v1/events" || r.Method != http.MethodPost:
		http.NotFound(w, r)
		return
	case r.Header.Get("Authorization") == "":
		fail(http.StatusUnauthorized, "NO_AUTHORIZATION_HEADER", "Authorization: Bearer <token> is required")
		return
	case r.Header.Get("Authorization") != "Bearer "+goodToken:
		fail(http.StatusUnauthorized, "INVALID_ACCESS_TOKEN", "the bearer token is not valid")
		return
	case r.Header.Get("Content-Type") != "application/json":
		fail(http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json")
		return
	}
	var ev struct {
		ID        string `json:"id"`
		Event     string `json:"event"`
		AccountID string `json:"accountId"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		fail(http.StatusBadRequest, "INVALID_JSON", err.Error())
		return
	}
	if ev.ID == "" {
		fail(http.StatusBadRequest, "MISSING_REQUIRED_PARAM", "id is required")
		return
	}
	if ev.Event == "BOGUS" {
		fail(http.StatusBadRequest, "INVALID_EVENT", `unknown event "BOGUS"`)
		return
	}
	if ev.AccountID == forbiddenAccount {
		fail(http.StatusForbidden, "PERMISSION_DENIED", fmt.Sprintf("this token may not post events for accountId %q", ev.AccountID))
		return
	}
	f.mu.Lock()
	if f.unavailable[ev.ID] > 0 {
		f.unavailable[ev.ID]--
		f.mu.Unlock()
		fail(http.StatusServiceUnavailable, "STORAGE_UNAVAILABLE", "the event could not be stored; retry later")
		return
	}
	if f.inProgress[ev.ID] > 0 {
		f.inProgress[ev.ID]--
		f.mu.Unlock()
		fail(http.StatusServiceUnavailable, "EVENT_IN_PROGRESS", "an earlier post of this event is being stored and routed; retry after 1 s")
		return
	}
	key := ev.AccountID + "/" + ev.ID
	dup := f.seen[key]
	f.seen[key] = true
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]any{"id": ev.ID, "duplicate": dup, "notifications": 2})
}

func (f *fakeIngest) posted() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.bodies...)
}

func (f *fakeIngest) requestPaths() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.paths...)
}

// miniEvent is a small event; the fake checks only id, event and accountId.
func miniEvent(id, event, account string) string {
	return fmt.Sprintf(`{"id": %q, "event": %q, "accountId": %q, "resource": {"type": "AGREEMENT", "id": "agr-1"}, "notification": {"event": %q}}`,
		id, event, account, event)
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// idAndAccount reads the two fields emit may change.
func idAndAccount(t *testing.T, body []byte) (string, string) {
	t.Helper()
	var ev struct {
		ID        string `json:"id"`
		AccountID string `json:"accountId"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatalf("posted body is not JSON: %v\n%s", err, body)
	}
	return ev.ID, ev.AccountID
}

func TestEmitFilesInEveryFormat(t *testing.T) {
	g := NewWithT(t)
	srv := newFakeIngest(t)
	dir := t.TempDir()

	single, _ := samples.Event("agreement_action_completed") // one pretty-printed event
	arrayElems := []string{
		"{\n  \"id\": \"arr-1\", \"event\": \"AGREEMENT_CREATED\",\n  \"accountId\": \"acc-1\", \"resource\": {\"type\": \"AGREEMENT\", \"id\": \"a\"}, \"notification\": {}\n}",
		miniEvent("arr-2", "AGREEMENT_CREATED", "acc-1"),
	}
	ndjson := []string{
		miniEvent("nd-1", "WIDGET_CREATED", "acc-1"),
		miniEvent("nd-2", "WIDGET_CREATED", "acc-1"),
		miniEvent("nd-3", "WIDGET_CREATED", "acc-1"),
	}
	files := []string{
		writeFile(t, dir, "single.json", string(single)),
		writeFile(t, dir, "array.json", "[\n"+strings.Join(arrayElems, ",\n")+"\n]\n"),
		writeFile(t, dir, "events.ndjson", ndjson[0]+"\n"+ndjson[1]+"\n\n"+ndjson[2]+"\n"),
	}

	r := run(append([]string{"emit", "--url", srv.URL, "--token", goodToken}, files...)...)
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(lines(r.stdout)).To(Equal([]string{
		"accepted evt-agreement-action-completed-0001 (2 notifications)",
		"accepted arr-1 (2 notifications)",
		"accepted arr-2 (2 notifications)",
		"accepted nd-1 (2 notifications)",
		"accepted nd-2 (2 notifications)",
		"accepted nd-3 (2 notifications)",
	}))
	g.Expect(r.stderr).To(BeEmpty(), "no progress or summary for 10 events or fewer")

	// Files keep their ids and every byte of every event.
	want := append([]string{string(bytes.TrimSpace(single))}, append(arrayElems, ndjson...)...)
	got := srv.posted()
	g.Expect(got).To(HaveLen(len(want)))
	for i := range want {
		g.Expect(string(got[i])).To(Equal(want[i]))
	}
	g.Expect(srv.requestPaths()).To(HaveEach("/v1/events"))
}

func TestEmitStdin(t *testing.T) {
	g := NewWithT(t)
	srv := newFakeIngest(t)
	app := newApp(nil)
	app.Stdin = strings.NewReader(miniEvent("in-1", "AGREEMENT_CREATED", "acc-1") + "\n" + miniEvent("in-2", "AGREEMENT_CREATED", "acc-1") + "\n")

	r := runApp(app, "emit", "--url", srv.URL+"/v1/events", "--token", goodToken, "-")
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(lines(r.stdout)).To(Equal([]string{"accepted in-1 (2 notifications)", "accepted in-2 (2 notifications)"}))
}

func TestEmitAllSamplesWithFreshIDsAndAccount(t *testing.T) {
	g := NewWithT(t)
	srv := newFakeIngest(t)

	r := run("emit", "--url", srv.URL, "--token", goodToken, "--all-samples", "--account", "acc-test")
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	names := samples.Names()
	got := srv.posted()
	g.Expect(got).To(HaveLen(len(names)))
	g.Expect(lines(r.stdout)).To(HaveLen(len(names)))

	seen := map[string]bool{}
	for i, name := range names {
		original, _ := samples.Event(name)
		origID, origAccount := idAndAccount(t, original)
		id, account := idAndAccount(t, got[i])
		g.Expect(account).To(Equal("acc-test"), name)
		g.Expect(id).NotTo(Equal(origID), name)
		g.Expect(id).To(HavePrefix(origID+"-"), name)
		g.Expect(seen[id]).To(BeFalse(), "ids are unique")
		seen[id] = true
		g.Expect(lines(r.stdout)[i]).To(Equal("accepted " + id + " (2 notifications)"))

		// Only id and accountId changed: every other byte is the sample's.
		restored, _, err := rewriteEvent(got[i], field{"id", origID}, field{"accountId", origAccount})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(restored)).To(Equal(string(original)), name)
	}
	envelope := got[indexOf(names, "envelope_expired")]
	g.Expect(bytes.Contains(envelope, samples.SeedEnvelopeNotification())).To(BeTrue(),
		"the envelope notification is sent byte for byte")

	// A second run sends the same samples again, as new events.
	r = run("emit", "--url", srv.URL, "--token", goodToken, "--all-samples", "--account", "acc-test")
	g.Expect(r.stdout).NotTo(ContainSubstring("duplicate"))
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

func TestEmitSamplesInOrderAndCount(t *testing.T) {
	g := NewWithT(t)
	srv := newFakeIngest(t)

	r := run("emit", "--url", srv.URL, "--token", goodToken, "--sample", "widget_created", "--sample", "megasign_created", "--count", "3")
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	out := lines(r.stdout)
	g.Expect(out).To(HaveLen(6))
	ids := map[string]bool{}
	for i, l := range out {
		prefix := "accepted evt-widget-created-0001-"
		if i%2 == 1 {
			prefix = "accepted evt-megasign-created-0001-"
		}
		g.Expect(l).To(HavePrefix(prefix))
		ids[l] = true
	}
	g.Expect(ids).To(HaveLen(6), "every repetition has its own id")
	for _, b := range srv.posted() {
		_, account := idAndAccount(t, b)
		g.Expect(account).To(Equal("acc-1"), "without --account the sample's account stays")
	}
}

func TestEmitFileIDs(t *testing.T) {
	g := NewWithT(t)
	srv := newFakeIngest(t)
	file := writeFile(t, t.TempDir(), "e.json", miniEvent("file-1", "AGREEMENT_CREATED", "acc-1"))
	base := []string{"emit", "--url", srv.URL, "--token", goodToken}

	// --count repeats with fresh ids...
	r := run(append(base, "--count", "2", file)...)
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(lines(r.stdout)).To(HaveEach(MatchRegexp(`^accepted file-1-[0-9a-f]{12}-\d+ \(2 notifications\)$`)))

	// ... unless --new-ids=false: the second is a duplicate, which is not an error.
	r = run(append(base, "--count", "2", "--new-ids=false", file)...)
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(lines(r.stdout)).To(Equal([]string{"accepted file-1 (2 notifications)", "duplicate file-1"}))

	// --new-ids gives a file's events fresh ids; flags may follow the files.
	r = run("emit", file, "--url", srv.URL, "--token", goodToken, "--new-ids")
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(r.stdout).To(MatchRegexp(`^accepted file-1-[0-9a-f]{12}-1 \(2 notifications\)\n$`))
}

func TestEmitRejectedEvents(t *testing.T) {
	g := NewWithT(t)
	srv := newFakeIngest(t)
	file := writeFile(t, t.TempDir(), "e.ndjson", strings.Join([]string{
		miniEvent("ok-1", "AGREEMENT_CREATED", "acc-1"),
		miniEvent("bad-1", "BOGUS", "acc-1"),
		`{"event": "AGREEMENT_CREATED", "accountId": "acc-1"}`,
		miniEvent("ok-2", "AGREEMENT_CREATED", "acc-1"),
	}, "\n"))

	r := run("emit", "--url", srv.URL, "--token", goodToken, file)
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(lines(r.stdout)).To(Equal([]string{
		"accepted ok-1 (2 notifications)",
		`rejected bad-1: 400 INVALID_EVENT: unknown event "BOGUS"`,
		"rejected (no id): 400 MISSING_REQUIRED_PARAM: id is required",
		"accepted ok-2 (2 notifications)",
	}))
}

// An events file's ids are its author's to choose: one carrying terminal control sequences (an
// OSC 52 that writes the clipboard) is printed escaped, as every other text the CLI shows.
func TestEmitPrintsEventIDsEscaped(t *testing.T) {
	g := NewWithT(t)
	srv := newFakeIngest(t)
	file := writeFile(t, t.TempDir(), "e.ndjson", strings.Join([]string{
		strings.NewReplacer("ESC", `\u001b`, "BEL", `\u0007`).Replace(miniEvent("ok-ESC]52;c;cm0gLXJmIH4=BEL", "AGREEMENT_CREATED", "acc-1")),
		strings.NewReplacer("ESC", `\u001b`).Replace(miniEvent("bad-ESC[2J", "BOGUS", "acc-1")),
	}, "\n"))
	r := run("emit", "--url", srv.URL, "--token", goodToken, "--new-ids=false", file)
	g.Expect(r.stdout).NotTo(ContainSubstring("\x1b"))
	g.Expect(r.stdout).NotTo(ContainSubstring("\a"))
	g.Expect(lines(r.stdout)).To(Equal([]string{
		`accepted "ok-\x1b]52;c;cm0gLXJmIH4=\a" (2 notifications)`,
		`rejected "bad-\x1b[2J": 400 INVALID_EVENT: unknown event "BOGUS"`,
	}))
}

// A server the CLI is pointed at chooses the text of its errors (a 401's code): the CLI prints it
// escaped. (Go's HTTP client refuses header values with control characters itself, a redirect's
// Location among them.)
func TestEmitPrintsAServersErrorsEscaped(t *testing.T) {
	g := NewWithT(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"code": "BAD\u001b]52;c;cm0gLXJmIH4=\u0007", "message": "no"}`))
	}))
	t.Cleanup(srv.Close)
	file := writeFile(t, t.TempDir(), "e.json", miniEvent("one", "AGREEMENT_CREATED", "acc-1"))
	r := run("emit", "--url", srv.URL, "--token", goodToken, file)
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(r.stderr).To(ContainSubstring(`error: "the ingest API refused the token (401 BAD\x1b]52;c;cm0gLXJmIH4=\a)`))
	g.Expect(r.stdout + r.stderr).NotTo(ContainSubstring("\x1b"))
	g.Expect(r.stdout + r.stderr).NotTo(ContainSubstring("\a"))
}

func TestEmitForbiddenAccount(t *testing.T) {
	g := NewWithT(t)
	srv := newFakeIngest(t)

	r := run("emit", "--url", srv.URL, "--token", goodToken, "--all-samples", "--account", forbiddenAccount)
	g.Expect(r.code).To(Equal(ExitFailure))
	out := lines(r.stdout)
	g.Expect(out).To(HaveLen(len(samples.Names())), "a 403 is per account: every event is tried")
	g.Expect(out).To(HaveEach(MatchRegexp(`^rejected evt-\S+: 403 PERMISSION_DENIED: this token may not post events for accountId "acc-forbidden"$`)))
	g.Expect(strings.Count(r.stderr, "hint:")).To(Equal(1), "explained once per account")
	g.Expect(r.stderr).To(ContainSubstring(`the token is valid but not allowed to post events for account "acc-forbidden"`))
}

func TestEmitWrongOrMissingToken(t *testing.T) {
	g := NewWithT(t)
	srv := newFakeIngest(t)

	r := run("emit", "--url", srv.URL, "--token", "wrong-token-0123456789", "--all-samples")
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(lines(r.stdout)).To(ConsistOf(MatchRegexp(`^rejected evt-\S+: 401 INVALID_ACCESS_TOKEN: the bearer token is not valid$`)))
	g.Expect(r.stderr).To(ContainSubstring("error: the ingest API refused the token (401 INVALID_ACCESS_TOKEN): it is wrong"))
	g.Expect(r.stderr).To(ContainSubstring("stopped after 1 of 6 events"))
	g.Expect(srv.posted()).To(HaveLen(1), "a wrong token stops at the first event")

	r = run("emit", "--url", srv.URL, "--sample", "widget_created")
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(r.stdout).To(ContainSubstring("401 NO_AUTHORIZATION_HEADER"))
	g.Expect(r.stderr).To(ContainSubstring("wants a token (401): pass --token or --token-file, or set $HOOKLINE_TOKEN"))
}

func TestEmitTokenAndURLFromEnvironmentAndFile(t *testing.T) {
	g := NewWithT(t)
	srv := newFakeIngest(t)

	app := newApp(map[string]string{"HOOKLINE_URL": srv.URL + "/", "HOOKLINE_TOKEN": goodToken})
	r := runApp(app, "emit", "--sample", "widget_created")
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)

	tokenFile := writeFile(t, t.TempDir(), "token", goodToken+"\n")
	r = run("emit", "--url", srv.URL, "--token-file", tokenFile, "--sample", "widget_created")
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(srv.requestPaths()).To(HaveEach("/v1/events"))
}

func TestEmitConnectionRefused(t *testing.T) {
	g := NewWithT(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	addr := l.Addr().String()
	g.Expect(l.Close()).To(Succeed())

	r := run("emit", "--url", "http://"+addr, "--token", goodToken, "--all-samples")
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(lines(r.stdout)).To(HaveLen(1))
	g.Expect(r.stderr).To(ContainSubstring("cannot connect to the ingest API at http://" + addr + "/v1/events: "))
	g.Expect(r.stderr).To(ContainSubstring("connection refused"))
	g.Expect(r.stderr).To(ContainSubstring("set --url or $HOOKLINE_URL"))
}

func TestEmitRetriesStorageUnavailable(t *testing.T) {
	g := NewWithT(t)
	srv := newFakeIngest(t)
	srv.unavailable["flaky"] = 2
	srv.unavailable["down"] = 100
	file := writeFile(t, t.TempDir(), "e.ndjson",
		miniEvent("flaky", "AGREEMENT_CREATED", "acc-1")+"\n"+miniEvent("down", "AGREEMENT_CREATED", "acc-1"))

	r := run("emit", "--url", srv.URL, "--token", goodToken, file)
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(lines(r.stdout)).To(Equal([]string{
		"accepted flaky (2 notifications)",
		"failed down: 503 STORAGE_UNAVAILABLE: the event could not be stored; retry later",
	}))
	g.Expect(srv.posted()).To(HaveLen(3 + 1 + storageRetries))
}

// An event whose earlier post another dispatcher stored and may still be routing (or crashed
// routing) is answered EVENT_IN_PROGRESS until the dispatcher routes it itself, 35 s after it was
// stored: emit keeps sending it for 40 s, not for its three retries of a storage failure.
func TestEmitWaitsOutAnEventInProgress(t *testing.T) {
	g := NewWithT(t)
	srv := newFakeIngest(t)
	srv.inProgress["routing"] = 2 * storageRetries
	srv.inProgress["stuck"] = 1000
	file := writeFile(t, t.TempDir(), "e.ndjson",
		miniEvent("routing", "AGREEMENT_CREATED", "acc-1")+"\n"+miniEvent("stuck", "AGREEMENT_CREATED", "acc-1"))
	app := newApp(nil)
	now := testNow
	app.Now = func() time.Time { now = now.Add(time.Second); return now } // a second per look
	r := runApp(app, "emit", "--url", srv.URL, "--token", goodToken, file)
	g.Expect(r.code).To(Equal(ExitFailure))
	out := lines(r.stdout)
	g.Expect(out).To(HaveLen(2))
	g.Expect(out[0]).To(Equal("accepted routing (2 notifications)"))
	g.Expect(out[1]).To(HavePrefix("failed stuck: 503 EVENT_IN_PROGRESS"))
	g.Expect(srv.inProgress["stuck"]).To(BeNumerically("<", 1000-storageRetries-1), "stuck was sent again past the storage retries")
	g.Expect(srv.inProgress["stuck"]).To(BeNumerically(">", 1000-60), "stuck was sent for more than its patience")
}

func TestEmitProgressAndSummary(t *testing.T) {
	g := NewWithT(t)
	srv := newFakeIngest(t)
	srv.delay = 3 * time.Millisecond // with the test App's 1 ms progress interval: several lines

	r := run("emit", "--url", srv.URL, "--token", goodToken, "--sample", "widget_created", "--count", "25")
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(lines(r.stdout)).To(HaveLen(25))
	errLines := lines(r.stderr)
	g.Expect(len(errLines)).To(BeNumerically(">=", 2))
	progress := regexp.MustCompile(`^emitted (\d+)/25, 0 rejected$`)
	for _, l := range errLines[:len(errLines)-1] {
		g.Expect(l).To(MatchRegexp(progress.String()))
	}
	g.Expect(errLines[len(errLines)-1]).To(MatchRegexp(
		`^emitted 25/25 events in \S+: 25 accepted \(50 notifications\), 0 duplicate, 0 rejected, 0 failed$`))

	// Ten events or fewer: no progress, no summary.
	r = run("emit", "--url", srv.URL, "--token", goodToken, "--sample", "widget_created", "--count", "10")
	g.Expect(r.code).To(Equal(ExitOK))
	g.Expect(r.stderr).To(BeEmpty())
}

func TestEmitBadInput(t *testing.T) {
	g := NewWithT(t)
	srv := newFakeIngest(t)
	dir := t.TempDir()
	broken := writeFile(t, dir, "broken.json", "{\n  \"id\": \"x\",\n  \"event\" \"AGREEMENT_CREATED\"\n}\n")
	notObject := writeFile(t, dir, "list.json", `["x"]`)
	good := writeFile(t, dir, "good.json", miniEvent("g", "AGREEMENT_CREATED", "acc-1"))

	r := run("emit", "--url", srv.URL, "--token", goodToken, good, broken)
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(r.stderr).To(ContainSubstring(broken + ": invalid JSON at line 3"))
	r = run("emit", "--url", srv.URL, "--token", goodToken, notObject)
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(r.stderr).To(ContainSubstring(notObject + ": an event must be a JSON object"))
	r = run("emit", "--url", srv.URL, "--token", goodToken, filepath.Join(dir, "missing.json"))
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(r.stderr).To(ContainSubstring("missing.json: no such file"))
	g.Expect(srv.posted()).To(BeEmpty(), "a bad source sends nothing")
}

func TestEmitUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--count", "0", "--all-samples"},
		{"--token", "a", "--token-file", "b", "--all-samples"},
		{"--sample", "no_such_sample"},
		{"--url", "ftp://example.com", "--all-samples"},
		{"--account", "", "--all-samples"},
		{"-", "-"},
		{"--frobnicate"},
		{"--timeout", "soon", "--all-samples"},
	} {
		r := run(append([]string{"emit"}, args...)...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "Run 'hookline emit -h' for usage.") {
			t.Errorf("emit %v: exit %d, stderr %q; want exit 2 and a pointer to the usage", args, r.code, r.stderr)
		}
	}
}

func TestRewriteEvent(t *testing.T) {
	g := NewWithT(t)
	raw := []byte("{ \"event\" : \"X\",\n  \"id\":\"old\" , \"nested\": {\"id\": \"keep\", \"accountId\": \"keep\"}, \"accountId\": \"a\"}")

	out, id, err := rewriteEvent(raw)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(id).To(Equal("old"))
	g.Expect(out).To(Equal(raw))

	out, id, err = rewriteEvent(raw, field{"accountId", "b"}, field{"id", "new"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(id).To(Equal("new"))
	g.Expect(string(out)).To(Equal("{ \"event\" : \"X\",\n  \"id\":\"new\" , \"nested\": {\"id\": \"keep\", \"accountId\": \"keep\"}, \"accountId\": \"b\"}"))

	out, id, err = rewriteEvent([]byte(`{"event": "X"}`), field{"id", "fresh"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(id).To(Equal("fresh"))
	g.Expect(string(out)).To(Equal(`{"id":"fresh","event": "X"}`))

	out, _, err = rewriteEvent([]byte(` { } `), field{"id", "a\"b"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(json.Valid(out)).To(BeTrue(), string(out))

	_, _, err = rewriteEvent([]byte(`[1]`), field{"id", "x"})
	g.Expect(err).To(HaveOccurred())
}

func TestIngestEndpoint(t *testing.T) {
	g := NewWithT(t)
	for in, want := range map[string]string{
		"http://127.0.0.1:8090":                "http://127.0.0.1:8090/v1/events",
		"http://127.0.0.1:8090/":               "http://127.0.0.1:8090/v1/events",
		"https://ingest.example.com/v1/events": "https://ingest.example.com/v1/events",
		"https://example.com/hookline":         "https://example.com/hookline/v1/events",
		"localhost:8090":                       "http://localhost:8090/v1/events",
		"http://dispatcher.hookline:8090?x=1":  "http://dispatcher.hookline:8090/v1/events?x=1",
	} {
		got, err := ingestEndpoint(in)
		g.Expect(err).NotTo(HaveOccurred(), in)
		g.Expect(got).To(Equal(want), in)
	}
}

// An https ingest URL signed by a private CA works with --ca-file, and fails without it.
func TestEmitOverTLSWithCAFile(t *testing.T) {
	g := NewWithT(t)
	f := &fakeIngest{seen: map[string]bool{}, unavailable: map[string]int{}, inProgress: map[string]int{}}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw})
	caFile := writeFile(t, t.TempDir(), "ca.pem", string(caPEM))

	r := run("emit", "--url", f.URL, "--token", goodToken, "--sample", "widget_created")
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(r.stdout + r.stderr).To(ContainSubstring("certificate"))
	r = run("emit", "--url", f.URL, "--token", goodToken, "--ca-file", caFile, "--sample", "widget_created")
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(f.requestPaths()).To(HaveEach("/v1/events"))
	r = run("emit", "--url", f.URL, "--token", goodToken, "--ca-file", writeFile(t, t.TempDir(), "empty.pem", "nothing"), "--sample", "widget_created")
	g.Expect(r.code).To(Equal(ExitUsage))
	g.Expect(r.stderr).To(ContainSubstring("holds no PEM certificate"))
}
