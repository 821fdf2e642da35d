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

// Package safetext makes text that came from outside hookline — a receiver's answer, or an error
// quoting one — fit to be shown in Webhook status, Kubernetes Events and e-mails: valid UTF-8,
// without control characters, and short. A receiver chooses that text (a Location header, a
// malformed status line), so unbounded it could make a status write fail or forge lines of an
// e-mail.
package safetext

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxReceiverText is how many bytes of receiver-derived text are kept.
const MaxReceiverText = 256

// ellipsis marks a cut.
const ellipsis = "…"

// Receiver cleans s and clips it to MaxReceiverText bytes.
func Receiver(s string) string { return Clip(Clean(s), MaxReceiverText) }

// Clean returns s as valid UTF-8 with every control character (C0, DEL, C1, and the Unicode line
// and paragraph separators) and every bidirectional formatting character replaced by a space, so
// that it stays on one line and shows in the order it is stored (a receiver's text is shown in
// status, Events, e-mails and the console).
func Clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if IsControl(r) || IsBidi(r) {
			return ' '
		}
		return r
	}, s)
}

// IsControl reports whether r is a control character or a Unicode line or paragraph separator.
func IsControl(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
}

// Clip returns s if it has at most limit bytes, and otherwise its longest prefix that, followed by
// "…", has at most limit bytes, cut at a rune boundary so that valid UTF-8 stays valid.
func Clip(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	n := limit - len(ellipsis)
	if n <= 0 {
		return ""
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + ellipsis
}

// Excerpt returns the start of b — usually the first bytes of a receiver's answer, which may have
// been longer — as text that is safe to show anywhere: valid UTF-8, on one line, with nothing a
// terminal or a bidirectional renderer would interpret, in at most limit bytes. Control characters
// (IsControl) and bidirectional formatting characters are escaped as in Go source (\n, \t, \u001b,
// \u202e); a byte that is not part of valid UTF-8 becomes \xff. Backslashes are kept as they are, so
// a JSON answer stays readable. A rune or escape that would not fit entirely is left out, never cut;
// so is an incomplete rune at the end of b, which is where a longer answer was cut.
func Excerpt(b []byte, limit int) string {
	out := make([]byte, 0, min(len(b), limit))
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		var esc []byte
		switch {
		case r == utf8.RuneError && size <= 1:
			if !utf8.FullRune(b[i:]) {
				return string(out) // the answer was cut inside this rune
			}
			esc = fmt.Appendf(nil, `\x%02x`, b[i])
		case r == '\n':
			esc = []byte(`\n`)
		case r == '\r':
			esc = []byte(`\r`)
		case r == '\t':
			esc = []byte(`\t`)
		case IsControl(r) || IsBidi(r):
			esc = fmt.Appendf(nil, `\u%04x`, r)
		}
		if esc == nil {
			esc = b[i : i+size]
		}
		if len(out)+len(esc) > limit {
			break
		}
		out = append(out, esc...)
		i += size
	}
	return string(out)
}

// IsBidi reports whether r is a bidirectional formatting character, which can make text appear in
// another order than it is stored ("Trojan Source").
func IsBidi(r rune) bool {
	switch {
	case r == '\u061c', r == '\u200e', r == '\u200f':
		return true
	case r >= '\u202a' && r <= '\u202e':
		return true
	case r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}
