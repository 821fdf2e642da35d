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
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hookline/hookline/internal/deliveries"
)

// The chart's geometry, in SVG user units (the SVG scales to the page's width).
const (
	chartWidth   = 720.0
	chartLeft    = 44.0 // room for the y axis' labels
	chartRight   = 6.0
	countsHeight = 150.0
	latHeight    = 90.0
	axisBottom   = 18.0 // room for the x axis' labels
	chartTop     = 8.0
)

// chartData is the chart section of a webhook's page: two server-side SVG charts (deliveries and
// failures per bucket, stacked; attempt latency, mean bars and a max line) and the same figures as
// a table for screen readers and for reading exact values. No script and no style attributes:
// the CSP blocks inline style, so colours come from classes in console.css.
type chartData struct {
	Off, Denied bool
	Error       string
	// Window is the shown window; Links switch to each window.
	Window deliveries.Window
	Links  []windowLink
	Stats  *deliveries.Stats
	// Counts chart.
	Bars     []chartBar
	CountMax int
	// Latency chart.
	Lat        []chartBar
	LatMaxLine string // polyline points of the max latency
	LatMax     int64
	// Shared x axis labels and the table's rows.
	XLabels []axisLabel
	Rows    []chartRow
	Geo     chartGeo
	// Summary describes the charts in words, for screen readers.
	Summary string
}

// chartGeo is the fixed geometry the template needs.
type chartGeo struct {
	Width, CountsH, LatH, Left, Right, CountsBase, LatBase, Top, LabelY, LatLabelY string
}

// windowLink is one of the window switch's links.
type windowLink struct {
	ID, Label string
	Href      template.URL // built here from escaped parts: html/template would escape the query's = and &
	Current   bool
}

// chartBar is one bucket's bars: Y/H of the lower (delivered, or mean latency) and upper
// (failed) parts; Title is its tooltip.
type chartBar struct {
	X, W, Y1, H1, Y2, H2 string
	Title                string
}

type axisLabel struct {
	X, Text string
}

type chartRow struct {
	Start string
	deliveries.Counts
}

// chartWindows are the windows the switch offers.
var chartWindows = []deliveries.Window{deliveries.Window24h, deliveries.Window7d}

// deliveryChart reads the webhook's statistics over the window ?chart= names (24h by default).
// Errors other than an ended session are returned inside chartData, so that the page still shows.
func (s *Server) deliveryChart(ctx context.Context, r *http.Request, rc *reqCtx, ns, name string) (chartData, error) {
	q := r.URL.Query()
	d := chartData{Window: deliveries.Window24h}
	if w := deliveries.Window(q.Get("chart")); w != "" {
		if _, _, ok := w.Span(); ok {
			d.Window = w
		}
	}
	for _, w := range chartWindows {
		link := url.Values{}
		for k, v := range q {
			if k != "chart" && k != "done" {
				link[k] = v
			}
		}
		link.Set("chart", string(w))
		label := rc.L.T("chart.window24h")
		if w == deliveries.Window7d {
			label = rc.L.T("chart.window7d")
		}
		href := "/webhooks/" + url.PathEscape(ns) + "/" + url.PathEscape(name) + "?" + link.Encode() + "#chart"
		d.Links = append(d.Links, windowLink{ID: "chart-window-" + string(w), Label: label, Href: template.URL(href), Current: w == d.Window}) //nolint:gosec // every part is escaped above
	}
	if s.cfg.Deliveries == nil {
		d.Off = true
		return d, nil
	}
	st, err := s.cfg.Deliveries.Stats(ctx, rc.sess.Token, ns, name, d.Window)
	var le *logError
	switch {
	case err == nil:
		d.Stats = st
		d.layout(rc.L)
	case errors.Is(err, errLogSignedOut):
		return d, err
	case errors.Is(err, errNotVisible):
		d.Denied = true
	case errors.As(err, &le):
		d.Error = le.body.Message
	default:
		s.cfg.Log.Error(err, "Reading delivery statistics", "user", rc.sess.User, "namespace", ns, "name", name)
		d.Error = rc.L.T("log.unreachable")
	}
	return d, nil
}

func px(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// layout computes the bars, the max line, the labels and the table from d.Stats.
func (d *chartData) layout(L Localizer) {
	st := d.Stats
	n := len(st.Buckets)
	countsBase, latBase := countsHeight-axisBottom, latHeight-axisBottom
	d.Geo = chartGeo{
		Width: px(chartWidth), CountsH: px(countsHeight), LatH: px(latHeight), Left: px(chartLeft),
		Right: px(chartWidth - chartRight), CountsBase: px(countsBase), LatBase: px(latBase), Top: px(chartTop),
		LabelY: px(countsHeight - 4), LatLabelY: px(latHeight - 4),
	}
	if n == 0 {
		return
	}
	for _, b := range st.Buckets {
		d.CountMax = max(d.CountMax, b.Delivered+b.FailedAttempts)
		d.LatMax = max(d.LatMax, b.LatencyMaxMillis)
	}
	countScale := (countsBase - chartTop) / float64(max(d.CountMax, 1))
	latScale := (latBase - chartTop) / float64(max(d.LatMax, 1))
	slot := (chartWidth - chartLeft - chartRight) / float64(n)
	barW := slot * 0.8
	layoutFmt, every := "15:04", 6
	if st.BucketSeconds > 3600 {
		layoutFmt, every = "01-02", 4
	}
	var points []string
	for i, b := range st.Buckets {
		x := chartLeft + float64(i)*slot + (slot-barW)/2
		start := b.Start.UTC().Format("2006-01-02 15:04Z")
		okH, failH := float64(b.Delivered)*countScale, float64(b.FailedAttempts)*countScale
		d.Bars = append(d.Bars, chartBar{
			X: px(x), W: px(barW), Y1: px(countsBase - okH), H1: px(okH), Y2: px(countsBase - okH - failH), H2: px(failH),
			Title: L.T("chart.barTitle", start, b.Delivered, b.FailedAttempts, b.Dropped),
		})
		meanH := float64(b.LatencyMeanMillis) * latScale
		d.Lat = append(d.Lat, chartBar{
			X: px(x), W: px(barW), Y1: px(latBase - meanH), H1: px(meanH),
			Title: L.T("chart.latTitle", start, b.LatencyMeanMillis, b.LatencyMaxMillis, b.Attempts),
		})
		points = append(points, px(x+barW/2)+","+px(latBase-float64(b.LatencyMaxMillis)*latScale))
		if i%every == 0 {
			d.XLabels = append(d.XLabels, axisLabel{X: px(x), Text: b.Start.UTC().Format(layoutFmt)})
		}
		d.Rows = append(d.Rows, chartRow{Start: start, Counts: b.Counts})
	}
	d.LatMaxLine = strings.Join(points, " ")
	t := st.Total
	d.Summary = L.T("chart.summary", t.Delivered, t.FailedAttempts, t.Dropped, t.LatencyMeanMillis, t.LatencyMaxMillis)
}
