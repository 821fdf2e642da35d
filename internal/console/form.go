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
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// conditionalParam is one checkbox of spec.conditionalParams: family block and field.
type conditionalParam struct {
	Family string // agreement, widget, megaSign, libraryDocument
	Field  string // includeDetailedInfo, ...
}

// Key is the form field's name.
func (p conditionalParam) Key() string { return "cp." + p.Family + "." + p.Field }

// The conditional parameters' field names, as in spec.conditionalParams.
const (
	paramDetailedInfo     = "includeDetailedInfo"
	paramParticipantsInfo = "includeParticipantsInfo"
	paramDocumentsInfo    = "includeDocumentsInfo"
	paramSignedDocuments  = "includeSignedDocuments"
)

// conditionalParams lists every field of spec.conditionalParams, in the order of the form.
var conditionalParams = []conditionalParam{
	{"agreement", paramDetailedInfo}, {"agreement", paramParticipantsInfo},
	{"agreement", paramDocumentsInfo}, {"agreement", paramSignedDocuments},
	{"widget", paramDetailedInfo}, {"widget", paramParticipantsInfo}, {"widget", paramDocumentsInfo},
	{"megaSign", paramDetailedInfo},
	{"libraryDocument", paramDetailedInfo}, {"libraryDocument", paramDocumentsInfo},
}

// paramGroup is one family's enabled conditional parameters, for the webhook page.
type paramGroup struct {
	Family string
	Fields []string
}

// enabledParams lists the enabled fields of spec.conditionalParams per family, in the form's
// order; empty when none is on.
func enabledParams(cp *hooklinev1.ConditionalParams) []paramGroup {
	on := formFromWebhook(&hooklinev1.Webhook{Spec: hooklinev1.WebhookSpec{ConditionalParams: cp}}).Params
	var out []paramGroup
	for _, p := range conditionalParams {
		if !on[p.Key()] {
			continue
		}
		if len(out) == 0 || out[len(out)-1].Family != p.Family {
			out = append(out, paramGroup{Family: p.Family})
		}
		out[len(out)-1].Fields = append(out[len(out)-1].Fields, p.Field)
	}
	return out
}

// eventFamily groups the event checkboxes of the form; Wildcard is the family's *_ALL.
type eventFamily struct {
	Family   hooklinev1.Family
	Wildcard string
	Events   []string
}

// eventFamilies is hooklinev1.AcrobatEvents grouped by family, wildcard first.
var eventFamilies = func() []eventFamily {
	var out []eventFamily
	idx := map[hooklinev1.Family]int{}
	for _, e := range hooklinev1.AcrobatEvents {
		f, _ := hooklinev1.FamilyOf(e)
		i, ok := idx[f]
		if !ok {
			i = len(out)
			idx[f] = i
			out = append(out, eventFamily{Family: f})
		}
		if hooklinev1.IsWildcard(e) {
			out[i].Wildcard = e
		} else {
			out[i].Events = append(out[i].Events, e)
		}
	}
	return out
}()

// webhookForm is the create/edit form: every spec field as the browser sends it.
type webhookForm struct {
	Namespace, Name, ResourceVersion   string
	URL, State, Scope, GroupID, UserID string
	ResourceType, ResourceID           string
	Events                             map[string]bool // checked Acrobat Sign events and wildcards
	ExtraEvents                        string          // envelope-family names, one per line or comma
	Params                             map[string]bool // checked conditionalParam keys
	ClientID, ClientCertSecret         string
	SigningSecret, Emails              string
}

// formFromRequest reads the form fields of a parsed POST.
func formFromRequest(r *http.Request) webhookForm {
	f := webhookForm{
		Namespace: strings.TrimSpace(r.PostFormValue("namespace")), Name: strings.TrimSpace(r.PostFormValue("name")),
		ResourceVersion: r.PostFormValue("resourceVersion"),
		URL:             strings.TrimSpace(r.PostFormValue("url")), State: r.PostFormValue("state"), Scope: r.PostFormValue("scope"),
		GroupID: strings.TrimSpace(r.PostFormValue("groupId")), UserID: strings.TrimSpace(r.PostFormValue("userId")),
		ResourceType: r.PostFormValue("resourceType"), ResourceID: strings.TrimSpace(r.PostFormValue("resourceId")),
		ExtraEvents: r.PostFormValue("extraEvents"),
		ClientID:    strings.TrimSpace(r.PostFormValue("clientId")), ClientCertSecret: strings.TrimSpace(r.PostFormValue("clientCertificateSecret")),
		SigningSecret: strings.TrimSpace(r.PostFormValue("signingSecret")), Emails: r.PostFormValue("problemNotificationEmails"),
		Events: map[string]bool{}, Params: map[string]bool{},
	}
	for _, e := range r.PostForm["events"] {
		f.Events[e] = true
	}
	for _, p := range conditionalParams {
		if r.PostFormValue(p.Key()) == "on" {
			f.Params[p.Key()] = true
		}
	}
	return f
}

