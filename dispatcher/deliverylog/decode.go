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
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/hookline/hookline/internal/deliveries"
)

// unmarshalRecord decodes one record into r (zeroed first): the fast path when the record has the
// form appendRecord writes, encoding/json otherwise.
func unmarshalRecord(data []byte, r *deliveries.Record) error {
	*r = deliveries.Record{}
	if decodeRecord(data, r) {
		return nil
	}
	*r = deliveries.Record{}
	return json.Unmarshal(data, r)
}

// decodeRecord decodes data into r, zero before, if data has the form appendRecord writes: the
// fields in its order, nothing between the tokens, strings with the escapes encoding/json writes.
// It reports false for anything else (a writer of another version, a damaged record, a string this
// writer would not have written), which the caller gives to encoding/json: so the fast path never
// reads a record differently from encoding/json (FuzzDecodeRecord checks both directions), and the
// records receivers fill (the response excerpt) go through it like any other string.
//
// Every replay's selection and every page of the read API decodes the records it reads, and
// encoding/json's reflection was nearly all of that CPU.
func decodeRecord(data []byte, r *deliveries.Record) bool {
	d := decoder{b: data}
	var kind, state string
	if !d.lit(`{"kind":`) || !d.enum(&kind, kinds) ||
		!d.lit(`,"webhookUid":`) || !d.str(&r.WebhookUID) ||
		!d.lit(`,"namespace":`) || !d.str(&r.Namespace) ||
		!d.lit(`,"name":`) || !d.str(&r.Name) ||
		!d.lit(`,"webhookNotificationId":`) || !d.str(&r.NotificationID) ||
		!d.lit(`,"eventSeq":`) || !d.uint(&r.EventSeq) ||
		!d.lit(`,"eventId":`) || !d.str(&r.EventID) ||
		!d.lit(`,"event":`) || !d.str(&r.EventName) ||
		!d.lit(`,"created":`) || !d.time(&r.Created) ||
		!d.lit(`,"at":`) || !d.time(&r.At) ||
		!d.lit(`,"state":`) || !d.enum(&state, states) {
		return false
	}
	r.Kind, r.State = deliveries.Kind(kind), deliveries.State(state)
	return d.optional(r) && d.lit("}") && d.i == len(d.b)
}

// optional reads the fields appendRecord writes only when set: each at most once, in its order.
func (d *decoder) optional(r *deliveries.Record) bool {
	next := 0
	for d.ok() && d.b[d.i] == ',' {
		d.i++
		name, ok := d.key()
		if !ok {
			return false
		}
		k := next
		for k < len(optional) && optional[k] != string(name) {
			k++
		}
		if k == len(optional) {
			return false
		}
		next = k + 1
		// A switch, not a table of functions: r passed to a function value would escape to the heap.
		switch optional[k] {
		case "attempt":
			ok = d.int(&r.Attempt)
		case "durationMillis":
			ok = d.int64(&r.DurationMillis, 64)
		case "reason":
			ok = d.str(&r.Reason)
		case "message":
			ok = d.str(&r.Message)
		case "httpStatus":
			ok = d.int(&r.HTTPStatus)
		case "response":
			ok = d.str(&r.Response)
		case "bytesSent":
			ok = d.int(&r.BytesSent)
		case "trimmed":
			ok = d.strs(&r.Trimmed)
		case "replay":
			ok = d.str(&r.Replay)
		}
		if !ok {
			return false
		}
	}
	return true
}

// optional lists the keys appendRecord writes only when set, in its order.
var optional = [...]string{"attempt", "durationMillis", "reason", "message", "httpStatus", "response", "bytesSent", "trimmed", "replay"}

// kinds and states are read without allocating a string for each record.
var (
	kinds  = []string{string(deliveries.KindAttempt), string(deliveries.KindDropped), string(deliveries.KindCancelled), string(deliveries.KindLost), string(deliveries.KindReplayQueued)}
	states = func() []string {
		s := make([]string, 0, len(deliveries.States))
		for _, st := range deliveries.States {
			s = append(s, string(st))
		}
		return s
	}()
)

// decoder reads the tokens of one record; each method reports false, having read an unknown
// amount, when the next token is not what it reads.
type decoder struct {
	b []byte
	i int
}

func (d *decoder) ok() bool { return d.i < len(d.b) }

func (d *decoder) lit(s string) bool {
	if len(d.b)-d.i < len(s) || string(d.b[d.i:d.i+len(s)]) != s {
		return false
	}
	d.i += len(s)
	return true
}

// key reads `"name":` for a name of letters; it returns the name's bytes.
func (d *decoder) key() ([]byte, bool) {
	if !d.lit(`"`) {
		return nil, false
	}
	end := bytes.IndexByte(d.b[d.i:], '"')
	if end < 0 {
		return nil, false
	}
	name := d.b[d.i : d.i+end]
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			return nil, false
		}
	}
	d.i += end + 1
	return name, d.lit(":")
}

