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

package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/samples"
)

// webhookKeys are the fields hookline puts first in every Acrobat body, in order.
var webhookKeys = []string{"webhookId", "webhookName", "webhookNotificationId", "webhookUrlInfo", "webhookScope", "accountId"}

var testWebhook = Webhook{
	UID:   "0b6f6b0e-3f55-4c8e-9d43-6f0f5c0b1a11",
	Name:  "crm-hook",
	URL:   "https://receiver.example.com/hooks?tenant=a&x=<1>",
	Scope: "ACCOUNT",
}

const testNotificationID = "3f1c2b9a-1d2e-5f00-8a00-0123456789ab"

// loadSample returns a sample as the dispatcher would hand it to Build.
func loadSample(t testing.TB, name string) Event {
	t.Helper()
	b, err := samples.Event(name)
	if err != nil {
		t.Fatal(err)
	}
	var in struct {
		ID           string          `json:"id"`
		Event        string          `json:"event"`
		AccountID    string          `json:"accountId"`
		Notification json.RawMessage `json:"notification"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	return Event{ID: in.ID, Event: in.Event, AccountID: in.AccountID, Notification: in.Notification}
}

// object walks a JSON object with encoding/json's tokenizer — an implementation independent of the
// builder's scanner — and returns its keys in order and its raw values.
func object(t testing.TB, raw []byte) ([]string, map[string]json.RawMessage) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object (%v): %.200s", err, raw)
	}
	var keys []string
	vals := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		k := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
		vals[k] = v
	}
	return keys, vals
}

// mustBuild builds and checks the invariants every Acrobat body must meet.
func mustBuild(t testing.TB, ev Event, wh Webhook, opt Options) Result {
	t.Helper()
	res, err := Build(ev, wh, testNotificationID, opt)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if !json.Valid(res.Body) {
		t.Fatalf("body is not valid JSON: %.500s", res.Body)
	}
	return res
}

// resourceOf returns the resource object's keys and values from a built body.
func resourceOf(t testing.TB, body []byte, key string) ([]string, map[string]json.RawMessage) {
	t.Helper()
	_, top := object(t, body)
	raw, ok := top[key]
	if !ok {
		t.Fatalf("body has no %q object", key)
	}
	return object(t, raw)
}

// familyShape describes one sample: which resource keys each flag adds. Listing keys explicitly
// (rather than deriving them from the builder's rules) keeps the test an independent statement of
// spec §6.2/6.3.
type familyShape struct {
	sample, object string
	flags          []string            // the family's flags, spec §1.3
	adds           map[string][]string // flag → keys it adds
}

var shapes = []familyShape{
	{
		sample: "agreement_workflow_completed", object: "agreement",
		flags: []string{FlagDetailedInfo, FlagParticipantsInfo, FlagDocumentsInfo, FlagSignedDocuments},
		adds:  agreementAdds,
	},
	{
		sample: "agreement_action_completed", object: "agreement",
		flags: []string{FlagDetailedInfo, FlagParticipantsInfo, FlagDocumentsInfo, FlagSignedDocuments},
		adds:  agreementAdds,
	},
	{
		sample: "widget_created", object: "widget",
		flags: []string{FlagDetailedInfo, FlagParticipantsInfo, FlagDocumentsInfo},
		adds: map[string][]string{
			FlagDetailedInfo:     {"authFailureInfo", "completionInfo", "ccs", "creatorEmail", "createdDate", "locale", "vaultingInfo"},
			FlagParticipantsInfo: {"participantSetsInfo"},
			FlagDocumentsInfo:    {"documentsInfo"},
		},
	},
	{
		sample: "megasign_created", object: "megaSign",
		flags: []string{FlagDetailedInfo},
		adds: map[string][]string{
			FlagDetailedInfo: {"ccs", "createdDate", "expirationTime", "externalId", "firstReminderDelay", "locale", "message", "postSignOption", "reminderFrequency", "senderEmail", "signatureType", "vaultingInfo"},
		},
	},
	{
		sample: "library_document_created", object: "libraryDocument",
		flags: []string{FlagDetailedInfo, FlagDocumentsInfo},
		adds: map[string][]string{
			FlagDetailedInfo:  {"creatorEmail", "createdDate", "sharingMode", "templateTypes"},
			FlagDocumentsInfo: {"documentsInfo"},
		},
	},
}

var agreementAdds = map[string][]string{
	FlagDetailedInfo: {"signatureType", "ccs", "documentVisibilityEnabled", "createdDate", "expirationTime", "externalId",
		"postSignOption", "firstReminderDelay", "locale", "message", "reminderFrequency", "senderEmail", "vaultingInfo",
		"workflowId", "createdGroupId"},
	FlagParticipantsInfo: {"participantSetsInfo"},
	FlagDocumentsInfo:    {"documentsInfo"},
	FlagSignedDocuments:  {"signedDocumentInfo"},
}

// paramsFor sets the named flags on the block of the given family only.
func paramsFor(fam hooklinev1.Family, flags ...string) *hooklinev1.ConditionalParams {
	on := func(f string) bool { return slices.Contains(flags, f) }
	p := &hooklinev1.ConditionalParams{}
	switch fam {
	case hooklinev1.FamilyAgreement:
		p.Agreement = &hooklinev1.AgreementConditionalParams{
			IncludeDetailedInfo: on(FlagDetailedInfo), IncludeParticipantsInfo: on(FlagParticipantsInfo),
			IncludeDocumentsInfo: on(FlagDocumentsInfo), IncludeSignedDocuments: on(FlagSignedDocuments),
		}
	case hooklinev1.FamilyWidget:
		p.Widget = &hooklinev1.WidgetConditionalParams{
			IncludeDetailedInfo: on(FlagDetailedInfo), IncludeParticipantsInfo: on(FlagParticipantsInfo),
			IncludeDocumentsInfo: on(FlagDocumentsInfo),
		}
	case hooklinev1.FamilyMegaSign:
		p.MegaSign = &hooklinev1.MegaSignConditionalParams{IncludeDetailedInfo: on(FlagDetailedInfo)}
	case hooklinev1.FamilyLibraryDocument:
		p.LibraryDocument = &hooklinev1.LibraryDocumentConditionalParams{
			IncludeDetailedInfo: on(FlagDetailedInfo), IncludeDocumentsInfo: on(FlagDocumentsInfo),
		}
	}
	return p
}

// allParams turns on every flag of every family.
func allParams() *hooklinev1.ConditionalParams {
	return &hooklinev1.ConditionalParams{
		Agreement:       &hooklinev1.AgreementConditionalParams{IncludeDetailedInfo: true, IncludeParticipantsInfo: true, IncludeDocumentsInfo: true, IncludeSignedDocuments: true},
		Widget:          &hooklinev1.WidgetConditionalParams{IncludeDetailedInfo: true, IncludeParticipantsInfo: true, IncludeDocumentsInfo: true},
		MegaSign:        &hooklinev1.MegaSignConditionalParams{IncludeDetailedInfo: true},
		LibraryDocument: &hooklinev1.LibraryDocumentConditionalParams{IncludeDetailedInfo: true, IncludeDocumentsInfo: true},
	}
}

func TestShapePerConditionalFlag(t *testing.T) {
	core := []string{"id", "name", "status"}
	for _, sh := range shapes {
		ev := loadSample(t, sh.sample)
		fam, _ := hooklinev1.FamilyOf(ev.Event)
		inKeys, inVals := resourceOf(t, ev.Notification, sh.object)
		inTop, _ := object(t, ev.Notification)

		// The lists must account for every key of the sample, or a key could vanish unnoticed.
		for _, k := range inKeys {
			known := slices.Contains(core, k)
			for _, ks := range sh.adds {
				known = known || slices.Contains(ks, k)
			}
			if !known {
				t.Fatalf("%s: sample key %q is in no flag's list", sh.sample, k)
			}
		}

		for mask := 0; mask < 1<<len(sh.flags); mask++ {
			var on []string
			for i, f := range sh.flags {
				if mask&(1<<i) != 0 {
					on = append(on, f)
				}
			}
			t.Run(fmt.Sprintf("%s/%s", sh.sample, strings.Join(append([]string{"core"}, on...), "+")), func(t *testing.T) {
				wh := testWebhook
				wh.Params = paramsFor(fam, on...)
				res := mustBuild(t, ev, wh, Options{})
				if res.Trimmed != nil {
					t.Fatalf("Trimmed = %v for a small event", res.Trimmed)
				}

				allowed := slices.Clone(core)
				for _, f := range on {
					if f == FlagSignedDocuments && ev.Event != "AGREEMENT_WORKFLOW_COMPLETED" {
						continue
					}
					allowed = append(allowed, sh.adds[f]...)
				}
				var want []string
				for _, k := range inKeys {
					if slices.Contains(allowed, k) {
						want = append(want, k)
					}
				}
				gotKeys, gotVals := resourceOf(t, res.Body, sh.object)
				if !slices.Equal(gotKeys, want) {
					t.Fatalf("resource keys\n got %v\nwant %v", gotKeys, want)
				}
				for _, k := range gotKeys {
					if !bytes.Equal(gotVals[k], inVals[k]) {
						t.Errorf("%s.%s changed: %s -> %s", sh.object, k, inVals[k], gotVals[k])
					}
				}

				gotTop, vals := object(t, res.Body)
				if wantTop := append(slices.Clone(webhookKeys), inTop...); !slices.Equal(gotTop, wantTop) {
					t.Fatalf("top-level keys\n got %v\nwant %v", gotTop, wantTop)
				}
				var acc string
				_ = json.Unmarshal(vals["accountId"], &acc)
				if acc != "acc-1" {
					t.Errorf("accountId = %q", acc)
				}
			})
		}
	}
}

func TestMinimalResourceWithoutParams(t *testing.T) {
	otherFamiliesOnly := allParams()
	for _, sh := range shapes {
		ev := loadSample(t, sh.sample)
		fam, _ := hooklinev1.FamilyOf(ev.Event)
		// Flags of other families must not leak into this one.
		other := *otherFamiliesOnly
		switch fam {
		case hooklinev1.FamilyAgreement:
			other.Agreement = nil
		case hooklinev1.FamilyWidget:
			other.Widget = nil
		case hooklinev1.FamilyMegaSign:
			other.MegaSign = nil
		case hooklinev1.FamilyLibraryDocument:
			other.LibraryDocument = nil
		}
		for name, p := range map[string]*hooklinev1.ConditionalParams{
			"nil": nil, "empty": {}, "all-false": paramsFor(fam), "other-families": &other,
		} {
			t.Run(sh.sample+"/"+name, func(t *testing.T) {
				wh := testWebhook
				wh.Params = p
				res := mustBuild(t, ev, wh, Options{})
				keys, _ := resourceOf(t, res.Body, sh.object)
				if !slices.Equal(keys, []string{"id", "name", "status"}) {
					t.Fatalf("resource keys = %v, want [id name status]", keys)
				}
			})
		}
	}

	// Absent core keys are omitted, not invented.
	ev := Event{ID: "e", Event: "AGREEMENT_CREATED", AccountID: "acc-1",
		Notification: json.RawMessage(`{"event":"AGREEMENT_CREATED","agreement":{"name":"n","locale":"en"}}`)}
	res := mustBuild(t, ev, testWebhook, Options{})
	if keys, _ := resourceOf(t, res.Body, "agreement"); !slices.Equal(keys, []string{"name"}) {
		t.Fatalf("resource keys = %v, want [name]", keys)
	}
}

func TestSignedDocumentsOnlyOnWorkflowCompleted(t *testing.T) {
	ev := loadSample(t, "agreement_workflow_completed")
	wh := testWebhook
	wh.Params = allParams()
	for _, event := range []string{"AGREEMENT_ACTION_COMPLETED", "AGREEMENT_CREATED", "AGREEMENT_SHARED"} {
		t.Run(event, func(t *testing.T) {
			e := ev
			e.Event = event
			res := mustBuild(t, e, wh, Options{})
			keys, _ := resourceOf(t, res.Body, "agreement")
			if slices.Contains(keys, "signedDocumentInfo") {
				t.Fatal("signedDocumentInfo sent for an event other than AGREEMENT_WORKFLOW_COMPLETED")
			}
			if !slices.Contains(keys, "participantSetsInfo") || !slices.Contains(keys, "documentsInfo") || !slices.Contains(keys, "locale") {
				t.Fatalf("other sections lost: %v", keys)
			}
			// Not honoured is not trimmed: nothing to report even under a tiny cap.
			small := mustBuild(t, e, wh, Options{MaxBytes: 1})
			if slices.Contains(small.Trimmed, FlagSignedDocuments) {
				t.Fatalf("Trimmed = %v lists a flag that was never honoured", small.Trimmed)
			}
		})
	}
	res := mustBuild(t, ev, wh, Options{})
	if keys, _ := resourceOf(t, res.Body, "agreement"); !slices.Contains(keys, "signedDocumentInfo") {
		t.Fatal("AGREEMENT_WORKFLOW_COMPLETED lost signedDocumentInfo")
	}
}

func TestWebhookFieldsOverrideProducer(t *testing.T) {
	ev := Event{ID: "evt-1", Event: "AGREEMENT_CREATED", AccountID: "acc-1", Notification: json.RawMessage(`{
		"webhookId": "forged", "event": "AGREEMENT_CREATED", "accountId": "acc-evil",
		"agreement": {"id": "a", "name": "n", "status": "OUT_FOR_SIGNATURE", "conditionalParametersTrimmed": ["forged"]},
		"webhookNotificationId": "dup", "webhookUrlInfo": {"url": "https://evil.example.com"},
		"webhookScope": "GROUP", "webhookName": "forged", "eventDate": "2026-11-25T10:00:00Z"}`)}
	res := mustBuild(t, ev, testWebhook, Options{})
	keys, vals := object(t, res.Body)
	if want := append(slices.Clone(webhookKeys), "event", "agreement", "eventDate"); !slices.Equal(keys, want) {
		t.Fatalf("keys = %v, want %v (each exactly once)", keys, want)
	}
	want := map[string]string{
		"webhookId":             `"` + testWebhook.UID + `"`,
		"webhookName":           `"crm-hook"`,
		"webhookNotificationId": `"` + testNotificationID + `"`,
		"webhookUrlInfo":        `{"url":"https://receiver.example.com/hooks?tenant=a&x=<1>"}`,
		"webhookScope":          `"ACCOUNT"`,
		"accountId":             `"acc-1"`,
	}
	for k, v := range want {
		if string(vals[k]) != v {
			t.Errorf("%s = %s, want %s", k, vals[k], v)
		}
	}
	if rk, _ := resourceOf(t, res.Body, "agreement"); slices.Contains(rk, TrimmedKey) {
		t.Error("a producer-supplied conditionalParametersTrimmed was passed through")
	}
}

func TestWebhookFieldsAreEscaped(t *testing.T) {
	wh := Webhook{UID: `u"1`, Name: "n\\a\nme", URL: "https://x.example.com/\u2028", Scope: "ACCOUNT"}
	ev := Event{Event: "AGREEMENT_CREATED", AccountID: "acc\x00", Notification: json.RawMessage(`{"agreement":{}}`)}
	res := mustBuild(t, ev, wh, Options{})
	var got struct {
		WebhookID      string `json:"webhookId"`
		WebhookName    string `json:"webhookName"`
		WebhookURLInfo struct {
			URL string `json:"url"`
		} `json:"webhookUrlInfo"`
		AccountID string `json:"accountId"`
	}
	if err := json.Unmarshal(res.Body, &got); err != nil {
		t.Fatal(err)
	}
	if got.WebhookID != wh.UID || got.WebhookName != wh.Name || got.WebhookURLInfo.URL != wh.URL || got.AccountID != ev.AccountID {
		t.Fatalf("round trip lost data: %+v", got)
	}
}

func TestEscapedKeysAreMatchedDecoded(t *testing.T) {
	ev := Event{Event: "AGREEMENT_CREATED", AccountID: "acc-1", Notification: json.RawMessage(
		`{"\u0061greement":{"\u0069d":"a","na\u006de":"n","status":"S","x\"y":1},"acc\u006FuntId":"evil"}`)}
	res := mustBuild(t, ev, testWebhook, Options{})
	keys, vals := object(t, res.Body)
	if !slices.Equal(keys, append(slices.Clone(webhookKeys), "agreement")) {
		t.Fatalf("keys = %v", keys)
	}
	if rk, _ := object(t, vals["agreement"]); !slices.Equal(rk, []string{"id", "name", "status"}) {
		t.Fatalf("resource keys = %v", rk)
	}
}

func TestEnvelopePassthrough(t *testing.T) {
	ev := loadSample(t, "envelope_expired")
	seed := samples.SeedEnvelopeNotification()
	for name, opt := range map[string]Options{"default": {}, "tiny-cap": {MaxBytes: 10}} {
		t.Run(name, func(t *testing.T) {
			wh := testWebhook
			wh.Params = allParams()
			res, err := Build(ev, wh, testNotificationID, opt)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(res.Body, seed) {
				t.Fatalf("body differs from the envelopeExpired notification as ingested:\n%s", res.Body)
			}
			if res.Trimmed != nil {
				t.Fatalf("Trimmed = %v", res.Trimmed)
			}
		})
	}
}

func TestInvalidNotifications(t *testing.T) {
	cases := []struct{ name, event, notification string }{
		{"unknown event", "SOMETHING_HAPPENED", `{"agreement":{}}`},
		{"wildcard", "AGREEMENT_ALL", `{"agreement":{}}`},
		{"empty", "AGREEMENT_CREATED", ``},
		{"not an object", "AGREEMENT_CREATED", `["agreement"]`},
		{"bad JSON", "AGREEMENT_CREATED", `{"agreement":{"id":"a",}}`},
		{"trailing data", "AGREEMENT_CREATED", `{"agreement":{}} {}`},
		{"no resource", "AGREEMENT_CREATED", `{"event":"AGREEMENT_CREATED","widget":{}}`},
		{"resource not an object", "AGREEMENT_CREATED", `{"agreement":"a"}`},
		{"duplicate resource", "AGREEMENT_CREATED", `{"agreement":{},"agreement":{}}`},
		{"megasign misspelt", "MEGASIGN_CREATED", `{"megasign":{}}`},
		{"control char", "WIDGET_CREATED", "{\"widget\":{\"name\":\"a\x01\"}}"},
		{"envelope bad JSON", "envelopeExpired", `{"event":"envelopeExpired",`},
		{"envelope empty", "envelopeExpired", ``},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(Event{Event: tc.event, Notification: json.RawMessage(tc.notification)}, testWebhook, testNotificationID, Options{})
			if !errors.Is(err, ErrInvalidNotification) {
				t.Fatalf("err = %v, want ErrInvalidNotification", err)
			}
		})
	}
}

