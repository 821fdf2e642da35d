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
	"reflect"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/internal/deliveries"
	"github.com/hookline/hookline/internal/testsupport"
)

// fullRecord has every field of deliveries.Record set (by reflection, so that a field added later
// is set too, and appendRecord must write it).
func fullRecord(t testing.TB, s string) deliveries.Record {
	t.Helper()
	var r deliveries.Record
	v := reflect.ValueOf(&r).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(v.Type().Field(i).Name + ":" + s)
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(-7 - i))
		case reflect.Uint64:
			f.SetUint(1<<63 + uint64(i))
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{s, "x", ""}))
		case reflect.Struct:
			f.Set(reflect.ValueOf(time.Date(2026, 12, 2, 13, 4, 5, 123456789+i, time.UTC)))
		default:
			t.Fatalf("field %s: kind %s not covered by the test", v.Type().Field(i).Name, f.Kind())
		}
	}
	return r
}

// sampleRecords are records with every field set or empty, awkward strings, times in other zones
// and without fractions, and Trimmed nil, empty or long.
func sampleRecords(t testing.TB) []deliveries.Record {
	berlin := time.FixedZone("CET", 3600)
	var records []deliveries.Record
	for _, s := range testsupport.AwkwardStrings {
		records = append(records, fullRecord(t, s))
		r := fullRecord(t, s)
		r.Attempt, r.DurationMillis, r.HTTPStatus, r.BytesSent = 0, 0, 0, 0
		r.Reason, r.Message, r.Response, r.Replay = "", "", "", ""
		r.Trimmed = nil
		records = append(records, r)
		r.Trimmed = []string{}
		records = append(records, r)
	}
	records = append(records,
		deliveries.Record{}, // zero times, every omitempty field left out
		deliveries.Record{Kind: deliveries.KindAttempt, State: deliveries.StateRetrying, Attempt: 3,
			Created: time.Date(2026, 1, 2, 3, 4, 5, 0, berlin), At: time.Date(2026, 1, 2, 3, 4, 6, 500_000_000, time.Local),
			HTTPStatus: 503, Reason: "HTTPError", Response: "Service Unavailable\n", Trimmed: []string{"payload.agreement", "payload.participants"}},
		deliveries.Record{Created: time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC), At: time.Date(0, 1, 1, 0, 0, 0, 1, time.UTC)},
	)
	return records
}

// appendRecord writes exactly what encoding/json writes, for every field set or empty, awkward
// strings, times in other zones and without fractions, and Trimmed nil, empty or long.
func TestAppendRecord(t *testing.T) {
	g := NewWithT(t)
	records := sampleRecords(t)
	buf := []byte("prefix")
	for i, r := range records {
		want, err := json.Marshal(r)
		g.Expect(err).NotTo(HaveOccurred())
		got, err := appendRecord(buf[:6], &r)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(got[6:])).To(Equal(string(want)), "record %d", i)
		g.Expect(string(got[:6])).To(Equal("prefix"))
		var back deliveries.Record
		g.Expect(json.Unmarshal(got[6:], &back)).To(Succeed())
		var wantBack deliveries.Record
		g.Expect(json.Unmarshal(want, &wantBack)).To(Succeed())
		g.Expect(back).To(Equal(wantBack), "record %d", i)
		buf = got[:0]
	}
}

// A time Time.MarshalJSON refuses is refused by appendRecord too (json.Marshal says why).
func TestAppendRecordRefusesWhatJSONRefuses(t *testing.T) {
	g := NewWithT(t)
	for _, r := range []deliveries.Record{
		{At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Created: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("far", 25*3600))},
	} {
		_, want := json.Marshal(r)
		g.Expect(want).To(HaveOccurred())
		_, err := appendRecord(nil, &r)
		g.Expect(err).To(HaveOccurred())
	}
}

func BenchmarkEncodeRecord(b *testing.B) {
	r := rec("3f2b8c4e-9d1a-4e6b-8f0c-2a7d5e9b1c34", 1, time.Now(), deliveries.StateDelivered, 1, 200, "Delivered")
	r.DurationMillis = 87
	r.Response = `{"xAdobeSignClientId":"CBJCHBCAABAAjA3h4eHyw4Ry1-dQFN_3xe8kAUkaEJ4z"}`
	b.Run("appendRecord", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = appendRecord(buf[:0], &r)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(r)
		}
	})
}
