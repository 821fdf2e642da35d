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

package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// event is one event to send: its JSON exactly as read, and whether it came from a built-in sample
// (samples get fresh ids by default, files keep theirs).
type event struct {
	raw    []byte
	origin string
	sample bool
}

// splitEvents reads the events of one source: a JSON object, a JSON array of objects, or a stream of
// objects such as newline-delimited JSON. Every event keeps its bytes exactly as written, so that an
// envelope-dialect notification reaches its receivers byte for byte.
func splitEvents(data []byte, origin string) ([]event, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%s: no events", origin)
	}
	var values []json.RawMessage
	if trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &values); err != nil {
			return nil, fmt.Errorf("%s: %s", origin, describeJSONError(data, err))
		}
		if len(values) == 0 {
			return nil, fmt.Errorf("%s: the array holds no events", origin)
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(data))
		for {
			var v json.RawMessage
			err := dec.Decode(&v)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %s", origin, describeJSONError(data, err))
			}
			values = append(values, v)
		}
	}
	events := make([]event, 0, len(values))
	for i, v := range values {
		name := origin
		if len(values) > 1 {
			name = fmt.Sprintf("%s[%d]", origin, i+1)
		}
		if len(v) == 0 || v[0] != '{' {
			return nil, fmt.Errorf("%s: an event must be a JSON object", name)
		}
		events = append(events, event{raw: v, origin: name})
	}
	return events, nil
}

// describeJSONError adds the line and column to a syntax error.
func describeJSONError(data []byte, err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		line, col := lineCol(data, syn.Offset)
		return fmt.Sprintf("invalid JSON at line %d, column %d: %v", line, col, err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "invalid JSON: unexpected end of input"
	}
	return "invalid JSON: " + err.Error()
}

func lineCol(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	line, col = 1, 1
	for _, b := range data[:offset] {
		if b == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// field is a top-level string member of an event to set.
type field struct {
	key, value string
}

// rewriteEvent sets top-level string members of the JSON object raw, leaving every other byte as
// it was, and returns the new JSON with the event's id (after the rewrite). Missing members are
// inserted at the front.
func rewriteEvent(raw []byte, set ...field) ([]byte, string, error) {
	type span struct{ start, end int }
	found := map[string]span{}
	var id string
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, "", errors.New("an event must be a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, "", err
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, "", err
		}
		end := int(dec.InputOffset())
		start := end - len(v)
		if start < 0 || !bytes.Equal(raw[start:end], v) {
			return nil, "", fmt.Errorf("cannot locate member %q", key)
		}
		if _, dup := found[key]; !dup {
			found[key] = span{start, end}
		}
		if key == "id" {
			_ = json.Unmarshal(v, &id)
		}
	}
	if len(set) == 0 {
		return raw, id, nil
	}
	out := append([]byte(nil), raw...)
	var inserts []byte
	type repl struct {
		span
		value []byte
	}
	var repls []repl
	for _, f := range set {
		v, err := json.Marshal(f.value)
		if err != nil {
			return nil, "", err
		}
		if f.key == "id" {
			id = f.value
		}
		if s, ok := found[f.key]; ok {
			repls = append(repls, repl{s, v})
			continue
		}
		k, _ := json.Marshal(f.key)
		inserts = append(inserts, k...)
		inserts = append(inserts, ':')
		inserts = append(inserts, v...)
		inserts = append(inserts, ',')
	}
	slices.SortFunc(repls, func(x, y repl) int { return y.start - x.start })
	// Replace from the end backwards so that earlier offsets stay valid.
	for _, r := range repls {
		out = append(out[:r.start:r.start], append(r.value, out[r.end:]...)...)
	}
	if len(inserts) > 0 {
		open := bytes.IndexByte(out, '{') + 1
		if len(found) == 0 {
			inserts = inserts[:len(inserts)-1] // an empty object takes no trailing comma
		}
		out = append(out[:open:open], append(inserts, out[open:]...)...)
	}
	return out, id, nil
}

// idMinter makes event ids unique to this run: the original id, a random run id and a sequence
// number, e.g. evt-agreement-action-completed-0001-3f2a9c1b7d4e-17.
type idMinter struct {
	run string
	seq int
}

func newIDMinter() *idMinter {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return &idMinter{run: hex.EncodeToString(b)}
}

// maxIDLength is the ingest API's limit on event ids.
const maxIDLength = 256

func (m *idMinter) next(original string) string {
	m.seq++
	suffix := "-" + m.run + "-" + strconv.Itoa(m.seq)
	if original == "" {
		original = "hookline-cli"
	}
	if len(original)+len(suffix) > maxIDLength {
		original = original[:maxIDLength-len(suffix)]
	}
	return original + suffix
}