// formFromWebhook fills the form with a webhook's spec, for editing.
func formFromWebhook(wh *hooklinev1.Webhook) webhookForm {
	s := wh.Spec
	f := webhookForm{
		Namespace: wh.Namespace, Name: wh.Name, ResourceVersion: wh.ResourceVersion,
		URL: s.URL, State: string(s.State), Scope: string(s.Scope), GroupID: s.GroupID, UserID: s.UserID,
		ClientID: s.ClientID, Events: map[string]bool{}, Params: map[string]bool{},
	}
	if s.Resource != nil {
		f.ResourceType, f.ResourceID = string(s.Resource.Type), s.Resource.ID
	}
	var extra []string
	for _, e := range s.Events {
		if slices.Contains(hooklinev1.AcrobatEvents, string(e)) {
			f.Events[string(e)] = true
		} else {
			extra = append(extra, string(e))
		}
	}
	f.ExtraEvents = strings.Join(extra, "\n")
	if cp := s.ConditionalParams; cp != nil {
		set := func(family string, fields map[string]bool) {
			for field, on := range fields {
				if on {
					f.Params["cp."+family+"."+field] = true
				}
			}
		}
		if a := cp.Agreement; a != nil {
			set("agreement", map[string]bool{paramDetailedInfo: a.IncludeDetailedInfo, paramParticipantsInfo: a.IncludeParticipantsInfo,
				paramDocumentsInfo: a.IncludeDocumentsInfo, paramSignedDocuments: a.IncludeSignedDocuments})
		}
		if w := cp.Widget; w != nil {
			set("widget", map[string]bool{paramDetailedInfo: w.IncludeDetailedInfo, paramParticipantsInfo: w.IncludeParticipantsInfo,
				paramDocumentsInfo: w.IncludeDocumentsInfo})
		}
		if m := cp.MegaSign; m != nil {
			set("megaSign", map[string]bool{paramDetailedInfo: m.IncludeDetailedInfo})
		}
		if l := cp.LibraryDocument; l != nil {
			set("libraryDocument", map[string]bool{paramDetailedInfo: l.IncludeDetailedInfo, paramDocumentsInfo: l.IncludeDocumentsInfo})
		}
	}
	if s.ClientCertificateSecretRef != nil {
		f.ClientCertSecret = s.ClientCertificateSecretRef.Name
	}
	if s.Signing != nil {
		f.SigningSecret = s.Signing.SecretRef.Name
	}
	emails := make([]string, 0, len(s.ProblemNotificationEmails))
	for _, e := range s.ProblemNotificationEmails {
		emails = append(emails, string(e))
	}
	f.Emails = strings.Join(emails, "\n")
	return f
}

var listSplit = regexp.MustCompile(`[\s,]+`)

