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

// Package event is an accepted event as the dispatcher decodes it: the one type that ingest
// validates and stores and that delivery reads back, kept in a package of its own so that delivery
// does not depend on the HTTP ingest layer (which imports it in turn).
package event

import (
	"encoding/json"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// Initiator is the user who initiated the event's resource: for an agreement, its sender. It is not
// the user who acted (actingUser*, participantUser*: a signer who signed, say), nor Acrobat Sign's
// initiatingUser* (an account-sharing sharee acting for the sender). USER-scope webhooks are routed
// by its userId, so that, as in the seeds' tables, the sender's USER webhook fires for every event
// of the agreement and a signer's own USER webhook does not.
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

// Event is an ingested event: the body of POST /v1/events (docs/architecture.md).
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

// Family returns the event's family; ingest.Parse guarantees it has one.
func (e *Event) Family() hooklinev1.Family {
	f, _ := hooklinev1.FamilyOf(e.Event)
	return f
}

// rawAlias is json.RawMessage that keeps the decoded bytes as a slice of the input instead of a
// copy: a notification can be 25 MB, and the body it comes from is kept (stored, then freed) anyway.
type rawAlias []byte

// UnmarshalJSON keeps data without copying it; safe because Decode's input is never modified.
func (r *rawAlias) UnmarshalJSON(data []byte) error {
	*r = data
	return nil
}

// wireEvent is Event as decoded: Notification aliases the body.
type wireEvent struct {
	ID           string    `json:"id"`
	Event        string    `json:"event"`
	OccurredAt   string    `json:"occurredAt,omitempty"`
	AccountID    string    `json:"accountId"`
	GroupID      string    `json:"groupId,omitempty"`
	Initiator    Initiator `json:"initiator"`
	Resource     Resource  `json:"resource"`
	Notification rawAlias  `json:"notification"`
}

// Decode reads a stored event body (one ingest.Parse accepted) without copying its notification, which
// aliases body: body must not be modified while the event is in use.
func Decode(body []byte) (*Event, error) {
	var w wireEvent
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, err
	}
	return &Event{ID: w.ID, Event: w.Event, OccurredAt: w.OccurredAt, AccountID: w.AccountID, GroupID: w.GroupID,
		Initiator: w.Initiator, Resource: w.Resource, Notification: json.RawMessage(w.Notification)}, nil
}
