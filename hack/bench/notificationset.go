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

import "encoding/hex"

// notificationSet holds every webhookNotificationId the sink has seen, to catch duplicates over
// the whole bench. A full bench sees millions; as strings they made a map the collector of the
// bench's own process (which shares the two cores with the dispatcher) scanned again at every
// cycle, so each scenario ran a little slower than the one before. UUID-shaped ids (all of
// hookline's) are kept as 16 bytes in a map without pointers, which the collector does not scan.
type notificationSet struct {
	uuids map[[16]byte]struct{}
	other map[string]struct{}
}

func newNotificationSet() notificationSet {
	return notificationSet{uuids: map[[16]byte]struct{}{}, other: map[string]struct{}{}}
}

// add records id and reports whether it was new.
func (s notificationSet) add(id string) bool {
	if u, ok := parseUUID(id); ok {
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

// parseUUID reads the canonical 8-4-4-4-12 form.
func parseUUID(id string) (u [16]byte, ok bool) {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return u, false
	}
	var hexDigits [32]byte
	copy(hexDigits[0:8], id[0:8])
	copy(hexDigits[8:12], id[9:13])
	copy(hexDigits[12:16], id[14:18])
	copy(hexDigits[16:20], id[19:23])
	copy(hexDigits[20:32], id[24:36])
	if _, err := hex.Decode(u[:], hexDigits[:]); err != nil {
		return u, false
	}
	return u, true
}
