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

package ingest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/dispatcher/payload"
	"github.com/hookline/hookline/internal/samples"
)

// sampleFamilies is the family, resource.type and Acrobat resource key every sample must parse to.
var sampleFamilies = map[string]struct {
	family  hooklinev1.Family
	resType string
	resKey  string // "" for the envelope dialect
}{
	"agreement_action_completed":   {hooklinev1.FamilyAgreement, "AGREEMENT", "agreement"},
	"agreement_workflow_completed": {hooklinev1.FamilyAgreement, "AGREEMENT", "agreement"},
	"envelope_expired":             {hooklinev1.FamilyEnvelope, "ENVELOPE", ""},
	"library_document_created":     {hooklinev1.FamilyLibraryDocument, "LIBRARY_DOCUMENT", "libraryDocument"},
	"megasign_created":             {hooklinev1.FamilyMegaSign, "MEGASIGN", "megaSign"},
	"widget_created":               {hooklinev1.FamilyWidget, "WIDGET", "widget"},
}

// sample returns the raw ingest body of the named sample.
func sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := samples.Event(name)
	if err != nil {
		t.Fatalf("samples.Event(%q): %v", name, err)
	}
	return b
}

// decodeObject decodes a JSON object keeping numbers exact, so a round trip changes nothing but
// key order and whitespace.
func decodeObject(t testing.TB, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decoding %.80q: %v", b, err)
	}
	return m
}

// mutated returns the named sample after edit has changed its decoded form.
func mutated(t testing.TB, name string, edit func(ev map[string]any)) []byte {
	t.Helper()
	m := decodeObject(t, sample(t, name))
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("encoding mutated %s: %v", name, err)
	}
	return b
}

// obj returns m[key] as an object, failing the test when it is not one.
func obj(t testing.TB, m map[string]any, key string) map[string]any {
	t.Helper()
	o, ok := m[key].(map[string]any)
	if !ok {
		t.Fatalf("%q is %T, not an object", key, m[key])
	}
	return o
}

// namesField reports whether msg mentions field as a whole path (so "id" is not found in
// "accountId" or "resource.id").
func namesField(msg, field string) bool {
	re := regexp.MustCompile(`(^|[\s"'(])` + regexp.QuoteMeta(field) + `([\s"':),.]|$)`)
	return re.MatchString(msg)
}

func TestParseAcceptsEverySample(t *testing.T) {
	names := samples.Names()
	if len(names) != len(sampleFamilies) {
		t.Fatalf("samples.Names() = %v; this test knows %d samples, update sampleFamilies", names, len(sampleFamilies))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			want, ok := sampleFamilies[name]
			if !ok {
				t.Fatalf("sample %q is not in sampleFamilies", name)
			}
			body := sample(t, name)
			ev, err := ingest.Parse(body)
			if err != nil {
				t.Fatalf("Parse(%s) = %v, want success", name, err)
			}
			raw := decodeObject(t, body)
			if ev.ID != raw["id"] || ev.Event != raw["event"] || ev.AccountID != raw["accountId"] {
				t.Errorf("id/event/accountId = %q/%q/%q, want %q/%q/%q", ev.ID, ev.Event, ev.AccountID, raw["id"], raw["event"], raw["accountId"])
			}
			if got := ev.Family(); got != want.family {
				t.Errorf("Family() = %q, want %q", got, want.family)
			}
			res := obj(t, raw, "resource")
			if ev.Resource.Type != want.resType || ev.Resource.ID != res["id"] {
				t.Errorf("resource = %+v, want type %q id %q", ev.Resource, want.resType, res["id"])
			}
			wantTime, err := time.Parse(time.RFC3339, raw["occurredAt"].(string))
			if err != nil {
				t.Fatalf("sample occurredAt: %v", err)
			}
			if got, err := time.Parse(time.RFC3339, ev.OccurredAt); err != nil || !got.Equal(wantTime) {
				t.Errorf("OccurredAt = %v, want %v", ev.OccurredAt, wantTime)
			}
			// The notification must be kept verbatim: the envelope dialect is delivered byte for byte.
			var top struct {
				Notification json.RawMessage `json:"notification"`
			}
			if err := json.Unmarshal(body, &top); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ev.Notification, top.Notification) {
				t.Errorf("Notification is not the sample's notification verbatim:\n got %.200s\nwant %.200s", ev.Notification, top.Notification)
			}
		})
	}
}

func TestParseAcceptsLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"id of exactly 256 bytes", mutated(t, "agreement_action_completed", func(ev map[string]any) {
			ev["id"] = strings.Repeat("x", 256)
		})},
		{"no occurredAt", mutated(t, "widget_created", func(ev map[string]any) { delete(ev, "occurredAt") })},
		{"resource object without id", mutated(t, "agreement_action_completed", func(ev map[string]any) {
			delete(obj(t, obj(t, ev, "notification"), "agreement"), "id")
		})},
		{"surrounding whitespace", append(append([]byte(" \n\t"), sample(t, "megasign_created")...), " \n"...)},
		{"notification.agreement key of exactly payload.MaxKeyBytes", mutated(t, "agreement_action_completed", func(ev map[string]any) {
			obj(t, obj(t, ev, "notification"), "agreement")[strings.Repeat("a", payload.MaxKeyBytes)] = 1
		})},
		{"envelope event name of exactly 64 characters", mutated(t, "envelope_expired", func(ev map[string]any) {
			ev["event"] = envelopeName(ingest.MaxEnvelopeEventLength)
			obj(t, ev, "notification")["event"] = ev["event"]
		})},
		// initiatingUserId is Acrobat Sign's account-sharing sharee, not the sender: it need not be
		// the initiator (spec §6.1), and the initiator is optional.
		{"initiatingUserId another user than the initiator", mutated(t, "agreement_action_completed", func(ev map[string]any) {
			obj(t, ev, "notification")["initiatingUserId"] = "sharee-9"
		})},
		{"initiatingUserId without an initiator", mutated(t, "agreement_action_completed", func(ev map[string]any) {
			obj(t, ev, "notification")["initiatingUserId"] = "sharee-9"
			delete(ev, "initiator")
		})},
		// resource.id is checked against data.basicInfo.envelopeId only when the notification names one.
		{"envelope without basicInfo", mutated(t, "envelope_expired", func(ev map[string]any) {
			delete(obj(t, obj(t, ev, "notification"), "data"), "basicInfo")
			obj(t, ev, "resource")["id"] = "env-other"
		})},
		{"envelope without envelopeId", mutated(t, "envelope_expired", func(ev map[string]any) {
			delete(obj(t, obj(t, obj(t, ev, "notification"), "data"), "basicInfo"), "envelopeId")
			obj(t, ev, "resource")["id"] = "env-other"
		})},
		{"envelopeId null", mutated(t, "envelope_expired", func(ev map[string]any) {
			obj(t, obj(t, obj(t, ev, "notification"), "data"), "basicInfo")["envelopeId"] = nil
		})},
		{"envelope basicInfo not an object", mutated(t, "envelope_expired", func(ev map[string]any) {
			obj(t, obj(t, ev, "notification"), "data")["basicInfo"] = "2229bf86"
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ingest.Parse(tc.body); err != nil {
				t.Fatalf("Parse = %v, want success", err)
			}
		})
	}
}

// A producer's event refused for one long escaped key cost the dispatcher three or four copies of
// it beyond the body (decoded by the member listing, copied to bytes, copied to a string, decoded
// again by encoding/json: 76 MB for a 25 MB body inside resource), none of which the ingest's
// in-flight bound counts. Refused now as the key is met, before anything decodes it.
func TestLongKeysAreRefusedWithoutCopies(t *testing.T) {
	key := strings.Repeat(`\\\\`, 1<<20) // 4 MiB of escapes
	for name, body := range map[string][]byte{
		"top level":                 []byte(`{"` + key + `":0}`),
		"in resource":               []byte(`{"id":"x","event":"AGREEMENT_CREATED","accountId":"a","resource":{"` + key + `":0}}`),
		"in initiator":              []byte(`{"id":"x","event":"AGREEMENT_CREATED","accountId":"a","initiator":{"` + key + `":0}}`),
		"in notification":           mutatedWithKey(t, "notification", key),
		"in notification.agreement": mutatedWithKey(t, "agreement", key),
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := ingest.Parse(body)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), "key longer than") {
			t.Errorf("%s: Parse = %v, want the key refused", name, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 256<<10 {
			t.Errorf("%s: refusing a %d-byte body allocated %d bytes", name, len(body), alloc)
		}
	}
}

