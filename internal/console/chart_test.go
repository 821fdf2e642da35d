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
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/deliveries"
)

// The chart's bars are proportional to the figures, the latency line follows the maxima, and the
// table repeats every bucket.
func TestChartLayout(t *testing.T) {
	g := NewWithT(t)
	start := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	st := &deliveries.Stats{Window: deliveries.Window24h, BucketSeconds: 3600}
	for i := range 24 {
		st.Buckets = append(st.Buckets, deliveries.Bucket{Start: start.Add(time.Duration(i) * time.Hour)})
	}
	st.Buckets[10].Counts = deliveries.Counts{Delivered: 6, FailedAttempts: 2, Attempts: 8, LatencyMeanMillis: 50, LatencyMaxMillis: 400}
	st.Buckets[11].Counts = deliveries.Counts{Delivered: 2, FailedAttempts: 2, Dropped: 1, Attempts: 4, LatencyMeanMillis: 25, LatencyMaxMillis: 100}
	st.Total = deliveries.Counts{Delivered: 8, FailedAttempts: 4, Dropped: 1, Attempts: 12, LatencyMeanMillis: 41, LatencyMaxMillis: 400}
	d := chartData{Stats: st}
	d.layout(localizerFor("en"))
	g.Expect(d.Bars).To(HaveLen(24))
	g.Expect(d.Rows).To(HaveLen(24))
	g.Expect(d.CountMax).To(Equal(8))
	g.Expect(d.LatMax).To(Equal(int64(400)))
	plot := countsHeight - axisBottom - chartTop
	g.Expect(d.Bars[10].H1).To(Equal(px(plot * 6 / 8)))
	g.Expect(d.Bars[10].H2).To(Equal(px(plot * 2 / 8)))
	g.Expect(d.Bars[11].H1).To(Equal(px(plot * 2 / 8)))
	g.Expect(d.Bars[0].H1).To(Equal("0.0"))
	g.Expect(d.Bars[10].Title).To(Equal("2026-11-25 10:00Z: 6 delivered, 2 failed attempts, 0 dropped or lost"))
	g.Expect(d.Lat[10].H1).To(Equal(px((latHeight - axisBottom - chartTop) * 50 / 400)))
	g.Expect(strings.Fields(d.LatMaxLine)).To(HaveLen(24))
	g.Expect(d.XLabels).To(HaveLen(4))
	g.Expect(d.XLabels[1].Text).To(Equal("06:00"))
	g.Expect(d.Summary).To(ContainSubstring("8 delivered, 4 failed attempts, 1 notifications dropped or lost"))
}

// The webhook page's chart section: two SVGs with a title each, no style attribute (the CSP
// blocks them), the window switch as links, and the table; in every language.
func TestChartRendersWithoutInlineStyle(t *testing.T) {
	g := NewWithT(t)
	s, err := New(Config{API: &rest.Config{Host: "https://127.0.0.1:1"}, InsecureCookies: true})
	g.Expect(err).NotTo(HaveOccurred())
	st := &deliveries.Stats{Window: deliveries.Window7d, BucketSeconds: 6 * 3600}
	for i := range 28 {
		st.Buckets = append(st.Buckets, deliveries.Bucket{Start: time.Date(2026, 11, 18, 6*i, 0, 0, 0, time.UTC), Counts: deliveries.Counts{Delivered: i, Attempts: i, LatencyMeanMillis: 10, LatencyMaxMillis: int64(i)}})
	}
	for _, lang := range []string{"en", "da", "zh-Hant"} {
		L := localizerFor(lang)
		d := chartData{Stats: st, Window: deliveries.Window7d, Links: []windowLink{{Label: L.T("chart.window24h"), Href: "/webhooks/team-a/hook?chart=24h#chart"}, {Label: L.T("chart.window7d"), Href: "/webhooks/team-a/hook?chart=7d#chart", Current: true}}}
		d.layout(L)
		wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "hook"}}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/webhooks/team-a/hook?chart=7d", nil)
		s.render(rec, req, http.StatusOK, "detail", page{L: L, Title: "t", Data: detailData{WH: wh, Chart: d, Log: logData{Off: true}}})
		body := rec.Body.String()
		g.Expect(rec.Code).To(Equal(http.StatusOK), body)
		g.Expect(body).To(ContainSubstring(`<svg id="chart-counts"`))
		g.Expect(body).To(ContainSubstring(`<svg id="chart-latency"`))
		g.Expect(regexp.MustCompile(`<rect class="bar-ok"`).FindAllString(body, -1)).To(HaveLen(28))
		g.Expect(body).To(ContainSubstring(`href="/webhooks/team-a/hook?chart=24h#chart"`))
		g.Expect(body).To(MatchRegexp(`<a id="" href="/webhooks/team-a/hook\?chart=7d#chart" aria-current="true">`))
		g.Expect(body).To(ContainSubstring(`<table id="chart-table">`))
		g.Expect(body).To(ContainSubstring(L.T("chart.title")))
		g.Expect(body).NotTo(MatchRegexp(`(?i)\sstyle=`))
	}
}

