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

package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/console"
	"github.com/hookline/hookline/internal/echo"
	"github.com/hookline/hookline/internal/samples"
	"github.com/hookline/hookline/internal/testsupport"
)

// binDir is where make build puts bin/dispatcher.
func binDir(t *testing.T) string {
	if d := os.Getenv("HOOKLINE_BIN"); d != "" {
		return d
	}
	d, _ := filepath.Abs("../../bin")
	return d
}

// startDispatcher runs bin/dispatcher as a process beside the in-process manager (the same
// attestation key, client id and loopback receivers), with its delivery log and its read API in
// plain HTTP on 127.0.0.1, as make run does. It returns the ingest URL and the read API's URL.
func startDispatcher(t *testing.T, ingestToken, account string) (ingest, api string) {
	t.Helper()
	dir := t.TempDir()
	key, err := testsupport.AttestationKeyFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(tokens, []byte(fmt.Sprintf("tokens:\n- {name: browser, token: %s, accounts: [%s]}\n", ingestToken, account)), 0o600); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	b, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kubeconfig, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ingestAddr, apiAddr := testsupport.FreeAddr(t), testsupport.FreeAddr(t)
	log := filepath.Join(dir, "dispatcher.log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir(t), "dispatcher"),
		"--kubeconfig", kubeconfig, "--tokens-file", tokens, "--attestation-key-file", key,
		"--data-dir", filepath.Join(dir, "data"), "--listen-address", ingestAddr,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--default-client-id", testClientID, "--allow-http", "--allowed-cidrs", "127.0.0.0/8,::1/128",
		"--status-interval", "500ms", "--retry-base", "200ms", "--retry-cap", "1s", "--replay-poll-interval", "300ms",
		"--api-bind-address", apiAddr, "--api-allow-plain-http")
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting bin/dispatcher (make build): %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("dispatcher log:\n%s", b)
		}
	})
	return "http://" + ingestAddr + "/v1/events", "http://" + apiAddr
}

// hostileAnswer is what the receiver answers the first delivery: markup that must show as text.
const hostileAnswer = `<script>document.title="owned"</script><img src=x id=injected>`

// logReceiver answers intent verification, fails the first delivery with hostileAnswer and
// accepts the rest; it counts the deliveries of each webhookNotificationId.
type logReceiver struct {
	mu    sync.Mutex
	posts map[string]int
	url   string
}

func startLogReceiver(t *testing.T) *logReceiver {
	lr := &logReceiver{posts: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(echo.Header, r.Header.Get(echo.Header))
		if r.Method != http.MethodPost {
			return
		}
		var body struct {
			ID string `json:"webhookNotificationId"`
		}
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		_ = json.Unmarshal(b, &body)
		lr.mu.Lock()
		lr.posts[body.ID]++
		first := len(lr.posts) == 1 && lr.posts[body.ID] == 1
		lr.mu.Unlock()
		if first {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(hostileAnswer))
		}
	}))
	t.Cleanup(srv.Close)
	lr.url = srv.URL + "/hooks"
	return lr
}

// total counts every delivery the receiver got.
func (lr *logReceiver) total() int {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	n := 0
	for _, c := range lr.posts {
		n += c
	}
	return n
}

func (lr *logReceiver) count(id string) int {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.posts[id]
}

