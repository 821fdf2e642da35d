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
	"net/http"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// Replay and Recover create a WebhookReplay as the user (RBAC on webhookreplays decides; the
// dispatcher runs it) after a confirmation page; the replay's page shows its progress and reloads
// itself (a meta refresh: no script needed) until the replay is Ready or Stalled.

// replayRefreshSeconds is how often a running replay's page reloads.
const replayRefreshSeconds = 2

// recoverStates are the states "recover" may select (spec.states), failed being the default.
var recoverStates = []string{string(hooklinev1.ReplayFailed), string(hooklinev1.ReplayDropped), string(hooklinev1.ReplayLost),
	string(hooklinev1.ReplayCancelled), string(hooklinev1.ReplayDelivered)}

// replayFormData is the confirmation page of a replay (ID set) or a recovery (Since set).
type replayFormData struct {
	Namespace, Name string
	// ID is the notification to replay, for a replay of one.
	ID string
	// Since (datetime-local, UTC), Until (optional, the same) and States select by time, for a
	// recovery; Until lets a recovery too large for one replay be done in parts.
	Since, Until string
	States       map[string]bool
	All          []string
	Error        string
}

// sinceLayout is the value format of an <input type="datetime-local">, read as UTC.
const sinceLayout = "2006-01-02T15:04"

// formTime reads a datetime-local field as UTC: nil when it is empty; bad when it is not a time.
func formTime(v string) (t *metav1.Time, bad bool) {
	if v == "" {
		return nil, false
	}
	parsed, err := time.Parse(sinceLayout, v)
	if err != nil {
		return nil, true
	}
	return &metav1.Time{Time: parsed.UTC()}, false
}

func (s *Server) pathNames(w http.ResponseWriter, r *http.Request, rc *reqCtx) (ns, name string, ok bool) {
	ns, name = r.PathValue("ns"), r.PathValue("name")
	if len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		s.apiError(w, r, rc, errNotVisible)
		return "", "", false
	}
	return ns, name, true
}

// replayForm asks before replaying one notification (the notification page's Replay).
func (s *Server) replayForm(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	ns, name, id, ok := s.pathNotification(w, r, rc)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	// The notification must be one the user may see in the log; the replay itself is then
	// authorized by the API server.
	if _, err := s.cfg.Deliveries.Attempts(ctx, rc.sess.Token, ns, name, id); err != nil {
		s.apiError(w, r, rc, err)
		return
	}
	s.render(w, r, http.StatusOK, "replayform", s.page(rc, rc.L.T("replay.title"), replayFormData{Namespace: ns, Name: name, ID: id}))
}

// recoverForm asks before recovering the webhook's failed notifications since a time.
func (s *Server) recoverForm(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	wh, ok := s.pathWebhook(w, r, rc)
	if !ok {
		return
	}
	since := s.cfg.Now().UTC().Add(-24 * time.Hour).Format(sinceLayout)
	s.render(w, r, http.StatusOK, "replayform", s.page(rc, rc.L.T("recover.title"), replayFormData{Namespace: wh.Namespace, Name: wh.Name,
		Since: since, States: map[string]bool{string(hooklinev1.ReplayFailed): true}, All: recoverStates}))
}

// createReplay creates the confirmed WebhookReplay as the user and goes to its page.
func (s *Server) createReplay(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	ns, name, ok := s.pathNames(w, r, rc)
	if !ok {
		return
	}
	rp := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: replayPrefix(name)},
		Spec: hooklinev1.WebhookReplaySpec{WebhookName: name}}
	d := replayFormData{Namespace: ns, Name: name, All: recoverStates, States: map[string]bool{}}
	title := rc.L.T("replay.title")
	if id := r.PostFormValue("notificationId"); id != "" {
		d.ID = id
		rp.Spec.NotificationIDs = []hooklinev1.NotificationID{hooklinev1.NotificationID(id)}
	} else {
		title = rc.L.T("recover.title")
		d.Since, d.Until = r.PostFormValue("since"), r.PostFormValue("until")
		for _, st := range r.PostForm["states"] {
			d.States[st] = true
			rp.Spec.States = append(rp.Spec.States, hooklinev1.ReplayState(st))
		}
		var bad bool
		if rp.Spec.Since, bad = formTime(d.Since); bad || rp.Spec.Since == nil {
			d.Error = rc.L.T("recover.badSince")
		} else if rp.Spec.Until, bad = formTime(d.Until); bad {
			d.Error = rc.L.T("recover.badUntil")
		}
		if d.Error != "" {
			s.render(w, r, http.StatusUnprocessableEntity, "replayform", s.page(rc, title, d))
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	if err := rc.client.Create(ctx, rp); err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err) {
			d.Error = apiMessage(err)
			s.render(w, r, http.StatusUnprocessableEntity, "replayform", s.page(rc, title, d))
			return
		}
		s.apiError(w, r, rc, err)
		return
	}
	s.cfg.Log.Info("Created WebhookReplay", "user", rc.sess.User, "namespace", ns, "name", rp.Name, "webhook", name)
	http.Redirect(w, r, "/webhooks/"+ns+"/"+name+"/replays/"+rp.Name, http.StatusSeeOther)
}

// replayPrefix is the generateName of a replay: the webhook's name, shortened so that the name
// with its random suffix stays a valid object name.
func replayPrefix(webhook string) string {
	const max = 253 - 5 - len("-replay-")
	if len(webhook) > max {
		webhook = webhook[:max]
	}
	return webhook + "-replay-"
}

