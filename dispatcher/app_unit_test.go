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
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestStartPatientlyWaitsForJetStream: the engine's start is tried again while JetStream does not
// answer (a stream without a leader for a moment), for at most its patience; an error JetStream
// answered with, or the dispatcher stopping, ends it at once.
func TestStartPatientlyWaitsForJetStream(t *testing.T) {
	ctx := context.Background()
	unanswered := fmt.Errorf("reading the delivery log: %w", nats.ErrNoResponders)

	calls := 0
	err := startPatiently(ctx, func(context.Context) error {
		if calls++; calls < 3 {
			return unanswered
		}
		return nil
	}, time.Minute)
	if err != nil || calls != 3 {
		t.Errorf("JetStream answering at the third try: err %v after %d tries, want nil after 3", err, calls)
	}

	answered := errors.New("stream configuration does not match")
	calls = 0
	err = startPatiently(ctx, func(context.Context) error { calls++; return answered }, time.Minute)
	if !errors.Is(err, answered) || calls != 1 {
		t.Errorf("an answered error: err %v after %d tries, want it after 1", err, calls)
	}

	calls = 0
	err = startPatiently(ctx, func(context.Context) error { calls++; return unanswered }, 300*time.Millisecond)
	if !errors.Is(err, nats.ErrNoResponders) || calls < 2 {
		t.Errorf("JetStream never answering: err %v after %d tries, want no responders after several", err, calls)
	}

	stopped, stop := context.WithCancel(ctx)
	stop()
	calls = 0
	err = startPatiently(stopped, func(context.Context) error { calls++; return unanswered }, time.Minute)
	if err == nil || calls != 1 {
		t.Errorf("a stopping dispatcher: err %v after %d tries, want an error after 1", err, calls)
	}
}