// The delivery log's "Next page" link keeps its query intact (html/template escapes = and & in a
// query it is given as a string).
func TestNextPageLinkKeepsItsQuery(t *testing.T) {
	g := NewWithT(t)
	var seen []string
	api := fakeReadAPI(t, "token-a", &seen)
	base, _ := url.Parse(api.URL)
	s, err := New(Config{API: &rest.Config{Host: "https://127.0.0.1:1"}, InsecureCookies: true, Deliveries: &LogAPI{Base: base, HTTP: api.Client()}})
	g.Expect(err).NotTo(HaveOccurred())
	L := localizerFor("en")
	req := httptest.NewRequest(http.MethodGet, "/webhooks/team-a/hook?state=retrying", nil)
	d, err := s.deliveryLog(req.Context(), req, &reqCtx{sess: Session{Token: "token-a"}, L: L}, "team-a", "hook")
	g.Expect(err).NotTo(HaveOccurred())
	rec := httptest.NewRecorder()
	wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "hook"}}
	s.render(rec, req, http.StatusOK, "detail", page{L: L, Title: "t", Data: detailData{WH: wh, Log: d}})
	g.Expect(rec.Body.String()).To(ContainSubstring(`<a href="/webhooks/team-a/hook?cursor=c2&amp;state=retrying" id="log-next"`))
}

// The log's time and id filters reach the read API on the first page and on the page its "Next
// page" link opens, and a later page links back to the first (the same query without cursor).
// Filters that are not times or ids are refused in the console's words, before any call.
func TestLogFiltersReachEveryPage(t *testing.T) {
	g := NewWithT(t)
	var seen []string
	api := fakeReadAPI(t, "token-a", &seen)
	base, _ := url.Parse(api.URL)
	s, err := New(Config{API: &rest.Config{Host: "https://127.0.0.1:1"}, InsecureCookies: true, Deliveries: &LogAPI{Base: base, HTTP: api.Client()}})
	g.Expect(err).NotTo(HaveOccurred())
	L := localizerFor("en")
	wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "hook"}}
	open := func(target string) string {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		d, err := s.deliveryLog(req.Context(), req, &reqCtx{sess: Session{Token: "token-a"}, L: L}, "team-a", "hook")
		g.Expect(err).NotTo(HaveOccurred())
		rec := httptest.NewRecorder()
		s.render(rec, req, http.StatusOK, "detail", page{L: L, Title: "t", Data: detailData{WH: wh, Log: d}})
		return rec.Body.String()
	}
	first := open("/webhooks/team-a/hook?since=2h&until=2026-01-02T00%3A00%3A00Z&notificationId=n-1&eventId=ev-9")
	g.Expect(seen).To(HaveLen(1))
	for _, want := range []string{"since=2h", "until=2026-01-02T00%3A00%3A00Z", "notificationId=n-1", "eventId=ev-9"} {
		g.Expect(seen[0]).To(ContainSubstring(want), "page 1")
	}
	g.Expect(attrOf(elementByID(t, first, "log-since"), "value")).To(Equal("2h"))
	g.Expect(attrOf(elementByID(t, first, "log-notification-id"), "value")).To(Equal("n-1"))
	g.Expect(elementByID(t, first, "log-first")).To(BeNil(), "the first page links to no first page")
	next := attrOf(elementByID(t, first, "log-next"), "href")
	g.Expect(next).To(ContainSubstring("cursor=c2"))

	second := open(next)
	g.Expect(seen).To(HaveLen(2))
	for _, want := range []string{"since=2h", "until=2026-01-02T00%3A00%3A00Z", "notificationId=n-1", "eventId=ev-9", "cursor=c2"} {
		g.Expect(seen[1]).To(ContainSubstring(want), "page 2")
	}
	firstHref := attrOf(elementByID(t, second, "log-first"), "href")
	g.Expect(firstHref).To(HavePrefix("/webhooks/team-a/hook?"))
	g.Expect(firstHref).NotTo(ContainSubstring("cursor"))
	g.Expect(firstHref).To(And(ContainSubstring("since=2h"), ContainSubstring("notificationId=n-1")))

	for _, q := range []string{"since=yesterday", "until=-2h", "notificationId=" + url.QueryEscape("call 555 0100"), "eventId=" + strings.Repeat("x", 513)} {
		body := open("/webhooks/team-a/hook?" + q)
		g.Expect(seen).To(HaveLen(2), "%s reached the read API", q)
		g.Expect(elementText(t, body, "log-error")).To(Equal(L.T("log.badFilter")), q)
	}
}
