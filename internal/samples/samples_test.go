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

package samples

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// ingest mirrors the fields of the ingest API (POST /v1/events) the tests rely on; notification stays raw so its bytes can
// be compared with the seed.
type ingest struct {
	ID           string          `json:"id"`
	Event        string          `json:"event"`
	OccurredAt   string          `json:"occurredAt"`
	AccountID    string          `json:"accountId"`
	Resource     *resourceRef    `json:"resource"`
	Notification json.RawMessage `json:"notification"`
}

type resourceRef struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

func TestNamesCoverEveryFamily(t *testing.T) {
	got := Names()
	want := []string{
		"agreement_action_completed",
		"agreement_workflow_completed",
		"envelope_expired",
		"library_document_created",
		"megasign_created",
		"widget_created",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	got[0] = "mutated"
	if Names()[0] == "mutated" {
		t.Fatal("Names() exposes its internal slice")
	}
}

func TestSamplesAreValidIngestEvents(t *testing.T) {
	ids := map[string]string{}
	families := map[hooklinev1.Family]bool{}
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			b, err := Event(name)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(b) {
				t.Fatal("not valid JSON")
			}
			var ev ingest
			if err := json.Unmarshal(b, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.ID == "" || ev.Event == "" || ev.AccountID == "" || ev.OccurredAt == "" || len(ev.Notification) == 0 {
				t.Fatalf("missing id/event/accountId/occurredAt/notification: %+v", ev)
			}
			if ev.AccountID != "acc-1" {
				t.Errorf("accountId = %q, want acc-1", ev.AccountID)
			}
			if other, dup := ids[ev.ID]; dup {
				t.Errorf("id %q also used by %s", ev.ID, other)
			}
			ids[ev.ID] = name
			if !hooklinev1.IsKnownSubscriptionEvent(ev.Event) || hooklinev1.IsWildcard(ev.Event) {
				t.Fatalf("event %q is not a concrete known event", ev.Event)
			}
			fam, ok := hooklinev1.FamilyOf(ev.Event)
			if !ok {
				t.Fatalf("event %q has no family", ev.Event)
			}
			families[fam] = true
			if ev.Resource == nil || ev.Resource.Type != string(fam) || ev.Resource.ID == "" {
				t.Fatalf("resource %+v does not match family %s", ev.Resource, fam)
			}
			var n map[string]json.RawMessage
			if err := json.Unmarshal(ev.Notification, &n); err != nil {
				t.Fatalf("notification is not an object: %v", err)
			}
			var inner string
			if err := json.Unmarshal(n["event"], &inner); err != nil || inner != ev.Event {
				t.Errorf("notification.event = %s, want %q", n["event"], ev.Event)
			}
		})
	}
	for _, f := range []hooklinev1.Family{hooklinev1.FamilyAgreement, hooklinev1.FamilyWidget, hooklinev1.FamilyMegaSign, hooklinev1.FamilyLibraryDocument, hooklinev1.FamilyEnvelope} {
		if !families[f] {
			t.Errorf("no sample for family %s", f)
		}
	}
}

