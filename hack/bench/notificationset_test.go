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

package main

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/hookline/hookline/dispatcher/payload"
)

// The sink's set catches a repeated id whether or not it is UUID-shaped, and tells ids apart
// that differ in one digit.
func TestNotificationSetCatchesRepeats(t *testing.T) {
	s := newNotificationSet()
	a := payload.NotificationID("wh-1", "acc", "e1")
	b := payload.NotificationID("wh-1", "acc", "e2")
	if _, err := uuid.Parse(a); err != nil {
		t.Fatalf("%s: not read as a UUID", a)
	}
	const digits = "0123456789abcdef"
	flipped := a[:35] + string(digits[(strings.IndexByte(digits, a[35])+1)%16])
	for _, id := range []string{a, b, flipped, "not-a-uuid", a[:35] + "g"} {
		if !s.add(id) {
			t.Errorf("%s: new, reported as seen", id)
		}
	}
	for _, id := range []string{a, b, flipped, "not-a-uuid", a[:35] + "g"} {
		if s.add(id) {
			t.Errorf("%s: repeated, reported as new", id)
		}
	}
	if len(s.uuids) != 3 || len(s.other) != 2 {
		t.Errorf("%d UUIDs and %d other ids kept, want 3 and 2", len(s.uuids), len(s.other))
	}
}
