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
	"runtime"
	"slices"
	"strconv"
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

// FuzzBuild checks Build on arbitrary notifications, webhook flags and caps: errors wrap
// ErrInvalidNotification; an accepted notification is valid JSON; envelope bodies pass through
// untouched; Acrobat bodies are valid JSON that keep hookline's fields unforgeable and first, keep
// the notification's other members in order, list in conditionalParametersTrimmed exactly the
// flags Result.Trimmed reports (in Acrobat Sign's drop order, only flags that were asked for and
// had content, and whose sections are gone), and fit the cap unless every section is dropped.
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
			// Over the cap is allowed only once every contributing section has gone.
			minimal, err := Build(ev, wh, "nid", Options{MaxBytes: 1})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(res.Body, minimal.Body) || !slices.Equal(res.Trimmed, minimal.Trimmed) {
				t.Fatalf("body %d bytes exceeds the cap %d with only %v trimmed (minimal body %d bytes, %v)",
					len(res.Body), limit, res.Trimmed, len(minimal.Body), minimal.Trimmed)
			}
		}
		checkAcrobatBody(t, ev, wh, bits, res)
	})
}

// sectionKey is the resource key holding each flag's section; includeDetailedInfo covers every
// other key but id, name and status.
var sectionKey = map[string]string{
	FlagParticipantsInfo: "participantSetsInfo",
	FlagDocumentsInfo:    "documentsInfo",
	FlagSignedDocuments:  "signedDocumentInfo",
}

// honoured lists, per event, the flags a webhook may ask for (spec §1.3; includeSignedDocuments
// only on AGREEMENT_WORKFLOW_COMPLETED), in Acrobat Sign's documented drop order.
func honoured(event string) []string {
	fam, _ := hooklinev1.FamilyOf(event)
	switch fam {
	case hooklinev1.FamilyAgreement:
		if event == "AGREEMENT_WORKFLOW_COMPLETED" {
			return []string{FlagSignedDocuments, FlagParticipantsInfo, FlagDocumentsInfo, FlagDetailedInfo}
		}
		return []string{FlagParticipantsInfo, FlagDocumentsInfo, FlagDetailedInfo}
	case hooklinev1.FamilyWidget:
		return []string{FlagParticipantsInfo, FlagDocumentsInfo, FlagDetailedInfo}
	case hooklinev1.FamilyMegaSign:
		return []string{FlagDetailedInfo}
	case hooklinev1.FamilyLibraryDocument:
		return []string{FlagDocumentsInfo, FlagDetailedInfo}
	}
	return nil
}

// flagBit is each flag's bit in paramsFromBits.
var flagBit = map[string]uint8{FlagDetailedInfo: 1, FlagParticipantsInfo: 2, FlagDocumentsInfo: 4, FlagSignedDocuments: 8}

// resourceKeyOf is the resource object's key per family, as Acrobat Sign spells it.
var resourceKeyOf = map[hooklinev1.Family]string{
	hooklinev1.FamilyAgreement:       "agreement",
	hooklinev1.FamilyWidget:          "widget",
	hooklinev1.FamilyMegaSign:        "megaSign",
	hooklinev1.FamilyLibraryDocument: "libraryDocument",
}

