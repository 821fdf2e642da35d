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

package store

import (
	"fmt"
	"sync"
	"testing"
	"time"
	"unsafe"

	. "github.com/onsi/gomega"
)

func sameBytes(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// Notes decoded apart share their event name's bytes; the other strings are their own.
func TestDecodedNotesShareTheirEventName(t *testing.T) {
	g := NewWithT(t)
	n := Note{EventSeq: 7, Created: time.Unix(0, 42), EventID: "ev-1", EventName: "AGREEMENT_ACTION_COMPLETED", Replay: "r"}
	a, err := decodeNote(encodeNote(n))
	g.Expect(err).NotTo(HaveOccurred())
	b, err := decodeNote(encodeNote(n))
	g.Expect(err).NotTo(HaveOccurred())
	a.Seq, b.Seq = n.Seq, n.Seq
	g.Expect(a).To(Equal(n))
	g.Expect(b).To(Equal(n))
	g.Expect(sameBytes(a.EventName, b.EventName)).To(BeTrue(), "one copy of the name")
	g.Expect(sameBytes(a.EventID, b.EventID)).To(BeFalse())
}

// The table keeps at most maxInterned strings, and gives each its value under concurrent use.
func TestInternTableIsBounded(t *testing.T) {
	g := NewWithT(t)
	var tab internTable
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range maxInterned + 100 {
				s := fmt.Sprintf("name-%d", (i+w*7)%(maxInterned+100))
				if got := tab.get([]byte(s)); got != s {
					t.Errorf("get(%q) = %q", s, got)
				}
			}
		}()
	}
	wg.Wait()
	g.Expect(*tab.m.Load()).To(HaveLen(maxInterned))
	beyond := "not-held"
	g.Expect(sameBytes(tab.get([]byte(beyond)), tab.get([]byte(beyond)))).To(BeFalse(), "copied once the table is full")
	g.Expect(tab.get(nil)).To(BeEmpty())
}
