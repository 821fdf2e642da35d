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

// Package echo implements Acrobat Sign's client-id echo check, shared by intent verification and
// notification delivery: a response acknowledges only when it echoes the X-AdobeSign-ClientId it was
// sent, in the response header of that name or in a JSON body {"xAdobeSignClientId": "<id>"}.
package echo

import (
	"encoding/json"
	"io"
	"net/http"
)

// Header is the request and response header carrying the client id. net/http canonicalises header
// names, so a receiver may answer with any capitalisation (X-ADOBESIGN-CLIENTID, ...).
const Header = "X-AdobeSign-ClientId"

// CanonicalHeader is Header as net/http keys it in an http.Header. Header.Values(Header) would
// canonicalise the name again, allocating, at every delivery: index the map with this instead.
var CanonicalHeader = http.CanonicalHeaderKey(Header)

// Values returns the echo header's values in h (h.Values(Header), without canonicalising the name
// again).
func Values(h http.Header) []string { return h[CanonicalHeader] }

// BodyKey is the JSON body key a receiver may echo the client id in.
const BodyKey = "xAdobeSignClientId"

// MaxBody is how much of a response body is read to look for the echo. Receivers answer with a tiny
// JSON object; anything longer cannot make the answer valid and is not worth buffering.
const MaxBody = 64 << 10

// Result says whether a response echoed the client id, and if not, what it sent instead.
type Result int

// Results of Check.
const (
	// Echoed: the expected id came back.
	Echoed Result = iota
	// Missing: no echo in the header or body.
	Missing
	// Mismatch: an echo came back with another id.
	Mismatch
)

// HeaderEchoes reports whether the header echoes clientID: then the body does not matter, and
// callers need not read it.
func HeaderEchoes(h http.Header, clientID string) bool {
	for _, v := range Values(h) {
		if v == clientID {
			return true
		}
	}
	return false
}

// Check reports whether header or body echo clientID: either is enough (Acrobat Sign accepts the
// echo "in the response header or in the JSON body"), so a header with another id does not undo a
// body that echoes the right one. The body is parsed as JSON and its BodyKey (or, leniently, the
// header name used as a key, as one Adobe KB article writes it) compared. Mismatch when neither
// echoes the id and either sent another.
func Check(h http.Header, body []byte, clientID string) Result {
	if HeaderEchoes(h, clientID) {
		return Echoed
	}
	missing := Missing
	if len(Values(h)) > 0 {
		missing = Mismatch // unless the body echoes it
	}
	if len(body) == 0 {
		return missing
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) != nil {
		return missing
	}
	for _, key := range []string{BodyKey, Header} {
		raw, ok := doc[key]
		if !ok {
			continue
		}
		// A pointer, because null decodes into a plain string without error and would then echo
		// an empty id.
		var got *string
		if json.Unmarshal(raw, &got) == nil && got != nil && *got == clientID {
			return Echoed
		}
		return Mismatch
	}
	return missing
}

// ReadBody reads at most MaxBody bytes of r for Check. A read error means the body was cut short
// (a timeout, a broken connection): callers report that rather than the truncated body's missing
// echo. What was read is returned either way.
func ReadBody(r io.Reader) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, MaxBody))
}
