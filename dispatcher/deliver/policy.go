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

import "time"

// Policy holds Acrobat Sign's retry and disable rules; every value is a setting so that tests can
// run the whole schedule quickly.
type Policy struct {
	// RetryBase is the first retry delay; each further delay doubles (Acrobat Sign: 1 minute).
	RetryBase time.Duration
	// RetryCap caps the delay (12 hours).
	RetryCap time.Duration
	// MaxRetries is the number of retries after the first attempt (15).
	MaxRetries int
	// DropAfter is the age at which a notification is dropped, counted from its creation (72 hours).
	DropAfter time.Duration
	// DisableAfter is how long a webhook may go without success before a drop disables it (7 days).
	DisableAfter time.Duration
}

// DefaultPolicy is Acrobat Sign's.
func DefaultPolicy() Policy {
	return Policy{
		RetryBase:    time.Minute,
		RetryCap:     12 * time.Hour,
		MaxRetries:   15,
		DropAfter:    72 * time.Hour,
		DisableAfter: 7 * 24 * time.Hour,
	}
}

// gap returns the delay before retry number n (1-based): base·2^(n-1), capped.
func (p Policy) gap(n int) time.Duration {
	d := p.RetryBase
	for i := 1; i < n && d < p.RetryCap; i++ {
		d *= 2
	}
	return min(d, p.RetryCap)
}

// NextAttempt decides what follows the failure of attempt number failures (1 = the first attempt)
// that was scheduled for scheduled, for a notification created at created. It returns the time of
// the next attempt, or drop=true when the notification is to be dropped: its retries are used up or
// its 72 hours have passed. The last retry is clamped to the 72-hour mark, so a notification gets its
// final chance exactly when its time runs out. Delays add up from the scheduled times, not from when
// the receiver answered, so the schedule does not drift with slow receivers.
//
// Slots missed altogether are not made up: when the next slot has passed already at now (the
// failure was settled after an outage of the dispatcher, or of its store, longer than the gap), the
// next attempt comes one RetryBase after now rather than at once. Otherwise a head overdue by hours
// would be tried several times within a second at a receiver that is probably still down, each
// failure using up one of its retries.
func (p Policy) NextAttempt(created, scheduled, now time.Time, failures int) (next time.Time, drop bool) {
	deadline := created.Add(p.DropAfter)
	if failures > p.MaxRetries || !scheduled.Before(deadline) {
		return time.Time{}, true
	}
	next = scheduled.Add(p.gap(failures))
	if !next.After(now) {
		next = now.Add(p.RetryBase)
	}
	if next.After(deadline) {
		next = deadline
	}
	return next, false
}

// Expired reports whether a notification created at created must be dropped at now without an
// attempt: its 72 hours have passed while it waited. An attempt exactly at the mark still goes out:
// it is the last retry's clamped time.
func (p Policy) Expired(created, now time.Time) bool {
	return now.After(created.Add(p.DropAfter))
}