// replayData is a replay page's data.
type replayData struct {
	Namespace, Name string
	Replay          *hooklinev1.WebhookReplay
	Ready, Stalled  *metav1.Condition
	Running         bool
}

// replayStatus shows a WebhookReplay of the webhook, reloading while it runs.
func (s *Server) replayStatus(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	ns, name, ok := s.pathNames(w, r, rc)
	if !ok {
		return
	}
	rname := r.PathValue("replay")
	if len(validation.IsDNS1123Subdomain(rname)) > 0 {
		s.apiError(w, r, rc, errNotVisible)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	var rp hooklinev1.WebhookReplay
	if err := rc.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: rname}, &rp); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
			err = errNotVisible
		}
		s.apiError(w, r, rc, err)
		return
	}
	if rp.Spec.WebhookName != name {
		s.apiError(w, r, rc, errNotVisible)
		return
	}
	d := replayData{Namespace: ns, Name: name, Replay: &rp,
		Ready: meta.FindStatusCondition(rp.Status.Conditions, "Ready"), Stalled: meta.FindStatusCondition(rp.Status.Conditions, "Stalled")}
	d.Running = !finishedReplay(&rp)
	p := s.page(rc, rc.L.T("replay.statusTitle", rp.Name), d)
	if d.Running {
		p.Refresh = replayRefreshSeconds
	}
	s.render(w, r, http.StatusOK, "replay", p)
}

// maxReplaysShown bounds the replays listed on a webhook's page (newest first); replaysPage is how
// many one answer brings; maxIDsShown bounds the notification ids a row shows of its replay's
// selection (the replay's own page shows them all).
const (
	maxReplaysShown = 20
	replaysPage     = 250
	maxIDsShown     = 5
)

// replayRow is one replay on its webhook's page.
type replayRow struct {
	// Replay holds only what the row shows (shownReplay).
	Replay  *hooklinev1.WebhookReplay
	Ready   *metav1.Condition
	Running bool
	// MoreIDs counts the notification ids of the selection that the row leaves out.
	MoreIDs int
}

// webhookReplays lists the webhook's WebhookReplays as the user, newest first, at most
// maxReplaysShown: the API server selects them by spec.webhookName (a selectable field of the
// CRD), so the page does not read the namespace's other replays. allowed is false when RBAC does
// not let the user list replays. Only what a row shows of each replay is kept as it is read, and
// only the newest rows.
func webhookReplays(ctx context.Context, c client.Client, ns, name string) (rows []replayRow, allowed bool, err error) {
	kept := newest[replayRow]{n: maxReplaysShown, cmp: func(a, b replayRow) int {
		return b.Replay.CreationTimestamp.Compare(a.Replay.CreationTimestamp.Time)
	}}
	_, err = readPages(ctx, c, func() *hooklinev1.WebhookReplayList { return &hooklinev1.WebhookReplayList{} }, replaysPage,
		[]client.ListOption{client.InNamespace(ns), client.MatchingFields{"spec.webhookName": name}},
		func(l *hooklinev1.WebhookReplayList) (stop, cut bool) {
			for i := range l.Items {
				kept.add(shownReplay(&l.Items[i]))
			}
			return false, false
		})
	if apierrors.IsForbidden(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	rows, _ = kept.result()
	return rows, true, nil
}

// shownReplay is rp as its row shows it (detail.html), in a fresh WebhookReplay that holds nothing
// else: a tenant may grow a replay to the API server's limit (labels, annotations), and every
// replay holds up to 1,000 notification ids, of which the row shows the first maxIDsShown and a
// count of the others. Kept whole, the replays of twenty answers were read before the newest
// twenty were shown.
func shownReplay(rp *hooklinev1.WebhookReplay) replayRow {
	ids := rp.Spec.NotificationIDs
	out := &hooklinev1.WebhookReplay{
		Spec: hooklinev1.WebhookReplaySpec{WebhookName: rp.Spec.WebhookName, Since: rp.Spec.Since, Until: rp.Spec.Until,
			States: slices.Clone(rp.Spec.States), NotificationIDs: slices.Clone(ids[:min(len(ids), maxIDsShown)])},
		Status: hooklinev1.WebhookReplayStatus{Matched: rp.Status.Matched, Queued: rp.Status.Queued, Delivered: rp.Status.Delivered,
			Failed: rp.Status.Failed, StartedAt: rp.Status.StartedAt, CompletedAt: rp.Status.CompletedAt},
	}
	out.Namespace, out.Name, out.CreationTimestamp = rp.Namespace, rp.Name, rp.CreationTimestamp
	for _, c := range rp.Status.Conditions {
		if c.Type == "Ready" || c.Type == "Stalled" { // what finishedReplay and the row read
			c.Reason, c.Message = clip(c.Reason), clip(c.Message)
			out.Status.Conditions = append(out.Status.Conditions, c)
		}
	}
	return replayRow{Replay: out, Ready: meta.FindStatusCondition(out.Status.Conditions, "Ready"), Running: !finishedReplay(out),
		MoreIDs: len(ids) - len(out.Spec.NotificationIDs)}
}

// finishedReplay reports whether rp is Ready or Stalled: its page no longer reloads.
func finishedReplay(rp *hooklinev1.WebhookReplay) bool {
	return meta.IsStatusConditionTrue(rp.Status.Conditions, "Ready") || meta.IsStatusConditionTrue(rp.Status.Conditions, "Stalled")
}