// bigAgreement returns the workflow-completed sample with a signed PDF of docBytes base64 characters
// and, when partBytes > 0, a participant private message of that many bytes.
func bigAgreement(t testing.TB, docBytes, partBytes int) Event {
	t.Helper()
	ev := loadSample(t, "agreement_workflow_completed")
	_, vals := resourceOf(t, ev.Notification, "agreement")
	var sd struct{ Document string }
	if err := json.Unmarshal(vals["signedDocumentInfo"], &sd); err != nil {
		t.Fatal(err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	doc := bytes.Repeat([]byte(alphabet), docBytes/len(alphabet)+1)[:docBytes]
	n := bytes.Replace(ev.Notification, []byte(sd.Document), doc, 1)
	if partBytes > 0 {
		const empty = `"privateMessage": ""`
		if !bytes.Contains(n, []byte(empty)) {
			t.Fatal("sample has no participant private message to inflate")
		}
		msg := append(append([]byte(`"privateMessage": "`), bytes.Repeat([]byte("x"), partBytes)...), '"')
		n = bytes.Replace(n, []byte(empty), msg, 1)
	}
	ev.Notification = n
	return ev
}

func TestSizeCapTrimming(t *testing.T) {
	const mb = 1 << 20
	cases := []struct {
		name          string
		ev            Event
		opt           Options
		wantTrimmed   []string
		wantKeys      []string // resource keys that must remain
		wantGone      []string // resource keys that must be gone
		mustFit       bool
		minimalResult bool // only id, name, status and the trimmed list remain
	}{
		{
			name: "12MB signed document", ev: bigAgreement(t, 12*mb, 0),
			wantTrimmed: []string{FlagSignedDocuments},
			wantKeys:    []string{"participantSetsInfo", "documentsInfo", "locale", "createdGroupId"},
			wantGone:    []string{"signedDocumentInfo"},
			mustFit:     true,
		},
		{
			name: "signed document and participants both huge", ev: bigAgreement(t, 12*mb, 11*mb),
			wantTrimmed: []string{FlagSignedDocuments, FlagParticipantsInfo},
			wantKeys:    []string{"documentsInfo", "locale"},
			wantGone:    []string{"signedDocumentInfo", "participantSetsInfo"},
			mustFit:     true,
		},
		{
			name: "tiny cap drops everything", ev: loadSample(t, "agreement_workflow_completed"), opt: Options{MaxBytes: 300},
			wantTrimmed:   []string{FlagSignedDocuments, FlagParticipantsInfo, FlagDocumentsInfo, FlagDetailedInfo},
			minimalResult: true,
		},
		{
			name: "only contributing flags are listed", ev: loadSample(t, "agreement_action_completed"), opt: Options{MaxBytes: 300},
			wantTrimmed:   []string{FlagParticipantsInfo, FlagDocumentsInfo, FlagDetailedInfo},
			minimalResult: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wh := testWebhook
			wh.Params = allParams()
			res := mustBuild(t, tc.ev, wh, tc.opt)
			if !slices.Equal(res.Trimmed, tc.wantTrimmed) {
				t.Fatalf("Trimmed = %v, want %v", res.Trimmed, tc.wantTrimmed)
			}
			if tc.mustFit && len(res.Body) > DefaultMaxBytes {
				t.Fatalf("body is %d bytes, above %d", len(res.Body), DefaultMaxBytes)
			}
			keys, vals := resourceOf(t, res.Body, "agreement")
			if keys[len(keys)-1] != TrimmedKey {
				t.Fatalf("%s is not the resource object's last key: %v", TrimmedKey, keys)
			}
			var listed []string
			if err := json.Unmarshal(vals[TrimmedKey], &listed); err != nil || !slices.Equal(listed, tc.wantTrimmed) {
				t.Fatalf("%s = %s, want %v", TrimmedKey, vals[TrimmedKey], tc.wantTrimmed)
			}
			for _, k := range tc.wantKeys {
				if !slices.Contains(keys, k) {
					t.Errorf("%s was dropped", k)
				}
			}
			for _, k := range tc.wantGone {
				if slices.Contains(keys, k) {
					t.Errorf("%s was kept", k)
				}
			}
			if tc.minimalResult && !slices.Equal(keys, []string{"id", "name", "status", TrimmedKey}) {
				t.Errorf("resource keys = %v, want only id, name, status and %s", keys, TrimmedKey)
			}
			// Everything outside the resource object survives trimming.
			top, _ := object(t, res.Body)
			inTop, _ := object(t, tc.ev.Notification)
			if !slices.Equal(top, append(slices.Clone(webhookKeys), inTop...)) {
				t.Errorf("top-level keys = %v", top)
			}
		})
	}
}

// TestSizeCapBoundary pins the arithmetic sizing to the real output: a cap equal to the body's size
// keeps everything, one byte less trims.
func TestSizeCapBoundary(t *testing.T) {
	for _, name := range samples.Names() {
		ev := loadSample(t, name)
		if fam, _ := hooklinev1.FamilyOf(ev.Event); fam == hooklinev1.FamilyEnvelope {
			continue
		}
		t.Run(name, func(t *testing.T) {
			wh := testWebhook
			wh.Params = allParams()
			full := mustBuild(t, ev, wh, Options{MaxBytes: 1 << 30})
			at := mustBuild(t, ev, wh, Options{MaxBytes: len(full.Body)})
			if at.Trimmed != nil || !bytes.Equal(at.Body, full.Body) {
				t.Fatalf("cap == size %d trimmed %v", len(full.Body), at.Trimmed)
			}
			below := mustBuild(t, ev, wh, Options{MaxBytes: len(full.Body) - 1})
			if below.Trimmed == nil {
				t.Fatalf("cap == size-1 did not trim")
			}
			// Every cap yields a body within it, unless every contributing flag is already gone.
			minimal := mustBuild(t, ev, wh, Options{MaxBytes: 1})
			for limit := 1; limit <= len(full.Body)+1; limit += 7 {
				res := mustBuild(t, ev, wh, Options{MaxBytes: limit})
				if len(res.Body) > limit && !bytes.Equal(res.Body, minimal.Body) {
					t.Fatalf("cap %d: %d-byte body with only %v trimmed", limit, len(res.Body), res.Trimmed)
				}
			}
		})
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNotificationID(t *testing.T) {
	id := NotificationID("wh-1", "acc-1", "evt-1")
	if !uuidRE.MatchString(id) {
		t.Fatalf("%q is not a version-5-style UUID", id)
	}
	if again := NotificationID("wh-1", "acc-1", "evt-1"); again != id {
		t.Fatalf("not deterministic: %s vs %s", id, again)
	}
	// A fixed value guards against an accidental change of derivation, which would make receivers
	// see retries after an upgrade as new notifications.
	// (Computed independently: SHA-256 of "wh-1\x00acc-1\x00evt-1", first 16 bytes, v5/variant bits.)
	if want := "2d270ba0-d38e-565b-b45b-65093c408ecd"; id != want {
		t.Fatalf("NotificationID(wh-1, acc-1, evt-1) = %s, want %s", id, want)
	}
	seen := map[string]string{id: "base"}
	for name, other := range map[string]string{
		"other webhook": NotificationID("wh-2", "acc-1", "evt-1"),
		"other event":   NotificationID("wh-1", "acc-1", "evt-2"),
		"other account": NotificationID("wh-1", "acc-2", "evt-1"),
		"shifted parts": NotificationID("wh-1a", "cc-1", "evt-1"),
	} {
		if !uuidRE.MatchString(other) {
			t.Errorf("%s: %q is not UUID-shaped", name, other)
		}
		if prev, dup := seen[other]; dup {
			t.Errorf("%s collides with %s", name, prev)
		}
		seen[other] = name
	}
}

// smallAgreement is a compact ~1 KB AGREEMENT_ACTION_COMPLETED notification: the common case.
var smallAgreement = []byte(`{"event":"AGREEMENT_ACTION_COMPLETED","eventDate":"2026-11-25T10:00:00Z","eventResourceType":"agreement",` +
	`"participantRole":"SIGNER","actionType":"ESIGNED","participantUserId":"u-3","participantUserEmail":"carol.signer@example.com",` +
	`"actingUserId":"u-3","actingUserEmail":"carol.signer@example.com","actingUserIpAddress":"198.51.100.7",` +
	`"agreement":{"id":"CBJCHBCAABAA-agr-9","name":"Master services agreement","signatureType":"ESIGN","status":"OUT_FOR_SIGNATURE",` +
	`"createdDate":"2026-11-25T09:00:00Z","expirationTime":"2026-12-25T09:00:00Z","locale":"en_US",` +
	`"message":"Please sign the master services agreement.","senderEmail":"alice.sender@example.com","createdGroupId":"grp-7",` +
	`"participantSetsInfo":{"participantSets":[{"id":"ps-1","memberInfos":[{"id":"m-1","email":"carol.signer@example.com",` +
	`"name":"Carol Signer","status":"COMPLETED","userId":"u-3","securityOption":{"authenticationMethod":"NONE"}}],"order":1,` +
	`"role":"SIGNER","status":"COMPLETED"}]},"documentsInfo":{"documents":[{"id":"doc-1","label":"msa","numPages":3,` +
	`"mimeType":"application/pdf","name":"msa.pdf"}]}}}`)

func BenchmarkBuild(b *testing.B) {
	const mb = 1 << 20
	wh := testWebhook
	wh.Params = allParams()
	cases := []struct {
		name string
		ev   Event
		opt  Options
	}{
		{"agreement-1KB", Event{ID: "e", Event: "AGREEMENT_ACTION_COMPLETED", AccountID: "acc-1", Notification: smallAgreement}, Options{}},
		// Under the default cap the PDF is trimmed: the whole input is scanned, little is copied.
		{"agreement-25MB-signed/trimmed", bigAgreement(b, 25*mb, 0), Options{}},
		// With a cap above the size, the PDF is scanned and copied once.
		{"agreement-25MB-signed/untrimmed", bigAgreement(b, 25*mb, 0), Options{MaxBytes: 32 * mb}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.ev.Notification)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Build(tc.ev, wh, testNotificationID, tc.opt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkNotificationID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = NotificationID("0b6f6b0e-3f55-4c8e-9d43-6f0f5c0b1a11", "acc-1", "evt-agreement-action-completed-0001")
	}
}

// Go's encoding/json (like other decoders) matches keys case-insensitively, with Unicode folding,
// and keeps the last: a producer's "WEBHOOKID" or "webhooK\u212aid" (Kelvin sign) after ours would
// overwrite the webhook identity a receiver decodes. Such keys are dropped.
func TestCaseVariantsOfWebhookFieldsAreDropped(t *testing.T) {
	ev := Event{ID: "evt-1", Event: "AGREEMENT_CREATED", AccountID: "acc-1", Notification: json.RawMessage(`{
		"event": "AGREEMENT_CREATED", "agreement": {"id": "a", "name": "n", "status": "OUT_FOR_SIGNATURE"},
		"WEBHOOKID": "forged", "webhookurlinfo": {"url": "https://evil.example.com"},
		"AccountId": "acc-evil", "webhoo\u212aNotificationId": "forged", "webhookIdentity": "kept"}`)}
	res := mustBuild(t, ev, testWebhook, Options{})
	var got struct {
		WebhookID      string `json:"webhookId"`
		NotificationID string `json:"webhookNotificationId"`
		AccountID      string `json:"accountId"`
		URLInfo        struct {
			URL string `json:"url"`
		} `json:"webhookUrlInfo"`
		Identity string `json:"webhookIdentity"`
	}
	if err := json.Unmarshal(res.Body, &got); err != nil {
		t.Fatal(err)
	}
	if got.WebhookID != testWebhook.UID || got.NotificationID != testNotificationID || got.AccountID != "acc-1" ||
		got.URLInfo.URL != testWebhook.URL {
		t.Errorf("a case variant overrode a webhook field: %+v", got)
	}
	if got.Identity != "kept" {
		t.Errorf("an unrelated key was dropped: %+v", got)
	}
}

// A section key in another letter case ("SignedDocumentInfo") is that section: trimmed when the
// webhook did not ask for it, as a receiver decoding keys case-insensitively would read it as the
// section itself.
func TestCaseVariantsOfSectionKeysAreTheirSections(t *testing.T) {
	// Unicode case too: Go's encoding/json reads "documentſInfo" (U+017F) as "documentsInfo".
	ev := Event{ID: "evt-1", Event: "AGREEMENT_WORKFLOW_COMPLETED", AccountID: "acc-1", Notification: json.RawMessage(`{
		"agreement": {"id": "a", "name": "n", "status": "SIGNED", "SignedDocumentInfo": {"document": "PDF"},
		"ParticipantSetsInfo": [{"email": "x"}], "documentſInfo": [{"name": "d"}], "messageInfo": "detail"}}`)}
	wh := testWebhook
	wh.Params = paramsFor(hooklinev1.FamilyAgreement, FlagDetailedInfo)
	res := mustBuild(t, ev, wh, Options{})
	_, vals := object(t, res.Body)
	rk, _ := object(t, vals["agreement"])
	if slices.Contains(rk, "SignedDocumentInfo") || slices.Contains(rk, "ParticipantSetsInfo") || slices.Contains(rk, "documentſInfo") || !slices.Contains(rk, "messageInfo") {
		t.Errorf("resource keys = %v: want the detailed info only", rk)
	}
}

// Prepare parses into pooled scratch room: a Prepared must not share it, or events prepared later
// (concurrently, in the engine) would rewrite an earlier event's members.
func TestPreparedOutlivesLaterPrepares(t *testing.T) {
	wh := testWebhook
	wh.Params = allParams()
	first, err := Prepare(Event{ID: "e-1", Event: "AGREEMENT_ACTION_COMPLETED", AccountID: "acc-1", Notification: smallAgreement})
	if err != nil {
		t.Fatal(err)
	}
	want := string(first.Build(wh, testNotificationID, Options{}).Body)
	if !strings.Contains(want, `"name":"msa.pdf"`) || !strings.Contains(want, `"event":"AGREEMENT_ACTION_COMPLETED"`) {
		t.Fatalf("the body lost the notification's members: %s", want)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				other := bytes.ReplaceAll(smallAgreement, []byte("msa"), []byte(fmt.Sprintf("other-%d-%d", i, j)))
				if _, err := Prepare(Event{ID: "e-2", Event: "AGREEMENT_ACTION_COMPLETED", AccountID: "acc-1", Notification: other}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if got := string(first.Build(wh, testNotificationID, Options{}).Body); got != want {
		t.Fatalf("the first event's body changed after later events were prepared:\n got %s\nwant %s", got, want)
	}
}

// manyMembers is an object of n five-byte members, {"":0,"":0,…}: the most members a body of its
// size can hold.
func manyMembers(n int) []byte {
	return append(append([]byte{'{'}, bytes.TrimSuffix(bytes.Repeat([]byte(`"":0,`), n), []byte(","))...), '}')
}

// A producer's body of a million five-byte members is refused at the bound, as it is met: listing
// it cost 25 times its size in memory (80 bytes a member, then 40 more in Members' copy) before
// anything looked at the names. The notification and its resource object are bounded alike.
func TestMembersAreBounded(t *testing.T) {
	if _, err := Members(manyMembers(MaxMembers)); err != nil {
		t.Fatalf("%d members: %v", MaxMembers, err)
	}
	huge := manyMembers(1_000_000)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Members(huge)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("object has more than %d members at offset %d", MaxMembers, 1+5*MaxMembers)) {
		t.Fatalf("a million members: err = %v", err)
	}
	// What the bound allows (1,000 members, a few times over while the slice grows), not what the body holds.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Fatalf("refusing %d bytes of members allocated %d bytes", len(huge), alloc)
	}
	for name, notification := range map[string][]byte{
		"notification":  append([]byte(`{"agreement":{"id":"a"},`), manyMembers(MaxMembers + 1)[1:]...),
		"its agreement": append(append([]byte(`{"agreement":`), manyMembers(MaxMembers+1)...), '}'),
	} {
		if _, err := Prepare(Event{Event: "AGREEMENT_CREATED", Notification: notification}); !errors.Is(err, ErrInvalidNotification) ||
			!strings.Contains(err.Error(), "more than 1000 members") {
			t.Errorf("%s with %d members: err = %v", name, MaxMembers+1, err)
		}
	}
}

// FoldKey gives the keys strings.EqualFold takes for one the same value (Go's encoding/json
// matches keys so), and others different ones.
func TestFoldKeyMatchesEqualFold(t *testing.T) {
	for _, keys := range [][]string{{"data", "Data", "DATA"}, {"k", "K", "\u212a"}, {"s", "S", "\u017f"}, {"webhookId", "WEBHOOKID"}} {
		for _, k := range keys[1:] {
			if FoldKey(k) != FoldKey(keys[0]) {
				t.Errorf("FoldKey(%q) = %q, FoldKey(%q) = %q; want equal", k, FoldKey(k), keys[0], FoldKey(keys[0]))
			}
		}
	}
	for _, pair := range [][2]string{{"data", "date"}, {"event", "events"}, {"a", "\u00e1"}} {
		if FoldKey(pair[0]) == FoldKey(pair[1]) {
			t.Errorf("FoldKey(%q) = FoldKey(%q)", pair[0], pair[1])
		}
	}
}

// Members refuses a key longer than MaxKeyBytes as it is met, without decoding it; an event
// stored before that bound still builds, its long keys passed on as they were sent.
func TestLongKeys(t *testing.T) {
	body := []byte(`{"a":1,"` + strings.Repeat(`\\`, 1<<20) + `":0}`)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Members(body)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrKeyTooLong) || !strings.Contains(err.Error(), "at offset 7") {
		t.Fatalf("Members of a 2 MiB key: err = %v, want ErrKeyTooLong at offset 7", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<10 {
		t.Fatalf("refusing a 2 MiB key allocated %d bytes", alloc)
	}
	if _, err := Members([]byte(`{"` + strings.Repeat("k", MaxKeyBytes) + `":0}`)); err != nil {
		t.Fatalf("a key of MaxKeyBytes: %v", err)
	}

	long := `"` + strings.Repeat(`\u0041`, MaxKeyBytes) + `":{"x":1}`
	n := `{"agreement":{"id":"a",` + long + `,"name":"n"},` + long + `}`
	p, err := Prepare(Event{ID: "e-1", Event: "AGREEMENT_ACTION_COMPLETED", AccountID: "acc-1", Notification: json.RawMessage(n)})
	if err != nil {
		t.Fatalf("Prepare of a stored event with long keys: %v", err)
	}
	wh := testWebhook
	wh.Params = allParams()
	built := string(p.Build(wh, testNotificationID, Options{}).Body)
	if strings.Count(built, long) != 2 || !strings.Contains(built, `"name":"n"`) {
		t.Fatalf("the long keys were not passed on as sent: %.300s", built)
	}
}