// checkAcrobatBody asserts the structure of a built Acrobat body against its inputs, reading both
// with encoding/json's tokenizer rather than the builder's scanner.
func checkAcrobatBody(t *testing.T, ev Event, wh Webhook, bits uint8, res Result) {
	t.Helper()
	fam, _ := hooklinev1.FamilyOf(ev.Event)
	resKey := resourceKeyOf[fam]
	top, vals := object(t, res.Body)
	n := len(webhookKeys)
	if len(top) < n || !slices.Equal(top[:n], webhookKeys) {
		t.Fatalf("body does not start with hookline's fields: %q", top)
	}
	// The notification's own members follow in order; its copies of hookline's fields, in any
	// letter case, are dropped, so each of those appears once, with hookline's value.
	inTop, inVals := object(t, ev.Notification)
	var kept []string
	for _, k := range inTop {
		if !slices.ContainsFunc(webhookKeys, func(w string) bool { return strings.EqualFold(w, k) }) {
			kept = append(kept, k)
		}
	}
	if !slices.Equal(top[n:], kept) {
		t.Fatalf("body keys after hookline's fields = %q, want the notification's %q", top[n:], kept)
	}
	for k, want := range map[string]string{"webhookId": wh.UID, "webhookName": wh.Name, "webhookNotificationId": "nid",
		"webhookScope": wh.Scope, "accountId": ev.AccountID} {
		var got string
		if err := json.Unmarshal(vals[k], &got); err != nil || got != want {
			t.Fatalf("%s = %s, want %q", k, vals[k], want)
		}
	}

	resKeys, resVals := object(t, vals[resKey])
	inResKeys, _ := object(t, inVals[resKey])
	switch c := count(resKeys, TrimmedKey); {
	case res.Trimmed == nil && c != 0:
		t.Fatalf("nothing trimmed, yet the body has %s = %s", TrimmedKey, resVals[TrimmedKey])
	case res.Trimmed != nil && (c != 1 || resKeys[len(resKeys)-1] != TrimmedKey):
		t.Fatalf("%v trimmed, but %s is not the resource object's one last key: %q", res.Trimmed, TrimmedKey, resKeys)
	case res.Trimmed != nil:
		var listed []string
		if err := json.Unmarshal(resVals[TrimmedKey], &listed); err != nil || !slices.Equal(listed, res.Trimmed) {
			t.Fatalf("%s = %s, Result.Trimmed = %v", TrimmedKey, resVals[TrimmedKey], res.Trimmed)
		}
	}
	if res.Trimmed != nil && len(res.Trimmed) == 0 {
		t.Fatal("Result.Trimmed is empty but not nil")
	}
	// Trimmed flags: in the documented order, each honoured for the event, asked for, with content
	// in the notification, and absent from the body.
	order := honoured(ev.Event)
	last := -1
	for _, flag := range res.Trimmed {
		i := slices.Index(order, flag)
		if i <= last {
			t.Fatalf("Trimmed %v is not a subsequence of the drop order %v", res.Trimmed, order)
		}
		last = i
		if wh.Params == nil || bits&flagBit[flag] == 0 {
			t.Fatalf("%s trimmed but not asked for (bits %#x)", flag, bits)
		}
		if key, ok := sectionKey[flag]; ok {
			// In any letter case, as classify places keys ("documentsInfO" is the documents too).
			of := func(k string) bool { return classify([]byte(k)) == classify([]byte(key)) }
			if !slices.ContainsFunc(inResKeys, of) || slices.ContainsFunc(resKeys, of) {
				t.Fatalf("%s trimmed: %s in notification %v, in body %v", flag, key, slices.ContainsFunc(inResKeys, of), slices.ContainsFunc(resKeys, of))
			}
		} else if !slices.ContainsFunc(inResKeys, isDetailedKey) || slices.ContainsFunc(resKeys, isDetailedKey) {
			t.Fatalf("%s trimmed: detailed keys in notification %q, in body %q", flag, inResKeys, resKeys)
		}
	}
}

// isDetailedKey reports whether a resource key belongs to includeDetailedInfo (section keys in
// any letter case, as classify places them, do not).
func isDetailedKey(k string) bool {
	return k != TrimmedKey && classify([]byte(k)) == secDetailed
}

func count(keys []string, k string) int {
	n := 0
	for _, x := range keys {
		if x == k {
			n++
		}
	}
	return n
}

// trimEvents are the events FuzzTrim builds notifications for: one per family, and the agreement
// event that honours includeSignedDocuments next to one that does not.
var trimEvents = []string{"AGREEMENT_WORKFLOW_COMPLETED", "AGREEMENT_CREATED", "WIDGET_CREATED", "MEGASIGN_CREATED", "LIBRARY_DOCUMENT_CREATED"}

