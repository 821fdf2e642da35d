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

package deliverylog

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/internal/deliveries"
)

// encodedRecords are sampleRecords as appendRecord writes them, and a typical attempt.
func encodedRecords(t testing.TB) [][]byte {
	t.Helper()
	records := append(sampleRecords(t),
		rec("3f2b8c4e-9d1a-4e6b-8f0c-2a7d5e9b1c34", 1<<40, time.Now(), deliveries.StateDelivered, 1, 200, "Delivered"))
	var out [][]byte
	for _, r := range records {
		b, err := appendRecord(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// The fast path reads every record appendRecord writes, and reads it as encoding/json does.
func TestDecodeRecordReadsWhatAppendRecordWrites(t *testing.T) {
	g := NewWithT(t)
	for i, b := range encodedRecords(t) {
		var got, want deliveries.Record
		g.Expect(decodeRecord(b, &got)).To(BeTrue(), "record %d: %s", i, b)
		g.Expect(json.Unmarshal(b, &want)).To(Succeed())
		g.Expect(reflect.DeepEqual(got, want)).To(BeTrue(), "record %d: %s\n got %#v\nwant %#v", i, b, got, want)
	}
}

// Whatever is not in appendRecord's form is left to encoding/json, which then decides: its value,
// or its error.
func TestDecodeRecordLeavesTheRestToJSON(t *testing.T) {
	g := NewWithT(t)
	base := `{"kind":"attempt","webhookUid":"u","namespace":"ns","name":"n","webhookNotificationId":"id","eventSeq":7,` +
		`"eventId":"e","event":"E","created":"2026-12-05T06:00:00Z","at":"2026-12-05T06:00:01.5+01:00","state":"retrying"`
	var plain deliveries.Record
	g.Expect(decodeRecord([]byte(base+`,"attempt":2}`), &plain)).To(BeTrue())
	g.Expect(plain.Attempt).To(Equal(2))
	for _, in := range []string{
		base + `, "attempt":2}`,                        // white space
		base + `,"attempt":2} `,                        // trailing white space
		base + `,"reason":"x","attempt":2}`,            // order
		base + `,"attempt":2,"attempt":3}`,             // twice
		base + `,"Attempt":2}`,                         // encoding/json matches keys without case
		base + `,"extra":true}`,                        // unknown
		base + `,"attempt":02}`,                        // not JSON
		base + `,"attempt":2e0}`,                       // an exponent
		base + `,"attempt":2.0}`,                       // a fraction
		base + `,"attempt":99999999999999999999}`,      // too large
		base + `,"attempt":null}`,                      // null
		base + `,"trimmed":null}`,                      // null
		base + `,"trimmed":["a",]}`,                    // not JSON
		base + `,"reason":"\ud83d\ude80"}`,             // a surrogate pair
		base + `,"reason":"\ud83d"}`,                   // a lone surrogate
		base + `,"reason":"\x"}`,                       // a bad escape
		base + `,"reason":"\u12"}`,                     // a short escape
		base + `,"reason":"bad ` + "\xff" + ` utf-8"}`, // invalid UTF-8, replaced by encoding/json
		base + `,"reason":"é\u00e9` + "\xc3" + `"}`,    // invalid UTF-8 after an escape
		base + `,"reason":"tab` + "\t" + `"}`,          // a control character
		strings.Replace(base, `"eventSeq":7`, `"eventSeq":-7`, 1) + `}`,
		strings.Replace(base, `"2026-12-05T06:00:00Z"`, `"2026-12-05 06:00:00"`, 1) + `}`,
		strings.Replace(base, `"2026-12-05T06:00:00Z"`, `null`, 1) + `}`,
		strings.Replace(base, `"kind":"attempt"`, `"kind":1`, 1) + `}`,
		base, // cut short
		"",
	} {
		var fast deliveries.Record
		g.Expect(decodeRecord([]byte(in), &fast)).To(BeFalse(), "%q", in)
		var got, want deliveries.Record
		err := unmarshalRecord([]byte(in), &got)
		wantErr := json.Unmarshal([]byte(in), &want)
		g.Expect(fmt.Sprint(err)).To(Equal(fmt.Sprint(wantErr)), "%q", in)
		g.Expect(reflect.DeepEqual(got, want)).To(BeTrue(), "%q", in)
	}
	// Escapes encoding/json reads; appendRecord does not write \/ or upper-case hex.
	var esc deliveries.Record
	g.Expect(decodeRecord([]byte(base+`,"reason":"a\/b\u00E9\u0000\"\\"}`), &esc)).To(BeTrue())
	g.Expect(esc.Reason).To(Equal("a/bé\x00\"\\"))
}

// FuzzDecodeRecord: whatever the fast path reads, encoding/json reads the same way; and a record
// holding any text (the response excerpt comes from receivers) is read on the fast path, as written.
func FuzzDecodeRecord(f *testing.F) {
	for _, b := range encodedRecords(f) {
		f.Add(b)
	}
	f.Add([]byte(`{"kind":"attempt","webhookUid":"u","namespace":"n","name":"n","webhookNotificationId":"i","eventSeq":0,"eventId":"e","event":"E","created":"0001-01-01T00:00:00Z","at":"0001-01-01T00:00:00Z","state":"lost","trimmed":[],"replay":"a\u00e9"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast, slow deliveries.Record
		if decodeRecord(data, &fast) {
			if err := json.Unmarshal(data, &slow); err != nil {
				t.Fatalf("fast path read %q, encoding/json refuses it: %v", data, err)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("%q:\n fast %#v\n json %#v", data, fast, slow)
			}
		}
		s := string(data)
		r := deliveries.Record{Kind: deliveries.Kind(s), WebhookUID: s, Response: s, Message: s, Trimmed: []string{s, s},
			EventSeq: uint64(len(s)), Attempt: -len(s), Created: time.Unix(int64(len(s))*7919, int64(len(s))).UTC()}
		b, err := appendRecord(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		var back, want deliveries.Record
		if !decodeRecord(b, &back) {
			t.Fatalf("fast path refuses what appendRecord wrote: %q", b)
		}
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, want) {
			t.Fatalf("%q:\n fast %#v\n json %#v", b, back, want)
		}
	})
}

func BenchmarkDecodeRecord(b *testing.B) {
	r := rec("3f2b8c4e-9d1a-4e6b-8f0c-2a7d5e9b1c34", 1, time.Now(), deliveries.StateRetrying, 2, 503, "HTTPError")
	r.Response = `{"error":"Service Unavailable","detail":"upstream \"orders\" timed out\n"}`
	data, err := appendRecord(nil, &r)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decodeRecord", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out deliveries.Record
			if !decodeRecord(data, &out) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out deliveries.Record
			if err := json.Unmarshal(data, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