// emit posts one sample event for account until the dispatcher routes it to a webhook (it starts
// routing moments after the webhook becomes Active).
func emit(t *testing.T, ingest, token, account string) {
	t.Helper()
	raw, err := samples.Event(samples.Names()[0])
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	ev["accountId"] = account
	NewWithT(t).Eventually(func(g Gomega) {
		ev["id"] = fmt.Sprintf("browser-%d", time.Now().UnixNano())
		b, _ := json.Marshal(ev)
		req, _ := http.NewRequest(http.MethodPost, ingest, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		var receipt struct {
			Notifications int    `json:"notifications"`
			Message       string `json:"message"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&receipt)
		g.Expect(resp.StatusCode).To(Equal(http.StatusAccepted), receipt.Message)
		g.Expect(receipt.Notifications).To(BeNumerically(">", 0))
	}).WithTimeout(30 * time.Second).WithPolling(300 * time.Millisecond).Should(Succeed())
}

// After an event, the webhook's page lists its notification; the notification's page shows the
// failed attempt with the receiver's hostile answer as text and the successful retry; the payload
// shows as text; Replay delivers it again with the same webhookNotificationId, the replay's page
// following it to the end; another tenant gets 404 for every one of these pages.
func TestDeliveryLogAndReplayInTheBrowser(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const account, ingestToken = "acc-console-log", "browser-ingest-token-0123456789"
	ingest, api := startDispatcher(t, ingestToken, account)
	apiURL, _ := url.Parse(api)
	base := startConsoleWith(t, &console.LogAPI{Base: apiURL, HTTP: &http.Client{Timeout: 30 * time.Second}})
	a, other := newTenant(t, account), newTenant(t, "acc-console-log-b")
	rcv := startLogReceiver(t)

	wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: "orders"},
		Spec: hooklinev1.WebhookSpec{URL: rcv.url, Scope: hooklinev1.ScopeAccount, Events: []hooklinev1.EventName{"AGREEMENT_ALL"}}}
	g.Expect(k8s.Create(ctx, wh)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(wh), wh)).To(Succeed())
		g.Expect(wh.Status.State).To(Equal(hooklinev1.ObservedActive))
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	emit(t, ingest, ingestToken, account)

	br := newBrowser(t, base)
	br.signIn(a)
	page := "/webhooks/" + a.ns + "/orders"
	// The list shows the notification, delivered after one failed attempt.
	var id string
	g.Eventually(func() string {
		br.open(page)
		a := br.attr(`#notifications tbody tr[data-notification]`, "data-state")
		if !a.Exists {
			return ""
		}
		id = br.attr(`#notifications tbody tr[data-notification]`, "data-notification").Value
		return a.Value
	}).WithTimeout(30 * time.Second).WithPolling(300 * time.Millisecond).Should(Equal("delivered"))
	g.Expect(br.text(`#notifications tbody tr[data-notification]`)).To(ContainSubstring("AGREEMENT_"))
	g.Expect(rcv.count(id)).To(Equal(2))
	br.do(chromedp.ScrollIntoView(chromedp.ID("log-heading")))
	br.shot("delivery-log")

	// The chart: in the current hour one delivery and one failed attempt, drawn and in the table;
	// the 7-day link switches to 6-hour buckets.
	g.Expect(br.textContent("#chart-total-delivered")).To(Equal("1"))
	g.Expect(br.textContent("#chart-total-failed")).To(Equal("1"))
	g.Expect(strings.Count(br.html("#chart-counts"), `class="bar-ok"`)).To(Equal(24))
	g.Expect(br.attr(`#chart-counts g.bucket:last-of-type rect.bar-ok`, "height").Value).NotTo(Equal("0.0"))
	g.Expect(br.attr(`#chart-window-24h`, "aria-current").Value).To(Equal("true"))
	br.do(chromedp.ScrollIntoView(chromedp.ID("chart-heading")))
	br.shot("chart")
	status, _ := br.submit("chart-window-7d")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(br.attr(`#chart-window-7d`, "aria-current").Value).To(Equal("true"))
	g.Expect(strings.Count(br.html("#chart-counts"), `class="bar-ok"`)).To(Equal(28))
	g.Expect(br.textContent("#chart-total-delivered")).To(Equal("1"))

	// Filters: state=retrying finds nothing now, delivered finds it.
	g.Expect(br.open(page + "?state=retrying")).To(Equal(http.StatusOK))
	g.Expect(br.html("#notifications")).NotTo(ContainSubstring(id))
	g.Expect(br.open(page + "?state=delivered")).To(Equal(http.StatusOK))
	g.Expect(br.html("#notifications")).To(ContainSubstring(id))

	// The notification's page: both attempts; the hostile answer is characters, not markup.
	notification := page + "/notifications/" + id
	g.Expect(br.open(notification)).To(Equal(http.StatusOK))
	records := br.html("#records")
	g.Expect(records).To(ContainSubstring(`&lt;script&gt;document.title="owned"&lt;/script&gt;&lt;img src=x id=injected&gt;`))
	g.Expect(records).NotTo(ContainSubstring("<script>document"))
	g.Expect(br.text("#records pre.response")).To(ContainSubstring(hostileAnswer))
	_, err := chromedp.Run(br.ctx, chromedp.WaitNotPresent(chromedp.ID("injected")))
	g.Expect(err).NotTo(HaveOccurred())
	title, err := chromedp.Run(br.ctx, chromedp.Title())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(title).NotTo(Equal("owned"))
	g.Expect(records).To(ContainSubstring("500"))
	br.shot("notification")

	// The payload viewer: indented JSON, as text.
	g.Expect(br.open(notification + "/body")).To(Equal(http.StatusOK))
	g.Expect(br.text("#payload")).To(ContainSubstring(`"webhookNotificationId": "` + id + `"`))

	// Replay: a confirmation, then the replay's page, reloading itself until delivered.
	g.Expect(br.open(notification)).To(Equal(http.StatusOK))
	status, path := br.submit("replay")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(path).To(Equal(notification + "/replay"))
	status, path = br.submit("confirm")
	g.Expect(status).To(Equal(http.StatusOK), func() string { return br.html("main") })
	g.Expect(path).To(HavePrefix(page + "/replays/orders-replay-"))
	replayPage := path
	g.Eventually(func() string {
		br.open(replayPage)
		return br.text("#replay-delivered")
	}).WithTimeout(30 * time.Second).WithPolling(300 * time.Millisecond).Should(Equal("1"))
	g.Expect(br.attr("#replay-phase", "data-running").Value).To(Equal("false"))
	g.Expect(br.text("#replay-matched")).To(Equal("1"))
	g.Expect(rcv.count(id)).To(Equal(3), "the receiver got the same webhookNotificationId again")
	br.shot("replay")
	// The chart's cached figures are extended with the replay's delivery.
	g.Expect(br.open(page)).To(Equal(http.StatusOK))
	g.Expect(br.textContent("#chart-total-delivered")).To(Equal("2"))

	// Recover: the form names the time range (its end optional, for a recovery in parts) and the
	// states; with nothing failed it matches nothing.
	g.Expect(br.open(page)).To(Equal(http.StatusOK))
	status, path = br.submit("recover")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(path).To(Equal(page + "/recover"))
	g.Expect(br.attr(`input[name="states"][value="failed"]`, "checked").Exists).To(BeTrue())
	g.Expect(br.attr("#until", "value").Value).To(BeEmpty())
	until := time.Now().UTC().Add(time.Hour).Truncate(time.Minute)
	br.do(chromedp.SetValue(chromedp.ID("until"), until.Format("2006-01-02T15:04")))
	status, path = br.submit("confirm")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(path).To(HavePrefix(page + "/replays/orders-replay-"))
	recoverPage := path
	recovery := &hooklinev1.WebhookReplay{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: a.ns, Name: path[strings.LastIndex(path, "/")+1:]}, recovery)).To(Succeed())
	g.Expect(recovery.Spec.Until).NotTo(BeNil())
	g.Expect(recovery.Spec.Until.Time.Equal(until)).To(BeTrue(), "until %v", recovery.Spec.Until)

	// The webhook's page lists both replays with their progress and a link to each (read as the
	// tenant, selected by spec.webhookName on the API server; newest first, but both may have been
	// created within the same second).
	g.Expect(br.open(page)).To(Equal(http.StatusOK))
	replayRow := chromedp.CSS(`#replays tbody tr[data-replay="` + path[strings.LastIndex(path, "/")+1:] + `"]`)
	g.Expect(br.attr(replayRow+" a", "href").Value).To(Equal(recoverPage))
	replayRow = chromedp.CSS(`#replays tbody tr[data-replay="` + replayPage[strings.LastIndex(replayPage, "/")+1:] + `"]`)
	g.Expect(br.attr(replayRow+" a", "href").Value).To(Equal(replayPage))
	g.Expect(br.text(replayRow)).To(ContainSubstring(id))
	g.Expect(br.text(replayRow + " td:nth-child(5)")).To(Equal("1"))
	g.Expect(br.html("#replays")).To(ContainSubstring(`data-running="false"`))

	// Send a test notification: the button queues it; the log lists it, marked test, delivered;
	// the receiver got it once.
	g.Expect(br.open(page)).To(Equal(http.StatusOK))
	g.Expect(br.attr(`#test-event option`, "value").Value).To(Equal("AGREEMENT_ACTION_COMPLETED"))
	before := rcv.total()
	status, path = br.submit("send-test")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(path).To(Equal(page))
	g.Expect(br.attr("#done", "role").Exists).To(BeTrue())
	g.Eventually(func() string {
		br.open(page)
		// Not attr: a page rendered before the notification shows would be waited on for good.
		return br.attrNow(`#notifications tbody tr:has([data-test])`, "data-state")
	}).WithTimeout(30 * time.Second).WithPolling(300 * time.Millisecond).Should(Equal("delivered"))
	g.Expect(rcv.total()).To(Equal(before + 1))
	br.do(chromedp.ScrollIntoView(chromedp.ID("log-heading")))
	br.shot("test-notification")
	br.expectCleanConsole()

	// The other tenant: 404 for every page of A's log and replays, as for things that do not
	// exist, and for a forged test notification with its own valid CSRF token.
	bb := newBrowser(t, base)
	bb.signIn(other)
	for _, p := range []string{notification, notification + "/body", notification + "/replay", replayPage, page + "/recover"} {
		g.Expect(bb.open(p)).To(Equal(http.StatusNotFound), p)
	}
	g.Expect(bb.open("/webhooks")).To(Equal(http.StatusOK))
	resp := rawRequest(t, http.MethodPost, base+page+"/test", bb.sessionCookie().Value,
		url.Values{"csrf": {bb.attr(`input[name="csrf"]`, "value").Value}, "event": {"AGREEMENT_ACTION_COMPLETED"}})
	g.Expect(resp.StatusCode).To(Equal(http.StatusNotFound))
	g.Expect(rcv.total()).To(Equal(before + 1))
	g.Expect(bb.open("/webhooks/" + other.ns + "/orders/notifications/" + id)).To(Equal(http.StatusNotFound))
}