// mutatedWithKey is a valid agreement event with key (raw, as sent) added to its object named in.
func mutatedWithKey(t *testing.T, in, key string) []byte {
	b := sample(t, "agreement_action_completed")
	at := []byte(`"` + in + `": {`)
	if !bytes.Contains(b, at) {
		t.Fatalf("sample has no %s", at)
	}
	return bytes.Replace(b, at, append(at, `"`+key+`":0,`...), 1)
}

// envelopeName returns an envelope-family event name of n characters.
func envelopeName(n int) string { return "envelope" + strings.Repeat("X", n-len("envelope")) }

func TestParseRejectsBadBodies(t *testing.T) {
	const agr = "agreement_action_completed"
	const env = "envelope_expired"
	edit := func(name string, f func(ev map[string]any)) []byte { return mutated(t, name, f) }
	notif := func(ev map[string]any) map[string]any { return obj(t, ev, "notification") }
	// splice replaces the first occurrence of old in the sample, for bodies json.Marshal cannot make.
	splice := func(name, old, new string) []byte {
		b := sample(t, name)
		if !bytes.Contains(b, []byte(old)) {
			t.Fatalf("sample %s has no %q", name, old)
		}
		return bytes.Replace(b, []byte(old), []byte(new), 1)
	}

	type badCase struct {
		name  string
		body  []byte
		code  string
		field string // the message must name it; "" when the body has no field at fault
		msg   string // another substring the message must hold, optional
		bug   string // non-empty: a known bug, the case is skipped with this text
	}
	cases := []badCase{
		{name: "not JSON", body: []byte("this is not json"), code: "INVALID_JSON"},
		{name: "empty body", body: nil, code: "INVALID_JSON"},
		{name: "truncated JSON", body: sample(t, agr)[:100], code: "INVALID_JSON"},
		{name: "JSON array", body: []byte(`[1, 2]`), code: "INVALID_JSON"},
		{name: "two JSON values", body: append(sample(t, agr), sample(t, agr)...), code: "INVALID_JSON", msg: "data after the event"},
		{name: "trailing closing bracket", body: append(sample(t, agr), ']'), code: "INVALID_JSON"},
		{name: "unknown top-level field", body: edit(agr, func(ev map[string]any) { ev["colour"] = "red" }), code: "INVALID_JSON", field: "colour", msg: "unknown field"},
		{name: "unknown resource field", body: edit(agr, func(ev map[string]any) { obj(t, ev, "resource")["colour"] = "red" }), code: "INVALID_JSON", field: "colour"},
		{name: "missing id", body: edit(agr, func(ev map[string]any) { delete(ev, "id") }), code: "MISSING_REQUIRED_PARAM", field: "id"},
		{name: "blank id", body: edit(agr, func(ev map[string]any) { ev["id"] = "   " }), code: "MISSING_REQUIRED_PARAM", field: "id"},
		{name: "missing event", body: edit(agr, func(ev map[string]any) { delete(ev, "event") }), code: "MISSING_REQUIRED_PARAM", field: "event"},
		{name: "missing accountId", body: edit(agr, func(ev map[string]any) { delete(ev, "accountId") }), code: "MISSING_REQUIRED_PARAM", field: "accountId"},
		{name: "missing resource", body: edit(agr, func(ev map[string]any) { delete(ev, "resource") }), code: "MISSING_REQUIRED_PARAM", field: "resource.type"},
		{name: "missing resource.type", body: edit(agr, func(ev map[string]any) { delete(obj(t, ev, "resource"), "type") }), code: "MISSING_REQUIRED_PARAM", field: "resource.type"},
		{name: "missing resource.id", body: edit(agr, func(ev map[string]any) { delete(obj(t, ev, "resource"), "id") }), code: "MISSING_REQUIRED_PARAM", field: "resource.id"},
		{name: "missing notification", body: edit(agr, func(ev map[string]any) { delete(ev, "notification") }), code: "MISSING_REQUIRED_PARAM", field: "notification"},
		{name: "notification null", body: edit(agr, func(ev map[string]any) { ev["notification"] = nil }), code: "MISSING_REQUIRED_PARAM", field: "notification"},
		{name: "id with a trailing space", body: edit(agr, func(ev map[string]any) { ev["id"] = "dup-7 " }), code: "INVALID_ARGUMENTS", field: "id", msg: "white space"},
		{name: "id with a leading tab", body: edit(agr, func(ev map[string]any) { ev["id"] = "\tdup-7" }), code: "INVALID_ARGUMENTS", field: "id"},
		{name: "id ending in a newline", body: edit(agr, func(ev map[string]any) { ev["id"] = "dup-7\n" }), code: "INVALID_ARGUMENTS", field: "id", msg: "control characters"},
		{name: "id with a NUL inside", body: edit(agr, func(ev map[string]any) { ev["id"] = "dup\x007" }), code: "INVALID_ARGUMENTS", field: "id", msg: "control characters"},
		{name: "id ending in a no-break space", body: edit(agr, func(ev map[string]any) { ev["id"] = "dup-7\u00a0" }), code: "INVALID_ARGUMENTS", field: "id"},
		{name: "accountId with a trailing space", body: edit(agr, func(ev map[string]any) { ev["accountId"] = "acc-1 " }), code: "INVALID_ARGUMENTS", field: "accountId"},
		{name: "invalid UTF-8 in a notification string", body: splice(agr, `"OUT_FOR_SIGNATURE"`, "\"OUT_FOR\xffSIGNATURE\""), code: "INVALID_ENCODING", msg: "UTF-8"},
		{name: "invalid UTF-8 in a key", body: splice(agr, `"eventDate"`, "\"event\xc3Date\""), code: "INVALID_ENCODING", msg: "UTF-8"},
		{name: "duplicate top-level field", body: splice(agr, `"accountId"`, `"accountId": "acc-2", "accountId"`), code: "INVALID_JSON", field: "accountId", msg: "twice"},
		{name: "top-level field in another case", body: splice(agr, `"accountId"`, `"ACCOUNTID": "acc-2", "accountId"`), code: "INVALID_JSON", field: "ACCOUNTID", msg: "unknown field"},
		{name: "id longer than 256 bytes", body: edit(agr, func(ev map[string]any) { ev["id"] = strings.Repeat("x", 257) }), code: "INVALID_ARGUMENTS", field: "id", msg: "256"},
		{name: "groupId longer than 256 bytes", body: edit(agr, func(ev map[string]any) { ev["groupId"] = strings.Repeat("g", 257) }), code: "INVALID_ARGUMENTS", field: "groupId"},
		{name: "unknown event name", body: edit(agr, func(ev map[string]any) { ev["event"] = "AGREEMENT_TELEPORTED" }), code: "INVALID_EVENT", field: "event", msg: "AGREEMENT_TELEPORTED"},
		{name: "wildcard AGREEMENT_ALL as event", body: edit(agr, func(ev map[string]any) { ev["event"] = "AGREEMENT_ALL" }), code: "INVALID_EVENT", field: "event", msg: "AGREEMENT_ALL"},
		{name: "wildcard ENVELOPE_ALL as event", body: edit(env, func(ev map[string]any) {
			ev["event"] = "ENVELOPE_ALL"
			notif(ev)["event"] = "ENVELOPE_ALL"
		}), code: "INVALID_EVENT", field: "event", msg: "ENVELOPE_ALL"},
		// Every note queued for the event stores its name, and only a pattern bounded these.
		{name: "envelope event name longer than 64 characters", body: edit(env, func(ev map[string]any) {
			ev["event"] = envelopeName(ingest.MaxEnvelopeEventLength + 1)
			notif(ev)["event"] = ev["event"]
		}), code: "INVALID_ARGUMENTS", field: "event", msg: "64 characters"},
		{name: "resource.type WIDGET for an agreement event", body: edit(agr, func(ev map[string]any) { obj(t, ev, "resource")["type"] = "WIDGET" }), code: "INVALID_RESOURCE_TYPE", field: "resource.type", msg: "WIDGET"},
		{name: "resource.type lower case", body: edit(agr, func(ev map[string]any) { obj(t, ev, "resource")["type"] = "agreement" }), code: "INVALID_RESOURCE_TYPE", field: "resource.type"},
		{name: "resource.type AGREEMENT for an envelope event", body: edit(env, func(ev map[string]any) { obj(t, ev, "resource")["type"] = "AGREEMENT" }), code: "INVALID_RESOURCE_TYPE", field: "resource.type"},
		{name: "notification an array", body: edit(agr, func(ev map[string]any) { ev["notification"] = []any{1, 2} }), code: "INVALID_NOTIFICATION", field: "notification", msg: "object"},
		{name: "notification a string", body: edit(agr, func(ev map[string]any) { ev["notification"] = "{}" }), code: "INVALID_NOTIFICATION", field: "notification", msg: "object"},
		{name: "envelope notification.event differs from event", body: edit(env, func(ev map[string]any) { notif(ev)["event"] = "envelopeCompleted" }), code: "INVALID_NOTIFICATION", field: "notification.event"},
		{name: "envelope notification without event", body: edit(env, func(ev map[string]any) { delete(notif(ev), "event") }), code: "INVALID_NOTIFICATION", field: "notification.event"},
		{name: "envelope notification without data", body: edit(env, func(ev map[string]any) { delete(notif(ev), "data") }), code: "INVALID_NOTIFICATION", field: "notification.data"},
		{name: "envelope notification.data an array", body: edit(env, func(ev map[string]any) { notif(ev)["data"] = []any{} }), code: "INVALID_NOTIFICATION", field: "notification.data"},
		{name: "envelope notification.data null", body: edit(env, func(ev map[string]any) { notif(ev)["data"] = nil }), code: "INVALID_NOTIFICATION", field: "notification.data"},
		// Delivered byte for byte: hookline's own fields (which receivers check and dedupe on) and
		// duplicate keys (read differently by different receivers) are refused.
		{name: "envelope notification with a webhookNotificationId", body: edit(env, func(ev map[string]any) { notif(ev)["webhookNotificationId"] = "forged" }), code: "INVALID_NOTIFICATION", field: "notification.webhookNotificationId"},
		{name: "envelope notification with an accountId in another case", body: edit(env, func(ev map[string]any) { notif(ev)["AccountID"] = "acc-other" }), code: "INVALID_NOTIFICATION", field: "notification.AccountID"},
		{name: "envelope notification.event twice", body: splice(env, `"notification": {`, `"notification": {"event": "envelopeCompleted", `), code: "INVALID_NOTIFICATION", field: "notification.event", msg: "twice"},
		{name: "envelope notification.data twice in two cases", body: splice(env, `"notification": {`, `"notification": {"Data": {}, `), code: "INVALID_NOTIFICATION", field: "notification.data", msg: "twice"},
		{name: "agreement notification with an Agreement beside it", body: splice(agr, `"notification": {`, `"notification": {"Agreement": {"id": "x"}, `), code: "INVALID_NOTIFICATION", field: "notification.agreement", msg: "twice"},
		{name: "agreement with signedDocumentInfo in two cases", body: splice(agr, `"agreement": {`, `"agreement": {"SignedDocumentInfo": {}, "signedDocumentInfo": {}, `), code: "INVALID_NOTIFICATION", field: "notification.agreement.signedDocumentInfo", msg: "twice"},
		{name: "agreement event without notification.agreement", body: edit(agr, func(ev map[string]any) { delete(notif(ev), "agreement") }), code: "INVALID_NOTIFICATION", field: "notification.agreement"},
		{name: "notification.agreement an array", body: edit(agr, func(ev map[string]any) { notif(ev)["agreement"] = []any{} }), code: "INVALID_NOTIFICATION", field: "notification.agreement"},
		{name: "notification.agreement null", body: edit(agr, func(ev map[string]any) { notif(ev)["agreement"] = nil }), code: "INVALID_NOTIFICATION", field: "notification.agreement"},
		{name: "notification.agreement twice", body: splice(agr, `"agreement": {`, `"agreement": {"id": "CBJCHBCAABAA-agr-9"}, "agreement": {`), code: "INVALID_NOTIFICATION", field: "notification.agreement"},
		// Seed 002: the envelope the notification names is resource.id.
		{name: "envelope data.basicInfo.envelopeId differs from resource.id", body: edit(env, func(ev map[string]any) {
			obj(t, ev, "resource")["id"] = "env-other"
		}), code: "INVALID_NOTIFICATION", field: "notification.data.basicInfo.envelopeId", msg: "resource.id"},
		{name: "envelope envelopeId in another case differs from resource.id", body: edit(env, func(ev map[string]any) {
			obj(t, obj(t, notif(ev), "data"), "basicInfo")["EnvelopeID"] = "env-other"
		}), code: "INVALID_NOTIFICATION", field: "notification.data.basicInfo.envelopeId", msg: "resource.id"},
		{name: "envelope envelopeId twice, the first one differing", body: splice(env, `"envelopeId": "2229bf86`, `"envelopeId": "env-other", "envelopeId": "2229bf86`),
			code: "INVALID_NOTIFICATION", field: "notification.data.basicInfo.envelopeId", msg: "resource.id"},
		{name: "envelope envelopeId a number", body: edit(env, func(ev map[string]any) {
			obj(t, obj(t, notif(ev), "data"), "basicInfo")["envelopeId"] = 7
		}), code: "INVALID_NOTIFICATION", field: "notification.data.basicInfo.envelopeId", msg: "string"},
		{name: "notification.agreement.id differs from resource.id", body: edit(agr, func(ev map[string]any) { obj(t, notif(ev), "agreement")["id"] = "agr-other" }), code: "INVALID_NOTIFICATION", field: "notification.agreement.id", msg: "resource.id"},
		{name: "occurredAt not RFC 3339", body: edit(agr, func(ev map[string]any) { ev["occurredAt"] = "25/11/2026 10:00" }), code: "INVALID_ARGUMENTS", field: "occurredAt", msg: "RFC 3339"},
		{name: "occurredAt without zone", body: edit(agr, func(ev map[string]any) { ev["occurredAt"] = "2026-11-25T10:00:00" }), code: "INVALID_ARGUMENTS", field: "occurredAt"},
		{name: "occurredAt a number", body: edit(agr, func(ev map[string]any) { ev["occurredAt"] = 1764064800 }), code: "INVALID_JSON", field: "occurredAt"},
		{name: "accountId a number", body: edit(agr, func(ev map[string]any) { ev["accountId"] = 5 }), code: "INVALID_JSON", field: "accountId", msg: "string"},
		{name: "resource.id a number", body: edit(agr, func(ev map[string]any) { obj(t, ev, "resource")["id"] = 9 }), code: "INVALID_JSON", field: "resource.id"},
		{name: "initiator a string", body: edit(agr, func(ev map[string]any) { ev["initiator"] = "u-1" }), code: "INVALID_JSON", field: "initiator"},
		// Bounded as they are met (payload.MaxMembers), before any name is looked at.
		{name: "more members than the bound", body: splice(agr, `{`, "{"+strings.Repeat(`"":0,`, payload.MaxMembers)),
			code: "INVALID_JSON", msg: fmt.Sprintf("more than %d members", payload.MaxMembers)},
		{name: "resource with more members than the bound", body: splice(agr, `"resource": {`, `"resource": {`+strings.Repeat(`"x":0,`, payload.MaxMembers)),
			code: "INVALID_JSON", field: "resource", msg: fmt.Sprintf("more than %d members", payload.MaxMembers)},
		{name: "notification.agreement with more members than the bound", body: splice(agr, `"agreement": {`, `"agreement": {`+strings.Repeat(`"x":0,`, payload.MaxMembers)),
			code: "INVALID_NOTIFICATION", field: "notification.agreement", msg: fmt.Sprintf("more than %d members", payload.MaxMembers)},
		// Keys are bounded too (payload.MaxKeyBytes), at every level the parser lists.
		{name: "key longer than the bound", body: splice(agr, `{`, `{"`+strings.Repeat("k", payload.MaxKeyBytes+1)+`":0,`),
			code: "INVALID_JSON", msg: fmt.Sprintf("key longer than %d bytes", payload.MaxKeyBytes)},
		{name: "resource key longer than the bound", body: splice(agr, `"resource": {`, `"resource": {"`+strings.Repeat(`\\`, payload.MaxKeyBytes)+`":0,`),
			code: "INVALID_JSON", field: "resource", msg: fmt.Sprintf("key longer than %d bytes", payload.MaxKeyBytes)},
		{name: "notification key longer than the bound", body: splice(agr, `"notification": {`, `"notification": {"`+strings.Repeat("n", payload.MaxKeyBytes+1)+`":0,`),
			code: "INVALID_NOTIFICATION", field: "notification", msg: fmt.Sprintf("key longer than %d bytes", payload.MaxKeyBytes)},
		{name: "notification.agreement key longer than the bound", body: splice(agr, `"agreement": {`, `"agreement": {"`+strings.Repeat("a", payload.MaxKeyBytes+1)+`":0,`),
			code: "INVALID_NOTIFICATION", field: "notification.agreement", msg: fmt.Sprintf("key longer than %d bytes", payload.MaxKeyBytes)},
	}
	// Every Acrobat family: the resource object is required, and resource.type must match the family.
	for name, f := range sampleFamilies {
		if f.resKey == "" {
			continue
		}
		cases = append(cases,
			badCase{name: name + " without notification." + f.resKey, body: edit(name, func(ev map[string]any) { delete(notif(ev), f.resKey) }),
				code: "INVALID_NOTIFICATION", field: "notification." + f.resKey},
			badCase{name: name + " with resource.type ENVELOPE", body: edit(name, func(ev map[string]any) { obj(t, ev, "resource")["type"] = "ENVELOPE" }),
				code: "INVALID_RESOURCE_TYPE", field: "resource.type", msg: f.resType},
		)
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.bug != "" {
				t.Skip("BUG: " + tc.bug)
			}
			ev, err := ingest.Parse(tc.body)
			if err == nil {
				t.Fatalf("Parse succeeded (event %q, id %q), want %s", ev.Event, ev.ID, tc.code)
			}
			if ev != nil {
				t.Errorf("Parse returned an event along with error %v", err)
			}
			var e *ingest.Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse error %v (%T) is not an *ingest.Error", err, err)
			}
			if e.Status != 400 || e.Code != tc.code {
				t.Errorf("Parse = %d %s (%q), want 400 %s", e.Status, e.Code, e.Message, tc.code)
			}
			if strings.TrimSpace(e.Message) == "" {
				t.Errorf("Parse error %s has no message", e.Code)
			}
			if tc.field != "" && !namesField(e.Message, tc.field) {
				t.Errorf("message %q does not name field %s", e.Message, tc.field)
			}
			if tc.msg != "" && !strings.Contains(e.Message, tc.msg) {
				t.Errorf("message %q does not contain %q", e.Message, tc.msg)
			}
			if got := err.Error(); !strings.Contains(got, e.Code) || !strings.Contains(got, e.Message) {
				t.Errorf("Error() = %q, want code and message", got)
			}
		})
	}
}
