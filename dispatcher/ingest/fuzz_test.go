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

package ingest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/dispatcher/payload"
	"github.com/hookline/hookline/internal/samples"
)

// maxErrorMessage bounds an error message. The longest legitimate one quotes a 256-byte field and
// an event name; a message that grows with the body would turn a 25 MiB request into a larger
// response (and log line), so every echo of the input must be clipped.
const maxErrorMessage = 2048

// errorCode is the shape of every ingest error code (MISSING_REQUIRED_PARAM, ...), as clients
// switch on it.
var errorCode = regexp.MustCompile(`^[A-Z][A-Z_]*[A-Z]$`)

// familyResourceType is written out here rather than taken from the package so that a change to
// the mapping in event.go has to be made twice, on purpose.
var familyResourceType = map[hooklinev1.Family]string{
	hooklinev1.FamilyAgreement:       "AGREEMENT",
	hooklinev1.FamilyWidget:          "WIDGET",
	hooklinev1.FamilyMegaSign:        "MEGASIGN",
	hooklinev1.FamilyLibraryDocument: "LIBRARY_DOCUMENT",
	hooklinev1.FamilyEnvelope:        "ENVELOPE",
}

var familyResourceKey = map[hooklinev1.Family]string{
	hooklinev1.FamilyAgreement:       "agreement",
	hooklinev1.FamilyWidget:          "widget",
	hooklinev1.FamilyMegaSign:        "megaSign",
	hooklinev1.FamilyLibraryDocument: "libraryDocument",
}

// fuzzSeeds returns the bodies every run starts from: each sample, the bare envelopeExpired
// notification of internal/samples (not an event: it must be rejected) and the same notification
// wrapped in a minimal event, then malformed variants that reach each of Parse's checks.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	var seeds [][]byte
	for _, name := range samples.Names() {
		b, err := samples.Event(name)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	seed002 := samples.SeedEnvelopeNotification()
	envelope := func(head string) []byte {
		return []byte(`{` + head + `"notification":` + string(seed002) + `}`)
	}
	const agrHead = `{"id":"e1","event":"AGREEMENT_CREATED","accountId":"acc-1","resource":{"type":"AGREEMENT","id":"a1"},`
	// long holds an escaped control character, a multi-byte rune and an invalid byte, each of
	// which an error message must render printably.
	long := strings.Repeat(`\u0001é`+"\xff", 300)
	seeds = append(seeds,
		seed002,
		envelope(`"id":"seed-002","event":"envelopeExpired","accountId":"acc-1","resource":{"type":"ENVELOPE","id":"2229bf86-fc00-40be-986a-b98e5c047d22"},`),
		envelope(`"id":"seed-002","event":"envelopeCompleted","accountId":"acc-1","resource":{"type":"ENVELOPE","id":"2229bf86-fc00-40be-986a-b98e5c047d22"},`),
		envelope(`"id":"seed-002","event":"ENVELOPE_ALL","accountId":"acc-1","resource":{"type":"ENVELOPE","id":"2229bf86-fc00-40be-986a-b98e5c047d22"},`),
		nil,
		[]byte(`null`),
		[]byte(`{}`),
		[]byte(`[]`),
		[]byte("\ufeff{}"),
		[]byte(agrHead+`"notification":{"agreement":{"id":"a1"}}}`),
		[]byte(agrHead+`"notification":{"agreement":{"id":"a1"}}} {}`),
		[]byte(agrHead+`"notification":{"agreement":{"id":"a1"},"agreement":{}}}`),
		[]byte(agrHead+`"notification":{"\u0061greement":{"id":"a1"}}}`),
		[]byte(agrHead+`"notification":{"event":"AGREEMENT_SHARED","agreement":{"id":"a1"}}}`),
		[]byte(agrHead+`"notification":{"agreement":{"id":7}}}`),
		[]byte(agrHead+`"notification":{"agreement":[]}}`),
		[]byte(agrHead+`"notification":"{}"}`),
		[]byte(agrHead+`"notification":{"agreement":{"id":"a1","x":"\ud800"}}}`),
		[]byte(agrHead+`"occurredAt":"2026-02-30T25:00:00Z","notification":{"agreement":{}}}`),
		[]byte(agrHead+`"ID":"e2","Notification":{"agreement":{}}}`),
		[]byte(agrHead+`"groupId":"`+strings.Repeat("g", 257)+`","notification":{"agreement":{}}}`),
		[]byte(`{"id":" ","event":"AGREEMENT_ALL","accountId":"\u0000","resource":{"type":"agreement","id":"a"},"notification":{}}`),
		[]byte(`{"id":"e","event":"WIDGET_CREATED","accountId":"a","resource":{"type":"AGREEMENT","id":"a"},"notification":{"widget":{}}}`),
		[]byte(`{"id":1,"event":true,"accountId":null,"resource":[],"notification":{}}`),
		[]byte(`{"id":"e","notification":{"agreement":`+strings.Repeat("[", 10001)+`}}`),
		// Regression seeds: both fields used to be echoed whole in the error message.
		[]byte(`{"`+long+`":1}`),
		[]byte(agrHead+`"notification":{"agreement":{"id":"`+long+`"}}}`),
		// Ids that a trimming reader would take for "e1", and invalid UTF-8 outside any string.
		[]byte(strings.Replace(agrHead, `"e1"`, `"e1 "`, 1)+`"notification":{"agreement":{"id":"a1"}}}`),
		[]byte(strings.Replace(agrHead, `"e1"`, `"e1\n"`, 1)+`"notification":{"agreement":{"id":"a1"}}}`),
		[]byte(agrHead+`"notification":{"agreement":{"id":"a1"}}}`+"\xff"),
		[]byte(agrHead+`"notification":{"agreement":{"id":"a1","name":"caf`+"\xe9"+`"}}}`),
	)
	return seeds
}

