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

package echo

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// referenceCheck is the echo rule written from its description rather than from Check, so the
// fuzzer can compare the two:
//
//   - A response carrying the header X-AdobeSign-ClientId (any capitalisation of the name) with one
//     value exactly the id is Echoed, whatever its body.
//   - Otherwise the body must be one JSON object. Its "xAdobeSignClientId" member, or failing that
//     an "X-AdobeSign-ClientId" member (exact spelling, case-sensitive), decides: Echoed when it is a
//     JSON string equal to the id, Mismatch for any other value, null included.
//   - Anything else is Missing, or Mismatch when the header came with other values.
//
// It decodes the body generically (numbers kept as text, so huge ones are not a decode error)
// where Check decodes into raw members, and finds the header by scanning every name.
func referenceCheck(h http.Header, body []byte, clientID string) Result {
	present := false
	for name, vals := range h {
		if !strings.EqualFold(name, "x-adobesign-clientid") {
			continue
		}
		present = present || len(vals) > 0
		for _, v := range vals {
			if v == clientID {
				return Echoed
			}
		}
	}
	// Either echo is enough: a header with another id leaves the body to decide, and makes its
	// missing echo a mismatch.
	if r := referenceBody(body, clientID); r != Missing || !present {
		return r
	}
	return Mismatch
}

// referenceBody is referenceCheck for the body alone.
func referenceBody(body []byte, clientID string) Result {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if dec.Decode(&doc) != nil {
		return Missing
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Missing // trailing data: not one JSON value
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return Missing
	}
	for _, key := range []string{"xAdobeSignClientId", "X-AdobeSign-ClientId"} {
		v, ok := obj[key]
		if !ok {
			continue
		}
		if s, isString := v.(string); isString && s == clientID {
			return Echoed
		}
		return Mismatch
	}
	return Missing
}

// headerName spells "X-AdobeSign-ClientId" with the case of each letter taken from a bit of mask,
// as a receiver's framework might; net/http canonicalises whatever arrives, as Header.Add does here.
func headerName(mask uint32) string {
	b := []byte("x-adobesign-clientid")
	for i := range b {
		if mask&(1<<i) != 0 && b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

// FuzzCheck compares Check with referenceCheck for arbitrary header values, bodies and client ids,
// the body read through ReadBody as the callers do.
//
// mode selects the header: 0 none, 1 one value, 2 the fuzzed value then the id (any matching
// value echoes), 3 an empty value then the fuzzed one; bit 2 makes the body reader fail after the
// body, which must not change what ReadBody returns.
func FuzzCheck(f *testing.F) {
	const id = "CBJCHBCAABAA-client-1"
	bodies := []string{
		"", `{"xAdobeSignClientId":"` + id + `"}`, `{"X-AdobeSign-ClientId":"` + id + `"}`,
		`{"xAdobeSignClientId":null}`, `{"xAdobeSignClientId":1e999}`, `{"xAdobeSignClientId":["` + id + `"]}`,
		`{"xadobesignclientid":"` + id + `"}`, `{"xAdobeSignClientId":"other","X-AdobeSign-ClientId":"` + id + `"}`,
		`{"xAdobeSignClientId":"other","xAdobeSignClientId":"` + id + `"}`, `{"x\u0041dobeSignClientId":"` + id + `"}`,
		`{"xAdobeSignClientId":"` + id + `"} trailing`, `{"xAdobeSignClientId":"` + id + `"}{}`, `[{"xAdobeSignClientId":"` + id + `"}]`,
		`"` + id + `"`, `null`, "\ufeff{}", `{"xAdobeSignClientId":"\ud800"}`, "{\"xAdobeSignClientId\":\"\xff\"}",
		`{"xAdobeSignClientId":"` + id + ` "}`, `{"xAdobeSignClientId":"` + strings.ToLower(id) + `"}`,
	}
	headers := []string{id, "", " " + id, id + "\r\nX-Injected: 1", strings.ToLower(id), id[:5], "\x00", "\xff"}
	for i, body := range bodies {
		f.Add(uint8(0), uint32(0), headers[i%len(headers)], []byte(body), id)
		f.Add(uint8(i%4), uint32(i*0x9e3779b9), headers[i%len(headers)], []byte(body), id)
	}
	for i, hv := range headers {
		f.Add(uint8(1+i%3), uint32(i*0x45d9f3b), hv, []byte(bodies[1]), id)
	}
	// An empty id never reaches Check in production (the manager refuses to verify without one),
	// but Check must still not confuse "no value" with "the empty value".
	f.Add(uint8(0), uint32(0), "", []byte(`{"xAdobeSignClientId":null}`), "")
	f.Add(uint8(0), uint32(0), "", []byte(`{"xAdobeSignClientId":""}`), "")
	f.Add(uint8(1), uint32(0), "", []byte(nil), "")
	f.Add(uint8(4), uint32(0), "", []byte(bodies[1]), id)

	f.Fuzz(func(t *testing.T, mode uint8, mask uint32, headerValue string, body []byte, clientID string) {
		h := http.Header{}
		name := headerName(mask)
		switch mode & 3 {
		case 1:
			h.Add(name, headerValue)
		case 2:
			h.Add(name, headerValue)
			h.Add(name, clientID)
		case 3:
			h.Add(name, "")
			h.Add(name, headerValue)
		}
		var r io.Reader = bytes.NewReader(body)
		if mode&4 != 0 {
			r = io.MultiReader(r, iotest.ErrReader(errors.New("connection reset")))
		}
		got, _ := ReadBody(r)
		want := body
		if len(want) > MaxBody {
			want = want[:MaxBody]
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("ReadBody returned %d bytes, want the first %d of the body", len(got), len(want))
		}

		hBefore, bodyBefore := h.Clone(), bytes.Clone(got)
		res := Check(h, got, clientID)
		if ref := referenceCheck(h, got, clientID); res != ref {
			t.Fatalf("Check(%q, %q, %q) = %v, reference says %v", h, got, clientID, res, ref)
		}
		if res != Echoed && res != Missing && res != Mismatch {
			t.Fatalf("Check returned %d, not a Result", res)
		}
		if !bytes.Equal(got, bodyBefore) || !reflect.DeepEqual(h, hBefore) {
			t.Fatal("Check modified its arguments")
		}
		// With one header value equal to the id the verdict is Echoed, whatever the body; with
		// another, the body decides (plain byte equality in the header: no trimming, no case
		// folding), and its missing echo is a mismatch.
		if mode&3 == 1 {
			want := referenceBody(got, clientID)
			switch {
			case headerValue == clientID:
				want = Echoed
			case want == Missing:
				want = Mismatch
			}
			if res != want {
				t.Fatalf("header %q, id %q, body %q: Check = %v, want %v", headerValue, clientID, got, res, want)
			}
		}
	})
}
