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
	"net/http"
	"net/url"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/samples"
)

// testEvents are the choices of "Send a test notification": the webhook's events, each wildcard
// as its family's sample event (AGREEMENT_ALL as AGREEMENT_ACTION_COMPLETED), without repeats and
// without events no sample can stand for.
func testEvents(wh *hooklinev1.Webhook) []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range wh.Spec.Events {
		if _, concrete, ok := samples.ForEvent(string(e)); ok && !seen[concrete] {
			seen[concrete] = true
			out = append(out, concrete)
		}
	}
	return out
}

// sendTest asks the dispatcher's read API to send the webhook a test notification, as the user:
// the read API checks get on webhooks/deliveries (404 otherwise, like the rest of the console)
// and create on webhooks/test (403), and sends one per webhook every few seconds (429).
func (s *Server) sendTest(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	ns, name, ok := s.pathNames(w, r, rc)
	if !ok {
		return
	}
	if s.cfg.Deliveries == nil {
		s.renderError(w, r, rc.L, &rc.sess, http.StatusNotFound, rc.L.T("log.off"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	receipt, err := s.cfg.Deliveries.SendTest(ctx, rc.sess.Token, ns, name, r.PostFormValue("event"))
	page := "/webhooks/" + url.PathEscape(ns) + "/" + url.PathEscape(name)
	if refused := testRefusal(err); refused != "" {
		http.Redirect(w, r, page+"?test="+refused+"#log-heading", http.StatusSeeOther)
		return
	}
	if err != nil {
		s.apiError(w, r, rc, err)
		return
	}
	s.cfg.Log.Info("Sent a test notification", "user", rc.sess.User, "namespace", ns, "name", name, "eventId", receipt.EventID)
	http.Redirect(w, r, page+"?done=tested#log-heading", http.StatusSeeOther)
}

// The read API's refusals of a test that the webhook's page explains (detailNotice).
const (
	testNotActive = "notActive" // 409: the webhook is not Active (it stopped since the page showed the form)
	testTooMany   = "tooMany"   // 429: a test a moment ago, or many in the namespace
)

// testRefusal names the refusal err is, if it is one the webhook's page explains: the user goes
// back to the page, with a notice, instead of to an error page that replaced it.
func testRefusal(err error) string {
	var le *logError
	if !errors.As(err, &le) {
		return ""
	}
	switch le.body.Status {
	case http.StatusConflict:
		return testNotActive
	case http.StatusTooManyRequests:
		return testTooMany
	}
	return ""
}
