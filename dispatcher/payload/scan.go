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
	"encoding/binary"
	"errors"
	"fmt"
)

// A hand-written scanner instead of encoding/json: a notification can hold a 25 MB base64 PDF, and
// json.Decoder would scan such a value three times (read, validate, skip) and copy it twice just to
// learn where it ends. This scanner validates as strictly as encoding/json's (same grammar, same
// nesting limit) in one pass, never allocates, and crosses long strings eight bytes at a time.

// maxDepth matches encoding/json's nesting limit, so the scanner accepts exactly what ingest accepted
// and a hostile input cannot exhaust the stack.
const maxDepth = 10000

// syntaxError reports where a notification stops being JSON; the offset lets an operator find the
// fault in a stored event.
type syntaxError struct {
	msg string
	off int
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at offset %d", e.msg, e.off) }

// trailingData is the message of the error for bytes after a complete object.
const trailingData = "data after the JSON object"

func errAt(off int, msg string) error { return &syntaxError{msg: msg, off: off} }

// keyTooLong is ErrKeyTooLong where the key starts.
type keyTooLong struct{ off int }

func (e *keyTooLong) Error() string { return fmt.Sprintf("%v at offset %d", ErrKeyTooLong, e.off) }
func (e *keyTooLong) Unwrap() error { return ErrKeyTooLong }

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipValue returns the offset just past the JSON value that starts at b[i], at nesting depth
// depth. It walks nested objects and arrays with a stack of its own rather than by recursion: a
// body nested ten thousand deep (what encoding/json allows) grew the goroutine's stack by megabytes
// per call, which stays with an ingest connection's goroutine until the collector shrinks it, and
// which no bound on the bodies in flight counts.
func skipValue(b []byte, i, depth int) (int, error) {
	var room [64]byte
	open := room[:0] // the objects ('{') and arrays ('[') entered, innermost last
	for {
		if i >= len(b) {
			return i, errAt(i, "unexpected end of JSON")
		}
		var err error
		if c := b[i]; c == '{' || c == '[' {
			if depth+len(open)+1 > maxDepth {
				return i, errAt(i, "exceeded max depth")
			}
			open = append(open, c)
			i = skipSpace(b, i+1)
			empty := i < len(b) && (c == '{' && b[i] == '}' || c == '[' && b[i] == ']')
			switch {
			case empty:
				i++
				open = open[:len(open)-1]
			case c == '{':
				if _, i, err = skipKey(b, i); err != nil {
					return i, err
				}
				continue // at the first member's value
			default:
				continue // at the first element
			}
		} else if i, err = skipScalar(b, i); err != nil {
			return i, err
		}
		var done bool
		if i, open, done, err = afterValue(b, i, open); err != nil || done {
			return i, err
		}
	}
}

// skipScalar returns the offset just past the string, literal or number that starts at b[i].
func skipScalar(b []byte, i int) (int, error) {
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return skipNumber(b, i)
	}
	return i, errAt(i, fmt.Sprintf("invalid character %q looking for beginning of value", b[i]))
}

// afterValue goes on past a value that ends at b[i], closing the objects and arrays of open it
// ends, until a ',' leads to the next value (then at its offset, past its key in an object) or
// nothing is open any more (done).
func afterValue(b []byte, i int, open []byte) (_ int, _ []byte, done bool, err error) {
	for len(open) > 0 {
		top := open[len(open)-1]
		i = skipSpace(b, i)
		switch {
		case i >= len(b) && top == '{':
			return i, open, false, errAt(i, "unexpected end of JSON in object")
		case i >= len(b):
			return i, open, false, errAt(i, "unexpected end of JSON in array")
		case b[i] == ',':
			i = skipSpace(b, i+1)
			if top == '{' {
				_, i, err = skipKey(b, i)
			}
			return i, open, false, err
		case top == '{' && b[i] == '}', top == '[' && b[i] == ']':
			i++
			open = open[:len(open)-1]
		case top == '{':
			return i, open, false, errAt(i, "expected ',' or '}' after object value")
		default:
			return i, open, false, errAt(i, "expected ',' or ']' after array element")
		}
	}
	return i, open, true, nil
}

// skipKey reads the key of the object member that starts at b[i]: end is the offset just past the
// key, value the offset of the member's value (or, with err, where the member stops being JSON).
func skipKey(b []byte, i int) (end, value int, err error) {
	if i >= len(b) || b[i] != '"' {
		return i, i, errAt(i, "expected object key")
	}
	if end, err = skipString(b, i); err != nil {
		return end, end, err
	}
	i = skipSpace(b, end)
	if i >= len(b) || b[i] != ':' {
		return end, i, errAt(i, "expected ':' after object key")
	}
	return end, skipSpace(b, i+1), nil
}

