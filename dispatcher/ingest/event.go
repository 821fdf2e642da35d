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

// Package ingest receives platform events on POST /v1/events: it authenticates the producer with an
// account-scoped bearer token, validates the event and hands it to an Acceptor, answering 202 only
// once the Acceptor has stored it durably.
package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/payload"
)

// Limits on event fields.
const (
	maxIDLength    = 256
	maxFieldLength = 256
)

// Limits on what an error message repeats of the body: enough to recognise the value at fault,
// never so much that a 25 MiB body makes a response (and a log line) of the same size.
const (
	maxEchoedValue   = 64
	maxEchoedProblem = 256
)

// Initiator is the user who caused the event.
type Initiator struct {
	UserID string `json:"userId,omitempty"`
	Email  string `json:"email,omitempty"`
}

// Resource is the resource the event is about.
type Resource struct {
	Type       string `json:"type"`
	ID         string `json:"id"`
	ParentType string `json:"parentType,omitempty"`
	ParentID   string `json:"parentId,omitempty"`
}

// Event is an ingested event (design §5).
type Event struct {
	ID           string          `json:"id"`
	Event        string          `json:"event"`
	OccurredAt   string          `json:"occurredAt,omitempty"`
	AccountID    string          `json:"accountId"`
	GroupID      string          `json:"groupId,omitempty"`
	Initiator    Initiator       `json:"initiator"`
	Resource     Resource        `json:"resource"`
	Notification json.RawMessage `json:"notification"`
}

// Family returns the event's family; Parse guarantees it has one.
func (e *Event) Family() hooklinev1.Family {
	f, _ := hooklinev1.FamilyOf(e.Event)
	return f
}

// Error is a client error with an HTTP status, a stable code and a message naming the problem.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func badRequest(code, format string, args ...any) *Error {
	return &Error{Status: 400, Code: code, Message: fmt.Sprintf(format, args...)}
}

// resourceKeys maps an Acrobat family to the key of its resource object in the notification.
var resourceKeys = map[hooklinev1.Family]string{
	hooklinev1.FamilyAgreement:       "agreement",
	hooklinev1.FamilyWidget:          "widget",
	hooklinev1.FamilyMegaSign:        "megaSign",
	hooklinev1.FamilyLibraryDocument: "libraryDocument",
}

// resourceTypes maps a family to the resource.type its events carry. Agreement events may also come
// from a web form or bulk send, which resource.parentType records.
var resourceTypes = map[hooklinev1.Family]string{
	hooklinev1.FamilyAgreement:       "AGREEMENT",
	hooklinev1.FamilyWidget:          "WIDGET",
	hooklinev1.FamilyMegaSign:        "MEGASIGN",
	hooklinev1.FamilyLibraryDocument: "LIBRARY_DOCUMENT",
	hooklinev1.FamilyEnvelope:        "ENVELOPE",
}

// Parse decodes and validates one event body. Every error is an *Error naming the field at fault.
func Parse(body []byte) (*Event, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	ev := &Event{}
	if err := dec.Decode(ev); err != nil {
		return nil, badRequest("INVALID_JSON", "body is not a valid event: %s", jsonProblem(err))
	}
	if rest := bytes.TrimSpace(body[dec.InputOffset():]); len(rest) > 0 {
		return nil, badRequest("INVALID_JSON", "body holds data after the event object")
	}
	if err := ev.validate(); err != nil {
		return nil, err
	}
	return ev, nil
}

