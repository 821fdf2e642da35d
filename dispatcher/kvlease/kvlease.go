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

// Package kvlease holds a key of a JetStream key-value bucket as a lease: the key names its holder,
// expires the bucket's TTL after its last write, and is written only by compare-and-set on the
// revision the holder last saw. The delivery lease (package store) and the partition leases
// (package partition) are such keys.
//
// A write whose answer is lost (a timeout under load, a cancelled context) may still have been
// applied: the key then names the holder at a revision the holder does not know. Nobody else writes
// a key that names another holder, so a key that still names this holder is this holder's own:
// Renew and Release read it and go on from its revision instead of treating the failed compare as
// a take-over.
package kvlease

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrTaken says that another holder wrote the key: the lease is lost.
var ErrTaken = errors.New("lease taken by another holder")

// Take writes key naming holder when it is free, or when it names holder already (a restart under
// the same name, a write whose answer was lost, or another member of a shared holder). It returns
// the revision written; when another holder has the key, it returns that holder's name and no
// error. Call it with the time sent noted beforehand: the key expires no sooner than TTL after it.
func Take(ctx context.Context, kv jetstream.KeyValue, key, holder string) (rev uint64, other string, err error) {
	// The key can expire or change hands between the calls; twice is enough for a caller that
	// retries on its own schedule.
	for range 2 {
		rev, err = kv.Create(ctx, key, []byte(holder))
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return rev, "", err
		}
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired since: create it again
		}
		if err != nil {
			return 0, "", err
		}
		if string(e.Value()) != holder {
			return 0, string(e.Value()), nil
		}
		rev, err = kv.Update(ctx, key, []byte(holder), e.Revision())
		if !CompareFailed(err) {
			return rev, "", err
		}
	}
	return 0, "", fmt.Errorf("lease %q changed while taking it", key)
}

// Renew extends the lease holder wrote at rev and returns the new revision. A key written since
// that still names holder is holder's own write whose answer was lost; Renew goes on from it. It
// returns ErrTaken when the key names another holder or is gone.
func Renew(ctx context.Context, kv jetstream.KeyValue, key, holder string, rev uint64) (uint64, error) {
	next, err := kv.Update(ctx, key, []byte(holder), rev)
	if !CompareFailed(err) {
		return next, err
	}
	mine, ok, err := own(ctx, kv, key, holder)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, ErrTaken
	}
	next, err = kv.Update(ctx, key, []byte(holder), mine)
	if CompareFailed(err) {
		return 0, ErrTaken
	}
	return next, err
}

// Release deletes the lease holder wrote at rev, or at a later revision that still names holder,
// so that the next holder takes it at once. A key another holder wrote is left alone.
func Release(ctx context.Context, kv jetstream.KeyValue, key, holder string, rev uint64) error {
	err := kv.Delete(ctx, key, jetstream.LastRevision(rev))
	if !CompareFailed(err) {
		return err
	}
	mine, ok, err := own(ctx, kv, key, holder)
	if err != nil || !ok {
		return err // nothing of holder's left to delete
	}
	return kv.Delete(ctx, key, jetstream.LastRevision(mine))
}

// own returns the revision of key when it names holder; ok is false when it names another or is
// gone.
func own(ctx context.Context, kv jetstream.KeyValue, key, holder string) (rev uint64, ok bool, err error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return e.Revision(), string(e.Value()) == holder, nil
}

// CompareFailed reports whether err is a compare-and-set write refused because the key is not at
// the expected revision.
func CompareFailed(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}