// FuzzParse checks that Parse, whatever the body, either returns an event that keeps every
// promise Parse makes to the dispatcher, or a 400 *ingest.Error fit for the JSON error response.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		ev, err := ingest.Parse(body)
		if !bytes.Equal(body, orig) {
			t.Fatal("Parse modified its input")
		}
		ev2, err2 := ingest.Parse(body)
		if !reflect.DeepEqual(ev, ev2) || !reflect.DeepEqual(err, err2) {
			t.Fatalf("Parse is not deterministic:\n%+v, %v\n%+v, %v", ev, err, ev2, err2)
		}
		// JSON text is UTF-8: a body that is not is refused as such, whatever else is wrong with it,
		// and an accepted event never carries an invalid byte to a receiver.
		if !utf8.Valid(body) {
			var e *ingest.Error
			if !errors.As(err, &e) || e.Code != "INVALID_ENCODING" {
				t.Fatalf("body with invalid UTF-8: Parse = %v, want INVALID_ENCODING", err)
			}
		}
		if err != nil {
			if ev != nil {
				t.Fatalf("Parse returned an event along with error %v", err)
			}
			checkError(t, err)
			return
		}
		checkEvent(t, ev)
		// The handler stores the raw body and the delivery engine, after a restart, reads it back
		// with plain json.Unmarshal: both readings must be the same event.
		stored := &ingest.Event{}
		if err := json.Unmarshal(body, stored); err != nil {
			t.Fatalf("stored body does not decode again: %v", err)
		}
		if !reflect.DeepEqual(stored, ev) {
			t.Fatalf("stored body decodes to another event:\nparsed %+v\nstored %+v", ev, stored)
		}
	})
}