// walkObject scans the object starting at b[i] and calls fn (when not nil) with each member's raw key
// (quotes included) and raw value, in input order, so callers see duplicates and order as sent.
func walkObject(b []byte, i, depth int, fn func(rawKey, val []byte) error) (int, error) {
	if depth > maxDepth {
		return i, errAt(i, "exceeded max depth")
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		k := i
		end, v, err := skipKey(b, i)
		if err != nil {
			return v, err
		}
		rawKey := b[k:end]
		i = v
		if i, err = skipValue(b, i, depth); err != nil {
			return i, err
		}
		if fn != nil {
			if err := fn(rawKey, b[v:i]); err != nil {
				return i, err
			}
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, errAt(i, "unexpected end of JSON in object")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return i, errAt(i, "expected ',' or '}' after object value")
		}
	}
}

func skipLiteral(b []byte, i int, lit string) (int, error) {
	if !bytes.HasPrefix(b[i:], []byte(lit)) {
		return i, errAt(i, "invalid literal")
	}
	return i + len(lit), nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func skipNumber(b []byte, i int) (int, error) {
	j := i
	if b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && b[j] >= '1' && b[j] <= '9':
		for j < len(b) && isDigit(b[j]) {
			j++
		}
	default:
		return j, errAt(j, "invalid number")
	}
	if j < len(b) && b[j] == '.' {
		j++
		if j >= len(b) || !isDigit(b[j]) {
			return j, errAt(j, "invalid number: digit expected after '.'")
		}
		for j < len(b) && isDigit(b[j]) {
			j++
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if j >= len(b) || !isDigit(b[j]) {
			return j, errAt(j, "invalid number: digit expected in exponent")
		}
		for j < len(b) && isDigit(b[j]) {
			j++
		}
	}
	return j, nil
}

// Word-at-a-time constants: lo has 0x01 in every byte, hi 0x80.
const (
	lo = 0x0101010101010101
	hi = 0x8080808080808080
)

// plainWord reports whether none of the eight bytes of x ends or escapes a string or is a control
// character. (x - lo*n) & ^x & hi is non-zero exactly when some byte of x is below n (n <= 0x80);
// XOR turns "equals c" into "equals zero", i.e. "below 1".
func plainWord(x uint64) bool {
	q := x ^ (lo * '"')
	s := x ^ (lo * '\\')
	return ((x-lo*0x20)&^x|(q-lo)&^q|(s-lo)&^s)&hi == 0
}

// skipString returns the offset just past the string starting at b[i] (which is '"'), rejecting raw
// control characters and malformed escapes as encoding/json does.
func skipString(b []byte, i int) (int, error) {
	j := i + 1
	for {
		for j+8 <= len(b) && plainWord(binary.LittleEndian.Uint64(b[j:])) {
			j += 8
		}
		if j >= len(b) {
			return j, errAt(i, "unterminated string")
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, nil
		case c == '\\':
			if j+1 >= len(b) {
				return j, errAt(j, "unterminated escape")
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(b) || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) || !isHex(b[j+5]) {
					return j, errAt(j, "invalid \\u escape")
				}
				j += 6
			default:
				return j, errAt(j, "invalid escape")
			}
		case c < 0x20:
			return j, errAt(j, "control character in string")
		default:
			j++
		}
	}
}

func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// validObject reports whether b is exactly one JSON object, surrounding whitespace allowed.
func validObject(b []byte) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errAt(i, "notification is not a JSON object")
	}
	i, err := skipValue(b, i, 0)
	if err != nil {
		return err
	}
	if i = skipSpace(b, i); i != len(b) {
		return errAt(i, "data after the notification object")
	}
	return nil
}

// Member is one key/value pair of a JSON object: the key unescaped, the value raw (it aliases the
// scanned bytes, nothing is copied).
type Member struct {
	Name  string
	Value []byte
}

// ErrTrailingData is returned by Members when something follows the object.
var ErrTrailingData = errors.New("data after the JSON object")

// Members returns the members of the JSON object b (exactly one object, whitespace around it
// allowed) in input order, duplicates included, validating the whole object as strictly as
// encoding/json does. It lets a caller look at a 25 MB document without decoding or copying it.
func Members(b []byte) ([]Member, error) {
	ms, err := parseMembers(b, nil, true)
	if err != nil {
		var se *syntaxError
		if errors.As(err, &se) && se.msg == trailingData {
			return nil, fmt.Errorf("%w at offset %d", ErrTrailingData, se.off)
		}
		return nil, err
	}
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = Member{Name: string(m.name), Value: m.val}
	}
	return out, nil
}