func (e *Event) validate() error {
	for _, f := range []struct {
		name, value string
		max         int
	}{
		{"id", e.ID, maxIDLength}, {"event", e.Event, maxFieldLength}, {"accountId", e.AccountID, maxFieldLength},
		{"resource.type", e.Resource.Type, maxFieldLength}, {"resource.id", e.Resource.ID, maxFieldLength},
	} {
		if strings.TrimSpace(f.value) == "" {
			return badRequest("MISSING_REQUIRED_PARAM", "%s is required", f.name)
		}
		if len(f.value) > f.max {
			return badRequest("INVALID_ARGUMENTS", "%s is longer than %d bytes", f.name, f.max)
		}
	}
	for _, f := range []struct{ name, value string }{
		{"groupId", e.GroupID}, {"initiator.userId", e.Initiator.UserID}, {"initiator.email", e.Initiator.Email},
		{"resource.parentType", e.Resource.ParentType}, {"resource.parentId", e.Resource.ParentID},
	} {
		if len(f.value) > maxFieldLength {
			return badRequest("INVALID_ARGUMENTS", "%s is longer than %d bytes", f.name, maxFieldLength)
		}
	}
	if e.OccurredAt != "" {
		if _, err := time.Parse(time.RFC3339Nano, e.OccurredAt); err != nil {
			return badRequest("INVALID_ARGUMENTS", "occurredAt must be an RFC 3339 time such as 2026-11-25T10:00:00Z")
		}
	}
	if !hooklinev1.IsKnownSubscriptionEvent(e.Event) || hooklinev1.IsWildcard(e.Event) {
		return badRequest("INVALID_EVENT", "event %q is not a known event name (wildcards such as AGREEMENT_ALL are for subscriptions only)", e.Event)
	}
	fam := e.Family()
	if want := resourceTypes[fam]; e.Resource.Type != want {
		return badRequest("INVALID_RESOURCE_TYPE", "resource.type is %q but %s is a %s event (want %q)", e.Resource.Type, e.Event, fam, want)
	}
	if len(bytes.TrimSpace(e.Notification)) == 0 || bytes.Equal(bytes.TrimSpace(e.Notification), []byte("null")) {
		return badRequest("MISSING_REQUIRED_PARAM", "notification is required")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(e.Notification, &top); err != nil {
		return badRequest("INVALID_NOTIFICATION", "notification must be a JSON object")
	}
	if fam == hooklinev1.FamilyEnvelope {
		var name string
		if err := json.Unmarshal(top["event"], &name); err != nil || name != e.Event {
			return badRequest("INVALID_NOTIFICATION", "notification.event must be %q, as in the envelope dialect {\"event\": ..., \"data\": {...}}", e.Event)
		}
		if d := bytes.TrimSpace(top["data"]); len(d) == 0 || d[0] != '{' {
			return badRequest("INVALID_NOTIFICATION", "notification.data must be an object")
		}
		return nil
	}
	if raw, ok := top["event"]; ok {
		var name string
		if json.Unmarshal(raw, &name) != nil || name != e.Event {
			return badRequest("INVALID_NOTIFICATION", "notification.event must be %q, the event's name", e.Event)
		}
	}
	key := resourceKeys[fam]
	raw, ok := top[key]
	if d := bytes.TrimSpace(raw); !ok || len(d) == 0 || d[0] != '{' {
		return badRequest("INVALID_NOTIFICATION", "notification.%s must be an object: %s events carry their resource there", key, e.Event)
	}
	var res struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return badRequest("INVALID_NOTIFICATION", "notification.%s.id must be a string", key)
	}
	if res.ID != "" && res.ID != e.Resource.ID {
		return badRequest("INVALID_NOTIFICATION", "notification.%s.id %q differs from resource.id %q", key, clip(res.ID, maxEchoedValue), e.Resource.ID)
	}
	// Accept only what can be delivered: the payload builder's own reading of the notification
	// (duplicate keys, structure) is the judge, so an accepted event never fails at delivery.
	if _, err := payload.Build(payload.Event{ID: e.ID, Event: e.Event, AccountID: e.AccountID, Notification: e.Notification},
		payload.Webhook{}, "", payload.Options{}); err != nil {
		return badRequest("INVALID_NOTIFICATION", "notification.%s cannot be delivered: %s", key, strings.TrimPrefix(err.Error(), payload.ErrInvalidNotification.Error()+": "))
	}
	return nil
}

// jsonProblem turns a decoding error into a short, field-naming sentence. encoding/json quotes
// unknown field names whole, so the text is clipped.
func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Sprintf("field %s must be a %s", typeErr.Field, typeErr.Type)
	}
	return clip(err.Error(), maxEchoedProblem)
}

// clip shortens s to at most limit bytes, cutting at a rune boundary so the result stays valid
// UTF-8, and marks the cut with "...".
func clip(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	i := limit
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}