// checkError asserts what the handler needs to answer with err: an *ingest.Error with a 4xx status,
// a stable code and a short, printable message.
func checkError(t *testing.T, err error) {
	t.Helper()
	var e *ingest.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *ingest.Error", err, err)
	}
	if e.Status < 400 || e.Status > 499 {
		t.Fatalf("status %d is not a client error: %v", e.Status, e)
	}
	if !errorCode.MatchString(e.Code) {
		t.Fatalf("code %q is not an upper-case identifier", e.Code)
	}
	if strings.TrimSpace(e.Message) == "" {
		t.Fatalf("empty message for code %s", e.Code)
	}
	if len(e.Message) > maxErrorMessage {
		t.Fatalf("message of %d bytes (max %d): %.200q...", len(e.Message), maxErrorMessage, e.Message)
	}
	// Valid UTF-8 without control characters, so the JSON response and any log line show exactly
	// what was written, on one line.
	if !utf8.ValidString(e.Message) {
		t.Fatalf("message is not valid UTF-8: %q", e.Message)
	}
	if i := strings.IndexFunc(e.Message, unicode.IsControl); i >= 0 {
		t.Fatalf("message holds a control character at %d: %q", i, e.Message)
	}
	out, jerr := json.Marshal(e)
	if jerr != nil {
		t.Fatalf("error does not encode as JSON: %v", jerr)
	}
	var back ingest.Error
	if jerr := json.Unmarshal(out, &back); jerr != nil || back.Code != e.Code || back.Message != e.Message {
		t.Fatalf("error JSON %s does not round-trip (%v)", out, jerr)
	}
}

