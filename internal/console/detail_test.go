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
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/deliveries"
)

// renderDetail renders the webhook page of wh in language lang, with d's other fields.
func renderDetail(t *testing.T, lang string, wh *hooklinev1.Webhook, d detailData) string {
	t.Helper()
	s, _ := newTestServer(t, true)
	d.WH = wh
	if d.Log.List == nil && !d.Log.Off {
		d.Log = logData{List: &deliveries.NotificationList{}, States: logStates}
	}
	rec := httptest.NewRecorder()
	s.render(rec, httptest.NewRequest(http.MethodGet, "/webhooks/team-a/hook", nil), http.StatusOK, "detail",
		page{L: localizerFor(lang), Title: "t", CSRF: "c", Data: d})
	if rec.Code != http.StatusOK {
		t.Fatalf("the page failed (%d): %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// The webhook page's configuration shows which optional payload sections are on, per family, in
// the user's language.
func TestWebhookPageShowsItsConditionalParams(t *testing.T) {
	g := NewWithT(t)
	wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "hook"},
		Spec: hooklinev1.WebhookSpec{ConditionalParams: &hooklinev1.ConditionalParams{
			Agreement: &hooklinev1.AgreementConditionalParams{IncludeDetailedInfo: true, IncludeSignedDocuments: true},
			MegaSign:  &hooklinev1.MegaSignConditionalParams{IncludeDetailedInfo: true},
		}}}
	g.Expect(elementText(t, renderDetail(t, "en", wh, detailData{}), "spec-conditional-params")).
		To(Equal("Agreements: detailed info, signed documents; Bulk sends: detailed info"))
	g.Expect(elementText(t, renderDetail(t, "da", wh, detailData{}), "spec-conditional-params")).
		To(ContainSubstring("Aftaler: "))
	wh.Spec.ConditionalParams = nil
	g.Expect(elementText(t, renderDetail(t, "en", wh, detailData{}), "spec-conditional-params")).To(Equal("—"))
}

// A replay's selection says its end when it has one, on its own page and in the webhook's list.
func TestAReplaysSelectionShowsItsEnd(t *testing.T) {
	g := NewWithT(t)
	since, until := metav1.NewTime(time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)), metav1.NewTime(time.Date(2026, 1, 1, 20, 0, 0, 0, time.UTC))
	replay := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Name: "hook-replay-x"},
		Spec: hooklinev1.WebhookReplaySpec{Since: &since, Until: &until, States: []hooklinev1.ReplayState{"dropped"}}}
	s, _ := newTestServer(t, true)
	rec := httptest.NewRecorder()
	s.render(rec, httptest.NewRequest(http.MethodGet, "/webhooks/team-a/hook/replays/hook-replay-x", nil), http.StatusOK, "replay",
		page{L: localizerFor("en"), Title: "r", CSRF: "c", Data: replayData{Namespace: "team-a", Name: "hook", Replay: replay}})
	g.Expect(rec.Code).To(Equal(http.StatusOK))
	g.Expect(rec.Body.String()).To(ContainSubstring("since 2026-01-01 08:00:00Z – until 2026-01-01 20:00:00Z: dropped"))

	wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "hook"}}
	body := renderDetail(t, "da", wh, detailData{Replays: []replayRow{{Replay: replay}}, ReplaysAllowed: true})
	g.Expect(body).To(ContainSubstring("siden 2026-01-01 08:00:00Z – indtil 2026-01-01 20:00:00Z: dropped"))

	// Without an end, as before.
	replay.Spec.Until = nil
	rec = httptest.NewRecorder()
	s.render(rec, httptest.NewRequest(http.MethodGet, "/webhooks/team-a/hook/replays/hook-replay-x", nil), http.StatusOK, "replay",
		page{L: localizerFor("en"), Title: "r", CSRF: "c", Data: replayData{Namespace: "team-a", Name: "hook", Replay: replay}})
	g.Expect(rec.Body.String()).To(ContainSubstring("since 2026-01-01 08:00:00Z: dropped"))
}

// "Send a test notification" is offered only for an Active webhook: the read API refuses any
// other (409 NotActive), and the page says why instead.
func TestTestNotificationsAreOfferedOnlyForActiveWebhooks(t *testing.T) {
	g := NewWithT(t)
	for state, offered := range map[hooklinev1.ObservedState]bool{hooklinev1.ObservedActive: true, hooklinev1.ObservedInactive: false,
		hooklinev1.ObservedDisabled: false, "": false} {
		wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "hook"},
			Spec:   hooklinev1.WebhookSpec{State: hooklinev1.StateActive, Events: []hooklinev1.EventName{"AGREEMENT_ALL"}},
			Status: hooklinev1.WebhookStatus{State: state}}
		body := renderDetail(t, "en", wh, detailData{TestEvents: testEvents(wh)})
		g.Expect(elementByID(t, body, "test-form") != nil).To(Equal(offered), "state %q", state)
		g.Expect(elementByID(t, body, "test-unavailable") != nil).To(Equal(!offered), "state %q", state)
	}
}

// The read API's refusal of a test (409 NotActive: the webhook stopped meanwhile; 429) brings the
// user back to the webhook's page with a notice, not to an error page.
func TestARefusedTestNotificationGoesBackToTheWebhook(t *testing.T) {
	g := NewWithT(t)
	for status, notice := range map[int]string{http.StatusConflict: "notActive", http.StatusTooManyRequests: "tooMany"} {
		api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(deliveries.Error{Status: status, Reason: "Refused", Message: "refused"})
		}))
		base, _ := url.Parse(api.URL)
		s, err := New(Config{API: &rest.Config{Host: "https://127.0.0.1:1"}, InsecureCookies: true, Deliveries: &LogAPI{Base: base, HTTP: api.Client()}})
		g.Expect(err).NotTo(HaveOccurred())
		rec := postForm(t, s, "/webhooks/team-a/hook/test", url.Values{"event": {"AGREEMENT_ACTION_COMPLETED"}})
		api.Close()
		g.Expect(rec.Code).To(Equal(http.StatusSeeOther), "%d", status)
		g.Expect(rec.Header().Get("Location")).To(Equal("/webhooks/team-a/hook?test=" + notice + "#log-heading"))
		g.Expect(detailNotice(localizerFor("da"), url.Values{"test": {notice}})).To(Equal(catalogs["da"]["test."+notice]))
	}
	g.Expect(detailNotice(localizerFor("en"), url.Values{"test": {"call 555 0100"}})).To(BeEmpty())
}
