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

package jsonstr

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/hookline/hookline/internal/testsupport"
)

// FuzzAppend: any string is written as encoding/json writes it, HTML-safe as json.Marshal and
// HTML as it is as an Encoder with SetEscapeHTML(false).
func FuzzAppend(f *testing.F) {
	for _, s := range testsupport.AwkwardStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := Append(nil, s, true); string(got) != string(want) {
			t.Fatalf("Append(%q, html) = %s, want %s", s, got, want)
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		want = bytes.TrimSuffix(b.Bytes(), []byte("\n"))
		if got := Append([]byte("prefix"), s, false); string(got) != "prefix"+string(want) {
			t.Fatalf("Append(%q) = %s, want prefix%s", s, got, want)
		}
	})
}

// BenchmarkAppend measures the delivery log's typical strings: ids, names, a short JSON answer.
func BenchmarkAppend(b *testing.B) {
	strs := []string{
		"3f2b8c4e-9d1a-4e6b-8f0c-2a7d5e9b1c34",
		"AGREEMENT_WORKFLOW_COMPLETED",
		"team-payments",
		`{"xAdobeSignClientId":"CBJCHBCAABAAjA3h4eHyw4Ry1-dQFN_3xe8kAUkaEJ4z"}`,
		"Delivered",
	}
	n := 0
	for _, s := range strs {
		n += len(s)
	}
	b.SetBytes(int64(n))
	buf := make([]byte, 0, 1024)
	for b.Loop() {
		buf = buf[:0]
		for _, s := range strs {
			buf = Append(buf, s, true)
		}
	}
}
