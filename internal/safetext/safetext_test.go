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

package safetext

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestReceiver(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"short text is kept":         {"endpoint answered 500", "endpoint answered 500"},
		"control characters":         {"a\r\nb\tc\x00d\x7fe\u0085f\u2028g", "a  b c d e f g"},
		"invalid UTF-8 is replaced":  {"a\xffb", "a\uFFFDb"},
		"bidi formatting characters": {"file\u202egnp.exe \u2066x\u2069\u200f", "file gnp.exe  x  "},
		"clipped with a marker":      {strings.Repeat("x", 300), strings.Repeat("x", MaxReceiverText-len("…")) + "…"},
		"clipped at a rune boundary": {strings.Repeat("€", 200), strings.Repeat("€", (MaxReceiverText-len("…"))/3) + "…"},
	} {
		t.Run(name, func(t *testing.T) {
			got := Receiver(tc.in)
			if got != tc.want {
				t.Fatalf("Receiver(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if len(got) > MaxReceiverText || !utf8.ValidString(got) {
				t.Fatalf("Receiver(%q) = %q: %d bytes, valid UTF-8 %v", tc.in, got, len(got), utf8.ValidString(got))
			}
		})
	}
}

func TestClipTinyLimit(t *testing.T) {
	if got := Clip("abcdef", 2); got != "" {
		t.Fatalf("Clip to 2 bytes = %q, want empty (no room for the marker)", got)
	}
}

func TestExcerpt(t *testing.T) {
	for name, tc := range map[string]struct {
		in    string
		limit int
		want  string
	}{
		"text is kept":                      {`{"error":"bad \"x\""}`, 100, `{"error":"bad \"x\""}`},
		"markup stays text":                 {"<script>alert(1)</script>", 100, "<script>alert(1)</script>"},
		"control characters are escaped":    {"a\r\nb\tc\x00d\x1b[31me\x7ff\u0085g\u2028h", 100, `a\r\nb\tc\u0000d\u001b[31me\u007ff\u0085g\u2028h`},
		"bidi overrides are escaped":        {"x\u202eevil\u2066", 100, `x\u202eevil\u2066`},
		"invalid bytes are escaped":         {"a\xffb", 100, `a\xffb`},
		"an escape is never cut":            {"abc\n", 4, "abc"},
		"a rune is never cut":               {"ab€", 4, "ab"},
		"an incomplete last rune is left":   {"ab\xe2\x82", 100, "ab"},
		"an invalid byte inside is escaped": {"\xe2\x82x", 100, `\xe2\x82x`},
	} {
		t.Run(name, func(t *testing.T) {
			got := Excerpt([]byte(tc.in), tc.limit)
			if got != tc.want {
				t.Fatalf("Excerpt(%q, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
			}
			if len(got) > tc.limit || !utf8.ValidString(got) || strings.ContainsFunc(got, IsControl) {
				t.Fatalf("Excerpt(%q) = %q: %d bytes, valid UTF-8 %v", tc.in, got, len(got), utf8.ValidString(got))
			}
		})
	}
}
