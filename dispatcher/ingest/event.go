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
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/event"
	"github.com/hookline/hookline/dispatcher/payload"
)

// Event and its parts are the decoded event, shared with delivery (package event).
type (
	// Event is an ingested event: the body of POST /v1/events (docs/architecture.md).
	Event = event.Event
	// Initiator is the user who initiated the event's resource (an agreement's sender), not the
	// user who acted: USER-scope webhooks are routed by it.
	Initiator = event.Initiator
	// Resource is the resource the event is about.
	Resource = event.Resource
)

// Decode reads a stored event body without copying its notification (event.Decode).
func Decode(body []byte) (*Event, error) { return event.Decode(body) }

// Limits on event fields.
const (
	maxIDLength    = 256
	maxFieldLength = 256
	// MaxEnvelopeEventLength bounds an envelope-family event name (envelopeExpired and its kin),
	// which only a pattern constrains: every note queued for the event stores its name, and the
	// longest Acrobat Sign name has 49 characters.
	MaxEnvelopeEventLength = 64
)

// Limits on what an error message repeats of the body: enough to recognise the value at fault,
// never so much that a 25 MiB body makes a response (and a log line) of the same size.
const (
	maxEchoedValue   = 64
	maxEchoedProblem = 256
)

// Error is a client error with an HTTP status, a stable code and a message naming the problem.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Cause is what went wrong inside the dispatcher, for its log; producers see only Message.
	Cause error `json:"-"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func badRequest(code, format string, args ...any) *Error {
	return &Error{Status: 400, Code: code, Message: fmt.Sprintf(format, args...)}
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

// The members each object of an event may have, exactly as spelled here.
var (
	eventKeys      = []string{"id", "event", "occurredAt", "accountId", "groupId", "initiator", "resource", "notification"}
	initiatorKeys  = []string{"userId", "email"}
	resourceFields = []string{"type", "id", "parentType", "parentId"}
)

// Parse decodes and validates one event body. Every error is an *Error naming the field at fault.
// The event's notification aliases body, which must not be modified while the event is in use.
func Parse(body []byte) (*Event, error) {
	// JSON text is UTF-8 (RFC 8259 §8.1). encoding/json would quietly turn a bad byte into U+FFFD in
	// the fields it decodes while the raw notification kept it, so receivers would get invalid text.
	if !utf8.Valid(body) {
		return nil, badRequest("INVALID_ENCODING", "body is not valid UTF-8: byte %d starts no UTF-8 character (JSON text must be UTF-8)", invalidUTF8At(body))
	}
	// One scan of the whole body checks the JSON syntax and lists the members without copying; the
	// members are checked by name so that a key only another parser would read (a different case,
	// a duplicate) cannot hide in an accepted event.
	top, err := payload.Members(body)
	if errors.Is(err, payload.ErrTrailingData) {
		return nil, badRequest("INVALID_JSON", "body holds data after the event object")
	}
	if err != nil {
		return nil, badRequest("INVALID_JSON", "body is not a valid event: %s", clip(err.Error(), maxEchoedProblem))
	}
	if err := checkKeys(top, "", eventKeys); err != nil {
		return nil, err
	}
	// The nested objects' keys are checked before the event is decoded: the decoder reads every
	// key, unknown ones too, and an escaped one costs it copies of its length.
	for _, m := range top {
		var known []string
		switch m.Name {
		case "initiator":
			known = initiatorKeys
		case "resource":
			known = resourceFields
		default:
			continue
		}
		if v := bytes.TrimSpace(m.Value); len(v) == 0 || v[0] != '{' {
			continue // null: the decoder accepted it as an empty object
		}
		inner, err := payload.Members(m.Value)
		if err != nil {
			return nil, badRequest("INVALID_JSON", "%s: %s", m.Name, clip(err.Error(), maxEchoedProblem))
		}
		if err := checkKeys(inner, m.Name, known); err != nil {
			return nil, err
		}
	}
	ev, err := Decode(body)
	if err != nil {
		return nil, badRequest("INVALID_JSON", "body is not a valid event: %s", jsonProblem(err))
	}
	if err := validate(ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// checkKeys refuses members of object (the event itself when "") that are not in known or that
// appear twice.
func checkKeys(members []payload.Member, object string, known []string) error {
	where := ""
	if object != "" {
		where = " in " + object
	}
	seen := make(map[string]bool, len(members))
	for _, m := range members {
		if !slices.Contains(known, m.Name) {
			return badRequest("INVALID_JSON", "body is not a valid event: unknown field %s%s", quote(clip(m.Name, maxEchoedValue)), where)
		}
		if seen[m.Name] {
			return badRequest("INVALID_JSON", "body is not a valid event: field %s appears twice%s", m.Name, where)
		}
		seen[m.Name] = true
	}
	return nil
}

// invalidUTF8At returns the offset of the first byte of b that starts no valid UTF-8 sequence.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// member returns the value of the last member called name (encoding/json keeps the last of
// duplicates too), or nil.
func member(ms []payload.Member, name string) []byte {
	var v []byte
	for _, m := range ms {
		if m.Name == name {
			v = m.Value
		}
	}
	return v
}

func validate(e *Event) error {
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
	// id and accountId make the event's idempotency key. Ids that differ only by invisible
	// characters would be different keys here and the same one to anything that trims or prints
	// them (a NATS header, a log line, a receiver's dedupe table): refuse them.
	for _, f := range []struct{ name, value string }{{"id", e.ID}, {"accountId", e.AccountID}} {
		if strings.IndexFunc(f.value, unicode.IsControl) >= 0 {
			return badRequest("INVALID_ARGUMENTS", "%s must not contain control characters", f.name)
		}
		if strings.TrimFunc(f.value, unicode.IsSpace) != f.value {
			return badRequest("INVALID_ARGUMENTS", "%s must not begin or end with white space", f.name)
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
	if fam == hooklinev1.FamilyEnvelope && len(e.Event) > MaxEnvelopeEventLength {
		return badRequest("INVALID_ARGUMENTS", "event is longer than %d characters, the most an envelope-family event name may have", MaxEnvelopeEventLength)
	}
	if want := resourceTypes[fam]; e.Resource.Type != want {
		return badRequest("INVALID_RESOURCE_TYPE", "resource.type is %q but %s is a %s event (want %q)", e.Resource.Type, e.Event, fam, want)
	}
	return validateNotification(e, fam)
}

// validateNotification checks the notification object against the event's family: the envelope
// dialect's event and data, or the resource object Acrobat Sign's families carry.
func validateNotification(e *Event, fam hooklinev1.Family) error {
	if len(bytes.TrimSpace(e.Notification)) == 0 || bytes.Equal(bytes.TrimSpace(e.Notification), []byte("null")) {
		return badRequest("MISSING_REQUIRED_PARAM", "notification is required")
	}
	if n := bytes.TrimSpace(e.Notification); n[0] != '{' {
		return badRequest("INVALID_NOTIFICATION", "notification must be a JSON object")
	}
	// The body was scanned whole already: this only fails for a key over payload.MaxKeyBytes.
	top, err := payload.Members(e.Notification)
	if err != nil {
		return badRequest("INVALID_NOTIFICATION", "notification: %s", clip(err.Error(), maxEchoedProblem))
	}
	// Nothing in a notification may say two things at once: decoders differ in which of two keys
	// they keep, and some match keys in any letter case (Go's encoding/json), so that an
	// "Agreement" beside the "agreement" the payload builder trims by conditionalParams reached
	// such a receiver untrimmed.
	seen := make(map[string]bool, len(top))
	for _, m := range top {
		k := payload.FoldKey(m.Name)
		if seen[k] {
			return badRequest("INVALID_NOTIFICATION", "notification.%s appears twice (in some letter case): receivers differ in which one they read", clip(m.Name, maxEchoedValue))
		}
		seen[k] = true
	}
	if fam == hooklinev1.FamilyEnvelope {
		// Delivered byte for byte: nothing in it may read as what hookline says of a notification
		// (its webhook, account and id, which receivers check and dedupe on; a producer of one
		// account wrote another's there).
		for _, m := range top {
			if payload.ReservedKey(m.Name) {
				return badRequest("INVALID_NOTIFICATION", "notification.%s: hookline sets the webhook, account and notification id of what it delivers; an envelope notification, delivered as it came, may not carry them", clip(m.Name, maxEchoedValue))
			}
		}
		var name string
		if err := json.Unmarshal(member(top, "event"), &name); err != nil || name != e.Event {
			return badRequest("INVALID_NOTIFICATION", "notification.event must be %q, as in the envelope dialect {\"event\": ..., \"data\": {...}}", e.Event)
		}
		data := bytes.TrimSpace(member(top, "data"))
		if len(data) == 0 || data[0] != '{' {
			return badRequest("INVALID_NOTIFICATION", "notification.data must be an object")
		}
		return checkEnvelopeID(e, data)
	}
	if raw := member(top, "event"); raw != nil {
		var name string
		if json.Unmarshal(raw, &name) != nil || name != e.Event {
			return badRequest("INVALID_NOTIFICATION", "notification.event must be %q, the event's name", e.Event)
		}
	}
	key := payload.ResourceKey(fam)
	raw := member(top, key)
	if d := bytes.TrimSpace(raw); len(d) == 0 || d[0] != '{' {
		return badRequest("INVALID_NOTIFICATION", "notification.%s must be an object: %s events carry their resource there", key, e.Event)
	}
	// The resource object's sections are trimmed by conditionalParams: two keys that a receiver
	// may read as one ("signedDocumentInfo", "SignedDocumentInfo") are refused, as above.
	// (An object Members cannot read is judged by the payload builder below, which says why.)
	fields, err := payload.Members(raw)
	if errors.Is(err, payload.ErrKeyTooLong) {
		return badRequest("INVALID_NOTIFICATION", "notification.%s: %s", key, clip(err.Error(), maxEchoedProblem))
	}
	clear(seen)
	for _, m := range fields {
		k := payload.FoldKey(m.Name)
		if seen[k] {
			return badRequest("INVALID_NOTIFICATION", "notification.%s.%s appears twice (in some letter case): receivers differ in which one they read", key, clip(m.Name, maxEchoedValue))
		}
		seen[k] = true
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
	if _, err := payload.Prepare(payload.Event{ID: e.ID, Event: e.Event, AccountID: e.AccountID, Notification: e.Notification}); err != nil {
		return badRequest("INVALID_NOTIFICATION", "notification.%s cannot be delivered: %s", key, strings.TrimPrefix(err.Error(), payload.ErrInvalidNotification.Error()+": "))
	}
	return nil
}

// checkEnvelopeID refuses an envelope-dialect event whose notification names another envelope
// than resource.id in data.basicInfo.envelopeId (seed 002), as an Acrobat event's resource object
// must carry resource.id: RESOURCE-scope webhooks are routed by resource.id, and the receiver reads
// the id in the body. Keys are matched in any letter case, as receivers such as Go's encoding/json
// read them, and every copy of a repeated key is checked, whichever one a receiver keeps. A data
// object the scanner's bounds refuse (more than payload.MaxMembers members, a key over
// payload.MaxKeyBytes) is not looked into: it is delivered as it came.
func checkEnvelopeID(e *Event, data []byte) error {
	fields, err := payload.Members(data)
	if err != nil {
		return nil
	}
	basicInfo, envelopeID := payload.FoldKey("basicInfo"), payload.FoldKey("envelopeId")
	for _, f := range fields {
		if payload.FoldKey(f.Name) != basicInfo {
			continue
		}
		if v := bytes.TrimSpace(f.Value); len(v) == 0 || v[0] != '{' {
			continue
		}
		info, err := payload.Members(f.Value)
		if err != nil {
			continue
		}
		for _, m := range info {
			if payload.FoldKey(m.Name) != envelopeID {
				continue
			}
			var id *string
			if err := json.Unmarshal(m.Value, &id); err != nil {
				return badRequest("INVALID_NOTIFICATION", "notification.data.basicInfo.envelopeId must be a string")
			}
			if id != nil && *id != e.Resource.ID {
				return badRequest("INVALID_NOTIFICATION", "notification.data.basicInfo.envelopeId %s differs from resource.id %s",
					quote(clip(*id, maxEchoedValue)), quote(e.Resource.ID))
			}
		}
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