// checkEvent asserts the invariants Parse promises for an accepted event.
func checkEvent(t *testing.T, ev *ingest.Event) {
	t.Helper()
	if ev == nil {
		t.Fatal("Parse returned neither an event nor an error")
	}
	for _, f := range []struct {
		name, value string
		required    bool
	}{
		{"id", ev.ID, true}, {"event", ev.Event, true}, {"accountId", ev.AccountID, true},
		{"resource.type", ev.Resource.Type, true}, {"resource.id", ev.Resource.ID, true},
		{"groupId", ev.GroupID, false}, {"initiator.userId", ev.Initiator.UserID, false},
		{"initiator.email", ev.Initiator.Email, false}, {"resource.parentType", ev.Resource.ParentType, false},
		{"resource.parentId", ev.Resource.ParentID, false},
	} {
		if f.required && strings.TrimSpace(f.value) == "" {
			t.Fatalf("accepted an event with a blank %s", f.name)
		}
		if len(f.value) > 256 {
			t.Fatalf("accepted a %s of %d bytes", f.name, len(f.value))
		}
		if !utf8.ValidString(f.value) {
			t.Fatalf("accepted a %s that is not valid UTF-8: %q", f.name, f.value)
		}
	}
	// id and accountId make the idempotency key: nothing invisible may tell two keys apart.
	for _, v := range []string{ev.ID, ev.AccountID} {
		if strings.IndexFunc(v, unicode.IsControl) >= 0 || strings.TrimFunc(v, unicode.IsSpace) != v {
			t.Fatalf("accepted id or accountId %q with control characters or outer white space", v)
		}
	}
	if !utf8.Valid(ev.Notification) {
		t.Fatalf("accepted a notification that is not valid UTF-8: %.200q", ev.Notification)
	}
	if ev.OccurredAt != "" {
		if _, err := time.Parse(time.RFC3339Nano, ev.OccurredAt); err != nil {
			t.Fatalf("accepted occurredAt %q: %v", ev.OccurredAt, err)
		}
	}
	fam, ok := hooklinev1.FamilyOf(ev.Event)
	if !ok || !hooklinev1.IsKnownSubscriptionEvent(ev.Event) || hooklinev1.IsWildcard(ev.Event) {
		t.Fatalf("accepted event name %q", ev.Event)
	}
	if len(ev.Event) > ingest.MaxEnvelopeEventLength {
		t.Fatalf("accepted an event name of %d bytes", len(ev.Event))
	}
	if ev.Family() != fam {
		t.Fatalf("Family() = %q, want %q", ev.Family(), fam)
	}
	if ev.Resource.Type != familyResourceType[fam] {
		t.Fatalf("accepted resource.type %q for %s", ev.Resource.Type, ev.Event)
	}
	n := bytes.TrimSpace(ev.Notification)
	if len(n) == 0 || n[0] != '{' || !json.Valid(n) {
		t.Fatalf("accepted a notification that is not a JSON object: %.200q", ev.Notification)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(n, &top); err != nil {
		t.Fatalf("notification does not decode: %v", err)
	}
	var name string
	if fam == hooklinev1.FamilyEnvelope {
		if json.Unmarshal(top["event"], &name) != nil || name != ev.Event {
			t.Fatalf("envelope notification.event is %s, want %q", top["event"], ev.Event)
		}
		if d := bytes.TrimSpace(top["data"]); len(d) == 0 || d[0] != '{' {
			t.Fatalf("envelope notification.data is %.80s", d)
		}
		// The envelope the body names, as a receiver decoding it with encoding/json reads it, is
		// resource.id (seed 002's data.basicInfo.envelopeId). Parse does not look into a data
		// object beyond payload.Members' bounds.
		var data struct {
			BasicInfo json.RawMessage `json:"basicInfo"`
		}
		var info struct {
			EnvelopeID json.RawMessage `json:"envelopeId"`
		}
		if _, err := payload.Members(top["data"]); err == nil && json.Unmarshal(top["data"], &data) == nil &&
			bytes.HasPrefix(data.BasicInfo, []byte("{")) && json.Unmarshal(data.BasicInfo, &info) == nil {
			if _, err := payload.Members(data.BasicInfo); err == nil && info.EnvelopeID != nil {
				raw := info.EnvelopeID
				var id *string
				if json.Unmarshal(raw, &id) != nil || (id != nil && *id != ev.Resource.ID) {
					t.Fatalf("notification.data.basicInfo.envelopeId %s differs from resource.id %q", raw, ev.Resource.ID)
				}
			}
		}
	} else {
		if raw, ok := top["event"]; ok && (json.Unmarshal(raw, &name) != nil || name != ev.Event) {
			t.Fatalf("notification.event is %s, want %q", raw, ev.Event)
		}
		key := familyResourceKey[fam]
		var res map[string]json.RawMessage
		if err := json.Unmarshal(top[key], &res); err != nil || res == nil {
			t.Fatalf("notification.%s is not an object: %.80s", key, top[key])
		}
		if raw, ok := res["id"]; ok {
			var id string
			if json.Unmarshal(raw, &id) != nil || (id != "" && id != ev.Resource.ID) {
				t.Fatalf("notification.%s.id %s differs from resource.id %q", key, raw, ev.Resource.ID)
			}
		}
	}
	// An accepted event must be deliverable to every webhook: with every conditional section asked
	// for and a cap small enough to force trimming, as well as with none.
	all := &hooklinev1.ConditionalParams{
		Agreement:       &hooklinev1.AgreementConditionalParams{IncludeDetailedInfo: true, IncludeParticipantsInfo: true, IncludeDocumentsInfo: true, IncludeSignedDocuments: true},
		Widget:          &hooklinev1.WidgetConditionalParams{IncludeDetailedInfo: true, IncludeParticipantsInfo: true, IncludeDocumentsInfo: true},
		MegaSign:        &hooklinev1.MegaSignConditionalParams{IncludeDetailedInfo: true},
		LibraryDocument: &hooklinev1.LibraryDocumentConditionalParams{IncludeDetailedInfo: true, IncludeDocumentsInfo: true},
	}
	pe := payload.Event{ID: ev.ID, Event: ev.Event, AccountID: ev.AccountID, Notification: ev.Notification}
	for _, p := range []*hooklinev1.ConditionalParams{nil, all} {
		wh := payload.Webhook{UID: "uid", Name: "name", URL: "https://r.example.com/", Scope: "ACCOUNT", Params: p}
		res, err := payload.Build(pe, wh, "nid", payload.Options{MaxBytes: 1})
		if err != nil {
			t.Fatalf("accepted event cannot be delivered: %v", err)
		}
		if !json.Valid(res.Body) {
			t.Fatalf("accepted event builds an invalid body: %.200q", res.Body)
		}
	}
}