// splitList splits a textarea of names separated by newlines, commas or spaces.
func splitList(s string) []string {
	var out []string
	for _, v := range listSplit.Split(s, -1) {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// applyTo writes the form into spec. Validation is the API server's (dry run); the form only maps
// fields, leaving empty optional fields unset so that the CRD's rules see what the user meant.
func (f webhookForm) applyTo(s *hooklinev1.WebhookSpec) {
	s.URL = f.URL
	s.State = hooklinev1.WebhookState(f.State)
	s.Scope = hooklinev1.Scope(f.Scope)
	s.GroupID, s.UserID = f.GroupID, f.UserID
	s.Resource = nil
	if f.ResourceType != "" || f.ResourceID != "" {
		s.Resource = &hooklinev1.WebhookResource{Type: hooklinev1.ResourceType(f.ResourceType), ID: f.ResourceID}
	}
	s.Events = nil
	for _, e := range hooklinev1.AcrobatEvents {
		if f.Events[e] {
			s.Events = append(s.Events, hooklinev1.EventName(e))
		}
	}
	for _, e := range splitList(f.ExtraEvents) {
		if !slices.Contains(s.Events, hooklinev1.EventName(e)) {
			s.Events = append(s.Events, hooklinev1.EventName(e))
		}
	}
	on := func(family, field string) bool { return f.Params["cp."+family+"."+field] }
	cp := &hooklinev1.ConditionalParams{}
	if a := (hooklinev1.AgreementConditionalParams{IncludeDetailedInfo: on("agreement", paramDetailedInfo),
		IncludeParticipantsInfo: on("agreement", paramParticipantsInfo), IncludeDocumentsInfo: on("agreement", paramDocumentsInfo),
		IncludeSignedDocuments: on("agreement", paramSignedDocuments)}); a != (hooklinev1.AgreementConditionalParams{}) {
		cp.Agreement = &a
	}
	if w := (hooklinev1.WidgetConditionalParams{IncludeDetailedInfo: on("widget", paramDetailedInfo),
		IncludeParticipantsInfo: on("widget", paramParticipantsInfo), IncludeDocumentsInfo: on("widget", paramDocumentsInfo)}); w != (hooklinev1.WidgetConditionalParams{}) {
		cp.Widget = &w
	}
	if m := (hooklinev1.MegaSignConditionalParams{IncludeDetailedInfo: on("megaSign", paramDetailedInfo)}); m != (hooklinev1.MegaSignConditionalParams{}) {
		cp.MegaSign = &m
	}
	if l := (hooklinev1.LibraryDocumentConditionalParams{IncludeDetailedInfo: on("libraryDocument", paramDetailedInfo),
		IncludeDocumentsInfo: on("libraryDocument", paramDocumentsInfo)}); l != (hooklinev1.LibraryDocumentConditionalParams{}) {
		cp.LibraryDocument = &l
	}
	s.ConditionalParams = nil
	if *cp != (hooklinev1.ConditionalParams{}) {
		s.ConditionalParams = cp
	}
	s.ClientID = f.ClientID
	s.ClientCertificateSecretRef = nil
	if f.ClientCertSecret != "" {
		s.ClientCertificateSecretRef = &hooklinev1.SecretReference{Name: f.ClientCertSecret}
	}
	s.Signing = nil
	if f.SigningSecret != "" {
		s.Signing = &hooklinev1.WebhookSigning{SecretRef: hooklinev1.SecretReference{Name: f.SigningSecret}}
	}
	s.ProblemNotificationEmails = nil
	for _, e := range splitList(f.Emails) {
		s.ProblemNotificationEmails = append(s.ProblemNotificationEmails, hooklinev1.Email(e))
	}
}

// formErrors are the API server's messages for a rejected form: per form field, and the rest.
type formErrors struct {
	Fields  map[string][]string
	General []string
}

// Any reports whether there is an error to show.
func (e formErrors) Any() bool { return len(e.Fields) > 0 || len(e.General) > 0 }

// fieldIndex strips list indexes and map keys from a field path: spec.events[3] -> spec.events.
var fieldIndex = regexp.MustCompile(`\[[^\]]*\]`)

// formFieldOf maps an API field path (spec.resource.id, metadata.name, spec.events[2]) to the name
// of the form field that shows its message; "" when no field matches.
func formFieldOf(path string) string {
	path = fieldIndex.ReplaceAllString(path, "")
	switch {
	case path == "metadata.name":
		return "name"
	case path == "metadata.namespace":
		return "namespace"
	case strings.HasPrefix(path, "spec.resource"):
		if path == "spec.resource.type" {
			return "resourceType"
		}
		return "resourceId"
	case strings.HasPrefix(path, "spec.conditionalParams"):
		return "conditionalParams"
	case strings.HasPrefix(path, "spec.clientCertificateSecretRef"):
		return "clientCertificateSecret"
	case strings.HasPrefix(path, "spec.signing"):
		return "signingSecret"
	case strings.HasPrefix(path, "spec."):
		field, _, _ := strings.Cut(strings.TrimPrefix(path, "spec."), ".")
		switch field {
		case "url", "state", "scope", "groupId", "userId", "events", "clientId", "problemNotificationEmails":
			return field
		}
	}
	return ""
}

// errorsFromAPI turns a failed create or update into form errors: each cause of an Invalid status
// goes next to its field, with the API server's own message; anything else is a general error.
func errorsFromAPI(err error) formErrors {
	fe := formErrors{Fields: map[string][]string{}}
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Details != nil && len(status.Status().Details.Causes) > 0 {
		for _, c := range status.Status().Details.Causes {
			msg := c.Message
			if f := formFieldOf(c.Field); f != "" {
				fe.Fields[f] = append(fe.Fields[f], msg)
			} else {
				if c.Field != "" {
					msg = c.Field + ": " + msg
				}
				fe.General = append(fe.General, msg)
			}
		}
		return fe
	}
	fe.General = append(fe.General, err.Error())
	return fe
}

// deniedRequest precedes a ValidatingAdmissionPolicy's message in the API server's 403.
const deniedRequest = "denied request: "

// refusalErrors turns a 403's message into form errors. hookline's admission policies start their
// messages with the field path they refuse ("spec.url: ..."): such a message goes under that field,
// without the API server's preamble; any other refusal (RBAC, another policy) is a general error.
// Neither says "RBAC": a policy's refusal is not RBAC's.
func refusalErrors(L Localizer, msg string) formErrors {
	fe := formErrors{Fields: map[string][]string{}}
	if _, denied, ok := strings.Cut(msg, deniedRequest); ok {
		if path, text, ok := strings.Cut(denied, ": "); ok {
			if field := formFieldOf(path); field != "" && !strings.ContainsAny(path, " ") {
				fe.Fields[field] = []string{L.T("form.refused", text)}
				return fe
			}
		}
	}
	fe.General = []string{L.T("form.refused", msg)}
	return fe
}

// eventTime is when an Event last happened, whichever API wrote it.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	default:
		return e.CreationTimestamp.Time
	}
}
