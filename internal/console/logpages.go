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
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/hookline/hookline/internal/deliveries"
)

// logPageSize is how many notifications the webhook page shows at once.
const logPageSize = 50

// logData is the delivery log section of a webhook's page.
type logData struct {
	// Off: the console has no read API configured (--dispatcher-api-url).
	Off bool
	// Denied: the read API answered 404 for a webhook the API server showed: RBAC does not grant
	// get on webhooks/deliveries.
	Denied bool
	// Error is any other failure, shown in place of the list (the rest of the page still works).
	Error string
	List  *deliveries.NotificationList
	// The filters, as the form shows them, and the cursor of this page.
	logFilters
	Cursor string
	States []string
	// NextHref is the following page's link, FirstHref the first page's (set on later pages only),
	// built from escaped parts (html/template would escape the query's = and & as %3d and %26,
	// breaking the link).
	NextHref, FirstHref template.URL
}

// logFilters are the delivery log's filters, as the read API takes them.
type logFilters struct {
	State, Event string
	// Since and Until are RFC 3339 times or durations before now (2h).
	Since, Until            string
	NotificationID, EventID string
}

// logFiltersOf reads the filters of a webhook page's query.
func logFiltersOf(q url.Values) logFilters {
	get := func(key string) string { return strings.TrimSpace(q.Get(key)) }
	return logFilters{State: q.Get("state"), Event: get("event"), Since: get("since"), Until: get("until"),
		NotificationID: get("notificationId"), EventID: get("eventId")}
}

// query is the filters set, as the read API's (and the webhook page's) query parameters.
func (f logFilters) query() url.Values {
	q := url.Values{}
	for key, v := range map[string]string{"state": f.State, "event": f.Event, "since": f.Since, "until": f.Until,
		"notificationId": f.NotificationID, "eventId": f.EventID} {
		if v != "" {
			q.Set(key, v)
		}
	}
	return q
}

// logStates are the state filter's choices: every state, and failed (dropped, cancelled, lost).
var logStates = func() []string {
	out := []string{}
	for _, s := range deliveries.States {
		out = append(out, string(s))
	}
	return append(out, "failed")
}()

// valid reports whether every filter is one the read API takes: state "" or one of logStates,
// event "" or event names (comma-separated, as the read API takes them), times "" or RFC 3339 or
// a duration before now, ids "" or well-formed (one each: the form has one box each).
func (f logFilters) valid() bool {
	if f.State != "" && !slices.Contains(logStates, f.State) {
		return false
	}
	// The read API's own bounds (internal/deliveries), so that it never quotes a value a link chose
	// back to the page.
	if f.NotificationID != "" && !deliveries.NotificationIDPattern.MatchString(f.NotificationID) {
		return false
	}
	if len(f.EventID) > deliveries.MaxEventIDFilter || strings.ContainsAny(f.EventID, ",") || strings.IndexFunc(f.EventID, unicode.IsControl) >= 0 {
		return false
	}
	return validLogTime(f.Since) && validLogTime(f.Until) && validEventNames(f.Event)
}

// validLogTime reports whether t is "", an RFC 3339 time, or a duration before now (2h).
func validLogTime(t string) bool {
	if t == "" {
		return true
	}
	_, _, ok := deliveries.ParseTimeFilter(t, time.Now())
	return ok
}

// validEventNames reports whether event is "" or event names, comma-separated.
func validEventNames(event string) bool {
	if event == "" {
		return true
	}
	for _, e := range strings.Split(event, ",") {
		if !deliveries.EventNamePattern.MatchString(strings.TrimSpace(e)) {
			return false
		}
	}
	return true
}

