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

import "github.com/google/uuid"

// notificationSet holds every webhookNotificationId the sink has seen, to catch duplicates over
// the whole bench. A full bench sees millions; as strings they made a map the collector of the
// bench's own process (which shares the two cores with the dispatcher) scanned again at every
// cycle, so each scenario ran a little slower than the one before. UUID-shaped ids (all of
// hookline's) are kept as 16 bytes in a map without pointers, which the collector does not scan.
type notificationSet struct {
	uuids map[uuid.UUID]struct{}
	other map[string]struct{}
}

func newNotificationSet() notificationSet {
	return notificationSet{uuids: map[uuid.UUID]struct{}{}, other: map[string]struct{}{}}
}

// add records id and reports whether it was new.
func (s notificationSet) add(id string) bool {
	if u, err := uuid.Parse(id); err == nil {
		if _, dup := s.uuids[u]; dup {
			return false
		}
		s.uuids[u] = struct{}{}
		return true
	}
	if _, dup := s.other[id]; dup {
		return false
	}
	s.other[id] = struct{}{}
	return true
}
