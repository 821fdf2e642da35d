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

// Package deliveries is the model of the delivery log shared by the dispatcher (which writes and
// serves it), the CLI and the console (which read it): the records kept per webhook, the
// notification states derived from them, and the JSON the read API answers with. It imports
// nothing of the dispatcher, so that clients link only this.
package deliveries

import (
	"regexp"
	"strings"
	"time"
)

// EventNamePattern matches the event names the read API filters and tests by
// (AGREEMENT_ACTION_COMPLETED, envelopeExpired): at most 64 characters, as spec.events and the
// ingest API allow.
var EventNamePattern = regexp.MustCompile(`^[A-Za-z_]{1,64}$`)

// NotificationIDPattern matches what a webhookNotificationId can be (and a little more): the read
// API's notificationId filter and path; anything else cannot name a notification.
var NotificationIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// MaxEventIDFilter bounds an eventId filter: twice the longest id ingest accepts (256 bytes), so
// that no stored event's id is refused as a filter.
const MaxEventIDFilter = 512

// ParseTimeFilter reads a since or until filter: an RFC 3339 time, or a duration meaning that long
// before now (2h), which it also returns as ago (a listing's later pages count it from their
// cursor's time). ok is false for anything else.
func ParseTimeFilter(s string, now time.Time) (t time.Time, ago *time.Duration, ok bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil, true
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), &d, true
	}
	return time.Time{}, nil, false
}

// State is where a notification stands, derived from the newest record written about it (or from
// the queue, for a notification that has no record yet).
type State string

// Notification states.
const (
	// StatePending: queued, not attempted yet.
	StatePending State = "pending"
	// StateDelivered: an attempt succeeded.
	StateDelivered State = "delivered"
	// StateRetrying: the last attempt failed; it is still queued and will be tried again.
	StateRetrying State = "retrying"
	// StateDropped: given up after 72 hours of failures (or dropped with its queue when the
	// webhook was auto-disabled).
	StateDropped State = "dropped"
	// StateCancelled: removed unsent from the queue (the webhook went INACTIVE, or its namespace
	// was bound to another account or group).
	StateCancelled State = "cancelled"
	// StateLost: never queued, because the webhook was auto-disabled when the event came.
	StateLost State = "lost"
	// StateReplayed: queued again by a WebhookReplay, not attempted again yet.
	StateReplayed State = "replayed"
)

// States lists every state, in the order documents show them.
var States = []State{StatePending, StateRetrying, StateReplayed, StateDelivered, StateDropped, StateCancelled, StateLost}

// Final reports whether s is an end state: nothing more happens to the notification unless it is
// replayed.
func (s State) Final() bool {
	switch s {
	case StateDelivered, StateDropped, StateCancelled, StateLost:
		return true
	}
	return false
}

// Kind says what a Record records.
type Kind string

// Record kinds.
const (
	// KindAttempt: one delivery attempt (State is delivered, retrying or dropped after it).
	KindAttempt Kind = "attempt"
	// KindDropped: dropped without an attempt (its 72 hours had passed, its event is gone, or
	// its webhook was auto-disabled with it still queued).
	KindDropped Kind = "dropped"
	// KindCancelled: cancelled unsent.
	KindCancelled Kind = "cancelled"
	// KindLost: not queued because the webhook was auto-disabled.
	KindLost Kind = "lost"
	// KindReplayQueued: queued again by the WebhookReplay named in Replay.
	KindReplayQueued Kind = "replayQueued"
)

// ExcerptMax is the most bytes of a receiver's answer a Record keeps.
const ExcerptMax = 1024

