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

package freeport

import (
	"net"
	"net/netip"
	"testing"
)

// The ports come from this process's slice of the range below the ephemeral one, are free, and are
// never handed out twice.
func TestAddrIsFreeUniqueAndOutsideTheEphemeralRange(t *testing.T) {
	lo, hi := ownSlice(belowEphemeral())
	seen := map[string]bool{}
	for range 200 {
		a := Addr(t)
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			t.Fatal(err)
		}
		if p := int(ap.Port()); p < lo || p >= hi {
			t.Fatalf("port %d outside [%d, %d)", p, lo, hi)
		}
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s is not free: %v", a, err)
		}
		_ = l.Close()
	}
}
