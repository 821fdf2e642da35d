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

package deliver

import (
	"context"
	"crypto/tls"
	"net/http"
	"time"

	"github.com/hookline/hookline/dispatcher/store"
)

// QueueStore is what the engine needs of the store (*store.Store): the per-webhook queues, the
// event log (read only) and the state bucket. It is an interface so that the engine's rules can be
// tested against an in-memory queue in milliseconds; the real JetStream store is tested on its own
// and through the dispatcher's suites.
type QueueStore interface {
	// Queues counts the notes queued per webhook uid.
	Queues(ctx context.Context) (map[string]uint64, error)
	// LoadNotes returns up to max notes of uid's queue from sequence from on, in sequence order.
	LoadNotes(ctx context.Context, uid string, from uint64, max int) ([]store.Note, error)
	// LastNoteSeq returns the sequence of uid's last queued note, 0 when none.
	LastNoteSeq(ctx context.Context, uid string) (uint64, error)
	// Remove removes uid's notes up to and including sequence upTo.
	Remove(ctx context.Context, uid string, upTo uint64) error
	// RemoveQueue removes all of uid's notes.
	RemoveQueue(ctx context.Context, uid string) error
	// GetEvent returns the stored event seq and when it was accepted; store.Gone reports an event
	// that is no longer there.
	GetEvent(ctx context.Context, seq uint64) ([]byte, time.Time, error)
	// GetEventWithin is GetEvent telling reserve (unless nil) the size of a large event before
	// it is read (store.Store.GetEventWithin); reserve may wait, or refuse with an error.
	GetEventWithin(ctx context.Context, seq uint64, reserve func(size int64) error) ([]byte, time.Time, error)
	// StateKeys lists the uids with saved state; GetState returns one with its revision (nil and
	// 0 when none), PutState saves one if the stored one is still revision rev (0: none), or
	// returns store.ErrStateChanged, and DeleteState forgets it.
	StateKeys(ctx context.Context) ([]string, error)
	GetState(ctx context.Context, uid string) ([]byte, uint64, error)
	PutState(ctx context.Context, uid string, v []byte, rev uint64) (uint64, error)
	DeleteState(ctx context.Context, uid string) error
}

// Compactor is a QueueStore that removes settled notes in bulk (*store.Store with a single
// writer): the acker hands it the notes settled since the last flush, and removes queue by queue
// only what the compaction could not reach in time.
type Compactor interface {
	// Compacts reports whether compaction is on.
	Compacts() bool
	// Compact records settled as settled and removes every note below the first one that is not
	// known to be settled or gone, which it returns, with how long the compaction has stopped
	// there.
	Compact(ctx context.Context, settled []uint64) (below uint64, held time.Duration, err error)
	// Removed tells the store that uid's notes up to upTo are gone (removed by a compaction).
	Removed(uid string, upTo uint64)
}

// Transport posts one notification and judges the answer (*Sender); tests replace it with a
// receiver in memory.
type Transport interface {
	Send(ctx context.Context, rawURL, clientID, notificationID string, cert *tls.Certificate, body []byte, extra http.Header) Attempt
}

var (
	_ QueueStore = (*store.Store)(nil)
	_ Transport  = (*Sender)(nil)
)