// FuzzTrim drives the size-cap trimming with synthetic notifications whose sections have fuzzed
// sizes and caps spread over the whole range from 1 byte to just past the untrimmed body, so that
// every drop step is reached (FuzzBuild's caps rarely land near a body's size). It compares the
// result with a reference: drop the asked-for, non-empty sections in the documented order until the
// body, sized as the untrimmed body without those sections plus the conditionalParametersTrimmed
// member, fits; if nothing fits, drop them all.
func FuzzTrim(f *testing.F) {
	for i := range trimEvents {
		f.Add(uint8(i), uint8(0x0f), false, uint16(100), uint16(200), uint16(300), uint16(400), uint16(0))
		f.Add(uint8(i), uint8(0x0f), true, uint16(100), uint16(200), uint16(300), uint16(400), uint16(40000))
		f.Add(uint8(i), uint8(0x0f), false, uint16(4000), uint16(1), uint16(0), uint16(4000), uint16(65535))
		f.Add(uint8(i), uint8(0x05), false, uint16(10), uint16(10), uint16(10), uint16(10), uint16(50000))
	}
	f.Add(uint8(0), uint8(0x1f), true, uint16(1), uint16(1), uint16(1), uint16(1), uint16(1))
	f.Fuzz(func(t *testing.T, which, bits uint8, forged bool, detailed, participants, documents, signed, capFrac uint16) {
		event := trimEvents[int(which)%len(trimEvents)]
		fam, _ := hooklinev1.FamilyOf(event)
		resKey := resourceKeyOf[fam]
		sizes := map[string]int{
			FlagDetailedInfo: int(detailed % 4096), FlagParticipantsInfo: int(participants % 4096),
			FlagDocumentsInfo: int(documents % 4096), FlagSignedDocuments: int(signed % 4096),
		}
		var obj strings.Builder
		obj.WriteString(`{"id":"r-1","name":"Résumé \"draft\"","status":"OUT_FOR_SIGNATURE"`)
		if forged {
			// A producer's own list must never reach the receiver.
			obj.WriteString(`,"conditionalParametersTrimmed":["includeDetailedInfo"]`)
		}
		for _, flag := range []string{FlagDetailedInfo, FlagParticipantsInfo, FlagDocumentsInfo, FlagSignedDocuments} {
			if sizes[flag] == 0 {
				continue
			}
			key := sectionKey[flag]
			if key == "" {
				key = "message"
			}
			obj.WriteString(`,"` + key + `":{"v":` + strconv.Quote(strings.Repeat("x", sizes[flag])) + `}`)
		}
		obj.WriteString(`}`)
		ev := Event{ID: "evt", Event: event, AccountID: "acc-1",
			Notification: []byte(`{"event":"` + event + `","` + resKey + `":` + obj.String() + `,"after":[1,2]}`)}
		wh := Webhook{UID: "uid", Name: "name", URL: "https://r.example.com/", Scope: "ACCOUNT", Params: paramsFromBits(bits)}

		// untrimmed builds the body with the given flags switched off instead of trimmed.
		untrimmed := func(off []string) []byte {
			w := wh
			if w.Params != nil {
				b := bits
				for _, flag := range off {
					b &^= flagBit[flag]
				}
				w.Params = paramsFromBits(b)
			}
			res, err := Build(ev, w, "nid", Options{MaxBytes: 1 << 30})
			if err != nil || res.Trimmed != nil {
				t.Fatalf("untrimmed build: %v, trimmed %v", err, res.Trimmed)
			}
			return res.Body
		}
		full := untrimmed(nil)
		limit := 1 + int(uint64(capFrac)*uint64(len(full)+16)/65536)

		var droppable []string
		for _, flag := range honoured(event) {
			if wh.Params != nil && bits&flagBit[flag] != 0 && sizes[flag] > 0 {
				droppable = append(droppable, flag)
			}
		}
		var want []string
		wantSize := len(full)
		for k := 0; wantSize > limit && k < len(droppable); k++ {
			want = droppable[:k+1]
			member := `,"` + TrimmedKey + `":["` + strings.Join(want, `","`) + `"]`
			wantSize = len(untrimmed(want)) + len(member)
		}

		res, err := Build(ev, wh, "nid", Options{MaxBytes: limit})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Trimmed, want) || (want == nil) != (res.Trimmed == nil) {
			t.Fatalf("cap %d (untrimmed %d): Trimmed = %v, want %v", limit, len(full), res.Trimmed, want)
		}
		if len(res.Body) != wantSize {
			t.Fatalf("cap %d: body is %d bytes, the reference says %d", limit, len(res.Body), wantSize)
		}
		if !json.Valid(res.Body) {
			t.Fatalf("invalid JSON body: %q", res.Body)
		}
		checkAcrobatBody(t, ev, wh, bits, res)
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

// Skipping a value nested as deep as encoding/json allows does not grow the goroutine's stack:
// recursing, each call took megabytes of stack, kept by an ingest connection's goroutine until
// the collector shrank it, and counted by no bound on the bodies in flight (goroutines that
// parsed such a body held about 2 MB each).
func TestDeepValuesDoNotGrowTheStack(t *testing.T) {
	deep := []byte(`{"a":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}`)
	const n = 20
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	parsed, release := make(chan error, n), make(chan struct{})
	for range n {
		go func() {
			_, err := Members(deep)
			parsed <- err
			<-release // the goroutine lives on with the stack it grew, as a connection's does
		}()
	}
	for range n {
		if err := <-parsed; err != nil {
			t.Fatal(err)
		}
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	close(release)
	if grown := int64(after.StackInuse) - int64(before.StackInuse); grown > 4<<20 {
		t.Fatalf("%d goroutines that skipped a value %d deep hold %d MB more of stacks", n, maxDepth, grown>>20)
	}
}