// TestAcrobatSamplesCarryEverySection guards the samples' purpose: the payload builder's tests
// filter these sections, so a sample silently missing one would make those tests vacuous.
func TestAcrobatSamplesCarryEverySection(t *testing.T) {
	cases := []struct {
		sample, object string
		keys           []string
	}{
		{"agreement_workflow_completed", "agreement", []string{"id", "name", "status", "signatureType", "ccs", "createdDate", "expirationTime", "externalId", "locale", "message", "senderEmail", "vaultingInfo", "workflowId", "createdGroupId", "participantSetsInfo", "documentsInfo", "signedDocumentInfo"}},
		{"agreement_action_completed", "agreement", []string{"id", "name", "status", "signatureType", "participantSetsInfo", "documentsInfo"}},
		{"widget_created", "widget", []string{"id", "name", "status", "creatorEmail", "createdDate", "participantSetsInfo", "documentsInfo"}},
		{"megasign_created", "megaSign", []string{"id", "name", "status", "ccs", "createdDate", "senderEmail"}},
		{"library_document_created", "libraryDocument", []string{"id", "name", "status", "creatorEmail", "sharingMode", "templateTypes", "documentsInfo"}},
	}
	for _, tc := range cases {
		t.Run(tc.sample, func(t *testing.T) {
			b, err := Event(tc.sample)
			if err != nil {
				t.Fatal(err)
			}
			var raw struct {
				Notification map[string]json.RawMessage `json:"notification"`
			}
			if err := json.Unmarshal(b, &raw); err != nil {
				t.Fatal(err)
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(raw.Notification[tc.object], &obj); err != nil {
				t.Fatalf("notification.%s: %v", tc.object, err)
			}
			for _, k := range tc.keys {
				if _, ok := obj[k]; !ok {
					t.Errorf("notification.%s lacks %q", tc.object, k)
				}
			}
		})
	}
}

func TestEnvelopeSampleWrapsSeedByteForByte(t *testing.T) {
	b, err := Event("envelope_expired")
	if err != nil {
		t.Fatal(err)
	}
	var ev ingest
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	seed := SeedEnvelopeNotification()
	if !bytes.Equal(ev.Notification, seed) {
		t.Fatalf("notification differs from the embedded envelopeExpired notification:\n%s\n---\n%s", ev.Notification, seed)
	}
	if !bytes.HasPrefix(seed, []byte("{\n\"event\": \"envelopeExpired\",\n\"data\": {\n")) || !bytes.HasSuffix(seed, []byte("\n}\n}")) {
		t.Fatalf("seed notification lost its original layout: %q...", seed[:40])
	}
	for _, s := range []string{"四川工商测试", "[email protected]"} {
		if !bytes.Contains(seed, []byte(s)) {
			t.Errorf("seed notification lacks %q", s)
		}
	}
	if ev.Resource.ID != "2229bf86-fc00-40be-986a-b98e5c047d22" {
		t.Errorf("resource id = %q", ev.Resource.ID)
	}
}

func TestEventRejectsUnknownNames(t *testing.T) {
	for _, name := range []string{"", "nope", "seed002_envelope_expired_notification", "../samples", "events/widget_created"} {
		if _, err := Event(name); err == nil {
			t.Errorf("Event(%q) succeeded", name)
		}
	}
}

func TestEventReturnsACopy(t *testing.T) {
	a, _ := Event("widget_created")
	a[0] = 'X'
	b, _ := Event("widget_created")
	if b[0] != '{' {
		t.Fatal("Event shares its bytes between callers")
	}
}

func TestForEvent(t *testing.T) {
	for name, want := range map[string][2]string{
		"AGREEMENT_ALL":        {"agreement_action_completed", "AGREEMENT_ACTION_COMPLETED"},
		"AGREEMENT_CREATED":    {"agreement_action_completed", "AGREEMENT_CREATED"},
		"WIDGET_ALL":           {"widget_created", "WIDGET_CREATED"},
		"ENVELOPE_ALL":         {"envelope_expired", "envelopeExpired"},
		"envelopeCompleted":    {"envelope_expired", "envelopeCompleted"},
		"LIBRARY_DOCUMENT_ALL": {"library_document_created", "LIBRARY_DOCUMENT_CREATED"},
		"MEGASIGN_RECALLED":    {"megasign_created", "MEGASIGN_RECALLED"},
	} {
		sample, concrete, ok := ForEvent(name)
		if !ok || sample != want[0] || concrete != want[1] {
			t.Errorf("ForEvent(%s) = %s, %s, %v; want %v", name, sample, concrete, ok, want)
		}
	}
	if _, _, ok := ForEvent("NOT_AN_EVENT"); ok {
		t.Error("ForEvent(NOT_AN_EVENT) found a sample")
	}
}
