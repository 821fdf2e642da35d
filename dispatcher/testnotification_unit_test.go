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

package dispatcher

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/route"
	"github.com/hookline/hookline/internal/deliveries"
)

// A USER webhook's test notification is an event its user initiated: the initiator names the
// webhook's user, for every family (USER webhooks are routed by it).
func TestTestEventOfAUserWebhookIsInitiatedByItsUser(t *testing.T) {
	for _, name := range []string{"AGREEMENT_ACTION_COMPLETED", "AGREEMENT_WORKFLOW_COMPLETED", "AGREEMENT_ALL", "WIDGET_CREATED", "ENVELOPE_ALL"} {
		t.Run(name, func(t *testing.T) {
			tg := &route.Target{UID: "uid-1", AccountID: "acc-7", Scope: hooklinev1.ScopeUser, UserID: "u-7",
				Events: []hooklinev1.EventName{hooklinev1.EventName(name)}}
			raw, ev, err := testEvent(name, tg, deliveries.TestEventPrefix+"x", time.Now())
			if err != nil {
				t.Fatalf("testEvent(%s) = %v", name, err)
			}
			if ev.Initiator.UserID != "u-7" {
				t.Errorf("initiator.userId = %q, want the webhook's user u-7 (event %s)", ev.Initiator.UserID, raw)
			}
		})
	}
}

// A RESOURCE webhook's test notification is about its resource: resource.id and the id the
// notification names it by (the resource object's, or an envelope's data.basicInfo.envelopeId)
// are both the webhook's, which ingest requires of every event.
func TestTestEventOfAResourceWebhookIsAboutItsResource(t *testing.T) {
	for _, tc := range []struct {
		event string
		typ   hooklinev1.ResourceType
		path  []string
	}{
		{"AGREEMENT_ACTION_COMPLETED", hooklinev1.ResourceAgreement, []string{"agreement", "id"}},
		{"WIDGET_CREATED", hooklinev1.ResourceWidget, []string{"widget", "id"}},
		{"MEGASIGN_CREATED", hooklinev1.ResourceMegaSign, []string{"megaSign", "id"}},
		{"LIBRARY_DOCUMENT_CREATED", hooklinev1.ResourceLibraryDocument, []string{"libraryDocument", "id"}},
		{"envelopeExpired", hooklinev1.ResourceEnvelope, []string{"data", "basicInfo", "envelopeId"}},
	} {
		t.Run(tc.event, func(t *testing.T) {
			tg := &route.Target{UID: "uid-1", AccountID: "acc-7", Scope: hooklinev1.ScopeResource,
				Resource: &hooklinev1.WebhookResource{Type: tc.typ, ID: "res-7"}, Events: []hooklinev1.EventName{hooklinev1.EventName(tc.event)}}
			_, ev, err := testEvent(tc.event, tg, deliveries.TestEventPrefix+"x", time.Now())
			if err != nil {
				t.Fatalf("testEvent(%s) = %v", tc.event, err)
			}
			if ev.Resource.ID != "res-7" {
				t.Errorf("resource.id = %q, want the webhook's res-7", ev.Resource.ID)
			}
			var v any
			if err := json.Unmarshal(ev.Notification, &v); err != nil {
				t.Fatal(err)
			}
			for _, k := range tc.path {
				v = v.(map[string]any)[k]
			}
			if v != "res-7" {
				t.Errorf("notification.%s = %v, want res-7", strings.Join(tc.path, "."), v)
			}
		})
	}
}