func (d *decoder) str(s *string) bool {
	b, ok := d.strBytes()
	*s = string(b)
	return ok
}

// enum reads a string, without allocating when it is one of known.
func (d *decoder) enum(s *string, known []string) bool {
	b, ok := d.strBytes()
	for _, k := range known {
		if string(b) == k {
			*s = k
			return ok
		}
	}
	*s = string(b)
	return ok
}

// strBytes reads a JSON string: its bytes in the record if it has no escapes, else decoded into a
// new slice. Escapes are decoded as encoding/json does, except \u escapes of surrogates, left to
// it (pairs and lone halves). Unescaped bytes must be valid UTF-8 without control characters:
// encoding/json replaces invalid UTF-8 and refuses control characters.
func (d *decoder) strBytes() ([]byte, bool) {
	if !d.lit(`"`) {
		return nil, false
	}
	start := d.i
	ascii := true
	for ; d.i < len(d.b); d.i++ {
		c := d.b[d.i]
		switch {
		case c == '"':
			raw := d.b[start:d.i]
			if !ascii && !utf8.Valid(raw) {
				return nil, false
			}
			d.i++
			return raw, true
		case c == '\\':
			return d.escaped(start)
		case c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// escaped goes on with a string from its first backslash, at d.i; start is where the string's
// bytes began.
func (d *decoder) escaped(start int) ([]byte, bool) {
	out := make([]byte, 0, d.i-start+16)
	plain := start // the first byte not yet copied
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			out = append(out, d.b[plain:d.i]...)
			if !utf8.Valid(out) {
				return nil, false
			}
			d.i++
			return out, true
		case c < 0x20:
			return nil, false
		case c != '\\':
			d.i++
			continue
		}
		out = append(out, d.b[plain:d.i]...)
		if d.i+1 >= len(d.b) {
			return nil, false
		}
		switch e := d.b[d.i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if d.i+6 > len(d.b) {
				return nil, false
			}
			// Four hex digits of either case, as JSON allows: hex.Decode takes exactly those.
			var u [2]byte
			if _, err := hex.Decode(u[:], d.b[d.i+2:d.i+6]); err != nil {
				return nil, false
			}
			v := rune(u[0])<<8 | rune(u[1])
			if v >= 0xD800 && v < 0xE000 {
				return nil, false
			}
			out = utf8.AppendRune(out, v)
			d.i += 4
		default:
			return nil, false
		}
		d.i += 2
		plain = d.i
	}
	return nil, false
}

// strs reads an array of strings ([] gives an empty slice, as encoding/json does).
func (d *decoder) strs(v *[]string) bool {
	if !d.lit("[") {
		return false
	}
	out := []string{}
	if d.lit("]") {
		*v = out
		return true
	}
	for {
		var s string
		if !d.str(&s) {
			return false
		}
		out = append(out, s)
		if d.lit("]") {
			*v = out
			return true
		}
		if !d.lit(",") {
			return false
		}
	}
}

// digits reads a JSON integer: an optional minus, then 0 or digits not starting with 0.
func (d *decoder) digits(signed bool) ([]byte, bool) {
	start := d.i
	if signed && d.ok() && d.b[d.i] == '-' {
		d.i++
	}
	first := d.i
	for d.ok() && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
		d.i++
	}
	n := d.i - first
	if n == 0 || n > 1 && d.b[first] == '0' {
		return nil, false
	}
	// A fraction or an exponent follows: a number encoding/json would refuse for an integer field
	// or read otherwise.
	if d.ok() && (d.b[d.i] == '.' || d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		return nil, false
	}
	return d.b[start:d.i], true
}

func (d *decoder) uint(v *uint64) bool {
	b, ok := d.digits(false)
	if !ok {
		return false
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	*v = n
	return err == nil
}

func (d *decoder) int(v *int) bool {
	var n int64
	ok := d.int64(&n, strconv.IntSize)
	*v = int(n)
	return ok
}

// int64 reads a signed integer that fits in bits.
func (d *decoder) int64(v *int64, bits int) bool {
	b, ok := d.digits(true)
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(string(b), 10, bits)
	*v = n
	return err == nil
}

// time reads a quoted time without escapes with time.Time's UnmarshalJSON, as encoding/json does.
func (d *decoder) time(t *time.Time) bool {
	if !d.ok() || d.b[d.i] != '"' {
		return false
	}
	end := bytes.IndexByte(d.b[d.i+1:], '"')
	if end < 0 {
		return false
	}
	raw := d.b[d.i : d.i+end+2]
	if bytes.IndexByte(raw, '\\') >= 0 || t.UnmarshalJSON(raw) != nil {
		return false
	}
	d.i += end + 2
	return true
}
