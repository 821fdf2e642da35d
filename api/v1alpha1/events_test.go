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

package v1alpha1

import "testing"

func TestSubscriptionMatches(t *testing.T) {
	cases := []struct {
		subs  []EventName
		event string
		want  bool
	}{
		{[]EventName{"AGREEMENT_ALL"}, "AGREEMENT_ACTION_COMPLETED", true},
		{[]EventName{"AGREEMENT_ALL"}, "WIDGET_CREATED", false},
		{[]EventName{"LIBRARY_DOCUMENT_ALL"}, "LIBRARY_DOCUMENT_CREATED", true},
		{[]EventName{"MEGASIGN_ALL"}, "MEGASIGN_RECALLED", true},
		{[]EventName{"WIDGET_ALL"}, "WIDGET_DISABLED", true},
		{[]EventName{"ENVELOPE_ALL"}, "envelopeExpired", true},
		{[]EventName{"ENVELOPE_ALL"}, "participantRejected", true},
		{[]EventName{"envelopeExpired"}, "envelopeCompleted", false},
		{[]EventName{"envelopeExpired"}, "envelopeExpired", true},
		{[]EventName{"AGREEMENT_CREATED"}, "AGREEMENT_CREATED", true},
		{[]EventName{"AGREEMENT_CREATED"}, "AGREEMENT_CREATED_X", false},
		// A future event of a family is covered by its wildcard.
		{[]EventName{"AGREEMENT_ALL"}, "AGREEMENT_SOMETHING_NEW", true},
	}
	for _, tc := range cases {
		if got := SubscriptionMatches(tc.subs, tc.event); got != tc.want {
			t.Errorf("SubscriptionMatches(%v, %q) = %v, want %v", tc.subs, tc.event, got, tc.want)
		}
	}
}

func TestFamilyOf(t *testing.T) {
	cases := map[string]Family{
		"AGREEMENT_CREATED":        FamilyAgreement,
		"LIBRARY_DOCUMENT_CREATED": FamilyLibraryDocument,
		"MEGASIGN_ALL":             FamilyMegaSign,
		"WIDGET_ENABLED":           FamilyWidget,
		"envelopeExpired":          FamilyEnvelope,
		"ENVELOPE_ALL":             FamilyEnvelope,
	}
	for name, want := range cases {
		if got, ok := FamilyOf(name); !ok || got != want {
			t.Errorf("FamilyOf(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
	if _, ok := FamilyOf("DOCUMENT_CREATED"); ok {
		t.Error("FamilyOf(DOCUMENT_CREATED) found a family")
	}
}

func TestEveryAcrobatEventIsKnown(t *testing.T) {
	for _, e := range AcrobatEvents {
		if !IsKnownSubscriptionEvent(e) {
			t.Errorf("%s is not known", e)
		}
		if _, ok := FamilyOf(e); !ok {
			t.Errorf("%s has no family", e)
		}
	}
}
