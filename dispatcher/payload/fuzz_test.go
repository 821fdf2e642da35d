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

package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/samples"
)

// paramsFromBits maps fuzzed bits onto every family's flags: bit 0 detailed, 1 participants,
// 2 documents, 3 signed; bit 4 drops the params altogether.
func paramsFromBits(bits uint8) *hooklinev1.ConditionalParams {
	if bits&0x10 != 0 {
		return nil
	}
	d, p, doc, s := bits&1 != 0, bits&2 != 0, bits&4 != 0, bits&8 != 0
	return &hooklinev1.ConditionalParams{
		Agreement:       &hooklinev1.AgreementConditionalParams{IncludeDetailedInfo: d, IncludeParticipantsInfo: p, IncludeDocumentsInfo: doc, IncludeSignedDocuments: s},
		Widget:          &hooklinev1.WidgetConditionalParams{IncludeDetailedInfo: d, IncludeParticipantsInfo: p, IncludeDocumentsInfo: doc},
		MegaSign:        &hooklinev1.MegaSignConditionalParams{IncludeDetailedInfo: d},
		LibraryDocument: &hooklinev1.LibraryDocumentConditionalParams{IncludeDetailedInfo: d, IncludeDocumentsInfo: doc},
	}
}

func FuzzBuild(f *testing.F) {
	for _, name := range samples.Names() {
		ev := loadSample(f, name)
		f.Add(ev.Event, []byte(ev.Notification), uint8(0x0f), 0)
		f.Add(ev.Event, []byte(ev.Notification), uint8(0x0f), 300)
		f.Add(ev.Event, []byte(ev.Notification), uint8(0x00), 1)
	}
	f.Add("AGREEMENT_CREATED", []byte(`{"\u0061greement":{"id":"a"},"accountId":1}`), uint8(0x0f), -5)
	f.Fuzz(func(t *testing.T, event string, notification []byte, bits uint8, maxBytes int) {
		ev := Event{ID: "evt", Event: event, AccountID: "acc-1", Notification: notification}
		wh := Webhook{UID: "uid", Name: "name", URL: "https://r.example.com/?a=1&b=2", Scope: "ACCOUNT", Params: paramsFromBits(bits)}
		res, err := Build(ev, wh, "nid", Options{MaxBytes: maxBytes})
		if err != nil {
			if !errors.Is(err, ErrInvalidNotification) {
				t.Fatalf("error does not wrap ErrInvalidNotification: %v", err)
			}
			return
		}
		if !json.Valid(notification) {
			t.Fatalf("accepted a notification encoding/json rejects: %q", notification)
		}
		if fam, _ := hooklinev1.FamilyOf(event); fam == hooklinev1.FamilyEnvelope {
			if !bytes.Equal(res.Body, notification) || res.Trimmed != nil {
				t.Fatal("envelope notification not passed through unchanged")
			}
			return
		}
		if !json.Valid(res.Body) {
			t.Fatalf("invalid JSON body: %q", res.Body)
		}
		limit := maxBytes
		if limit <= 0 {
			limit = DefaultMaxBytes
		}
		if len(res.Body) > limit {
			minimal, err := Build(ev, wh, "nid", Options{MaxBytes: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Body) > len(minimal.Body) {
				t.Fatalf("body %d bytes exceeds both the cap %d and the minimal body %d", len(res.Body), limit, len(minimal.Body))
			}
		}
	})
}

// FuzzScanner checks the hand-written scanner against encoding/json: both must accept exactly the
// same objects, or the builder could forward a body a receiver cannot parse.
func FuzzScanner(f *testing.F) {
	for _, c := range scannerCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkScanner(t, b)
	})
}

func checkScanner(t *testing.T, b []byte) {
	t.Helper()
	want := json.Valid(b) && strings.HasPrefix(strings.TrimLeft(string(b), " \t\r\n"), "{")
	if got := validObject(b) == nil; got != want {
		t.Fatalf("validObject(%q) = %v, encoding/json says %v", b, got, want)
	}
}

var scannerCases = []string{
	`{}`, ` { } `, `{"a":1}`, `{"a":-0.5e+10,"b":[true,false,null,{}],"c":"\u00e9\n\"\\\/"}`,
	`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":1E+}`, `{"a":tru}`, `{"a":nul}`,
	`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12G4"}`, "{\"a\":\"\x1f\"}", "{\"a\":\"\x7f\xff\"}",
	`{"a":1,}`, `{,"a":1}`, `{"a" 1}`, `{"a":1 "b":2}`, `{"a":[1,]}`, `{"a":[,1]}`, `{"a":[1 2]}`,
	`{"a":1}x`, `{"a":1}{}`, `[]`, `"a"`, ``, `{`, `{"a":"`, `{"a":"abcdefghijklmnopqrstuvwxyz"}`,
	`{"a":"abcdefg\"hijklmnop"}`, "{\"a\":\"abcdefghijklm\x00nop\"}", `{"abcdefghijklmnop\\":"q"}`,
	`{"a":truefalse}`, `{"a":1true}`, "{\"a\":1}\u00a0", "\ufeff{}",
}

func TestScannerAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range scannerCases {
		checkScanner(t, []byte(c))
	}
	// Nesting at and just past encoding/json's limit.
	for _, depth := range []int{maxDepth, maxDepth + 1} {
		b := []byte(`{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`)
		checkScanner(t, b)
	}
	for _, name := range samples.Names() {
		b, _ := samples.Event(name)
		checkScanner(t, b)
	}
	// Every control character, quote and backslash at every offset of a word, so the word-at-a-time
	// path cannot skip one.
	for c := 0; c < 0x80; c++ {
		for pos := 0; pos < 17; pos++ {
			s := []byte(`{"k":"` + strings.Repeat("a", 24) + `"}`)
			s[6+pos] = byte(c)
			checkScanner(t, s)
		}
	}
}