// Record is one entry of a webhook's delivery log. Records are written by the dispatcher and never
// changed; a notification's state is the State of its newest record.
type Record struct {
	Kind Kind `json:"kind"`
	// The webhook, as it was named when the record was written.
	WebhookUID string `json:"webhookUid"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	// NotificationID is the webhookNotificationId the receiver sees (payload.NotificationID).
	NotificationID string `json:"webhookNotificationId"`
	// EventSeq is the event's sequence in the event log: what a replay queues again.
	EventSeq  uint64 `json:"eventSeq"`
	EventID   string `json:"eventId"`
	EventName string `json:"event"`
	// Created is when the event was accepted.
	Created time.Time `json:"created"`
	// At is when the attempt started, or when the change happened.
	At time.Time `json:"at"`
	// State is the notification's state after this record.
	State State `json:"state"`
	// Attempt numbers the attempts of one delivery from 1 (a replay starts again at 1).
	Attempt int `json:"attempt,omitempty"`
	// DurationMillis is how long the attempt took.
	DurationMillis int64 `json:"durationMillis,omitempty"`
	// Reason is the outcome's reason name (Delivered, Timeout, HTTPError, … as in status), or why
	// the notification was dropped, cancelled or lost.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// HTTPStatus is the receiver's status code; 0 when no answer came.
	HTTPStatus int `json:"httpStatus,omitempty"`
	// Response is the start of the receiver's answer: at most ExcerptMax bytes, valid UTF-8,
	// control characters escaped. Show it as text, never as markup.
	Response string `json:"response,omitempty"`
	// BytesSent is the size of the body sent.
	BytesSent int `json:"bytesSent,omitempty"`
	// Trimmed lists the sections left out to fit the size cap.
	Trimmed []string `json:"trimmed,omitempty"`
	// Replay names the WebhookReplay that queued this delivery again; empty for the original.
	Replay string `json:"replay,omitempty"`
}

// Notification is one notification of a webhook with its current state: the newest record's view
// of it, or its place in the queue.
type Notification struct {
	NotificationID string    `json:"webhookNotificationId"`
	EventSeq       uint64    `json:"eventSeq"`
	EventID        string    `json:"eventId"`
	EventName      string    `json:"event"`
	Created        time.Time `json:"created"`
	State          State     `json:"state"`
	// Updated is the time of the newest record (Created for a pending notification).
	Updated time.Time `json:"updated"`
	// Attempts counts the attempts on record.
	Attempts int `json:"attempts"`
	// The newest attempt's outcome.
	Reason     string `json:"reason,omitempty"`
	HTTPStatus int    `json:"httpStatus,omitempty"`
	// Replay names the newest WebhookReplay that queued it again.
	Replay string `json:"replay,omitempty"`
}

// Query selects notifications of one webhook. Zero fields do not filter.
type Query struct {
	States       []State
	EventNames   []string
	Since, Until time.Time
	// SinceAgo and UntilAgo, when set, give Since and Until as that long before the listing's
	// first page (since=2h): the log takes them from the time its cursor keeps, so that every
	// page of one listing covers the same range and its cursor stays valid.
	SinceAgo, UntilAgo *time.Duration
	NotificationIDs    []string
	EventIDs           []string
	// Limit is the page size (default 50, at most 500).
	Limit int
	// Cursor continues a previous page (NotificationList.Next); it is only valid with the same
	// filters.
	Cursor string
}

// NotificationList is one page of notifications, newest first.
type NotificationList struct {
	Items []Notification `json:"items"`
	// Next is the cursor of the following page; empty on the last.
	Next string `json:"next,omitempty"`
	// Incomplete is set when the log was not read to the start of the selected time range (the
	// read bound was reached); narrow the range to see older notifications.
	Incomplete bool `json:"incomplete,omitempty"`
}

// AttemptList is the history of one notification, oldest first.
type AttemptList struct {
	Notification Notification `json:"notification"`
	Records      []Record     `json:"records"`
	// Incomplete is set when the log was not read back to the notification's first record (the
	// read bound was reached): older records may be missing, and the summary may be out of date.
	Incomplete bool `json:"incomplete,omitempty"`
}

// Error is the JSON body of every error answer of the read API.
type Error struct {
	Status  int    `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// TestEventPrefix begins the id of every test notification's event ("send a test notification"):
// the ingest API refuses producers' events with such an id, so the prefix alone marks a test.
const TestEventPrefix = "hookline-test-"

// IsTest reports whether eventID is a test notification's event.
func IsTest(eventID string) bool { return strings.HasPrefix(eventID, TestEventPrefix) }

// TestRequest is the body of POST .../webhooks/{name}/test.
type TestRequest struct {
	// Event is one of the webhook's subscribed events (a wildcard stands for its family's sample).
	Event string `json:"event"`
}

// TestReceipt answers a test notification queued.
type TestReceipt struct {
	EventID        string `json:"eventId"`
	Event          string `json:"event"`
	NotificationID string `json:"webhookNotificationId"`
}

// ReplayRef is how notes and records name the WebhookReplay that queued them again: its name, "@",
// and the first 8 characters of its uid. A replay deleted and created again under the same name
// is another object, and must not take the first one's notes and records for its own (it found
// them "queued already" and queued nothing, or a deletion stopped nothing). Names cannot hold "@".
// Notes and records of before carry the bare name.
func ReplayRef(name, uid string) string {
	return name + "@" + uid[:min(len(uid), 8)]
}

// ReplayName is the WebhookReplay name ref (ReplayRef, or a bare name) names.
func ReplayName(ref string) string {
	name, _, _ := strings.Cut(ref, "@")
	return name
}

// ReplayUIDPrefix is the uid prefix ref carries ("" for a bare name).
func ReplayUIDPrefix(ref string) string {
	_, prefix, _ := strings.Cut(ref, "@")
	return prefix
}

// NamesReplay reports whether ref, on a note or record of time at, was written for the replay
// name with uid created at created: by it (ReplayRef), or before replays were told apart by uid
// (the bare name, so that a replay running across the upgrade finds its own notes), not before the
// replay existed (a bare name of before on an older note is another object's), give or take
// ReplaySkew between the clocks that stamp the two.
func NamesReplay(ref, name, uid string, at, created time.Time) bool {
	return ref == ReplayRef(name, uid) || ref == name && !BeforeReplay(at, created)
}

// ReplaySkew is how much earlier than a replay's creation (the API server's clock) a note or record
// of it may be stamped (a dispatcher's clock).
const ReplaySkew = time.Minute

// BeforeReplay reports whether a note or record stamped at predates a replay created at created.
func BeforeReplay(at, created time.Time) bool { return at.Before(created.Add(-ReplaySkew)) }