// deliveryLog reads one page of the webhook's notifications for its page. Errors other than an
// ended session are returned inside logData, so that the webhook's own page still shows.
func (s *Server) deliveryLog(ctx context.Context, r *http.Request, rc *reqCtx, ns, name string) (logData, error) {
	q := r.URL.Query()
	d := logData{logFilters: logFiltersOf(q), Cursor: q.Get("cursor"), States: logStates}
	if s.cfg.Deliveries == nil {
		d.Off = true
		return d, nil
	}
	// The filters are checked here, and a refusal is said in the console's own words: anyone can
	// link to a Webhook's page, and the read API's refusal quotes the value, which the page showed
	// as an alert (any sentence a link chose).
	if !d.valid() {
		d.logFilters, d.Error = logFilters{}, rc.L.T("log.badFilter")
		return d, nil
	}
	query := d.query()
	query.Set("limit", strconv.Itoa(logPageSize))
	if d.Cursor != "" {
		query.Set("cursor", d.Cursor)
	}
	list, err := s.cfg.Deliveries.Notifications(ctx, rc.sess.Token, ns, name, query)
	var le *logError
	switch {
	case err == nil:
		d.List = list
		d.NextHref, d.FirstHref = d.links(ns, name, list.Next)
	case errors.Is(err, errLogSignedOut):
		return d, err
	case errors.Is(err, errNotVisible):
		d.Denied = true
	case errors.As(err, &le) && le.body.Status == http.StatusBadRequest:
		d.Error = rc.L.T("log.badFilter") // a cursor from another search, say: not its text either
	case errors.As(err, &le):
		d.Error = le.body.Message
	default:
		s.cfg.Log.Error(err, "Reading the delivery log", "user", rc.sess.User, "namespace", ns, "name", name)
		d.Error = rc.L.T("log.unreachable")
	}
	return d, nil
}

// links are the next page's link (none without a next cursor) and the first page's, the same
// filters without a cursor (none on the first page). Both keep every filter: the read API takes a
// cursor only with the filters it was handed out for.
func (d logData) links(ns, name, next string) (nextHref, firstHref template.URL) {
	page := "/webhooks/" + url.PathEscape(ns) + "/" + url.PathEscape(name)
	if next != "" {
		q := d.query()
		q.Set("cursor", next)
		nextHref = template.URL(page + "?" + q.Encode()) //nolint:gosec // escaped parts
	}
	if d.Cursor != "" {
		firstHref = template.URL(strings.TrimSuffix(page+"?"+d.query().Encode(), "?")) //nolint:gosec // escaped parts
	}
	return nextHref, firstHref
}

// notificationData is a notification page's data.
type notificationData struct {
	Namespace, Name string
	Attempts        *deliveries.AttemptList
}

// pathNotification checks the names of a notification path; anything malformed is 404 like a
// notification one may not see.
func (s *Server) pathNotification(w http.ResponseWriter, r *http.Request, rc *reqCtx) (ns, name, id string, ok bool) {
	ns, name, id = r.PathValue("ns"), r.PathValue("name"), r.PathValue("id")
	if len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 || id == "" || len(id) > 256 {
		s.apiError(w, r, rc, errNotVisible)
		return "", "", "", false
	}
	if s.cfg.Deliveries == nil {
		s.renderError(w, r, rc.L, &rc.sess, http.StatusNotFound, rc.L.T("log.off"))
		return "", "", "", false
	}
	return ns, name, id, true
}

// notification shows one notification with every record about it. The read API decides who may
// see it (404 for another tenant's, the same as for none).
func (s *Server) notification(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	ns, name, id, ok := s.pathNotification(w, r, rc)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	a, err := s.cfg.Deliveries.Attempts(ctx, rc.sess.Token, ns, name, id)
	if err != nil {
		s.apiError(w, r, rc, err)
		return
	}
	s.render(w, r, http.StatusOK, "notification", s.page(rc, rc.L.T("log.notificationTitle", id), notificationData{Namespace: ns, Name: name, Attempts: a}))
}

// payloadData is the payload viewer's data.
type payloadData struct {
	Namespace, Name, ID string
	Body                Payload
	// Shown is ShownBody in words, for the notice of a cut body.
	Shown string
}

// payload shows a notification's body, indented, as text.
func (s *Server) payload(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	ns, name, id, ok := s.pathNotification(w, r, rc)
	if !ok {
		return
	}
	page, err := s.buildPayload(r, rc, ns, name, id)
	if err != nil {
		s.apiError(w, r, rc, err)
		return
	}
	s.write(w, r, http.StatusOK, page)
}

// buildPayload reads a notification's body and renders its page.
func (s *Server) buildPayload(r *http.Request, rc *reqCtx, ns, name, id string) (built, error) {
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	body, err := s.cfg.Deliveries.Body(ctx, rc.sess.Token, ns, name, id)
	if err != nil {
		return built{}, err
	}
	return s.build(r, "payload", s.page(rc, rc.L.T("log.payloadTitle", id), payloadData{Namespace: ns, Name: name, ID: id, Body: body, Shown: fmt.Sprintf("%d KiB", ShownBody>>10)}), maxPage), nil
}

// fmtLogTime shows a log time in UTC, or a dash when unset.
func fmtLogTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
