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

// Package deliverylog keeps the delivery log on JetStream: one record per delivery attempt and per
// change of a notification's state (internal/deliveries.Record), per webhook, for a retention the
// operator sets; and it answers the read API's questions from it (a webhook's notifications with
// their state, newest first; one notification's records).
//
// STUB: the signatures are final, the bodies are being written (issue 11).
package deliverylog

import (
	"context"
	"errors"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/deliveries"
)

// Stream is the JetStream stream holding the log.
const Stream = "HOOKLINE_LOG"

// Config tunes the log.
type Config struct {
	// MaxAge is how long records are kept (default 7 days).
	MaxAge time.Duration
	// MaxBytes bounds the stream's size; the oldest records go first (0: no bound besides MaxAge).
	MaxBytes int64
	// Replicas of the stream (as the store's).
	Replicas int
	// CursorKey authenticates the cursors handed out (HMAC), so that a tampered cursor is refused
	// rather than read; replicas sharing a cluster must share it.
	CursorKey []byte
}

// Errors of the read side.
var (
	// ErrNotFound: no such notification in the log or the queue.
	ErrNotFound = errors.New("not found")
	// ErrBadCursor: the cursor was not handed out by this log, or belongs to other filters.
	ErrBadCursor = errors.New("invalid cursor")
)

// Queue reads a webhook's queued notifications (store.Store), for the ones not on record yet.
type Queue interface {
	LoadNotes(ctx context.Context, uid string, from uint64, max int) ([]store.Note, error)
}

// Log is the delivery log.
type Log struct{}

// New creates or updates the stream and returns the log; Start runs its writer.
func New(ctx context.Context, js jetstream.JetStream, q Queue, cfg Config, log logr.Logger, reg prometheus.Registerer) (*Log, error) {
	return nil, errors.New("delivery log: not implemented yet")
}

// Start runs the writer until ctx ends.
func (l *Log) Start(ctx context.Context) {}

// Append hands r to the writer. It does not wait for JetStream; it blocks only while the writer's
// buffer is full (back-pressure rather than a lost record).
func (l *Log) Append(r deliveries.Record) {}

// Barrier returns once every record appended before the call is stored (or ctx ends). The engine
// calls it before removing settled notifications from their queues, so that a notification never
// leaves its queue without its record.
func (l *Log) Barrier(ctx context.Context) error { return nil }

// Notifications returns a page of uid's notifications, newest first (by their newest record;
// pending ones from the queue), filtered by q.
func (l *Log) Notifications(ctx context.Context, uid string, q deliveries.Query) (deliveries.NotificationList, error) {
	return deliveries.NotificationList{}, errors.New("not implemented")
}

// Attempts returns one notification of uid with every record about it, oldest first; ErrNotFound
// when there is none.
func (l *Log) Attempts(ctx context.Context, uid, notificationID string) (deliveries.AttemptList, error) {
	return deliveries.AttemptList{}, ErrNotFound
}

// Scan calls fn for each of uid's records written at or after since, oldest first, until fn
// returns an error (which Scan returns) or the log ends.
func (l *Log) Scan(ctx context.Context, uid string, since time.Time, fn func(deliveries.Record) error) error {
	return errors.New("not implemented")
}
